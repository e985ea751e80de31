package provider

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
)

// ProxyError is a forward proxy's refusal that the transport would
// otherwise report as bare text, such as a CONNECT answered with 407: see
// RefuseTunnel.
type ProxyError struct {
	// Status is the proxy's answer, such as "407 Proxy Authentication Required".
	Status string
}

func (e *ProxyError) Error() string { return "the proxy refused the tunnel: HTTP " + e.Status }

// RefuseTunnel is an http.Transport's OnProxyConnectResponse: a CONNECT
// the proxy refused becomes a *ProxyError, which ProxyFailure recognises.
func RefuseTunnel(_ context.Context, _ *url.URL, _ *http.Request, resp *http.Response) error {
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	return &ProxyError{Status: resp.Status}
}

// ProxyFailure reports whether err is a failure of the forward proxy a
// call went through rather than of the upstream: the proxy could not be
// reached or resolved, refused the tunnel (see RefuseTunnel), or failed
// the SOCKS handshake.
func ProxyFailure(err error) bool {
	if _, ok := errors.AsType[*ProxyError](err); ok {
		return true
	}
	for op, ok := errors.AsType[*net.OpError](err); ok; op, ok = errors.AsType[*net.OpError](op.Err) {
		// net/http names a failed dial of the proxy "proxyconnect", and a
		// failed SOCKS handshake "socks connect".
		if op.Op == "proxyconnect" || op.Op == "socks connect" {
			return true
		}
		if op.Err == nil {
			break
		}
	}
	return false
}

// TransportError is the client's view of a call that got no answer: the
// upstream (or the credential's proxy) could not be reached, the
// connection broke, or it timed out. Transport errors name hosts and
// addresses, never keys; secrets, if given, are scrubbed all the same.
func TransportError(err error, secrets ...string) *Error {
	if pe, ok := errors.AsType[*Error](err); ok {
		return pe
	}
	msg := Scrub(err.Error(), secrets...)
	if ProxyFailure(err) {
		return &Error{Status: http.StatusBadGateway, Type: "api_error", Code: "upstream_proxy_failed",
			Message: "the credential's proxy failed: " + msg, Kind: KindProxy}
	}
	pe := &Error{Status: http.StatusBadGateway, Type: "api_error", Code: "upstream_unreachable",
		Message: "the upstream request failed: " + msg, Kind: KindTransient}
	if ne, ok := errors.AsType[net.Error](err); (ok && ne.Timeout()) || errors.Is(err, context.DeadlineExceeded) {
		pe.Status, pe.Code = http.StatusGatewayTimeout, "upstream_timeout"
	}
	return pe
}

// ProxyStatusError is the error for an upstream answer of 407, which only
// a forward proxy sends: its credentials (in proxy_url) were refused.
func ProxyStatusError(status string) *Error {
	return &Error{Status: http.StatusBadGateway, Type: "api_error", Code: "upstream_proxy_failed",
		Message: fmt.Sprintf("the credential's proxy refused the request (HTTP %s); check the user and password in its proxy_url", status),
		Kind:    KindProxy}
}

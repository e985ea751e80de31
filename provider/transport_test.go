package provider

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

// refusingProxy is an HTTP forward proxy that answers every request, and
// every CONNECT, with 407.
func refusingProxy(t *testing.T) *url.URL {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Proxy-Authenticate", `Basic realm="proxy"`)
		w.WriteHeader(http.StatusProxyAuthRequired)
	}))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	u.User = url.UserPassword("user", "proxy-pass-SECRET")
	return u
}

// socksRefusingAuth is a SOCKS5 server that refuses every user and
// password.
func socksRefusingAuth(t *testing.T) *url.URL {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				head := make([]byte, 2)
				if _, err := io.ReadFull(br, head); err != nil {
					return
				}
				methods := make([]byte, head[1])
				if _, err := io.ReadFull(br, methods); err != nil {
					return
				}
				_, _ = c.Write([]byte{5, 2}) // username/password, please
				ver := make([]byte, 2)
				if _, err := io.ReadFull(br, ver); err != nil {
					return
				}
				user := make([]byte, ver[1])
				_, _ = io.ReadFull(br, user)
				plen, _ := br.ReadByte()
				pass := make([]byte, plen)
				_, _ = io.ReadFull(br, pass)
				_, _ = c.Write([]byte{1, 1}) // refused
			}()
		}
	}()
	return &url.URL{Scheme: "socks5", User: url.UserPassword("user", "proxy-pass-SECRET"), Host: ln.Addr().String()}
}

func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestProxyFailures: every way a credential's proxy fails is told apart
// from a failure of the upstream behind it, and never names the proxy's
// password.
func TestProxyFailures(t *testing.T) {
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer upstream.Close()
	tlsUpstream := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer tlsUpstream.Close()
	dnsFails := func(ctx context.Context, network, addr string) (net.Conn, error) {
		if strings.HasPrefix(addr, "proxy.example:") {
			return nil, &net.OpError{Op: "dial", Net: network, Err: &net.DNSError{Err: "no such host", Name: "proxy.example", IsNotFound: true}}
		}
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}

	tests := []struct {
		name   string
		proxy  *url.URL
		target string
		dial   func(context.Context, string, string) (net.Conn, error)
		want   Kind
	}{
		{"tunnel refused (407 to CONNECT)", refusingProxy(t), tlsUpstream.URL, nil, KindProxy},
		{"proxy unreachable", &url.URL{Scheme: "http", User: url.UserPassword("u", "proxy-pass-SECRET"), Host: closedAddr(t)}, upstream.URL, nil, KindProxy},
		{"proxy host unknown", &url.URL{Scheme: "http", User: url.UserPassword("u", "proxy-pass-SECRET"), Host: "proxy.example:3128"}, upstream.URL, dnsFails, KindProxy},
		{"SOCKS5 credentials refused", socksRefusingAuth(t), upstream.URL, nil, KindProxy},
		{"no proxy: upstream unreachable", nil, "http://" + closedAddr(t), nil, KindTransient},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tr := &http.Transport{OnProxyConnectResponse: RefuseTunnel, DialContext: tt.dial,
				TLSClientConfig: tlsUpstream.Client().Transport.(*http.Transport).TLSClientConfig}
			if tt.proxy != nil {
				tr.Proxy = http.ProxyURL(tt.proxy)
			}
			defer tr.CloseIdleConnections()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, tt.target+"/v1/chat/completions", strings.NewReader("{}"))
			resp, err := tr.RoundTrip(req)
			if err == nil {
				resp.Body.Close()
				t.Fatalf("the call went through: %d", resp.StatusCode)
			}
			pe := TransportError(&url.Error{Op: "Post", URL: req.URL.String(), Err: err})
			if pe.Kind != tt.want || pe.Status != http.StatusBadGateway {
				t.Errorf("%v: kind %v, status %d, want %v, 502", err, pe.Kind, pe.Status, tt.want)
			}
			if tt.want == KindProxy && (pe.Code != "upstream_proxy_failed" || !strings.Contains(pe.Message, "proxy")) {
				t.Errorf("error %+v does not say the proxy failed", pe)
			}
			if strings.Contains(pe.Message, "SECRET") {
				t.Errorf("the message names the proxy's password: %s", pe.Message)
			}
		})
	}
	if ProxyFailure(errors.New("proxyconnect in plain text")) {
		t.Error("plain text was taken for a proxy failure")
	}
}

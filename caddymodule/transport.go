package caddymodule

import (
	"net"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/proxycast/caddy-proxycast/provider"
)

// clientCache hands out one HTTP client per distinct proxy, so that
// credentials behind the same proxy share connections.
type clientCache struct {
	mu      sync.Mutex
	clients map[string]*http.Client
	// responseTimeout bounds the wait for an upstream's response headers.
	responseTimeout time.Duration
}

func newClientCache(responseTimeout time.Duration) *clientCache {
	return &clientCache{clients: map[string]*http.Client{}, responseTimeout: responseTimeout}
}

// client returns the client for proxyURL; nil means the environment's
// proxy settings.
func (c *clientCache) client(proxyURL *url.URL) *http.Client {
	key := ""
	if proxyURL != nil {
		key = proxyURL.String()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if cl, ok := c.clients[key]; ok {
		return cl
	}
	proxy := http.ProxyFromEnvironment
	if proxyURL != nil {
		proxy = http.ProxyURL(proxyURL)
	}
	cl := &http.Client{Transport: newTransport(proxy, c.responseTimeout)}
	c.clients[key] = cl
	return cl
}

func (c *clientCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, cl := range c.clients {
		cl.CloseIdleConnections()
	}
}

// newTransport has no overall timeout: a stream may run for long. The
// wait for response headers is bounded (a non-streamed completion sends
// them when it is done, so the bound is generous), and the handler bounds
// the silence within a stream.
func newTransport(proxy func(*http.Request) (*url.URL, error), responseTimeout time.Duration) *http.Transport {
	return &http.Transport{
		Proxy: proxy,
		DialContext: (&net.Dialer{
			Timeout:   10 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          1024,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: 1 * time.Second,
		ResponseHeaderTimeout: responseTimeout,
		// Each open stream holds one upstream connection and its buffers
		// for as long as it lasts. Requests are written once and large
		// bodies bypass the write buffer; events are small, and replies of
		// known length are read past the read buffer.
		WriteBufferSize: 1 << 10,
		ReadBufferSize:  1 << 10,
		// A refused tunnel is the proxy's failure, not the upstream's.
		OnProxyConnectResponse: provider.RefuseTunnel,
	}
}

package ui

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"strings"
	"sync"
)

// Prefix is where the page lives, on the admin API and on a Forwarder.
const Prefix = "/proxycast/ui/"

// A Forwarder serves the page to a browser on a loopback address and
// forwards it, and every call it makes, to the admin API: only paths
// under /proxycast/, so the rest of Caddy's admin API stays out of the
// browser's reach.
//
// It turns away what Caddy's admin endpoint turns away: a Host other than
// its own (DNS rebinding), requests another site makes the browser send
// (by Origin and Sec-Fetch-Site), WebSocket upgrades, and changes without
// the Origin a browser sends with them.
type Forwarder struct {
	// Listen is the address the browser reaches the forwarder at
	// (host:port); its port with localhost, 127.0.0.1 and [::1] is
	// accepted as the Host too.
	Listen string
	// Transport reaches the admin API.
	Transport http.RoundTripper
	// AdminHost is the Host the admin API expects.
	AdminHost string
	// AdminOrigin is the Origin the admin API expects, or "" to send
	// none (a unix socket).
	AdminOrigin string
	// Admin names the admin API in errors, as the user gave it.
	Admin string

	once  sync.Once
	proxy *httputil.ReverseProxy
}

// browserHeaders are dropped before a request goes to the admin API: the
// forwarder has checked them, and the admin endpoint would hold the
// forwarder's origin against the request.
var browserHeaders = []string{"Origin", "Referer", "Cookie", "Sec-Fetch-Site", "Sec-Fetch-Mode", "Sec-Fetch-Dest", "Sec-Fetch-User"}

func (f *Forwarder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if status, err := f.check(r); err != nil {
		writeError(w, status, err.Error())
		return
	}
	switch {
	case r.URL.Path == "/" || r.URL.Path+"/" == Prefix:
		http.Redirect(w, r, Prefix, http.StatusFound)
		return
	case !strings.HasPrefix(r.URL.Path, "/proxycast/"):
		writeError(w, http.StatusNotFound, "the forwarder serves only the management page ("+Prefix+") and the proxycast admin API")
		return
	}
	f.once.Do(func() {
		f.proxy = &httputil.ReverseProxy{
			Transport: f.Transport,
			Rewrite: func(pr *httputil.ProxyRequest) {
				pr.Out.URL.Scheme, pr.Out.URL.Host, pr.Out.Host = "http", f.AdminHost, f.AdminHost
				for _, h := range browserHeaders {
					pr.Out.Header.Del(h)
				}
				if f.AdminOrigin != "" {
					pr.Out.Header.Set("Origin", f.AdminOrigin)
				}
			},
			ModifyResponse: func(resp *http.Response) error {
				resp.Header.Del("Access-Control-Allow-Origin")
				return nil
			},
			ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
				writeError(w, http.StatusBadGateway, fmt.Sprintf("the admin API at %s cannot be reached: %v; is Caddy running, with that admin address?", f.Admin, err))
			},
		}
	})
	f.proxy.ServeHTTP(w, r)
}

// check returns why r is turned away, or nil.
func (f *Forwarder) check(r *http.Request) (int, error) {
	if !f.hostAllowed(r.Host) {
		return http.StatusForbidden, fmt.Errorf("host not allowed: %s; open the page at http://%s%s", r.Host, f.Listen, Prefix)
	}
	if strings.Contains(strings.ToLower(r.Header.Get("Upgrade")), "websocket") {
		return http.StatusBadRequest, fmt.Errorf("websocket connections are not allowed")
	}
	origin, hasOrigin := r.Header["Origin"]
	if hasOrigin && (len(origin) != 1 || !strings.EqualFold(origin[0], "http://"+r.Host)) {
		return http.StatusForbidden, fmt.Errorf("requests from origin %q are not allowed; only the page at http://%s%s may call the admin API", strings.Join(origin, ", "), r.Host, Prefix)
	}
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		return http.StatusForbidden, fmt.Errorf("requests that another site makes the browser send (Sec-Fetch-Site %s) are not allowed", site)
	}
	switch r.Method {
	case http.MethodGet, http.MethodHead:
	default:
		if !hasOrigin {
			return http.StatusForbidden, fmt.Errorf("%s needs the Origin header a browser sends with it; without a browser, use the admin API itself", r.Method)
		}
	}
	return 0, nil
}

func (f *Forwarder) hostAllowed(host string) bool {
	if strings.EqualFold(host, f.Listen) {
		return true
	}
	_, port, err := net.SplitHostPort(f.Listen)
	if err != nil {
		return false
	}
	for _, h := range []string{"localhost", "127.0.0.1", "::1"} {
		if strings.EqualFold(host, net.JoinHostPort(h, port)) {
			return true
		}
	}
	return false
}

// writeError answers as the admin API does: {"error": …}.
func writeError(w http.ResponseWriter, status int, msg string) {
	raw, _ := json.Marshal(map[string]string{"error": msg})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(raw, '\n'))
}

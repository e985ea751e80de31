package ui

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestHandler(t *testing.T) {
	h := Handler(Prefix)
	for _, tt := range []struct {
		method, path string
		status       int
		ctype, has   string
	}{
		{"GET", "/proxycast/ui/", 200, "text/html; charset=utf-8", `<script type="module" src="app.js">`},
		{"GET", "/proxycast/ui/index.html", 200, "text/html; charset=utf-8", "provider-tpl"},
		{"GET", "/proxycast/ui/app.js", 200, "text/javascript; charset=utf-8", "from './i18n.js'"},
		{"GET", "/proxycast/ui/i18n.js", 200, "text/javascript; charset=utf-8", "Cookie 导入"},
		{"GET", "/proxycast/ui/style.css", 200, "text/css; charset=utf-8", ".badge"},
		{"HEAD", "/proxycast/ui/app.js", 200, "text/javascript; charset=utf-8", ""},
		{"GET", "/proxycast/ui", 302, "", ""},
		{"GET", "/proxycast/ui/nothing.js", 404, "", "no file nothing.js"},
		{"GET", "/proxycast/ui/../admin.go", 404, "", ""},
		{"POST", "/proxycast/ui/", 405, "", "use GET"},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(tt.method, tt.path, nil))
		body := rec.Body.String()
		if rec.Code != tt.status || (tt.ctype != "" && rec.Header().Get("Content-Type") != tt.ctype) || !strings.Contains(body, tt.has) {
			t.Errorf("%s %s: %d %q %.80q; want %d %q with %q", tt.method, tt.path, rec.Code, rec.Header().Get("Content-Type"), body, tt.status, tt.ctype, tt.has)
		}
		if rec.Code == 200 {
			for _, hdr := range []string{"Content-Security-Policy", "X-Content-Type-Options", "Cache-Control", "X-Frame-Options"} {
				if rec.Header().Get(hdr) == "" {
					t.Errorf("%s %s: no %s", tt.method, tt.path, hdr)
				}
			}
			if p := rec.Header().Get("Referrer-Policy"); p != "same-origin" {
				t.Errorf("Referrer-Policy %q: the admin endpoint needs the Referer of same-origin GETs", p)
			}
		}
	}
}

// TestForwarderChecks: what the forwarder turns away, and what it passes
// on to the admin API and how.
func TestForwarderChecks(t *testing.T) {
	var got *http.Request
	admin := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Clone(r.Context())
		w.Header().Set("Access-Control-Allow-Origin", "http://admin.example")
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{"path":"`+r.URL.Path+`"}`)
	}))
	defer admin.Close()
	adminHost := strings.TrimPrefix(admin.URL, "http://")
	f := &Forwarder{Listen: "127.0.0.1:2020", Transport: http.DefaultTransport, AdminHost: adminHost, AdminOrigin: admin.URL, Admin: adminHost}

	type hdr map[string]string
	for _, tt := range []struct {
		name, method, host, path string
		headers                  hdr
		status                   int
		has                      string
	}{
		{"page", "GET", "127.0.0.1:2020", "/proxycast/ui/", hdr{"Sec-Fetch-Site": "none", "Sec-Fetch-Mode": "navigate"}, 200, "/proxycast/ui/"},
		{"localhost is the same port", "GET", "localhost:2020", "/proxycast/credentials", hdr{"Sec-Fetch-Site": "same-origin"}, 200, "/proxycast/credentials"},
		{"ipv6 loopback", "GET", "[::1]:2020", "/proxycast/providers", nil, 200, "/proxycast/providers"},
		{"change from the page", "POST", "127.0.0.1:2020", "/proxycast/credentials/iflow", hdr{"Origin": "http://127.0.0.1:2020", "Sec-Fetch-Site": "same-origin"}, 200, "/proxycast/credentials/iflow"},
		{"root goes to the page", "GET", "127.0.0.1:2020", "/", nil, 302, ""},
		{"other host (DNS rebinding)", "GET", "evil.example:2020", "/proxycast/credentials", nil, 403, "host not allowed"},
		{"other port", "GET", "127.0.0.1:2999", "/proxycast/credentials", nil, 403, "host not allowed"},
		{"other origin", "POST", "127.0.0.1:2020", "/proxycast/credentials/iflow", hdr{"Origin": "http://evil.example"}, 403, "evil.example"},
		{"null origin", "DELETE", "127.0.0.1:2020", "/proxycast/credentials/iflow/a", hdr{"Origin": "null"}, 403, "null"},
		{"cross-site fetch", "GET", "127.0.0.1:2020", "/proxycast/credentials", hdr{"Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "no-cors"}, 403, "cross-site"},
		{"same-site but not same-origin", "GET", "127.0.0.1:2020", "/proxycast/credentials", hdr{"Sec-Fetch-Site": "same-site"}, 403, "same-site"},
		{"change without Origin", "PATCH", "127.0.0.1:2020", "/proxycast/credentials/iflow/a", nil, 403, "Origin"},
		{"websocket", "GET", "127.0.0.1:2020", "/proxycast/credentials", hdr{"Upgrade": "websocket", "Connection": "Upgrade"}, 400, "websocket"},
		{"rest of the admin API", "GET", "127.0.0.1:2020", "/config/", nil, 404, "only the management page"},
		{"stop is not forwarded", "POST", "127.0.0.1:2020", "/stop", hdr{"Origin": "http://127.0.0.1:2020"}, 404, "only the management page"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got = nil
			req := httptest.NewRequest(tt.method, tt.path, strings.NewReader("{}"))
			req.Host = tt.host
			req.Header.Set("Referer", "http://127.0.0.1:2020/proxycast/ui/")
			req.Header.Set("Cookie", "session=1")
			for k, v := range tt.headers {
				req.Header.Set(k, v)
			}
			rec := httptest.NewRecorder()
			f.ServeHTTP(rec, req)
			if rec.Code != tt.status || !strings.Contains(rec.Body.String(), tt.has) {
				t.Fatalf("%d %s; want %d with %q", rec.Code, rec.Body, tt.status, tt.has)
			}
			if tt.status != 200 {
				if got != nil && tt.status != 302 {
					t.Errorf("a refused request reached the admin API")
				}
				return
			}
			if got == nil {
				t.Fatal("nothing reached the admin API")
			}
			if got.Host != adminHost || got.Header.Get("Origin") != admin.URL {
				t.Errorf("the admin API got Host %q Origin %q; want %q %q", got.Host, got.Header.Get("Origin"), adminHost, admin.URL)
			}
			for _, h := range []string{"Referer", "Cookie", "Sec-Fetch-Site", "Sec-Fetch-Mode"} {
				if got.Header.Get(h) != "" {
					t.Errorf("%s reached the admin API", h)
				}
			}
			if rec.Header().Get("Access-Control-Allow-Origin") != "" {
				t.Errorf("the admin's CORS header was passed to the browser")
			}
		})
	}

	// No Origin for an admin API on a unix socket.
	g := &Forwarder{Listen: "127.0.0.1:2020", Transport: http.DefaultTransport, AdminHost: adminHost, Admin: "unix//run/caddy.sock"}
	req := httptest.NewRequest("POST", "/proxycast/credentials/iflow", nil)
	req.Host = "127.0.0.1:2020"
	req.Header.Set("Origin", "http://127.0.0.1:2020")
	g.ServeHTTP(httptest.NewRecorder(), req)
	if got == nil || got.Header.Get("Origin") != "" {
		t.Errorf("socket admin: got %v", got)
	}

	// An admin API that is not there is a 502 that says where it looked.
	admin.Close()
	rec := httptest.NewRecorder()
	req = httptest.NewRequest("GET", "/proxycast/credentials", nil)
	req.Host = "127.0.0.1:2020"
	f.ServeHTTP(rec, req)
	if rec.Code != http.StatusBadGateway || !strings.Contains(rec.Body.String(), "cannot be reached") || !strings.Contains(rec.Body.String(), adminHost) {
		t.Errorf("admin gone: %d %s", rec.Code, rec.Body)
	}
}

package ui

import (
	"embed"
	"io/fs"
	"net/http"
	"path"
	"strings"
)

//go:embed assets
var assets embed.FS

// Files are the page's files: index.html and what it loads.
func Files() fs.FS {
	sub, _ := fs.Sub(assets, "assets")
	return sub
}

var contentTypes = map[string]string{
	".html": "text/html; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".css":  "text/css; charset=utf-8",
	".svg":  "image/svg+xml",
}

// policy keeps the page to its own files and the API beside them. Its
// referrer reaches the API: Caddy's admin endpoint takes a same-origin
// GET's Referer for the Origin that browsers leave out.
const policy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Handler serves the page's files under prefix, which ends in "/": the
// page at prefix, its files below it. Only GET and HEAD are served.
func Handler(prefix string) http.Handler {
	files := Files()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, r.Method+" is not allowed on the management page; use GET", http.StatusMethodNotAllowed)
			return
		}
		if r.URL.Path+"/" == prefix {
			http.Redirect(w, r, prefix, http.StatusFound)
			return
		}
		name, ok := strings.CutPrefix(r.URL.Path, prefix)
		if !ok {
			http.NotFound(w, r)
			return
		}
		if name == "" {
			name = "index.html"
		}
		ct, known := contentTypes[path.Ext(name)]
		raw, err := fs.ReadFile(files, name)
		if !known || err != nil { // fs.ReadFile refuses paths with ".."
			http.Error(w, "the management page has no file "+name, http.StatusNotFound)
			return
		}
		h := w.Header()
		h.Set("Content-Type", ct)
		// The binary carries the page: a new one must not meet old files.
		h.Set("Cache-Control", "no-cache")
		h.Set("Content-Security-Policy", policy)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("X-Frame-Options", "DENY")
		if r.Method == http.MethodHead {
			return
		}
		_, _ = w.Write(raw)
	})
}

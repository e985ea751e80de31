// Package ui is proxycast's management page: the Provider screen of the
// ProxyCast product page (credentials with their state, API key, cookie
// import and OAuth login), as plain HTML, CSS and JavaScript modules
// embedded in the binary. Every call the page makes is a documented
// admin API request, so it can do nothing curl cannot.
//
// Handler serves the page's files; Forwarder serves a loopback port for a
// browser and forwards the page and its calls to an admin API the browser
// cannot reach itself (a unix socket, or an admin listener that turns
// browser navigations away), with the checks Caddy's own admin endpoint
// makes against cross-site requests and DNS rebinding.
package ui

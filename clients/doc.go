// Package clients holds the gateway's named clients: the keys each
// presents, the models each may use, when it expires, and how many
// requests it may send in a window. It knows nothing of HTTP handlers or
// Caddy: the handler asks Lookup who a key belongs to, and Allow whether
// that client may send one more request now.
package clients

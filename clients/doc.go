// Package clients holds the gateway's named clients: the keys each
// presents, the models each may use, when it expires, how many requests
// it may send in a window and how many tokens it may spend in a period.
// It knows nothing of HTTP handlers or Caddy: the handler asks Lookup who
// a key belongs to, Allow whether that client may send one more request
// now, and OverBudget whether its tokens are spent.
package clients

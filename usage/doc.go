// Package usage counts what answers cost: tokens by model, as the
// upstreams report them or, where an upstream reports nothing, as
// estimated from the texts that went in and came out. A Meter counts the
// usage of one client or one credential and can be saved and restored, so
// that counts outlive a restart. It knows nothing of HTTP handlers or
// Caddy.
package usage

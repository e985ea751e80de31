package caddymodule

import "time"

// TokenWriterEnv names the environment of TestHelperTokenWriter.
const TokenWriterEnv = tokenWriterEnv

// SetClock sets the named clients' clock (expiry, rate limits, budget
// periods) to f until restore is called.
func SetClock(f func() time.Time) (restore func()) {
	clock.Store(&f)
	return func() { clock.Store(nil) }
}

package anthropictest

import (
	"math"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Behavior scripts how the fake answers requests made with one key (see
// SetBehavior). A key with a Behavior other than Normal is accepted even
// if AddKey never named it. The error behaviors answer a request once it
// has passed every check (headers, body, model), as the API answers load
// and billing only for requests it would serve; the stream behaviors
// shape a successful stream.
type Behavior int

const (
	// Normal answers as documented on the package.
	Normal Behavior = iota
	// Unauthorized answers 401 authentication_error "invalid x-api-key",
	// as for a revoked key.
	Unauthorized
	// Forbidden answers 403 permission_error.
	Forbidden
	// RateLimited answers 429 rate_limit_error with the retry-after and
	// anthropic-ratelimit-*-reset headers of SetRateLimit.
	RateLimited
	// Overloaded answers 529 overloaded_error "Overloaded".
	Overloaded
	// ServerError answers 500 api_error "Internal server error".
	ServerError
	// CreditTooLow answers 400 invalid_request_error "Your credit balance
	// is too low to access the Anthropic API…", as the API does for an
	// account without credits.
	CreditTooLow
	// BillingError answers 402 billing_error.
	BillingError
	// ModelNotFound answers 404 not_found_error "model: <model>", as for a
	// model the key's organization may not use.
	ModelNotFound
	// TooLarge answers 413 request_too_large.
	TooLarge
	// Redirect answers 307 to another host, with the key in the
	// Location's query, as a misconfigured proxy in front of the API
	// might; a client must neither follow it nor show the key.
	Redirect
	// StreamAsJSON answers a stream request with the whole message as
	// JSON, as some upstreams do.
	StreamAsJSON
	// StreamOverloaded sends a stream up to the first content delta, then
	// an error event (overloaded_error) and ends it.
	StreamOverloaded
	// StreamOverloadedAtStart answers a stream request with 200 and an
	// error event (overloaded_error) as its only event.
	StreamOverloadedAtStart
	// StreamBreak sends a stream up to the first content delta, then
	// drops the connection (the fake aborts the handler with
	// http.ErrAbortHandler). A non-stream answer is cut in the middle.
	StreamBreak
)

var behaviorNames = [...]string{
	Normal:                  "Normal",
	Unauthorized:            "Unauthorized",
	Forbidden:               "Forbidden",
	RateLimited:             "RateLimited",
	Overloaded:              "Overloaded",
	ServerError:             "ServerError",
	CreditTooLow:            "CreditTooLow",
	BillingError:            "BillingError",
	ModelNotFound:           "ModelNotFound",
	TooLarge:                "TooLarge",
	Redirect:                "Redirect",
	StreamAsJSON:            "StreamAsJSON",
	StreamOverloaded:        "StreamOverloaded",
	StreamOverloadedAtStart: "StreamOverloadedAtStart",
	StreamBreak:             "StreamBreak",
}

func (b Behavior) String() string {
	if b >= 0 && int(b) < len(behaviorNames) {
		return behaviorNames[b]
	}
	return "Behavior(" + strconv.Itoa(int(b)) + ")"
}

// SetBehavior scripts the answers to requests made with key. Normal
// restores the default.
func (s *Server) SetBehavior(key string, b Behavior) {
	s.mu.Lock()
	if b == Normal {
		delete(s.behaviors, key)
	} else {
		s.behaviors[key] = b
	}
	s.mu.Unlock()
}

// RateLimit is what a RateLimited answer says about when to come back.
// Each wait is ahead of the fake's clock; zero leaves its header out.
type RateLimit struct {
	// RetryAfter is sent in retry-after as whole seconds, rounded up.
	RetryAfter time.Duration
	// The anthropic-ratelimit-{requests,tokens,input-tokens,output-tokens}-reset
	// headers, sent as RFC 3339 times.
	RequestsReset, TokensReset, InputTokensReset, OutputTokensReset time.Duration
}

// DefaultRateLimit is the RateLimit until SetRateLimit: the requests limit
// resets first, as when a key sends too many calls.
var DefaultRateLimit = RateLimit{
	RetryAfter:        20 * time.Second,
	RequestsReset:     20 * time.Second,
	TokensReset:       50 * time.Second,
	InputTokensReset:  50 * time.Second,
	OutputTokensReset: 30 * time.Second,
}

// SetRateLimit sets what RateLimited answers say.
func (s *Server) SetRateLimit(rl RateLimit) {
	s.mu.Lock()
	s.rateLimit = rl
	s.mu.Unlock()
}

// Scripted error bodies, worded as the API words them.
var (
	errForbidden  = apiError{Type: "permission_error", Message: "Your API key does not have permission to use the specified resource."}
	errRateLimit  = apiError{Type: "rate_limit_error", Message: "This request would exceed the rate limit for your organization of 50 requests per minute. For details, refer to: https://docs.claude.com/en/api/rate-limits. You can see the response headers for current usage. Please reduce the prompt length or the maximum tokens requested, or try again later. You may also contact sales at https://www.anthropic.com/contact-sales to discuss your options for a rate limit increase."}
	errOverloaded = apiError{Type: "overloaded_error", Message: "Overloaded"}
	errServer     = apiError{Type: "api_error", Message: "Internal server error"}
	errCredit     = apiError{Type: "invalid_request_error", Message: "Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits."}
	errBilling    = apiError{Type: "billing_error", Message: "There is an issue with your account's billing. Please go to Plans & Billing to update your payment details."}
	errTooLarge   = apiError{Type: "request_too_large", Message: "Request exceeds the maximum allowed number of bytes."}
)

// scriptedError answers an error behavior and reports whether b was one.
// model is the request's model, "" on GET /v1/models.
func (c *call) scriptedError(b Behavior, model string) bool {
	switch b {
	case Unauthorized:
		c.scripted(b, http.StatusUnauthorized, apiError{Type: "authentication_error", Message: "invalid x-api-key"})
	case Forbidden:
		c.scripted(b, http.StatusForbidden, errForbidden)
	case RateLimited:
		c.s.mu.Lock()
		rl, now := c.s.rateLimit, c.s.now()
		c.s.mu.Unlock()
		h := c.w.Header()
		if rl.RetryAfter > 0 {
			h.Set("Retry-After", strconv.FormatInt(int64(math.Ceil(rl.RetryAfter.Seconds())), 10))
		}
		for name, d := range map[string]time.Duration{
			"Anthropic-Ratelimit-Requests-Reset":      rl.RequestsReset,
			"Anthropic-Ratelimit-Tokens-Reset":        rl.TokensReset,
			"Anthropic-Ratelimit-Input-Tokens-Reset":  rl.InputTokensReset,
			"Anthropic-Ratelimit-Output-Tokens-Reset": rl.OutputTokensReset,
		} {
			if d > 0 {
				h.Set(name, now.Add(d).UTC().Format(time.RFC3339))
			}
		}
		h.Set("Anthropic-Ratelimit-Requests-Limit", "50")
		h.Set("Anthropic-Ratelimit-Requests-Remaining", "0")
		c.scripted(b, http.StatusTooManyRequests, errRateLimit)
	case Overloaded:
		c.scripted(b, 529, errOverloaded)
	case ServerError:
		c.scripted(b, http.StatusInternalServerError, errServer)
	case Redirect:
		c.w.Header().Set("Location", "https://api.anthropic.example"+c.r.URL.Path+"?key="+url.QueryEscape(c.key))
		c.scripted(b, http.StatusTemporaryRedirect, apiError{Type: "api_error", Message: "moved"})
	case CreditTooLow, BillingError, ModelNotFound, TooLarge:
		if model == "" {
			return false // not on the model list
		}
		switch b {
		case CreditTooLow:
			c.scripted(b, http.StatusBadRequest, errCredit)
		case BillingError:
			c.scripted(b, http.StatusPaymentRequired, errBilling)
		case ModelNotFound:
			c.scripted(b, http.StatusNotFound, apiError{Type: "not_found_error", Message: "model: " + model})
		case TooLarge:
			c.scripted(b, http.StatusRequestEntityTooLarge, errTooLarge)
		}
	default:
		return false
	}
	return true
}

package provider

import (
	"fmt"
	"net/http"
	"time"
)

// Kind says what an upstream failure means for the credential that met
// it, so the pool can decide whether to retry elsewhere or rest it.
type Kind int

const (
	// KindClient is a problem with the client's request; another credential
	// would fail the same way.
	KindClient Kind = iota
	// KindAuth is a key that the service no longer accepts.
	KindAuth
	// KindBlocked is a key the service has blocked.
	KindBlocked
	// KindRateLimit is a key that has hit the service's rate limit.
	KindRateLimit
	// KindModel is a model this credential (or the service) cannot serve.
	KindModel
	// KindTransient is an upstream failure that may pass: 5xx, broken
	// streams, garbage replies.
	KindTransient
	// KindProxy is a failure of the credential's own proxy: unreachable,
	// a refused tunnel, refused proxy credentials (407). Another
	// credential may serve, and this one rests even if it is the last.
	KindProxy
	// KindQuota is an account whose balance or quota is used up (402,
	// insufficient_quota): not a rate limit, since waiting seconds does
	// not bring it back; it rests for hours unless the upstream says when.
	KindQuota
)

var kindNames = [...]string{"client", "auth", "blocked", "rate_limit", "model", "transient", "proxy", "quota"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind(%d)", int(k))
}

// Error is an upstream failure in the form the client gets it: an HTTP
// status and an OpenAI-style error object. Message must never hold a
// secret.
type Error struct {
	// Status is the HTTP status for the client.
	Status int
	// Type is the OpenAI error type, such as "rate_limit_error".
	Type string
	// Code is a short machine-readable reason, such as "upstream_rate_limited".
	Code string
	// Message explains the failure to a person.
	Message string
	// Param names the request member at fault, when the client's request
	// was refused for one.
	Param string
	// Kind classifies the failure for credential health.
	Kind Kind
	// RetryAfter is the upstream's hint, zero if none.
	RetryAfter time.Duration
}

func (e *Error) Error() string {
	return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message)
}

// BadReply is the failure of an upstream whose reply cannot be read as
// its protocol says: a 502 another credential may not get.
func BadReply(format string, a ...any) *Error {
	return &Error{Status: http.StatusBadGateway, Type: "api_error", Code: "upstream_bad_reply",
		Message: fmt.Sprintf(format, a...), Kind: KindTransient}
}

// TypeForStatus is the OpenAI error type conventionally paired with an
// HTTP status.
func TypeForStatus(status int) string {
	switch {
	case status == http.StatusUnauthorized:
		return "authentication_error"
	case status == http.StatusForbidden:
		return "permission_error"
	case status == http.StatusNotFound:
		return "not_found_error"
	case status == http.StatusTooManyRequests:
		return "rate_limit_error"
	case status >= 500:
		return "api_error"
	default:
		return "invalid_request_error"
	}
}

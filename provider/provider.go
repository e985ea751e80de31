// Package provider is the contract between the proxycast handler and the
// upstream AI services it fronts. A provider knows one service's protocol:
// how to turn a credential into an API key, how to sign and send a
// request in the wire format it speaks (OpenAI chat, unless it says
// otherwise), and how to turn the service's replies and quirks into plain
// answers, streams and errors of that format. It knows nothing about
// Caddy, routing, client dialects or credential health.
package provider

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Provider is one upstream service.
type Provider interface {
	// Models lists the model names the service offers, for GET /v1/models.
	Models() []string

	// NewAuth checks one credential's settings and says how the API key
	// its calls are signed with is obtained. An error names what is wrong
	// with the settings and never includes a secret.
	NewAuth(spec CredentialSpec) (Auth, error)

	// Chat sends one request in call.Format, a format the provider speaks,
	// and answers in the same format. Errors the client should see are
	// *Error; any other error is a transport failure.
	Chat(ctx context.Context, call *Call) (*Response, error)
}

// Format is the wire format of a call's body and of its answer.
type Format uint8

const (
	// FormatChat is OpenAI's chat completions: bodies as POST
	// /v1/chat/completions takes them, answers as completions, stream
	// events as chat.completion.chunk objects.
	FormatChat Format = iota
	// FormatMessages is Anthropic's Messages API: bodies as POST
	// /v1/messages takes them, answers as message objects, and stream
	// events whose data's "type" member is the SSE event's name.
	FormatMessages
	// FormatResponses is OpenAI's Responses API: bodies as POST
	// /v1/responses takes them, answers as Response objects, and stream
	// events whose data's "type" member is the SSE event's name.
	FormatResponses
)

func (f Format) String() string {
	switch f {
	case FormatChat:
		return "chat"
	case FormatMessages:
		return "messages"
	case FormatResponses:
		return "responses"
	}
	return "format(" + strconv.Itoa(int(f)) + ")"
}

// Speaker is implemented by providers that speak another format than
// OpenAI chat. A provider that does not implement it speaks FormatChat
// only.
type Speaker interface {
	// Speaks lists the formats the provider's API takes natively, the
	// one to translate to first.
	Speaks() []Format
}

// FormatsOf lists the formats p speaks natively.
func FormatsOf(p Provider) []Format {
	if s, ok := p.(Speaker); ok {
		return s.Speaks()
	}
	return []Format{FormatChat}
}

// TokenCounter is implemented by providers whose API counts the tokens
// of a request (Anthropic's POST /v1/messages/count_tokens).
type TokenCounter interface {
	// CountTokens counts the input tokens of call.Body, a count_tokens
	// body in call.Format.
	CountTokens(ctx context.Context, call *Call) (int64, error)
}

// CredentialSpec is one account's settings as the user wrote them, with
// placeholders already replaced.
type CredentialSpec struct {
	ID        string
	AuthType  string
	TokenFile string
	Cookies   string
	APIKey    string
}

// Auth types a credential may have. A provider accepts the ones it supports.
const (
	AuthAPIKey = "api_key"
	AuthOAuth  = "oauth"
	AuthCookie = "cookie"
)

// ErrReauth marks a credential that only a person can bring back: its
// login was revoked, its cookie expired. Errors wrapping it say what to do.
var ErrReauth = errors.New("the credential needs a new login")

// KeySource yields the API key of one credential: a StaticKey, or a
// renewing source built around a Renewer. APIKey must stay cheap while the
// current key is valid because it is called on every request.
type KeySource interface {
	APIKey(ctx context.Context) (string, error)
}

// Key is a credential's current API key.
type Key struct {
	APIKey string
	// ExpiresAt is when the key must no longer be used. Zero means
	// unknown: renew before use.
	ExpiresAt time.Time
	// Account says whose key it is (an email or phone number), for logs
	// and the admin API.
	Account string
}

// Renewer renews the key of a credential whose key changes: OAuth tokens,
// cookie-derived keys. The credential's state (a token file, a derived
// key) is kept by the caller, who stores what Renew returns before using
// it and never runs two renewals of one credential at once.
type Renewer interface {
	// Key reads the key out of a state; state is nil when nothing is
	// stored yet, and the answer is then a zero Key or, when nothing can
	// be done without a person, an error wrapping ErrReauth.
	Key(state []byte) (Key, error)
	// Renew obtains a fresh key and returns the new state. client carries
	// the credential's proxy. Failures that only a person can fix wrap
	// ErrReauth; any other failure is retried later. A failure that
	// happened after the state changed upstream (a rotating refresh token
	// was used up, but the key could not be fetched) returns the new state
	// along with the error, and the caller stores it all the same.
	Renew(ctx context.Context, client *http.Client, state []byte) ([]byte, error)
}

// Auth says how a credential gets its key: either a fixed APIKey, or a
// Renewer whose state lives under StateKey.
type Auth struct {
	APIKey string

	Renewer Renewer
	// StateKey names the stored state: a path relative to the plugin's
	// storage area, or an absolute file path. Empty means a key of the
	// caller's choosing, per credential.
	StateKey string
	// RenewBefore is how long before expiry the key is renewed, unless
	// the user chose otherwise.
	RenewBefore time.Duration
	// Account names the account a renewable credential logs in as, where
	// its settings tell (a hash of its cookie, never a secret): two
	// credentials of one account would each renew the key away from the
	// other, so the second is refused. Empty: the settings do not tell
	// (a token file's place tells instead).
	Account string
}

// Login is implemented by providers whose accounts log in in a browser
// (OAuth).
type Login interface {
	// AuthorizeURL is the page where a person logs in; the browser then
	// comes back to redirectURL with state and a code.
	AuthorizeURL(redirectURL, state string) string
	// CompleteLogin exchanges the code and returns the credential's new
	// state (its token file) and whose account it is.
	CompleteLogin(ctx context.Context, client *http.Client, code, redirectURL string) (state []byte, account string, err error)
}

// ModelSource is implemented by providers whose model list can come from
// the upstream itself (GET /models with a credential's key).
type ModelSource interface {
	// ModelsRefresh is how often to fetch the list; zero means never.
	ModelsRefresh() time.Duration
	// FetchModels fetches the list with the key and transport of call
	// (whose Model and Body are empty).
	FetchModels(ctx context.Context, call *Call) ([]string, error)
}

// AuthTyper is implemented by providers whose credentials take other
// auth types than api_key; the admin API lists them, so that a management
// page offers only what the provider takes.
type AuthTyper interface {
	AuthTypes() []string
}

// AuthTypesOf lists the auth types p's credentials take.
func AuthTypesOf(p Provider) []string {
	if a, ok := p.(AuthTyper); ok {
		return a.AuthTypes()
	}
	return []string{AuthAPIKey}
}

// TokenImporter is implemented by providers that take a token given by a
// person (through the admin API) as a credential's state.
type TokenImporter interface {
	// ImportToken checks the token and returns the state to store. Its
	// errors never quote the token.
	ImportToken(raw []byte) ([]byte, error)
}

// StaticKey is a KeySource for a key that never changes.
type StaticKey string

// APIKey returns the key.
func (k StaticKey) APIKey(context.Context) (string, error) { return string(k), nil }

// Call is one request on its way upstream.
type Call struct {
	// Model is the upstream model name, after any routing rewrite.
	Model string
	// Format is the wire format of Body, and of the answer wanted.
	Format Format
	// Body is the client's JSON body (translated into Format where the
	// client spoke another) with the model already rewritten. The
	// provider may apply its own required changes to a copy.
	Body []byte
	// Stream is the body's "stream" value.
	Stream bool
	// APIKey signs the call.
	APIKey string
	// Transport sends the call; it honours the credential's proxy_url.
	// It is a RoundTripper, not a Client: a signed API call follows no
	// redirect and needs none of a Client's per-request work.
	Transport http.RoundTripper
	// Header holds the client's request headers, read-only, or is nil.
	// A provider forwards none of them unless its settings say so (such
	// as anthropic-beta to an Anthropic upstream).
	Header http.Header
}

// Response is a successful upstream answer in the call's format. Exactly
// one of Body and Events is set: Body for a plain answer, Events for a
// stream.
type Response struct {
	// ContentType of Body; streams are always text/event-stream.
	ContentType string
	Body        []byte
	Events      EventReader
}

// EventReader yields a stream's server-sent events one at a time.
type EventReader interface {
	// Next returns the data of the next event. The slice is valid until the
	// next call. At the regular end of the stream it returns io.EOF; an
	// upstream failure in the middle of the stream is an *Error.
	Next() ([]byte, error)
	// Close releases the upstream connection; it is safe to call twice.
	Close() error
}

// BufferedEvents is implemented by EventReaders that know whether their
// next event has arrived already; a relay then writes events that came
// together in one go and flushes once.
type BufferedEvents interface {
	EventBuffered() bool
}

// KeyAuth is the Auth of an api_key credential: its key, as it is.
func KeyAuth(spec CredentialSpec) (Auth, error) {
	key := strings.TrimSpace(spec.APIKey)
	if key == "" {
		return Auth{}, errors.New("auth_type api_key needs api_key")
	}
	return Auth{APIKey: key}, nil
}

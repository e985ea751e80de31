// Package provider is the contract between the proxycast handler and the
// upstream AI services it fronts. A provider knows one service's protocol:
// how to turn a credential into an API key, how to sign and send an
// OpenAI-style chat request, and how to turn the service's replies and
// quirks into plain OpenAI responses, streams and errors. It knows nothing
// about Caddy, routing or credential health.
package provider

import (
	"context"
	"errors"
	"net/http"
)

// Provider is one upstream service.
type Provider interface {
	// Models lists the model names the service offers, for GET /v1/models.
	Models() []string

	// NewKeySource checks one credential's settings and returns what
	// produces the API key its calls are signed with. An error names what
	// is wrong with the settings and never includes a secret.
	NewKeySource(spec CredentialSpec) (KeySource, error)

	// Chat sends one chat completion request. Errors the client should see
	// are *Error; any other error is a transport failure.
	Chat(ctx context.Context, call *Call) (*Response, error)
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

// ErrAuthNotSupported is returned by NewKeySource (wrapped) for settings
// that are valid but whose key flow this build does not implement yet; the
// credential is kept out of rotation instead of failing the config.
var ErrAuthNotSupported = errors.New("not supported yet")

// KeySource yields the API key of one credential. Sources that derive the
// key (OAuth, cookies) may refresh it; APIKey must stay cheap while the
// current key is valid because it is called on every request.
type KeySource interface {
	APIKey(ctx context.Context) (string, error)
}

// StaticKey is a KeySource for a key that never changes.
type StaticKey string

// APIKey returns the key.
func (k StaticKey) APIKey(context.Context) (string, error) { return string(k), nil }

// Call is one chat request on its way upstream.
type Call struct {
	// Model is the upstream model name, after any routing rewrite.
	Model string
	// Body is the client's JSON body with the model already rewritten.
	// The provider may apply its own required changes to a copy.
	Body []byte
	// Stream is the body's "stream" value.
	Stream bool
	// APIKey signs the call.
	APIKey string
	// Client sends the call; it honours the credential's proxy_url.
	Client *http.Client
}

// Response is a successful upstream answer in OpenAI form. Exactly one of
// Body and Events is set: Body for a plain completion, Events for a stream.
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

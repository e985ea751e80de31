package caddymodule

import (
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"golang.org/x/net/http/httpguts"
)

// DefaultModelsRefresh is how often a model list fetched from an
// upstream is fetched again, unless models_refresh says otherwise.
const DefaultModelsRefresh = time.Hour

// providerNamespace holds the provider modules; a module's name is the
// type of the provider instances users declare (provider <name> { type
// <module> … }), and the name of the instance when they leave the type
// out.
const providerNamespace = "proxycast.providers"

// instance is a provider module that is told the name of its instance,
// for its messages.
type instance interface{ setName(name string) }

// providerTypes lists the provider modules registered in this build.
func providerTypes() []string {
	var names []string
	for _, m := range caddy.GetModules(providerNamespace) {
		names = append(names, m.ID.Name())
	}
	return names
}

func checkBaseURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("%q is not an http or https URL", raw)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("%q must not have a query or fragment", raw)
	}
	return nil
}

// sharedOption reads the Caddyfile options every HTTP provider type
// has: models, models_from_upstream and header. ok is whether option is
// one of them.
func sharedOption(d *caddyfile.Dispenser, option string, args []string, models *[]string, fromUpstream *bool,
	refresh *caddy.Duration, headers *map[string]string) (ok bool, err error) {
	switch option {
	case "models":
		if len(args) == 0 {
			return true, d.Err("models needs at least one model name")
		}
		*models = append(*models, args...)
	case "models_from_upstream":
		*fromUpstream = true
		switch len(args) {
		case 0:
		case 1:
			dur, err := caddy.ParseDuration(args[0])
			if err != nil || dur < time.Minute {
				return true, d.Errf("models_from_upstream: %q is not a refresh interval of 1m or more", args[0])
			}
			*refresh = caddy.Duration(dur)
		default:
			return true, d.ArgErr()
		}
	case "header":
		if len(args) != 2 {
			return true, d.Err(`header needs a name and a value (quote values with spaces): header X-Title "my gateway"`)
		}
		if *headers == nil {
			*headers = map[string]string{}
		}
		if _, dup := (*headers)[args[0]]; dup {
			return true, d.Errf("header %s is set twice", args[0])
		}
		(*headers)[args[0]] = args[1]
	default:
		return false, nil
	}
	return true, nil
}

// modelsRefresh is how often a model list fetched from the upstream is
// refreshed; zero when it is not fetched.
func modelsRefresh(fromUpstream bool, every caddy.Duration) (time.Duration, error) {
	if !fromUpstream {
		return 0, nil
	}
	d := time.Duration(every)
	if d == 0 {
		d = DefaultModelsRefresh
	}
	if d < time.Minute {
		return 0, fmt.Errorf("models_refresh %s is too short: each refresh calls the upstream; use 1m or more", d)
	}
	return d, nil
}

// resolveHeaders checks the extra headers of a provider and replaces
// their placeholders.
func resolveHeaders(headers map[string]string) (http.Header, error) {
	out := http.Header{}
	for _, name := range sortedKeys(headers) {
		if !httpguts.ValidHeaderFieldName(name) {
			return nil, fmt.Errorf("header %q is not a valid header name", name)
		}
		v, err := resolvePlaceholders(headers[name], envAndFile)
		if err != nil {
			return nil, fmt.Errorf("header %s: %v", name, err)
		}
		if !httpguts.ValidHeaderFieldValue(v) {
			return nil, fmt.Errorf("header %s holds a character that cannot go into an HTTP header", name)
		}
		out.Set(name, v)
	}
	return out, nil
}

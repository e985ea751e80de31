package caddymodule

import (
	"fmt"
	"net/url"

	"github.com/caddyserver/caddy/v2"
)

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

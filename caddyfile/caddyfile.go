// Package caddyfile registers the proxycast Caddyfile directive and turns
// it into the http.handlers.proxycast JSON config.
package caddyfile

import (
	"encoding/json"
	"math"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"

	"github.com/proxycast/caddy-proxycast/caddymodule"
	"github.com/proxycast/caddy-proxycast/clients"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("proxycast", parseDirective)
	httpcaddyfile.RegisterDirectiveOrder("proxycast", httpcaddyfile.Before, "reverse_proxy")
}

func parseDirective(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	handler := new(caddymodule.Handler)
	if err := Unmarshal(h.Dispenser, handler); err != nil {
		return nil, err
	}
	return handler, nil
}

// Unmarshal reads the proxycast directive into handler:
//
//	proxycast [<matcher>] {
//		# api_keys, client, credential_pool, routing and provider may
//		# repeat; any other option set twice is an error.
//		api_keys <key...>          # repeatable; {env.VAR} works; an unnamed client with no limits
//		client <name> {            # a named client; repeatable
//			key <key...>           # one or more; {env.VAR} works
//			models <glob...>       # only these models; default all
//			rate_limit <n>/<window>  # s, m, h, d or a duration: 60/m; per instance; default none
//			token_budget <n>/<period>  # day, month (UTC) or a duration; shared by instances; default none
//			expires <date|time>    # 2027-03-01 or RFC 3339; default never
//		}
//		usage_sync <duration>      # store the clients' usage, read other instances'; default 30s
//		anonymous                  # serve clients without a key (explicit)
//		max_body_size <size>       # default 20MiB
//		selection round_robin|fill_first
//		max_attempts <n>           # credentials one request may try; default 3
//		sticky_header <header>     # keep a client session on one credential
//		sticky_ttl <duration>      # default 1h
//		response_timeout <duration>     # wait for an answer to begin; default 5m
//		stream_idle_timeout <duration>  # silence within a stream; default 2m
//		ping_interval <duration>        # silence before a Messages stream's ping; default 10s
//		runtime_sync <duration>|off     # apply other instances' admin changes; default 30s
//		admin_token_dirs <dir...>  # where the admin API may write absolute token files; default none
//		cooldowns {
//			auth <duration>            # default 30m
//			blocked <duration>         # default 30m
//			rate_limit_max <duration>  # default 30m
//			transient <duration>       # default 1m
//			model <duration>           # default 12h
//			proxy <duration>           # default 1m
//			quota <duration>           # default 6h
//		}
//		credential_pool {
//			<provider> {
//				credential <id> {
//					auth_type  oauth|cookie|api_key
//					token_file <path>      # oauth
//					cookies    <cookies>   # cookie
//					api_key    <key>       # api_key
//					proxy_url  <url>       # http, https, socks5, socks5h
//					disabled   [true|false]
//					priority   <n>         # 1 first; default: after all with one
//					refresh_before <duration>  # oauth, cookie
//					models     <glob...>   # serve only these models; default all
//				}
//			}
//		}
//		routing {
//			rule <pattern> <provider> [priority <n>] [model <template>]
//			default_provider <provider>
//		}
//		provider <name> {
//			type <module>          # iflow, openai; default: the name's module
//			...                    # the type's own options
//		}
//	}
func Unmarshal(d *caddyfile.Dispenser, h *caddymodule.Handler) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	set := once{}
	var names providerNames
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		// Repeatable: api_keys adds keys, provider blocks name different
		// providers, and credential_pool and routing blocks add to what
		// the others hold (snippets may each bring one).
		if opt := d.Val(); opt != "api_keys" && opt != "client" && opt != "provider" && opt != "credential_pool" && opt != "routing" {
			if err := set.check(d, opt); err != nil {
				return err
			}
		}
		switch d.Val() {
		case "api_keys":
			args := d.RemainingArgs()
			if len(args) == 0 {
				return d.Err("api_keys needs at least one key")
			}
			h.APIKeys = append(h.APIKeys, args...)
		case "client":
			c, err := unmarshalClient(d)
			if err != nil {
				return err
			}
			h.Clients = append(h.Clients, c)
		case "anonymous":
			if d.NextArg() {
				return d.ArgErr()
			}
			h.Anonymous = true
		case "max_body_size":
			if !d.NextArg() {
				return d.ArgErr()
			}
			size, err := humanize.ParseBytes(d.Val())
			if err != nil || size == 0 || size > math.MaxInt64 {
				return d.Errf("max_body_size: %q is not a size such as 20MiB", d.Val())
			}
			h.MaxBodySize = int64(size)
			if d.NextArg() {
				return d.ArgErr()
			}
		case "selection":
			if !d.NextArg() {
				return d.ArgErr()
			}
			if v := d.Val(); v != "round_robin" && v != "fill_first" {
				return d.Errf("selection %q is not round_robin or fill_first", v)
			}
			h.Selection = d.Val()
			if d.NextArg() {
				return d.ArgErr()
			}
		case "max_attempts":
			if !d.NextArg() {
				return d.ArgErr()
			}
			n, err := strconv.Atoi(d.Val())
			if err != nil || n < 1 {
				return d.Errf("max_attempts must be a whole number from 1, not %q", d.Val())
			}
			h.MaxAttempts = n
			if d.NextArg() {
				return d.ArgErr()
			}
		case "sticky_header":
			if !d.NextArg() {
				return d.ArgErr()
			}
			h.StickyHeader = d.Val()
			if d.NextArg() {
				return d.ArgErr()
			}
		case "sticky_ttl":
			dur, err := durationArg(d, "sticky_ttl")
			if err != nil {
				return err
			}
			h.StickyTTL = dur
		case "response_timeout":
			dur, err := durationArg(d, "response_timeout")
			if err != nil {
				return err
			}
			h.ResponseTimeout = dur
		case "stream_idle_timeout":
			dur, err := durationArg(d, "stream_idle_timeout")
			if err != nil {
				return err
			}
			h.StreamIdleTimeout = dur
		case "ping_interval":
			dur, err := durationArg(d, "ping_interval")
			if err != nil {
				return err
			}
			h.PingInterval = dur
		case "admin_token_dirs":
			dirs := d.RemainingArgs()
			if len(dirs) == 0 {
				return d.Err("admin_token_dirs needs at least one directory")
			}
			for _, dir := range dirs {
				if !filepath.IsAbs(dir) {
					return d.Errf("admin_token_dirs: %q is not an absolute path", dir)
				}
			}
			h.AdminTokenDirs = dirs
		case "runtime_sync":
			args := d.RemainingArgs()
			if len(args) != 1 {
				return d.Err("runtime_sync needs a duration such as 30s, or off")
			}
			if args[0] == "off" {
				h.RuntimeSync = -1
				break
			}
			dur, err := caddy.ParseDuration(args[0])
			if err != nil || dur <= 0 {
				return d.Errf("runtime_sync: %q is not a positive duration such as 30s, or off", args[0])
			}
			h.RuntimeSync = caddy.Duration(dur)
		case "usage_sync":
			args := d.RemainingArgs()
			if len(args) != 1 {
				return d.Err("usage_sync needs a duration such as 30s")
			}
			dur, err := caddy.ParseDuration(args[0])
			if err != nil || dur <= 0 {
				return d.Errf("usage_sync: %q is not a positive duration such as 30s", args[0])
			}
			h.UsageSync = caddy.Duration(dur)
		case "cooldowns":
			if d.NextArg() {
				return d.ArgErr()
			}
			if err := parseCooldowns(d, h); err != nil {
				return err
			}
		case "credential_pool":
			if d.NextArg() {
				return d.ArgErr()
			}
			if err := parsePool(d, h, &names); err != nil {
				return err
			}
		case "routing":
			if d.NextArg() {
				return d.ArgErr()
			}
			if err := parseRouting(d, &h.Routing, &names); err != nil {
				return err
			}
		case "provider":
			if !d.NextArg() {
				return d.Err("provider needs a name, such as: provider deepseek { type openai … }")
			}
			name := d.Val()
			if _, dup := h.ProvidersRaw[name]; dup {
				return d.Errf("provider %q is declared twice", name)
			}
			seg := d.NextSegment()
			typ, err := providerType(caddyfile.NewDispenser(seg), name)
			if err != nil {
				return err
			}
			block := caddyfile.NewDispenser(seg)
			block.Next() // the name, where the module's block starts
			unm, err := caddyfile.UnmarshalModule(block, providerModule(typ))
			if err != nil {
				return err
			}
			if h.ProvidersRaw == nil {
				h.ProvidersRaw = map[string]json.RawMessage{}
			}
			h.ProvidersRaw[name] = caddyconfig.JSONModuleObject(unm, "type", typ, nil)
		default:
			return d.Errf("unrecognized proxycast option %q", d.Val())
		}
	}
	if h.Anonymous && len(h.APIKeys) > 0 {
		return d.Err("anonymous and api_keys exclude each other")
	}
	return names.check(h)
}

func parsePool(d *caddyfile.Dispenser, h *caddymodule.Handler, names *providerNames) error {
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		name := d.Val()
		names.use(d, name)
		if d.NextArg() {
			return d.ArgErr()
		}
		if h.CredentialPool == nil {
			h.CredentialPool = map[string][]caddymodule.Credential{}
		}
		for inner := d.Nesting(); d.NextBlock(inner); {
			if d.Val() != "credential" {
				return d.Errf("unrecognized option %q in credential_pool %s (want: credential <id> { … })", d.Val(), name)
			}
			start := d.Token()
			c, err := parseCredential(d)
			if err != nil {
				return err
			}
			for _, other := range h.CredentialPool[name] {
				if other.ID == c.ID {
					return errAt(start, "credential %q: duplicate id in credential_pool %s", c.ID, name)
				}
			}
			h.CredentialPool[name] = append(h.CredentialPool[name], c)
		}
	}
	return nil
}

func parseCredential(d *caddyfile.Dispenser) (caddymodule.Credential, error) {
	var c caddymodule.Credential
	start := d.Token()
	if !d.NextArg() {
		return c, d.Err("credential needs an id: credential <id> { … }")
	}
	c.ID = d.Val()
	if d.NextArg() {
		return c, d.ArgErr()
	}
	set := once{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		if set[opt] {
			return c, d.Errf("credential %q: %s is set twice", c.ID, opt)
		}
		set[opt] = true
		switch opt {
		case "refresh_before":
			dur, err := durationArg(d, "credential "+strconv.Quote(c.ID)+": refresh_before")
			if err != nil {
				return c, err
			}
			c.RefreshBefore = dur
			continue
		case "models":
			c.Models = d.RemainingArgs()
			if len(c.Models) == 0 {
				return c, d.Errf("credential %q: models needs at least one model name or glob", c.ID)
			}
			continue
		case "priority":
			if !d.NextArg() {
				return c, d.Errf("credential %q: priority needs a value", c.ID)
			}
			p, err := strconv.Atoi(d.Val())
			if err != nil || p < 1 {
				return c, d.Errf("credential %q: priority must be a whole number from 1, not %q", c.ID, d.Val())
			}
			c.Priority = p
			if d.NextArg() {
				return c, d.ArgErr()
			}
			continue
		}
		if opt == "disabled" {
			c.Disabled = true
			if d.NextArg() {
				b, err := strconv.ParseBool(d.Val())
				if err != nil {
					return c, d.Errf("credential %q: disabled takes true or false, not %q", c.ID, d.Val())
				}
				c.Disabled = b
			}
			if d.NextArg() {
				return c, d.ArgErr()
			}
			continue
		}
		var target *string
		switch opt {
		case "auth_type":
			target = &c.AuthType
		case "token_file":
			target = &c.TokenFile
		case "cookies":
			target = &c.Cookies
		case "api_key":
			target = &c.APIKey
		case "proxy_url":
			target = &c.ProxyURL
		default:
			return c, d.Errf("credential %q: unrecognized option %q", c.ID, opt)
		}
		if !d.NextArg() {
			return c, d.Errf("credential %q: %s needs a value", c.ID, opt)
		}
		*target = d.Val()
		if d.NextArg() {
			return c, d.Errf("credential %q: %s takes one value (quote values with spaces)", c.ID, opt)
		}
	}
	if err := c.Check(); err != nil {
		return c, errAt(start, "credential %q: %v", c.ID, err)
	}
	return c, nil
}

// once refuses an option set twice in one block, where the last would
// silently win.
type once map[string]bool

func (o once) check(d *caddyfile.Dispenser, opt string) error {
	if o[opt] {
		return d.Errf("%s is set twice", opt)
	}
	o[opt] = true
	return nil
}

// errAt reports an error at an earlier token, such as the start of the
// block whose content, read as a whole, is wrong.
func errAt(tok caddyfile.Token, format string, args ...any) error {
	d := caddyfile.NewDispenser([]caddyfile.Token{tok})
	d.Next()
	return d.Errf(format, args...)
}

func parseRouting(d *caddyfile.Dispenser, r *caddymodule.Routing, names *providerNames) error {
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		// Also across routing blocks, which add to each other.
		if d.Val() == "default_provider" && r.DefaultProvider != "" {
			return d.Err("default_provider is set twice")
		}
		switch d.Val() {
		case "rule":
			args := d.RemainingArgs()
			if len(args) < 2 {
				return d.Err("rule needs a pattern and a provider: rule <pattern> <provider> [priority <n>] [model <template>]")
			}
			rule := caddymodule.RoutingRule{Pattern: args[0], Provider: args[1]}
			names.use(d, rule.Provider)
			for rest := args[2:]; len(rest) > 0; rest = rest[2:] {
				if len(rest) < 2 {
					return d.Errf("rule %s: %q needs a value", rule.Pattern, rest[0])
				}
				switch rest[0] {
				case "priority":
					p, err := strconv.Atoi(rest[1])
					if err != nil || p < 1 {
						return d.Errf("rule %s: priority must be a whole number from 1, not %q", rule.Pattern, rest[1])
					}
					rule.Priority = p
				case "model":
					rule.Model = rest[1]
				default:
					return d.Errf("rule %s: unrecognized option %q (want priority or model)", rule.Pattern, rest[0])
				}
			}
			if err := rule.Check(); err != nil {
				return d.Err(err.Error())
			}
			r.Rules = append(r.Rules, rule)
		case "default_provider":
			if !d.NextArg() {
				return d.ArgErr()
			}
			names.use(d, d.Val())
			r.DefaultProvider = d.Val()
			if d.NextArg() {
				return d.ArgErr()
			}
		default:
			return d.Errf("unrecognized routing option %q (want rule or default_provider)", d.Val())
		}
	}
	return nil
}

// durationArg reads the one duration argument of an option.
func durationArg(d *caddyfile.Dispenser, what string) (caddy.Duration, error) {
	if !d.NextArg() {
		return 0, d.Errf("%s needs a duration", what)
	}
	dur, err := caddy.ParseDuration(d.Val())
	if err != nil || dur <= 0 {
		return 0, d.Errf("%s: %q is not a positive duration such as 30m", what, d.Val())
	}
	if d.NextArg() {
		return 0, d.ArgErr()
	}
	return caddy.Duration(dur), nil
}

func parseCooldowns(d *caddyfile.Dispenser, h *caddymodule.Handler) error {
	if h.Cooldowns == nil {
		h.Cooldowns = new(caddymodule.Cooldowns)
	}
	c := h.Cooldowns
	set := once{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		if err := set.check(d, "cooldowns "+d.Val()); err != nil {
			return err
		}
		var target *caddy.Duration
		switch d.Val() {
		case "auth":
			target = &c.Auth
		case "blocked":
			target = &c.Blocked
		case "rate_limit_max":
			target = &c.RateLimitMax
		case "transient":
			target = &c.Transient
		case "model":
			target = &c.Model
		case "proxy":
			target = &c.Proxy
		case "quota":
			target = &c.Quota
		default:
			return d.Errf("unrecognized cooldown %q (want auth, blocked, rate_limit_max, transient, model, proxy or quota)", d.Val())
		}
		dur, err := durationArg(d, "cooldowns "+d.Val())
		if err != nil {
			return err
		}
		*target = dur
	}
	return nil
}

func providerModule(name string) string { return "proxycast.providers." + name }

// providerType reads the type of a provider block (probe holds its
// tokens, from its name on): the module named by its `type` line, or,
// without one, the module of the provider's name.
func providerType(probe *caddyfile.Dispenser, name string) (string, error) {
	probe.Next() // the name
	typ, line := "", -1
	for nesting := probe.Nesting(); probe.NextBlock(nesting); {
		if probe.Val() != "type" || probe.Nesting() != nesting+1 || probe.Line() == line {
			line = probe.Line()
			continue
		}
		line = probe.Line()
		if typ != "" {
			return "", probe.Errf("provider %q: type is set twice", name)
		}
		if !probe.NextArg() {
			return "", probe.Errf("provider %q: type needs a value, such as openai", name)
		}
		typ = probe.Val()
		if probe.NextArg() {
			return "", probe.ArgErr()
		}
		if _, err := caddy.GetModule(providerModule(typ)); err != nil {
			return "", probe.Errf("provider %q: unknown type %q (known types: %s)", name, typ, strings.Join(providerTypes(), ", "))
		}
	}
	if typ != "" {
		return typ, nil
	}
	if _, err := caddy.GetModule(providerModule(name)); err != nil {
		probe.Reset()
		probe.Next()
		return "", probe.Errf("provider %q needs a type, such as: provider %s { type openai … } (known types: %s)", name, name, strings.Join(providerTypes(), ", "))
	}
	return name, nil
}

func providerTypes() []string {
	var known []string
	for _, m := range caddy.GetModules("proxycast.providers") {
		known = append(known, m.ID.Name())
	}
	return known
}

// providerNames checks, once the whole block is read, that every provider
// that credential_pool and routing name is declared or is a type's own
// instance.
type providerNames []caddyfile.Token

func (n *providerNames) use(d *caddyfile.Dispenser, name string) {
	tok := d.Token()
	tok.Text = name
	*n = append(*n, tok)
}

func (n providerNames) check(h *caddymodule.Handler) error {
	for _, tok := range n {
		if _, ok := h.ProvidersRaw[tok.Text]; ok {
			continue
		}
		if _, err := caddy.GetModule(providerModule(tok.Text)); err == nil {
			continue
		}
		return errAt(tok, "unknown provider %q: declare it with provider %s { type … } (known types: %s)",
			tok.Text, tok.Text, strings.Join(providerTypes(), ", "))
	}
	return nil
}

// unmarshalClient reads one client block.
func unmarshalClient(d *caddyfile.Dispenser) (caddymodule.ClientConfig, error) {
	var c caddymodule.ClientConfig
	if !d.NextArg() {
		return c, d.Err("client needs a name: client <name> { key <key> }")
	}
	c.Name = d.Val()
	if d.NextArg() {
		return c, d.Errf("client %s: the block begins on the name's line, and its settings go on lines of their own", c.Name)
	}
	seen := once{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		if opt != "key" {
			if err := seen.check(d, opt); err != nil {
				return c, err
			}
		}
		args := d.RemainingArgs()
		switch opt {
		case "key":
			if len(args) == 0 {
				return c, d.Errf("client %s: key needs at least one key", c.Name)
			}
			c.Keys = append(c.Keys, args...)
		case "models":
			if len(args) == 0 {
				return c, d.Errf("client %s: models needs at least one glob", c.Name)
			}
			c.Models = args
		case "rate_limit":
			if len(args) != 1 {
				return c, d.Errf("client %s: rate_limit takes one rate, such as 60/m", c.Name)
			}
			if _, err := clients.ParseRate(args[0]); err != nil {
				return c, d.Errf("client %s: rate_limit: %v", c.Name, err)
			}
			c.RateLimit = args[0]
		case "token_budget":
			if len(args) != 1 {
				return c, d.Errf("client %s: token_budget takes one budget, such as 2000000/day", c.Name)
			}
			if _, err := clients.ParseBudget(args[0]); err != nil {
				return c, d.Errf("client %s: %v", c.Name, err)
			}
			c.TokenBudget = args[0]
		case "expires":
			if len(args) != 1 {
				return c, d.Errf("client %s: expires takes one date, such as 2027-03-01", c.Name)
			}
			if _, err := clients.ParseExpiry(args[0]); err != nil {
				return c, d.Errf("client %s: %v", c.Name, err)
			}
			c.Expires = args[0]
		default:
			return c, d.Errf("client %s: unrecognized option %q (key, models, rate_limit, token_budget, expires)", c.Name, opt)
		}
	}
	if len(c.Keys) == 0 {
		return c, d.Errf("client %s has no key: add key <key>", c.Name)
	}
	return c, nil
}

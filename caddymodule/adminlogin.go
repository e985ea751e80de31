package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/proxycast/caddy-proxycast/provider"
)

// Browser logins started through the admin API, by state.
var (
	loginsMu sync.Mutex
	logins   = map[string]*adminLogin{}
)

// adminLogin is one browser login started through the admin API.
type adminLogin struct {
	provider string
	id       string
	started  time.Time
	port     int // of its callback
	ls       *loginServer

	done chan struct{} // closed when the outcome is known

	mu      sync.Mutex
	status  string // pending, done, failed
	err     string
	account string
}

func (al *adminLogin) pending() bool {
	al.mu.Lock()
	defer al.mu.Unlock()
	return al.status == "pending"
}

// end ends the login if it still waits for the browser, and frees its
// port in any case. Its status is failed with err at once, so that
// whoever ended it reads the outcome right away. It reports whether it
// ended the login: false when the browser came back first.
func (al *adminLogin) end(err error) bool {
	if !al.ls.End(err) {
		return false
	}
	al.mu.Lock()
	if al.status == "pending" {
		al.status, al.err = "failed", err.Error()
	}
	al.mu.Unlock()
	return true
}

// How long a login waits for the browser, and how long its outcome is
// kept for GET /proxycast/oauth/{provider}/{state}.
const (
	defaultLoginTimeout = 10 * time.Minute
	loginMemory         = time.Hour
)

// oauthBody is the body of POST /proxycast/oauth/{provider}.
type oauthBody struct {
	// ID is the credential to log in: an oauth credential that exists, or
	// a new one, added when the login completes.
	ID string `json:"id"`
	// TokenFile for a new credential. Default: <provider>/<id>.json.
	TokenFile string `json:"token_file,omitempty"`
	// ProxyURL and Priority for a new credential.
	ProxyURL string `json:"proxy_url,omitempty"`
	Priority int    `json:"priority,omitempty"`
	// Port of the local callback on localhost. Default: 11451.
	Port int `json:"port,omitempty"`
	// Timeout for the login. Default: 10m.
	Timeout caddy.Duration `json:"timeout,omitempty"`
}

func startOAuth(w http.ResponseWriter, r *http.Request, prov string) error {
	var body oauthBody
	if err := decodeBody(r, &body); err != nil {
		return err
	}
	if err := checkID(body.ID); err != nil {
		return err
	}
	hs := handlersFor(prov)
	if len(hs) == 0 {
		return errorf(http.StatusNotFound, "", "no proxycast handler serves provider %q", prov)
	}
	h := hs[0]
	login, ok := h.providers[prov].provider.(provider.Login)
	if !ok {
		return errorf(http.StatusBadRequest, "", "provider %q has no browser login", prov)
	}
	cred := Credential{ID: body.ID, AuthType: provider.AuthOAuth, TokenFile: body.TokenFile, ProxyURL: body.ProxyURL, Priority: body.Priority}
	existing := false
	if l, err := locate(prov, body.ID); err == nil {
		if l.cred.AuthType != provider.AuthOAuth {
			return errorf(http.StatusConflict, "id", "credential %q exists and is a %s credential, not oauth", body.ID, l.cred.AuthType)
		}
		cred, existing = l.cred.Credential, true
	}
	if cred.TokenFile == "" {
		cred.TokenFile = path.Join(prov, body.ID+".json")
	}
	if err := cred.Check(); err != nil {
		return checkError(err)
	}
	port := body.Port
	if port == 0 {
		port = 11451
	}
	timeout := time.Duration(body.Timeout)
	if timeout <= 0 {
		timeout = defaultLoginTimeout
	}
	// The exchange goes through the credential's proxy, as it resolves.
	rc, err := cred.resolve()
	if err != nil {
		return checkError(err)
	}
	proxyURL := rc.proxy
	auth, err := h.providers[prov].provider.NewAuth(rc.spec)
	if err != nil {
		return checkError(rc.authError(err))
	}
	loc, err := rc.locate(h.storage, auth, prov)
	if err != nil {
		return checkError(err)
	}
	if !existing {
		if err := h.adminTokenFile(rc); err != nil {
			return checkError(err)
		}
		if err := credentialClaims(prov, cred.ID, auth, loc).free(h.done, "", nil); err != nil {
			return conflictError(err)
		}
	}

	// One login at a time per credential: two would race to store their
	// tokens, and only one account could win. A new login on the port of
	// a pending one takes the port over (the pending one fails): a login
	// whose client went away would otherwise hold it until its timeout.
	al := &adminLogin{provider: prov, id: body.ID, started: time.Now(), status: "pending", done: make(chan struct{})}
	loginsMu.Lock()
	var taken []*adminLogin
	for s, old := range logins {
		switch {
		case !old.pending():
			if time.Since(old.started) > loginMemory {
				delete(logins, s)
			}
		case old.port == port:
			taken = append(taken, old)
		case old.provider == prov && old.id == body.ID:
			loginsMu.Unlock()
			return errorf(http.StatusConflict, "id", "a login for credential %q is under way on port %d; finish it, cancel it (DELETE /proxycast/oauth/%s/{state}), or start this one on its port, which takes it over", body.ID, old.port, prov)
		}
	}
	for _, old := range taken {
		if old.end(fmt.Errorf("another login (for credential %q) took over its callback port %d; start the login again if you still want it", body.ID, port)) {
			caddy.Log().Named("admin.api.proxycast").Info("browser login taken over",
				zap.String("provider", old.provider), zap.String("credential", old.id), zap.Int("port", port))
		}
	}
	holder := loginHolder{By: "admin", Provider: prov, Credential: body.ID, Admin: adminAddress(r), ExpiresAt: time.Now().Add(timeout)}
	ls, err := startLoginServer(login, port, h.httpClients.client(proxyURL), holder)
	if err != nil {
		loginsMu.Unlock()
		return errorf(http.StatusConflict, "port", "%v", err)
	}
	al.port, al.ls = ls.Port, ls
	logins[ls.State] = al
	loginsMu.Unlock()

	go func() {
		res := ls.Wait(context.Background(), timeout)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		err := res.err
		if err == nil {
			err = storeState(ctx, loc, res.state, tokenOf(auth))
		}
		if err == nil && !existing {
			adminMu.Lock()
			err = mutate(ctx, prov, func(ov *overlay, current []effectiveCredential) error {
				for _, e := range current {
					if e.ID != cred.ID {
						continue
					}
					if e.AuthType != provider.AuthOAuth || e.TokenFile != cred.TokenFile {
						return errorf(http.StatusConflict, "id", "credential %q was added meanwhile with other settings; this login's token is in %s", cred.ID, loc.where)
					}
					return nil // added meanwhile, the same
				}
				po := ov.provider(prov, true)
				po.Added = append(po.Added, cred)
				return nil
			})
			adminMu.Unlock()
		}
		if err == nil {
			// The running credential (existing, or just built) reads the
			// new token file.
			if l, lerr := locate(prov, cred.ID); lerr == nil && l.entry.Value.renewing != nil {
				l.entry.Value.renewing.Reload(ctx)
			}
		}
		al.mu.Lock()
		if err != nil {
			al.status, al.err = "failed", err.Error()
		} else {
			al.status, al.account = "done", res.account
		}
		al.mu.Unlock()
		close(al.done)
		log := caddy.Log().Named("admin.api.proxycast")
		if err != nil {
			log.Warn("browser login failed", zap.String("provider", prov), zap.String("credential", cred.ID), zap.Error(err))
		} else {
			log.Info("browser login completed", zap.String("provider", prov), zap.String("credential", cred.ID))
		}
	}()

	writeAdminJSON(w, http.StatusOK, map[string]any{
		"url":        ls.URL,
		"state":      ls.State,
		"redirect":   ls.Redirect,
		"credential": body.ID,
		"expires_at": time.Now().Add(timeout).UTC(),
	})
	return nil
}

func oauthStatus(w http.ResponseWriter, prov, state string) error {
	loginsMu.Lock()
	al := logins[state]
	loginsMu.Unlock()
	if al == nil || al.provider != prov {
		return errorf(http.StatusNotFound, "", "no login with state %q for provider %q", state, prov)
	}
	al.mu.Lock()
	defer al.mu.Unlock()
	out := map[string]any{"state": al.status, "credential": al.id}
	if al.err != "" {
		out["error"] = al.err
	}
	if al.account != "" {
		out["account"] = al.account
	}
	writeAdminJSON(w, http.StatusOK, out)
	return nil
}

// callbackBody is the body of POST /proxycast/oauth/{provider}/{state}/callback.
type callbackBody struct {
	// URL is the address the browser was sent back to after the login,
	// http://localhost:<port>/oauth2callback?code=…&state=…, copied from
	// a browser that cannot reach Caddy's machine.
	URL string `json:"url"`
}

// pasteCallback completes a pending login with a callback URL pasted by
// its user, and answers how it went, as GET does.
func pasteCallback(w http.ResponseWriter, r *http.Request, prov, state string) error {
	var body callbackBody
	if err := decodeBody(r, &body); err != nil {
		return err
	}
	loginsMu.Lock()
	al := logins[state]
	loginsMu.Unlock()
	if al == nil || al.provider != prov {
		return errorf(http.StatusNotFound, "", "no login with state %q for provider %q", state, prov)
	}
	u, err := url.Parse(strings.TrimSpace(body.URL))
	if body.URL == "" || err != nil || u.RawQuery == "" {
		return errorf(http.StatusBadRequest, "url", "url must be the whole address the browser shows after the login, %s?code=…&state=…", al.ls.Redirect)
	}
	res, err := al.ls.complete(r.Context(), u.Query())
	switch {
	case errors.Is(err, errNotThisLogin):
		return errorf(http.StatusBadRequest, "url", "this callback URL is not of this login (its state differs); paste the address from the browser tab this login opened")
	case err != nil:
		al.mu.Lock()
		status := al.status
		al.mu.Unlock()
		return errorf(http.StatusConflict, "", "the login for credential %q has ended already: it is %s", al.id, status)
	}
	al.ls.result <- res
	// The login's own goroutine stores the token and adds the credential;
	// a client that stops waiting reads the outcome with GET.
	select {
	case <-al.done:
	case <-r.Context().Done():
	}
	return oauthStatus(w, prov, state)
}

// cancelOAuth ends a pending login and frees its callback port.
func cancelOAuth(w http.ResponseWriter, prov, state string) error {
	loginsMu.Lock()
	al := logins[state]
	loginsMu.Unlock()
	if al == nil || al.provider != prov {
		return errorf(http.StatusNotFound, "", "no login with state %q for provider %q", state, prov)
	}
	if !al.end(errors.New("canceled through the admin API")) {
		al.mu.Lock()
		status := al.status
		al.mu.Unlock()
		if status == "pending" {
			return errorf(http.StatusConflict, "", "the login for credential %q is no longer pending: the browser came back and it is completing", al.id)
		}
		return errorf(http.StatusConflict, "", "the login for credential %q is no longer pending: it is %s", al.id, status)
	}
	caddy.Log().Named("admin.api.proxycast").Info("browser login canceled",
		zap.String("provider", prov), zap.String("credential", al.id), zap.Int("port", al.port))
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// adminAddress is the admin address a request came through, as the CLI's
// --admin takes it, for messages that tell where to go back to.
func adminAddress(r *http.Request) string {
	if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok && a.Network() == "unix" {
		return "unix/" + a.String()
	}
	return r.Host
}

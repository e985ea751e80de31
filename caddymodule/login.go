package caddymodule

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/proxycast/caddy-proxycast/provider"
)

// loginServer is the local end of a browser login: it serves the callback
// the provider's login page redirects to, checks it and completes the
// login. Both `caddy proxycast login` and the admin API use it.
type loginServer struct {
	// URL is the page to open in the browser.
	URL string
	// Redirect is the callback URL.
	Redirect string
	// State ties the callback to this login.
	State string
	// Port is the callback's port.
	Port int

	holder loginHolder
	login  provider.Login
	client *http.Client     // carries the credential's proxy
	result chan loginResult // gets exactly one result, from whoever settles the login
	srv    *http.Server
	lns    []net.Listener

	mu      sync.Mutex
	settled bool // the callback came, or the login was ended
}

// loginHolder says whose login a callback port serves. Another login that
// finds the port taken asks for it (GET /proxycast-login on the port), so
// that its error can say what holds the port and how to free it. It holds
// no secret: the state would let any local program complete the login
// with an account of its own.
type loginHolder struct {
	// By is "admin" for a login started through the admin API of a
	// running Caddy, "cli" for one of `caddy proxycast login`.
	By         string `json:"by"`
	Provider   string `json:"provider"`
	Credential string `json:"credential,omitempty"`
	// Admin is the admin address the login was started through, as its
	// client named it.
	Admin     string    `json:"admin,omitempty"`
	ExpiresAt time.Time `json:"expires_at"`
}

// holderPath is where a login server says whose login it serves.
const holderPath = "/proxycast-login"

// heldError explains a callback port taken by another login, and how to
// free it.
func (h loginHolder) heldError(port int) error {
	until := ""
	if !h.ExpiresAt.IsZero() {
		until = " until " + h.ExpiresAt.Local().Format(time.TimeOnly)
	}
	if h.By != "admin" {
		return fmt.Errorf("port %d is held by another `caddy proxycast login %s`, waiting for its browser%s: finish that login or stop it (Ctrl-C), or choose another port",
			port, h.Provider, until)
	}
	admin := h.Admin
	if admin == "" {
		admin = "<admin address>"
	}
	return fmt.Errorf("port %d is held by a login through the admin API of a running Caddy (%s), pending for credential %q%s: "+
		"cancel it with DELETE /proxycast/oauth/%s/{state} on that admin API ({state} is the state= of its login URL), "+
		"or log in through that Caddy instead (`caddy proxycast login %s --admin %s` takes the port over), or choose another port",
		port, admin, h.Credential, until, h.Provider, h.Provider, admin)
}

// probeHolder asks what holds a callback port, if it is one of ours.
func probeHolder(port int) (loginHolder, bool) {
	c := &http.Client{
		Timeout:   time.Second,
		Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true},
	}
	req, err := http.NewRequest(http.MethodGet, fmt.Sprintf("http://127.0.0.1:%d%s", port, holderPath), nil)
	if err != nil {
		return loginHolder{}, false
	}
	req.Host = fmt.Sprintf("localhost:%d", port)
	resp, err := c.Do(req)
	if err != nil {
		return loginHolder{}, false
	}
	defer resp.Body.Close()
	var h loginHolder
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if resp.StatusCode != http.StatusOK || json.Unmarshal(raw, &h) != nil || h.By == "" {
		return loginHolder{}, false
	}
	return h, true
}

// loopbackHost reports whether a request's Host names this machine: the
// holder answer is for local clients, not for a page that rebinds its own
// name to 127.0.0.1.
func loopbackHost(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		host = hostport
	}
	host = strings.Trim(host, "[]")
	return host == "localhost" || host == "127.0.0.1" || host == "::1"
}

// listenLoopback listens on port of both loopback addresses. The redirect
// names localhost, which a browser may try on ::1 first: if another
// program held [::1]:port, it would receive the login's code. Without
// IPv6 on the host, 127.0.0.1 alone does; port 0 picks one free on both.
func listenLoopback(port int) ([]net.Listener, error) {
	for range 10 {
		v4, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
			if port != 0 && errors.Is(err, syscall.EADDRINUSE) {
				if h, ok := probeHolder(port); ok {
					return nil, h.heldError(port)
				}
			}
			return nil, fmt.Errorf("cannot listen for the login callback on 127.0.0.1:%d (%v); choose another port", port, err)
		}
		p := v4.Addr().(*net.TCPAddr).Port
		v6, err := net.Listen("tcp", fmt.Sprintf("[::1]:%d", p))
		switch {
		case err == nil:
			return []net.Listener{v4, v6}, nil
		case !errors.Is(err, syscall.EADDRINUSE):
			return []net.Listener{v4}, nil // no IPv6 loopback here
		}
		v4.Close()
		if port != 0 {
			return nil, fmt.Errorf("cannot listen for the login callback on [::1]:%d: another program holds it, and could receive the login; choose another port", port)
		}
	}
	return nil, errors.New("cannot find a port free on both 127.0.0.1 and [::1] for the login callback")
}

type loginResult struct {
	state   []byte // the credential's new state (token file)
	account string
	err     error
}

// startLoginServer listens for the callback on localhost:port (0 picks a
// free port). The provider's redirect is http://localhost:<port>/oauth2callback,
// as the iFlow CLI's was. holder is what the server tells another login
// that finds the port taken.
func startLoginServer(l provider.Login, port int, client *http.Client, holder loginHolder) (*loginServer, error) {
	raw, err := listenLoopback(port)
	if err != nil {
		return nil, err
	}
	port = raw[0].Addr().(*net.TCPAddr).Port
	var lns []net.Listener
	for _, ln := range raw {
		lns = append(lns, &onceListener{Listener: ln})
	}
	ls := &loginServer{
		Redirect: fmt.Sprintf("http://localhost:%d/oauth2callback", port),
		State:    randomState(),
		Port:     port,
		holder:   holder,
		login:    l,
		client:   client,
		result:   make(chan loginResult, 1),
		lns:      lns,
	}
	ls.URL = l.AuthorizeURL(ls.Redirect, ls.State)
	ls.srv = &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/oauth2callback":
			ls.callback(w, r)
		case holderPath:
			if !loopbackHost(r.Host) {
				http.Error(w, "ask through localhost", http.StatusForbidden)
				return
			}
			raw, _ := json.Marshal(ls.holder)
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write(raw)
		default:
			http.NotFound(w, r)
		}
	})}
	for _, ln := range lns {
		go func() { _ = ls.srv.Serve(ln) }()
	}
	return ls, nil
}

// Why a callback does not complete the login under way.
var (
	errNotThisLogin = errors.New("this is not the callback of the login under way; if you started a login, start it again")
	errLoginEnded   = errors.New("this login has ended already; look at its outcome where you started it")
)

// complete settles the login with a callback's query: the browser's, or
// that of a callback URL pasted where the browser runs on another
// machine than Caddy. A query of another login (any web page can make a
// browser ask for the callback URL) is turned away with errNotThisLogin
// and the login goes on; after the first callback, errLoginEnded. The
// result is not yet handed over: hand it to ls.result.
func (ls *loginServer) complete(ctx context.Context, q url.Values) (loginResult, error) {
	if q.Get("state") != ls.State {
		return loginResult{}, errNotThisLogin
	}
	if !ls.settle() {
		return loginResult{}, errLoginEnded
	}
	var res loginResult
	switch {
	case q.Get("error") != "":
		res.err = fmt.Errorf("iflow refused the login: %s", q.Get("error"))
	case q.Get("code") == "":
		res.err = errors.New("the callback carried no code")
	default:
		res.state, res.account, res.err = ls.login.CompleteLogin(ctx, ls.client, q.Get("code"), ls.Redirect)
	}
	return res, nil
}

func (ls *loginServer) callback(w http.ResponseWriter, r *http.Request) {
	res, err := ls.complete(r.Context(), r.URL.Query())
	switch {
	case errors.Is(err, errNotThisLogin):
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	case err != nil:
		http.Error(w, err.Error(), http.StatusConflict)
		return
	}
	status, page := http.StatusOK, "<h1>Logged in</h1><p>You can close this window.</p>"
	if res.account != "" && res.err == nil {
		page = fmt.Sprintf("<h1>Logged in</h1><p>Logged in as %s. You can close this window.</p>", html.EscapeString(res.account))
	}
	if res.err != nil {
		status, page = http.StatusBadRequest, fmt.Sprintf("<h1>Login failed</h1><p>%s</p>", html.EscapeString(res.err.Error()))
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(page)))
	w.WriteHeader(status)
	_, _ = io.WriteString(w, page)
	// The whole page must be out before the result is handed over:
	// Wait then closes the server, and this connection with it.
	_ = http.NewResponseController(w).Flush()
	ls.result <- res
}

// settle claims the login's one result: true for the first caller only.
func (ls *loginServer) settle() bool {
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if ls.settled {
		return false
	}
	ls.settled = true
	return true
}

// End ends the login with err if it still waits for the browser, and in
// any case stops listening, so that the port is free when End returns. It
// reports whether it ended the login: false means the browser came back
// first (or the login ended already), and the callback completes the
// login on its own connection.
func (ls *loginServer) End(err error) bool {
	ended := ls.settle()
	for _, ln := range ls.lns {
		_ = ln.Close()
	}
	if ended {
		ls.result <- loginResult{err: err}
	}
	return ended
}

// onceListener closes its listener once, and every Close returns only
// once it is closed: End promises a free port, also when Wait closes the
// server at the same moment (a second net.Listener.Close would return
// at once, before the first has released the port).
type onceListener struct {
	net.Listener
	once sync.Once
	err  error
}

func (l *onceListener) Close() error {
	l.once.Do(func() { l.err = l.Listener.Close() })
	return l.err
}

// Wait returns the login's result, or an error when timeout passes or ctx
// ends first. It closes the server.
func (ls *loginServer) Wait(ctx context.Context, timeout time.Duration) loginResult {
	defer ls.Close()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	var err error
	select {
	case res := <-ls.result:
		return res
	case <-timer.C:
		err = fmt.Errorf("no login within %s; start the login again", timeout)
	case <-ctx.Done():
		err = ctx.Err()
	}
	if ls.End(err) {
		return <-ls.result
	}
	// The browser came back just now: that login completes, unless ctx
	// ends, which ends the callback's exchange too.
	select {
	case res := <-ls.result:
		return res
	case <-ctx.Done():
		ls.Close()
		return <-ls.result
	}
}

// Close stops listening for the callback and drops its connections.
func (ls *loginServer) Close() { _ = ls.srv.Close() }

func randomState() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

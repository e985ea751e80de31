package caddymodule

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"strconv"
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

	result chan loginResult
	srv    *http.Server
}

// listenLoopback listens on port of both loopback addresses. The redirect
// names localhost, which a browser may try on ::1 first: if another
// program held [::1]:port, it would receive the login's code. Without
// IPv6 on the host, 127.0.0.1 alone does; port 0 picks one free on both.
func listenLoopback(port int) ([]net.Listener, error) {
	for range 10 {
		v4, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
		if err != nil {
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
// as the iFlow CLI's was.
func startLoginServer(l provider.Login, port int, client *http.Client) (*loginServer, error) {
	lns, err := listenLoopback(port)
	if err != nil {
		return nil, err
	}
	port = lns[0].Addr().(*net.TCPAddr).Port
	ls := &loginServer{
		Redirect: fmt.Sprintf("http://localhost:%d/oauth2callback", port),
		State:    randomState(),
		result:   make(chan loginResult, 1),
	}
	ls.URL = l.AuthorizeURL(ls.Redirect, ls.State)
	ls.srv = &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/oauth2callback" {
			http.NotFound(w, r)
			return
		}
		q := r.URL.Query()
		if q.Get("state") != ls.State {
			// Not this login's callback (any web page can make the browser
			// ask for this URL): turned away, and the login goes on.
			http.Error(w, "this is not the callback of the login under way", http.StatusBadRequest)
			return
		}
		var res loginResult
		switch {
		case q.Get("error") != "":
			res.err = fmt.Errorf("iflow refused the login: %s", q.Get("error"))
		case q.Get("code") == "":
			res.err = errors.New("the callback carried no code")
		default:
			res.state, res.account, res.err = l.CompleteLogin(r.Context(), client, q.Get("code"), ls.Redirect)
		}
		status, page := http.StatusOK, "<h1>Logged in</h1><p>You can close this window.</p>"
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
		select {
		case ls.result <- res:
		default: // a result is in already
		}
	})}
	for _, ln := range lns {
		go func() { _ = ls.srv.Serve(ln) }()
	}
	return ls, nil
}

// Wait returns the login's result, or an error when timeout passes or ctx
// ends first. It closes the server.
func (ls *loginServer) Wait(ctx context.Context, timeout time.Duration) loginResult {
	defer ls.Close()
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case res := <-ls.result:
		return res
	case <-timer.C:
		return loginResult{err: fmt.Errorf("no login within %s; start the login again", timeout)}
	case <-ctx.Done():
		return loginResult{err: ctx.Err()}
	}
}

// Close stops listening for the callback.
func (ls *loginServer) Close() { _ = ls.srv.Close() }

func randomState() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

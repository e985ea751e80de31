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

type loginResult struct {
	state   []byte // the credential's new state (token file)
	account string
	err     error
}

// startLoginServer listens for the callback on 127.0.0.1:port (0 picks a
// free port). The provider's redirect is http://localhost:<port>/oauth2callback,
// as the iFlow CLI's was.
func startLoginServer(l provider.Login, port int, client *http.Client) (*loginServer, error) {
	ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return nil, fmt.Errorf("cannot listen for the login callback on 127.0.0.1:%d (%v); choose another port", port, err)
	}
	port = ln.Addr().(*net.TCPAddr).Port
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
		var res loginResult
		switch {
		case q.Get("state") != ls.State:
			res.err = errors.New("state mismatch: the callback did not come from this login; start the login again")
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
	go func() { _ = ls.srv.Serve(ln) }()
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

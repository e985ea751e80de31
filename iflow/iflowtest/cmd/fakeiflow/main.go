// Command fakeiflow serves the strict iFlow fake of package iflowtest on a
// fixed address, for the offline quickstart:
//
//	go run ./iflow/iflowtest/cmd/fakeiflow -listen 127.0.0.1:9777 -api-key sk-demo \
//		-oauth-email demo@example.com -cookie demo-cookie
//
// Point the chat API base at http://<listen>/v1 and the OAuth and platform
// bases at http://<listen>. With -oauth-email, its login page logs that
// account in at once (the browser goes straight back to the callback);
// with -cookie demo-cookie, the platform takes the cookie BXAuth=demo-cookie.
// It logs one line per chat request to stderr (never a key) and exits on
// SIGINT or SIGTERM.
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/proxycast/caddy-proxycast/iflow/iflowtest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr, nil); err != nil {
		fmt.Fprintln(os.Stderr, "fakeiflow:", err)
		os.Exit(2)
	}
}

// listFlag collects a flag that may repeat and may hold comma-separated
// values.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(v string) error {
	for part := range strings.SplitSeq(v, ",") {
		if part = strings.TrimSpace(part); part != "" {
			*l = append(*l, part)
		}
	}
	return nil
}

// run serves until ctx ends. ready, if not nil, gets the address listened
// on (tests listen on port 0).
func run(ctx context.Context, args []string, stderr io.Writer, ready func(addr string)) error {
	fs := flag.NewFlagSet("fakeiflow", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:9777", "address to serve on")
	var apiKeys, cookies, accounts listFlag
	fs.Var(&apiKeys, "api-key", "API key valid for chat (repeat or comma-separate)")
	fs.Var(&cookies, "cookie", "BXAuth value of a cookie-platform account (repeat or comma-separate)")
	fs.Var(&accounts, "oauth-email", "email of an OAuth account the authorize page logs in (repeat or comma-separate; the last one logs in)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}

	logger := log.New(stderr, "fakeiflow: ", log.LstdFlags)
	s := iflowtest.New()
	defer s.Close()
	for _, k := range apiKeys {
		s.AddAPIKey(k)
	}
	for _, c := range cookies {
		s.AddCookieAccount(c)
	}
	for _, e := range accounts {
		s.AddAccount(e, "")
	}
	if len(apiKeys)+len(cookies)+len(accounts) == 0 {
		logger.Print("no -api-key, -cookie or -oauth-email given: every chat request will get 434 Invalid apiKey")
	}
	if len(accounts) > 0 {
		logger.Printf("the login page logs in %s", accounts[len(accounts)-1])
	} else {
		logger.Print("no -oauth-email given: the login page has no account to log in")
	}
	if len(cookies) > 0 {
		// The cookies themselves are secrets of a kind: counted, not shown.
		logger.Printf("the platform takes %d BXAuth cookie(s)", len(cookies))
	}
	s.SetChatLog(func(c iflowtest.ChatRequest) {
		logger.Printf("chat key=%s model=%q stream=%t status=%d %s", fingerprint(c.APIKey), c.Model, c.Stream, c.Status, c.Outcome)
	})

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	addr := ln.Addr().String()
	logger.Printf("serving the iFlow fake: chat API http://%s/v1, OAuth and platform http://%s", addr, addr)
	if ready != nil {
		ready(addr)
	}

	srv := &http.Server{Handler: s.Handler(), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	logger.Print("shutting down")
	// End streams first, or Shutdown would wait for slow ones.
	s.Close()
	shutCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		return err
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// fingerprint names a key in logs without revealing it.
func fingerprint(key string) string {
	if key == "" {
		return "none"
	}
	sum := sha256.Sum256([]byte(key))
	return "#" + hex.EncodeToString(sum[:4])
}

// Command fakeopenai serves the strict OpenAI-compatible fake of package
// openaitest on a fixed address, for the offline quickstart:
//
//	go run ./openai/openaitest/cmd/fakeopenai -listen 127.0.0.1:9778 \
//		-key sk-demo-openai -model demo-chat,demo-reasoner
//
// Point an openai provider's api_base at http://<listen>/v1. The key goes
// in Authorization: Bearer <key> unless -auth-header names another header
// (then with no prefix unless -auth-prefix gives one, as Azure's api-key).
// It logs one line per request to stderr (never a key) and exits on
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

	"github.com/proxycast/caddy-proxycast/openai/openaitest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr, nil); err != nil {
		fmt.Fprintln(os.Stderr, "fakeopenai:", err)
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
	fs := flag.NewFlagSet("fakeopenai", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:9778", "address to serve on")
	authHeader := fs.String("auth-header", "Authorization", "request header that carries the key")
	authPrefix := fs.String("auth-prefix", "", "text before the key in that header (default \"Bearer \" for Authorization, none for another header)")
	responses := fs.Bool("responses", false, "also serve the Responses API (POST /v1/responses), as OpenAI does")
	var keys, models listFlag
	fs.Var(&keys, "key", "API key to accept (repeat or comma-separate)")
	fs.Var(&models, "model", "model to list and accept (repeat or comma-separate; default "+strings.Join(openaitest.DefaultModels(), ",")+")")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	prefixSet := false
	fs.Visit(func(f *flag.Flag) { prefixSet = prefixSet || f.Name == "auth-prefix" })
	if !prefixSet && http.CanonicalHeaderKey(*authHeader) == "Authorization" {
		*authPrefix = "Bearer "
	}

	logger := log.New(stderr, "fakeopenai: ", log.LstdFlags)
	s := openaitest.New()
	defer s.Close()
	for _, k := range keys {
		s.AddKey(k)
	}
	if len(keys) == 0 {
		logger.Print("no -key given: every request will get 401 invalid_api_key")
	}
	if len(models) > 0 {
		s.SetModels(models...)
	}
	s.SetAuthHeader(*authHeader, *authPrefix)
	s.SetResponses(*responses)
	s.SetRequestLog(func(r openaitest.Request) {
		logger.Printf("%s %s key=%s model=%q stream=%t status=%d %s", r.Method, r.Path, fingerprint(r.Key), r.Model, r.Stream, r.Status, r.Outcome)
	})

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	addr := ln.Addr().String()
	logger.Printf("serving the OpenAI-compatible fake: API base http://%s/v1, key in %s: %q+key, %d key(s), models %s",
		addr, http.CanonicalHeaderKey(*authHeader), *authPrefix, len(keys), strings.Join(modelsOr(models), ","))
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

func modelsOr(models []string) []string {
	if len(models) == 0 {
		return openaitest.DefaultModels()
	}
	return models
}

// fingerprint names a key in logs without revealing it.
func fingerprint(key string) string {
	if key == "" {
		return "none"
	}
	sum := sha256.Sum256([]byte(key))
	return "#" + hex.EncodeToString(sum[:4])
}

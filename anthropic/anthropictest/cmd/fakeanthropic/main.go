// Command fakeanthropic serves the strict fake of Anthropic's API of
// package anthropictest on a fixed address, for the offline quickstart:
//
//	go run ./anthropic/anthropictest/cmd/fakeanthropic -listen 127.0.0.1:9779 \
//		-key sk-ant-demo -model claude-demo,claude-demo-thinker
//
// Point an anthropic provider's api_base at http://<listen> (no /v1). The
// key goes in x-api-key, with anthropic-version 2023-06-01. With -beta,
// only the betas named are taken and any other anthropic-beta value is
// refused, as the API refuses betas it does not have. It logs one line
// per request to stderr (never a key) and exits on SIGINT or SIGTERM.
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

	"github.com/proxycast/caddy-proxycast/anthropic/anthropictest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stderr, nil); err != nil {
		fmt.Fprintln(os.Stderr, "fakeanthropic:", err)
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
	fs := flag.NewFlagSet("fakeanthropic", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:9779", "address to serve on")
	var keys, models, betas listFlag
	fs.Var(&keys, "key", "API key to accept in x-api-key (repeat or comma-separate)")
	fs.Var(&models, "model", "model to list and accept (repeat or comma-separate; default "+strings.Join(anthropictest.DefaultModels(), ",")+")")
	fs.Var(&betas, "beta", "anthropic-beta value to accept, refusing all others (repeat or comma-separate; default: accept any)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}

	logger := log.New(stderr, "fakeanthropic: ", log.LstdFlags)
	s := anthropictest.New()
	defer s.Close()
	for _, k := range keys {
		s.AddKey(k)
	}
	if len(keys) == 0 {
		logger.Print("no -key given: every request will get 401 invalid x-api-key")
	}
	if len(models) > 0 {
		s.SetModels(models...)
	} else {
		models = anthropictest.DefaultModels()
	}
	betaNote := "any beta"
	if len(betas) > 0 {
		s.RefuseUnknownBetas(betas...)
		betaNote = "betas " + betas.String()
	}
	s.SetRequestLog(func(r anthropictest.Request) {
		logger.Printf("%s %s key=%s model=%q stream=%t betas=%q status=%d %s",
			r.Method, r.Path, fingerprint(r.Key), r.Model, r.Stream, strings.Join(r.Betas, ","), r.Status, r.Outcome)
	})

	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	addr := ln.Addr().String()
	logger.Printf("serving the Anthropic fake: api_base http://%s, key in x-api-key, %d key(s), models %s, %s",
		addr, len(keys), models.String(), betaNote)
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
	// End held streams first, or Shutdown would wait for them.
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

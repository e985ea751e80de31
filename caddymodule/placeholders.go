package caddymodule

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/caddyserver/caddy/v2"
)

// Which placeholders a field takes. The secret fields (api_keys, api_key,
// cookies, proxy_url) take {env.NAME}, an environment variable, and
// {file.PATH}, the content of a file (where container and systemd secrets
// live). token_file is a path, not a secret: a file's content makes no
// path, so it takes {env.NAME} only. No other placeholder is replaced:
// braces that name none of these are kept as written, as a pasted Cookie
// header may hold raw JSON.
type placeholders int

const (
	envOnly placeholders = iota
	envAndFile
)

// maxSecretFile bounds what a {file.PATH} placeholder reads.
const maxSecretFile = 1 << 20

// resolvePlaceholders replaces the placeholders of one field strictly: an
// unset or empty variable, or an unreadable or empty file, is an error
// naming the variable or file, never a value; replacing it with nothing
// would shorten a key, or drop a proxy, without a word.
func resolvePlaceholders(value string, take placeholders) (string, error) {
	if !strings.Contains(value, "{") {
		return value, nil
	}
	var problem error
	note := func(err error) {
		if problem == nil {
			problem = err
		}
	}
	repl := caddy.NewEmptyReplacer()
	repl.Map(func(key string) (any, bool) {
		switch {
		case strings.HasPrefix(key, "env."):
			name := strings.TrimPrefix(key, "env.")
			v := os.Getenv(name)
			if v == "" {
				note(fmt.Errorf("environment variable %s is unset or empty", name))
			}
			return v, true
		case strings.HasPrefix(key, "file."):
			path := strings.TrimPrefix(key, "file.")
			if take != envAndFile {
				note(fmt.Errorf("{file.%s} is not taken here: a file's content is not a path; use {env.NAME}", path))
				return "", true
			}
			v, err := readSecretFile(path)
			if err != nil {
				note(fmt.Errorf("{file.%s}: %w", path, err))
			}
			return v, true
		}
		return nil, false
	})
	out := repl.ReplaceKnown(value, "")
	if problem != nil {
		return "", problem
	}
	return out, nil
}

// readSecretFile reads the content of a {file.PATH} placeholder, with one
// trailing newline dropped, as Caddy's own {file.*} does. Its errors name
// the file and never hold its content.
func readSecretFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", errors.New("cannot read the file: " + describeFileError(err))
	}
	defer f.Close()
	raw, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
	if err != nil {
		return "", errors.New("cannot read the file: " + describeFileError(err))
	}
	if len(raw) > maxSecretFile {
		return "", fmt.Errorf("the file is larger than %d bytes", maxSecretFile)
	}
	raw = bytes.TrimSuffix(raw, []byte("\n"))
	raw = bytes.TrimSuffix(raw, []byte("\r"))
	if len(bytes.TrimSpace(raw)) == 0 {
		return "", errors.New("the file is empty")
	}
	return string(raw), nil
}

func describeFileError(err error) string {
	switch {
	case errors.Is(err, os.ErrNotExist):
		return "it does not exist"
	case errors.Is(err, os.ErrPermission):
		return "permission denied"
	}
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}

// hideResolved makes sure an error about a field shows the field as
// written: wherever the resolved value of a field with placeholders shows
// in err, the written text takes its place.
func hideResolved(err error, pairs ...[2]string) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	changed := false
	for _, p := range pairs {
		written, value := p[0], p[1]
		if written == value || len(value) < 4 || !strings.Contains(msg, value) {
			continue
		}
		msg, changed = strings.ReplaceAll(msg, value, written), true
	}
	if !changed {
		return err
	}
	if fe, ok := errors.AsType[*FieldError](err); ok {
		return &FieldError{Field: fe.Field, Msg: msg}
	}
	return errors.New(msg)
}

package caddymodule

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"strings"

	"github.com/caddyserver/certmagic"

	"github.com/proxycast/caddy-proxycast/credpool"
	"github.com/proxycast/caddy-proxycast/provider"
)

// storagePrefix holds everything the plugin keeps in Caddy's storage.
const storagePrefix = "proxycast"

// reservedKeys are the keys under storagePrefix that the plugin keeps for
// itself: no token file may be one of them, lie inside one, or hold one
// (a token file "state" would make the state directory a file).
var reservedKeys = []string{runtimeKey, path.Join(storagePrefix, "state")}

// reservedKey reports the reserved key that key collides with.
func reservedKey(key string) (string, bool) {
	for _, r := range reservedKeys {
		if key == r || strings.HasPrefix(key, r+"/") || strings.HasPrefix(r, key+"/") {
			return r, true
		}
	}
	return "", false
}

// stateLocation is where one credential's renewable state lives.
type stateLocation struct {
	store credpool.Store
	key   string
	// where describes the location for people: a storage key or a path.
	where string
}

// locateState resolves a credential's state key: a relative path is a key
// under proxycast/ in Caddy's configured storage (with the default file
// storage, a file in Caddy's data directory; with a shared storage module,
// the same for every instance of a cluster); an absolute path is a plain
// local file; empty means the credential's default key
// proxycast/state/<provider>/<id>.json. Its errors do not quote stateKey,
// which may come from placeholders: the caller names it as written.
func locateState(storage certmagic.Storage, stateKey, prov, id string) (stateLocation, error) {
	if stateKey == "" {
		// An id with a slash would nest the file, or with "..", leave
		// the storage area.
		if strings.ContainsAny(id, `/\`) {
			return stateLocation{}, fmt.Errorf("credential id %q cannot name a state file (it has a slash); choose another id or set token_file", id)
		}
		if storage == nil {
			return stateLocation{}, errors.New("no storage configured")
		}
		key := path.Join(storagePrefix, "state", prov, id+".json")
		return stateLocation{store: storage, key: key, where: "storage key " + key}, nil
	}
	if filepath.IsAbs(stateKey) {
		dir, file := filepath.Split(filepath.Clean(stateKey))
		loc := stateLocation{
			store: &certmagic.FileStorage{Path: dir},
			key:   file,
			where: "file " + filepath.Clean(stateKey),
		}
		// The plugin's keys in Caddy's file storage, named by their path.
		if fs, ok := storage.(*certmagic.FileStorage); ok {
			for _, r := range reservedKeys {
				reserved := canonicalFile(fs.Filename(r))
				if p := loc.canonical(); p == reserved || strings.HasPrefix(p, reserved+string(filepath.Separator)) {
					return stateLocation{}, fmt.Errorf("it is a file the plugin keeps for itself in Caddy's storage (%s); choose another name", r)
				}
			}
		}
		return loc, nil
	}
	clean := path.Clean(filepath.ToSlash(stateKey))
	if clean == "." || clean == ".." || strings.HasPrefix(clean, "../") {
		return stateLocation{}, errors.New("it leaves the storage area; use a path inside it or an absolute path")
	}
	if storage == nil {
		return stateLocation{}, errors.New("no storage configured")
	}
	key := path.Join(storagePrefix, clean)
	// The plugin's own keys are not token files: one there would be
	// overwritten by, or overwrite, the runtime changes or another
	// credential's state.
	if r, ok := reservedKey(key); ok {
		return stateLocation{}, fmt.Errorf("it collides with %s, which the plugin keeps for itself; choose another name", r)
	}
	return stateLocation{store: storage, key: key, where: "storage key " + key}, nil
}

// canonical names the place the state is stored, so that two names of one
// place compare equal: a key of a file storage is the file it is written
// to, whether named as a storage key or as an absolute path.
func (l stateLocation) canonical() string {
	if fs, ok := l.store.(*certmagic.FileStorage); ok {
		return canonicalFile(fs.Filename(l.key))
	}
	// One config has one storage: the instance tells it apart.
	return fmt.Sprintf("storage %p:%s", l.store, l.key)
}

// canonicalFile is path made absolute, with the symbolic links of its
// directory resolved where it exists.
func canonicalFile(p string) string {
	if abs, err := filepath.Abs(p); err == nil {
		p = abs
	}
	if dir, err := filepath.EvalSymlinks(filepath.Dir(p)); err == nil {
		p = filepath.Join(dir, filepath.Base(p))
	}
	return p
}

// errOccupied is storeState's refusal to overwrite what is not a state.
var errOccupied = errors.New("holds something else")

// adminTokenFile checks the token_file of a credential the admin API is
// to add: an absolute path must lie inside one of admin_token_dirs.
func (h *Handler) adminTokenFile(rc resolved) error {
	p := strings.TrimSpace(rc.TokenFile)
	if p == "" || !filepath.IsAbs(p) {
		return nil
	}
	target := canonicalFile(filepath.Clean(p))
	for _, d := range h.AdminTokenDirs {
		dir := filepath.Clean(d)
		if real, err := filepath.EvalSymlinks(dir); err == nil {
			dir = real
		}
		if strings.HasPrefix(target, dir+string(filepath.Separator)) {
			return nil
		}
	}
	if len(h.AdminTokenDirs) == 0 {
		return fieldErr("token_file", "token_file %s is an absolute path, which the admin API takes only inside the handler's admin_token_dirs, and none are set; use a key in Caddy's storage, such as iflow/<id>.json", rc.tokenFileShown())
	}
	return fieldErr("token_file", "token_file %s is not inside the handler's admin_token_dirs (%s)", rc.tokenFileShown(), strings.Join(h.AdminTokenDirs, ", "))
}

// isTokenFile is a storeState check that accepts what read takes as a
// token file.
func isTokenFile(read func([]byte) error) func([]byte) error {
	return func(old []byte) error {
		if read(old) != nil {
			return errors.New("not a token file")
		}
		return nil
	}
}

// tokenOf is the isTokenFile check of a renewable credential's state.
func tokenOf(auth provider.Auth) func([]byte) error {
	return isTokenFile(func(old []byte) error { _, err := auth.Renewer.Key(old); return err })
}

// storeState writes a credential's state under the lock its renewals
// take, so that it never interleaves with a running server's renewal.
// What the location holds already is kept unless replaceable accepts it
// (nil accepts anything): a token given through the admin API must not
// overwrite a file that is not a token file.
func storeState(ctx context.Context, loc stateLocation, state []byte, replaceable func(old []byte) error) error {
	lock := credpool.LockName(loc.key)
	if err := loc.store.Lock(ctx, lock); err != nil {
		return fmt.Errorf("taking the storage lock: %w", err)
	}
	defer func() { _ = loc.store.Unlock(context.Background(), lock) }()
	if replaceable != nil {
		old, err := loc.store.Load(ctx, loc.key)
		switch {
		case errors.Is(err, fs.ErrNotExist):
		case err != nil:
			return fmt.Errorf("reading %s: %w", loc.where, err)
		default:
			if err := replaceable(old); err != nil {
				return fmt.Errorf("%s %w (%v); it is left as it is: choose another token_file", loc.where, errOccupied, err)
			}
		}
	}
	if err := loc.store.Store(ctx, loc.key, state); err != nil {
		return fmt.Errorf("storing in %s: %w", loc.where, err)
	}
	return nil
}

// locate is where a renewable credential keeps its state. Errors and logs
// name a token_file made by placeholders as written.
func (r resolved) locate(storage certmagic.Storage, auth provider.Auth, prov string) (stateLocation, error) {
	loc, err := locateState(storage, auth.StateKey, prov, r.ID)
	if err != nil {
		if auth.StateKey == "" {
			return loc, err
		}
		return loc, fieldErr("token_file", "token_file %s: %v", r.tokenFileShown(), r.hide(err))
	}
	if r.written.TokenFile != r.TokenFile && auth.StateKey != "" {
		loc.where = "token_file " + r.tokenFileShown()
	}
	return loc, nil
}

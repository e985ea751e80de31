package caddymodule

import (
	"errors"
	"fmt"
	"path"
	"path/filepath"
	"strings"

	"github.com/caddyserver/certmagic"

	"github.com/proxycast/caddy-proxycast/credpool"
	"github.com/proxycast/caddy-proxycast/provider"
)

// storagePrefix holds everything the plugin keeps in Caddy's storage.
const storagePrefix = "proxycast"

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
		return stateLocation{
			store: &certmagic.FileStorage{Path: dir},
			key:   file,
			where: "file " + filepath.Clean(stateKey),
		}, nil
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
	if key == runtimeKey || strings.HasPrefix(key, path.Join(storagePrefix, "state")+"/") {
		return stateLocation{}, fmt.Errorf("it names a key the plugin keeps for itself (%s, %s/state/); choose another name", runtimeKey, storagePrefix)
	}
	return stateLocation{store: storage, key: key, where: "storage key " + key}, nil
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

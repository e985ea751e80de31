package caddymodule

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/certmagic"
	"go.uber.org/zap"

	"github.com/proxycast/caddy-proxycast/iflow"
)

func TestLocateState(t *testing.T) {
	storage := &certmagic.FileStorage{Path: t.TempDir()}
	abs := filepath.Join(t.TempDir(), "tokens", "a.json")
	tests := []struct {
		name     string
		stateKey string
		id       string
		key      string // want; "" means an error
		fileDir  string // want a FileStorage in this directory instead of storage
		errHas   string
	}{
		{"default", "", "acc-1", "proxycast/state/iflow/acc-1.json", "", ""},
		{"relative", "iflow/oauth.json", "x", "proxycast/iflow/oauth.json", "", ""},
		{"relative, cleaned", "./iflow//sub/../oauth.json", "x", "proxycast/iflow/oauth.json", "", ""},
		{"relative, inner dots", "a/../b.json", "x", "proxycast/b.json", "", ""},
		{"dotted name", "..token.json", "x", "proxycast/..token.json", "", ""},
		{"up", "../oauth.json", "x", "", "", "leaves the storage area"},
		{"up after down", "iflow/../../oauth.json", "x", "", "", "leaves the storage area"},
		{"dotdot", "..", "x", "", "", "leaves the storage area"},
		{"dot", ".", "x", "", "", "leaves the storage area"},
		{"absolute", abs, "x", "a.json", filepath.Dir(abs), ""},
		{"absolute, cleaned", filepath.Dir(abs) + "/../tokens/./a.json", "x", "a.json", filepath.Dir(abs), ""},
		{"id with a slash", "", "../../escape", "", "", "slash"},
		{"the state directory", "state", "x", "", "", "collides with proxycast/state"},
		{"inside the state directory", "state/iflow/x.json", "x", "", "", "collides with proxycast/state"},
		{"the runtime changes", "runtime.json", "x", "", "", "collides with proxycast/runtime.json"},
		{"below the runtime changes", "runtime.json/x", "x", "", "", "collides with proxycast/runtime.json"},
		{"a name that only starts alike", "statefile.json", "x", "proxycast/statefile.json", "", ""},
		{"the state directory by its path", filepath.Join(storage.Path, "proxycast", "state", "iflow", "x.json"), "x", "", "", "keeps for itself"},
		{"the runtime changes by their path", filepath.Join(storage.Path, "proxycast", "runtime.json"), "x", "", "", "keeps for itself"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			loc, err := locateState(storage, tt.stateKey, "iflow", tt.id)
			if tt.key == "" {
				if err == nil {
					t.Fatalf("locateState(%q) = %+v, want an error", tt.stateKey, loc)
				}
				if !strings.Contains(err.Error(), tt.errHas) {
					t.Errorf("error %q does not say %q", err, tt.errHas)
				}
				return
			}
			if err != nil {
				t.Fatalf("locateState(%q): %v", tt.stateKey, err)
			}
			if loc.key != tt.key {
				t.Errorf("key = %q, want %q", loc.key, tt.key)
			}
			if tt.fileDir == "" {
				if loc.store != storage {
					t.Errorf("store = %#v, want Caddy's storage", loc.store)
				}
				if !strings.Contains(loc.where, tt.key) {
					t.Errorf("where = %q, does not name %q", loc.where, tt.key)
				}
				return
			}
			fs, ok := loc.store.(*certmagic.FileStorage)
			if !ok {
				t.Fatalf("store = %#v, want a *certmagic.FileStorage", loc.store)
			}
			if filepath.Clean(fs.Path) != tt.fileDir {
				t.Errorf("FileStorage.Path = %q, want %q", fs.Path, tt.fileDir)
			}
			if got := fs.Filename(loc.key); got != abs {
				t.Errorf("the state goes to %q, want %q", got, abs)
			}
			if !strings.Contains(loc.where, abs) {
				t.Errorf("where = %q, does not name %q", loc.where, abs)
			}
		})
	}

	if _, err := locateState(nil, "iflow/oauth.json", "iflow", "x"); err == nil {
		t.Error("a relative key without storage was accepted")
	}
	if _, err := locateState(nil, "", "iflow", "x"); err == nil {
		t.Error("a default key without storage was accepted")
	}
	if loc, err := locateState(nil, abs, "iflow", "x"); err != nil || loc.store == nil {
		t.Errorf("an absolute path without storage: %+v, %v", loc, err)
	}
}

// tokenWriterEnv selects the helper mode of the test binary: the value is
// the directory to write in.
const tokenWriterEnv = "PROXYCAST_TEST_TOKEN_WRITER_DIR"

// crashTokens are the two versions the helper writes in turn, each well
// over 64 KiB so that a write takes more than one system call.
func crashTokens() [2][]byte {
	var out [2][]byte
	for i, fill := range []string{"a", "b"} {
		tok := iflow.Token{
			AccessToken:  "at-" + fill,
			RefreshToken: "rt-" + fill,
			ExpiresAt:    time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC),
			APIKey:       "sk-" + fill,
			Account:      strings.Repeat(fill, 70<<10+i*9000),
		}
		out[i] = tok.Marshal()
	}
	return out
}

// crashLocations are where the helper writes: a storage key in Caddy's
// default file storage, and an absolute token_file path.
func crashLocations(t *testing.T, dir string) []stateLocation {
	storage := &certmagic.FileStorage{Path: filepath.Join(dir, "data")}
	var locs []stateLocation
	for _, key := range []string{"iflow/oauth.json", filepath.Join(dir, "abs", "oauth.json")} {
		loc, err := locateState(storage, key, "iflow", "x")
		if err != nil {
			t.Fatal(err)
		}
		locs = append(locs, loc)
	}
	return locs
}

// TestHelperTokenWriter is not a test: run by TestTokenWriteCrashSafe, it
// writes token files until it is killed.
func TestHelperTokenWriter(t *testing.T) {
	dir := os.Getenv(tokenWriterEnv)
	if dir == "" {
		t.Skip("helper process for TestTokenWriteCrashSafe")
	}
	versions := crashTokens()
	locs := crashLocations(t, dir)
	ctx := context.Background()
	deadline := time.Now().Add(time.Minute) // in case nobody kills it
	for i := 0; time.Now().Before(deadline); i++ {
		for _, loc := range locs {
			if err := loc.store.Store(ctx, loc.key, versions[i%2]); err != nil {
				fmt.Println("error:", err)
				os.Exit(2)
			}
		}
		if i == 1 {
			fmt.Println("ready")
		}
	}
	os.Exit(0)
}

// TestTokenWriteCrashSafe kills a process writing token files at random
// moments: every time, each file must be one whole version, private to
// its owner.
func TestTokenWriteCrashSafe(t *testing.T) {
	if runtime.GOOS == "windows" || runtime.GOOS == "plan9" {
		t.Skip("rename is not atomic here")
	}
	if testing.Short() {
		t.Skip("starts child processes")
	}
	dir := t.TempDir()
	versions := crashTokens()
	locs := crashLocations(t, dir)
	const rounds = 20
	for round := range rounds {
		// os.Executable, not os.Args[0]: caddytest sets os.Args to run
		// Caddy in this process.
		self, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(self, "-test.run=^TestHelperTokenWriter$", "-test.count=1", "-test.timeout=2m")
		cmd.Env = append(os.Environ(), tokenWriterEnv+"="+dir)
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		ready := make(chan string, 1)
		go func() {
			line, _ := bufio.NewReader(stdout).ReadString('\n')
			ready <- line
		}()
		select {
		case line := <-ready:
			if line != "ready\n" {
				cmd.Process.Kill()
				cmd.Wait()
				t.Fatalf("round %d: the writer said %q; stderr:\n%s", round, line, stderr.String())
			}
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("round %d: the writer never got ready; stderr:\n%s", round, stderr.String())
		}
		time.Sleep(time.Duration(rand.IntN(20000)) * time.Microsecond)
		if err := cmd.Process.Kill(); err != nil {
			t.Fatal(err)
		}
		cmd.Wait()

		for _, loc := range locs {
			file := loc.store.(*certmagic.FileStorage).Filename(loc.key)
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatalf("round %d: %s: %v", round, loc.where, err)
			}
			if _, err := iflow.ParseToken(data); err != nil {
				t.Fatalf("round %d: %s does not parse after the kill (%d bytes): %v", round, loc.where, len(data), err)
			}
			if !bytes.Equal(data, versions[0]) && !bytes.Equal(data, versions[1]) {
				t.Fatalf("round %d: %s holds %d bytes that are neither version (%d, %d bytes)",
					round, loc.where, len(data), len(versions[0]), len(versions[1]))
			}
			fi, err := os.Stat(file)
			if err != nil {
				t.Fatal(err)
			}
			if perm := fi.Mode().Perm(); perm != 0o600 {
				t.Errorf("round %d: %s has mode %v, want 0600", round, loc.where, perm)
			}
		}
	}
}

// settingsStorage is a storage module without String(), holding a
// connection as storage modules for Redis or Consul do.
type settingsStorage struct {
	certmagic.Storage
	Address string `json:"address"`
	conn    *int
}

// TestIdentityOfStorageWithoutString: a storage module is known by its
// settings, so the same config loaded again keeps its credentials' state
// even though each load makes a new instance (with a new connection).
func TestIdentityOfStorageWithoutString(t *testing.T) {
	c := Credential{ID: "a", AuthType: "api_key", APIKey: "k"}
	one := identity("iflow", nil, &settingsStorage{Address: "redis:6379", conn: new(int)}, c)
	again := identity("iflow", nil, &settingsStorage{Address: "redis:6379", conn: new(int)}, c)
	other := identity("iflow", nil, &settingsStorage{Address: "redis2:6379", conn: new(int)}, c)
	if one != again {
		t.Errorf("the same storage settings gave two identities: %s, %s", one, again)
	}
	if one == other {
		t.Error("two storages gave one identity")
	}
}

// TestUsageSyncerOfStorageWithoutString: two config loads of the same
// storage settings share one usage syncer, and so one set of meters,
// though each load makes a new storage instance.
func TestUsageSyncerOfStorageWithoutString(t *testing.T) {
	dir := t.TempDir()
	var held []string
	t.Cleanup(func() {
		for _, k := range held {
			_, _ = usageSyncs.Delete(k)
		}
	})
	load := func(addr string) string {
		h := &Handler{storage: &settingsStorage{Storage: &certmagic.FileStorage{Path: dir}, Address: addr, conn: new(int)},
			UsageSync: caddy.Duration(time.Minute), logger: zap.NewNop()}
		if err := h.provisionUsage(); err != nil {
			t.Fatal(err)
		}
		held = append(held, h.usage.id)
		return h.usage.id
	}
	one, again, other := load("redis:6379"), load("redis:6379"), load("redis2:6379")
	if one != again {
		t.Errorf("the same storage settings gave two syncers: %s, %s", one, again)
	}
	if one == other {
		t.Error("two storages gave one syncer")
	}
}

// TestResolvePlaceholders: an unset {env.X} in a secret field is an error
// naming the variable, while braces that name no placeholder (raw JSON in
// a pasted Cookie header) are kept as they are.
func TestResolvePlaceholders(t *testing.T) {
	t.Setenv("PROXYCAST_TEST_KEY", "sk-from-env")
	cookies := `sensorsdata={"distinct_id":"1"}; BXAuth=abc; x={y}`
	c, err := Credential{ID: "c", AuthType: "cookie", Cookies: cookies}.resolve()
	if err != nil || c.Cookies != cookies {
		t.Errorf("cookies with braces: %q, %v", c.Cookies, err)
	}
	c, err = Credential{ID: "k", AuthType: "api_key", APIKey: "{env.PROXYCAST_TEST_KEY}"}.resolve()
	if err != nil || c.APIKey != "sk-from-env" {
		t.Errorf("api_key from env: %q, %v", c.APIKey, err)
	}
	_, err = Credential{ID: "k", AuthType: "api_key", APIKey: "pk-{env.PROXYCAST_TEST_UNSET}"}.resolve()
	if err == nil || !strings.Contains(err.Error(), "PROXYCAST_TEST_UNSET is unset or empty") || strings.Contains(err.Error(), "pk-") {
		t.Errorf("api_key with an unset variable inside: %v", err)
	}
}

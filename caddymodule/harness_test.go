package caddymodule_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/proxycast/caddy-proxycast/caddymodule"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddytest"
	"github.com/caddyserver/certmagic"

	_ "github.com/proxycast/caddy-proxycast"
	"github.com/proxycast/caddy-proxycast/iflow/iflowtest"
)

// The whole-server tests run a real Caddy in the test process (caddytest)
// against the project's strict fakes. One Caddy serves the whole test
// binary, so these tests do not run in parallel; its ports are picked
// fresh for every test binary, so that two of them (or another program)
// never collide.

const clientKey = "client-key-1"

var (
	// adminPort, httpPort and httpsPort are the ports of this test
	// binary's Caddy; baseURL and adminURL reach it, and siteAddr is the
	// address of its site.
	adminPort, httpPort, httpsPort int
	baseURL, adminURL, siteAddr    string
	// adminAddr is the admin API's address as the CLI's --admin takes it.
	adminAddr string
	// globalOptions is the global options block of every test config.
	globalOptions string
)

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	// A helper process (TestHelperTokenWriter, TestHelperCaddy) is ended
	// by its parent, so it could not remove a scratch directory: it works
	// in the directories its parent gives it.
	if os.Getenv(caddymodule.TokenWriterEnv) != "" || os.Getenv(helperConfigEnv) != "" {
		return m.Run()
	}
	dir, err := os.MkdirTemp("", "proxycast-test-*")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	// Keep everything Caddy writes inside dir. Caddy reads the autosave
	// path and its default storage from the environment when its package
	// initialises, before this runs, so they are set here too.
	os.Setenv("XDG_DATA_HOME", filepath.Join(dir, "data"))
	os.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, "config"))
	os.Setenv("HOME", dir)
	caddy.ConfigAutosavePath = filepath.Join(dir, "config", "caddy", "autosave.json")
	caddy.DefaultStorage = &certmagic.FileStorage{Path: filepath.Join(dir, "data", "caddy")}

	// Every config load restarts Caddy's admin listener, and a connection
	// kept alive to the previous one fails the next request on it
	// (EOF, connection reset). caddytest and these tests use the default
	// transport: it keeps no connection alive.
	http.DefaultTransport.(*http.Transport).DisableKeepAlives = true

	ports := freePorts(3)
	adminPort, httpPort, httpsPort = ports[0], ports[1], ports[2]
	baseURL = fmt.Sprintf("http://localhost:%d", httpPort)
	adminAddr = fmt.Sprintf("localhost:%d", adminPort)
	adminURL = "http://" + adminAddr
	siteAddr = baseURL
	globalOptions = fmt.Sprintf(`{
	admin localhost:%d
	http_port %d
	https_port %d
	grace_period 1ns
	auto_https off
	persist_config off
}
`, adminPort, httpPort, httpsPort)
	return m.Run()
}

// freePorts returns n distinct ports that were free a moment ago.
func freePorts(n int) []int {
	var out []int
	var lns []net.Listener
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			panic(err)
		}
		lns = append(lns, ln)
		out = append(out, ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range lns {
		ln.Close()
	}
	return out
}

// freePort is a port that was free a moment ago (the admin API's port 0
// means its default, 11451).
func freePort(t *testing.T) int {
	t.Helper()
	return freePorts(1)[0]
}

// site is a whole site block of the test server around body, with a
// /health route outside the API.
func site(body string) string {
	return "\n" + siteAddr + " {\n" + body + "\n\thandle /health {\n\t\trespond ok\n\t}\n}\n"
}

// testStorage is each running test's storage root.
var testStorage sync.Map // *testing.T → string

// storageOf is the storage root of t, the same for every config it
// loads: what a test counts (usage is kept per storage and credential
// id) is not what an earlier test left.
func storageOf(t *testing.T) string {
	if root, ok := testStorage.Load(t); ok {
		return root.(string)
	}
	root := t.TempDir()
	testStorage.Store(t, root)
	t.Cleanup(func() { testStorage.Delete(t) })
	return root
}

// startCaddy loads a Caddyfile whose proxycast block is body, with the
// test's storage.
func startCaddy(t *testing.T, body string) *caddytest.Tester {
	t.Helper()
	root := storageOf(t) // before newTester: the unload must come first
	tester := newTester(t)
	tester.InitServer(storageOptions(root)+"\n"+siteAddr+" {\n\tproxycast {\n"+body+"\n\t}\n\thandle /health {\n\t\trespond \"outside the API\" 200\n\t}\n}\n", "caddyfile")
	settle(t)
	return tester
}

// settle waits until the new config alone answers. Caddy opens a new
// socket for each config (SO_REUSEPORT) and closes the old config's in the
// background once a load has returned; until then the kernel hands some
// connections to the old one, which drops them unanswered or serves them
// with the old config.
func settle(t *testing.T) {
	t.Helper()
	settleListeners(t)
	for range 250 {
		if resp, err := http.Get(baseURL + "/health"); err == nil {
			resp.Body.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("Caddy does not answer after loading the config")
}

// settleListeners waits until no more than one config holds the site's
// and the admin API's listeners (see settle). Caddy counts a config out
// just before it closes its socket, and the kernel keeps handing that
// socket connections until then (which it resets when it closes), so
// where /proc/net tells, the sockets listening are counted too.
func settleListeners(t *testing.T) {
	t.Helper()
	site, adm := fmt.Sprintf(":%d", httpPort), adminAddr
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); {
		if caddy.ListenerUsage("tcp", site) <= 1 && caddy.ListenerUsage("tcp", adm) <= 1 &&
			listeningSockets(httpPort) <= 1 && listeningSockets(adminPort) <= 1 {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("the previous config's listeners are still open after 20s")
}

// listeningSockets counts the TCP sockets listening on port, from
// /proc/net/tcp and tcp6; 0 where neither can be read.
func listeningSockets(port int) int {
	suffix := fmt.Sprintf(":%04X", port)
	n := 0
	for _, file := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		raw, err := os.ReadFile(file)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(raw), "\n") {
			f := strings.Fields(line)
			// sl local_address rem_address st …; st 0A is LISTEN.
			if len(f) > 3 && strings.HasSuffix(f[1], suffix) && f[3] == "0A" {
				n++
			}
		}
	}
	return n
}

// newTester returns a caddytest.Tester for this binary's Caddy, and has
// the test end by unloading its config.
func newTester(t *testing.T) *caddytest.Tester {
	unloadAtEnd(t)
	return caddytest.NewTester(t).WithDefaultOverrides(caddytest.Config{AdminPort: adminPort})
}

// unloadAtEnd unloads the running config when t ends, before the temp
// directories it made earlier are removed: a config stopping stores what
// it holds (the usage, renewed tokens) into its storage, which must not
// be a directory already removed, or it would be made again outside any
// temp directory.
func unloadAtEnd(t *testing.T) {
	t.Cleanup(func() {
		cfg := fmt.Sprintf(`{"admin":{"listen":"localhost:%d","config":{"persist":false}}}`, adminPort)
		req, _ := http.NewRequest(http.MethodPost, adminURL+"/load", strings.NewReader(cfg))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Cache-Control", "must-revalidate")
		if resp, err := testClient.Do(req); err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
}

func fakeIFlow(t *testing.T, keys ...string) *iflowtest.Server {
	t.Helper()
	srv := iflowtest.NewServer()
	t.Cleanup(srv.Close)
	for _, k := range keys {
		srv.AddAPIKey(k)
	}
	return srv
}

// poolConfig is a proxycast block with one api_key credential per key.
func poolConfig(srv *iflowtest.Server, extra string, keys ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "\t\tapi_keys %s\n\t\tcredential_pool {\n\t\t\tiflow {\n", clientKey)
	for i, k := range keys {
		fmt.Fprintf(&b, "\t\t\t\tcredential key-%d {\n\t\t\t\t\tauth_type api_key\n\t\t\t\t\tapi_key %s\n\t\t\t\t}\n", i+1, k)
	}
	fmt.Fprintf(&b, "\t\t\t}\n\t\t}\n\t\tprovider iflow {\n\t\t\tapi_base %s\n\t\t}\n%s", srv.APIBase(), extra)
	return b.String()
}

// testClient bounds every test request: a proxy that hangs fails the
// test instead of holding it until go test's deadline.
var testClient = &http.Client{Timeout: 30 * time.Second}

func chat(t *testing.T, body string, header ...string) (*http.Response, string) {
	t.Helper()
	resp := post(t, "/v1/chat/completions", body, append([]string{"Authorization", "Bearer " + clientKey}, header...)...)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(raw)
}

// post sends a JSON body to path on the site, with the header pairs
// given (an empty value removes a header set before it).
func post(t *testing.T, path, body string, header ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, baseURL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		if header[i+1] == "" {
			req.Header.Del(header[i])
		} else {
			req.Header.Set(header[i], header[i+1])
		}
	}
	resp, err := testClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

type apiError struct {
	Error struct {
		Message string `json:"message"`
		Type    string `json:"type"`
		Code    string `json:"code"`
	} `json:"error"`
}

func decodeError(t *testing.T, body string) apiError {
	t.Helper()
	var e apiError
	if err := json.Unmarshal([]byte(body), &e); err != nil || e.Error.Message == "" {
		t.Fatalf("not an OpenAI error object: %q", body)
	}
	return e
}

// events splits an SSE body into its data payloads.
func events(body string) []string {
	var out []string
	for _, line := range strings.Split(body, "\n") {
		if d, ok := strings.CutPrefix(line, "data: "); ok {
			out = append(out, d)
		}
	}
	return out
}

// admin sends one request to the admin API.
func admin(t *testing.T, method, path, body string) (int, string) {
	t.Helper()
	return send(t, method, adminURL+path, body, nil)
}

// send sends one request with a JSON body, if any, and header, and
// returns the answer's status and body.
func send(t *testing.T, method, url, body string, header map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := testClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw)
}

// storageOptions are global options that give Caddy a fresh file storage.
func storageOptions(root string) string {
	return strings.Replace(globalOptions, "persist_config off", "persist_config off\n\tstorage file_system {\n\t\troot "+root+"\n\t}", 1)
}

// startWithStorage runs Caddy with its storage in root and the given site
// body.
func startWithStorage(t *testing.T, root, body string) {
	t.Helper()
	newTester(t).InitServer(storageOptions(root)+site(body), "caddyfile")
	settle(t)
}

// loadCaddyfile loads a whole Caddyfile into the running Caddy, also when
// it is unchanged, and returns the status and body of /load (a config that
// fails answers an error instead of failing the test).
func loadCaddyfile(t *testing.T, cfg string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, adminURL+"/load", strings.NewReader(cfg))
	req.Header.Set("Content-Type", "text/caddyfile")
	req.Header.Set("Cache-Control", "must-revalidate")
	resp, err := testClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	// The load replaced the admin server (twice for a config that
	// failed: it puts the running one back).
	settleListeners(t)
	return resp.StatusCode, string(raw)
}

// reload loads body into the running Caddy (with its storage in root)
// and returns the status of /load.
func reload(t *testing.T, root, body string) (int, string) {
	t.Helper()
	status, out := loadCaddyfile(t, storageOptions(root)+site(body))
	settle(t)
	return status, out
}

// waitFor polls cond until it holds, for up to 20 seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); {
		if cond() {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

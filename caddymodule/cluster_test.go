package caddymodule_test

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"
)

// Environment of TestHelperCaddy.
const (
	helperConfigEnv = "PROXYCAST_HELPER_CADDYFILE"
	helperDataEnv   = "PROXYCAST_HELPER_DATA"
)

// TestHelperCaddy is not a test: run by startInstance, it is another Caddy
// process, `caddy run` with the Caddyfile and data directory (its
// instance id) it is given.
func TestHelperCaddy(t *testing.T) {
	cfg := os.Getenv(helperConfigEnv)
	if cfg == "" {
		t.Skip("runs only as another instance")
	}
	// Caddy's instance id, and anything else it keeps, in the directory
	// given.
	data := os.Getenv(helperDataEnv)
	os.Setenv("XDG_DATA_HOME", data)
	os.Setenv("XDG_CONFIG_HOME", data)
	os.Setenv("HOME", data)
	os.Args = []string{"caddy", "run", "--config", cfg, "--adapter", "caddyfile"}
	caddycmd.Main()
}

// instance is a Caddy in a process of its own, its output in a file.
type instance struct {
	admin, base string
	cmd         *exec.Cmd
	log         string
	exited      chan struct{}
}

// output is what the instance has written, for a failure's message.
func (in *instance) output() string {
	raw, _ := os.ReadFile(in.log)
	return string(raw)
}

// startInstance runs another Caddy with its storage in root, its
// instance id in data, and body as its site's proxycast block, and waits
// until it serves.
func startInstance(t *testing.T, root, data, body string) *instance {
	t.Helper()
	ports := freePorts(2)
	dir := t.TempDir()
	in := &instance{admin: fmt.Sprintf("http://localhost:%d", ports[0]), base: fmt.Sprintf("http://localhost:%d", ports[1]), log: filepath.Join(dir, "output")}
	cfg := fmt.Sprintf(`{
	admin localhost:%d
	http_port %d
	auto_https off
	persist_config off
	storage file_system {
		root %s
	}
}
http://localhost:%d {
	proxycast {
%s
	}
}
`, ports[0], ports[1], root, ports[1], body)
	file := filepath.Join(dir, "Caddyfile")
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	in.cmd = exec.Command(self, "-test.run=^TestHelperCaddy$", "-test.count=1", "-test.timeout=5m")
	in.cmd.Env = append(os.Environ(), helperConfigEnv+"="+file, helperDataEnv+"="+data)
	out, err := os.Create(in.log)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close() // the process has its own copy
	in.cmd.Stdout, in.cmd.Stderr = out, out
	if err := in.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { in.cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		in.cmd.Process.Kill()
		<-exited
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		// The admin endpoint answers before the config's servers listen:
		// the site itself must answer (401, without a key).
		resp, err := http.Get(in.base + "/v1/models")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusUnauthorized {
				break
			}
		}
		select {
		case <-exited:
			t.Fatalf("the other instance exited:\n%s", in.output())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the other instance did not start:\n%s", in.output())
		}
		time.Sleep(50 * time.Millisecond)
	}
	in.exited = exited
	return in
}

// stop stops the instance as `caddy stop` does, and waits for it to exit.
func (in *instance) stop(t *testing.T) {
	t.Helper()
	if status, body := send(t, "POST", in.admin+"/stop", "", nil); status != 200 {
		t.Fatalf("stop: %d %s", status, body)
	}
	select {
	case <-in.exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("the other instance did not stop:\n%s", in.output())
	}
}

// call sends a chat request for model to the instance with key.
func (in *instance) call(t *testing.T, key string) int {
	t.Helper()
	status, _ := send(t, "POST", in.base+"/v1/chat/completions", `{"model":"qwen3-max","messages":[{"role":"user","content":"one two three four five"}]}`,
		map[string]string{"Authorization": "Bearer " + key})
	return status
}

// TestInstancesShareBudget: two Caddy processes on one storage share a
// client's token budget, each counting the other's spend as of its last
// sync; a clean stop stores an instance's usage, which it takes up again
// when it starts with the same instance id; a client added through one's
// admin API reaches the other.
func TestInstancesShareBudget(t *testing.T) {
	if testing.Short() {
		t.Skip("starts another Caddy process")
	}
	srv := fakeIFlow(t, "sk-a")
	root := t.TempDir()
	// A period of 1000h: no test run crosses into the next.
	block := poolConfig(srv, "\t\tusage_sync 100ms\n\t\truntime_sync 100ms\n\t\tclient team {\n\t\t\tkey team-key-0123456789\n\t\t\ttoken_budget 60/1000h\n\t\t}\n", "sk-a")
	startWithStorage(t, root, "\tproxycast {\n"+block+"\t}")
	bData := t.TempDir()
	b := startInstance(t, root, bData, block)

	// b alone spends the budget (each request costs a few tokens), and
	// then refuses.
	spent := 0
	for ; spent < 100 && b.call(t, "team-key-0123456789") == 200; spent++ {
	}
	if spent < 3 || spent >= 100 {
		t.Fatalf("b served %d requests of a 60-token budget", spent)
	}
	// This instance has spent nothing itself: once it has read b's usage,
	// it counts the budget spent, and refuses.
	waitFor(t, "this instance to count the other's spend", func() bool {
		v := clientsJSON(t)["team"]
		return v.Budget != nil && v.Budget.Spent >= 60
	})
	if mine := clientsJSON(t)["team"]; mine.UsageTotal.Requests != 0 {
		t.Errorf("this instance's own usage of team: %+v", mine.UsageTotal)
	}
	if status, _, body := dialectCall(t, "chat", "team-key-0123456789", "qwen3-max"); status != http.StatusTooManyRequests {
		t.Errorf("this instance served a client whose budget the other spent: %d %s", status, body)
	}

	// b's clean stop stores its usage; started again with its instance id
	// it has it back.
	b.stop(t)
	entries, err := os.ReadDir(filepath.Join(root, "proxycast", "usage"))
	if err != nil || len(entries) != 2 {
		t.Fatalf("usage files: %v %v", entries, err)
	}
	b = startInstance(t, root, bData, block)
	status, body := send(t, "GET", b.admin+"/proxycast/clients", "", nil)
	if status != 200 || !strings.Contains(body, fmt.Sprintf(`"requests": %d`, spent)) {
		t.Errorf("b after its restart: %d %s", status, body)
	}
	if status := b.call(t, "team-key-0123456789"); status != http.StatusTooManyRequests {
		t.Errorf("b after its restart served the spent client: %d", status)
	}

	// A client added through this instance's admin API is served by b once
	// b has read the stored change.
	if status, body := admin(t, "POST", "/proxycast/clients", `{"name":"late","keys":["late-key-0123456789"]}`); status != 201 {
		t.Fatalf("adding a client: %d %s", status, body)
	}
	waitFor(t, "b to serve the new client", func() bool { return b.call(t, "late-key-0123456789") == 200 })
}

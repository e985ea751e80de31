package caddymodule_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAdminClients: named clients added, changed and deleted through the
// admin API are in force at once, refused with the field named when they
// are wrong, stored with their keys as digests only, and kept across a
// restart; a config that changes a client wins over the runtime change.
func TestAdminClients(t *testing.T) {
	srv := fakeIFlow(t, "sk-a")
	root := t.TempDir()
	const (
		cfgKey = "cfgc-key-0123456789abcdef"
		dKey   = "cfgd-key-0123456789abcdef"
		bobKey = "bob-key-0123456789abcdef"
		newKey = "bob-new-key-0123456789abcdef"
	)
	cfgClient := "\t\tusage_sync 100ms\n\t\tclient cfgc {\n\t\t\tkey " + cfgKey + "\n\t\t\tmodels qwen3-*\n\t\t}\n" +
		"\t\tclient cfgd {\n\t\t\tkey " + dKey + "\n\t\t}\n"
	cfg := "\tproxycast {\n" + poolConfig(srv, cfgClient, "sk-a") + "\t}"
	startWithStorage(t, root, cfg)
	secrets := []string{cfgKey, dKey, bobKey, newKey}
	checkSecrets := func(what, body string) {
		t.Helper()
		for _, s := range secrets {
			if strings.Contains(body, s) {
				t.Errorf("%s shows a key: %s", what, body)
			}
		}
	}
	call := func(method, path, body string, want int) clientJSON {
		t.Helper()
		status, out := admin(t, method, path, body)
		checkSecrets(method+" "+path, out)
		if status != want {
			t.Fatalf("%s %s %s: %d %s, want %d", method, path, body, status, out, want)
		}
		var v clientJSON
		if status < 300 && out != "" {
			if err := json.Unmarshal([]byte(out), &v); err != nil {
				t.Fatalf("%s %s: %v %s", method, path, err, out)
			}
		}
		return v
	}
	works := func(key, model string, want int) {
		t.Helper()
		if status, _, body := dialectCall(t, "chat", key, model); status != want {
			t.Errorf("%s… asking for %s: %d, want %d: %s", key[:8], model, status, want, body)
		}
	}

	bob := call("POST", "/proxycast/clients", `{"name":"bob","keys":["`+bobKey+`"],"models":["qwen3-*"],"rate_limit":"100/m","token_budget":"100000/day","expires":"2099-01-01"}`, 201)
	if bob.Name != "bob" || bob.Source != "runtime" || bob.Keys != 1 || bob.RateLimit != "100/m" || bob.TokenBudget != "100000/day" ||
		bob.Expires == nil || bob.Budget == nil || len(bob.Models) != 1 {
		t.Errorf("bob added: %+v", bob)
	}
	works(bobKey, "qwen3-max", 200)
	works(bobKey, "glm-4.6", 403)

	// Bad bodies name the field, and store nothing.
	for _, tt := range []struct{ body, field, says string }{
		{`{"keys":["` + newKey + `"]}`, "name", "name is missing"},
		{`{"name":"b c","keys":["` + newKey + `"]}`, "name", "a name is 1 to 64"},
		{`{"name":"x","keys":[]}`, "keys", "one or more keys"},
		{`{"name":"x","keys":["short"]}`, "keys", "shorter than 16"},
		{`{"name":"x","keys":["{env.X_KEY_0123456789}"]}`, "keys", "placeholder"},
		{`{"name":"x","keys":["` + newKey + `","` + newKey + `"]}`, "keys", "same key twice"},
		{`{"name":"x","keys":["` + newKey + `"],"rate_limit":"lots"}`, "rate_limit", `rate "lots"`},
		{`{"name":"x","keys":["` + newKey + `"],"token_budget":"1/fortnight"}`, "token_budget", "fortnight"},
		{`{"name":"x","keys":["` + newKey + `"],"expires":"soon"}`, "expires", `"soon"`},
		{`{"name":"x","keys":["` + newKey + `"],"models":["[a"]}`, "models", "not a glob"},
		{`{"name":"x","keys":["` + newKey + `"],"colour":"red"}`, "colour", "unknown field"},
		{`{"name":"x","keys":"` + newKey + `"}`, "keys", "must be"},
		// The field comes from what is wrong, not from words in the name.
		{`{"name":"expires","keys":["` + newKey + `"],"models":["[a"]}`, "models", "not a glob"},
	} {
		status, out := admin(t, "POST", "/proxycast/clients", tt.body)
		checkSecrets("a refused body", out)
		var e struct{ Error, Field string }
		_ = json.Unmarshal([]byte(out), &e)
		if status != 400 || e.Field != tt.field || !strings.Contains(e.Error, tt.says) {
			t.Errorf("%s: %d %s; want 400 naming %s and saying %q", tt.body, status, out, tt.field, tt.says)
		}
	}
	// Conflicts: a name or a key another client has.
	for _, tt := range []struct{ body, field string }{
		{`{"name":"cfgc","keys":["` + newKey + `"]}`, "name"},
		{`{"name":"bob","keys":["` + newKey + `"]}`, "name"},
		{`{"name":"x","keys":["` + cfgKey + `"]}`, "keys"},
	} {
		status, out := admin(t, "POST", "/proxycast/clients", tt.body)
		checkSecrets("a conflict", out)
		if status != 409 || !strings.Contains(out, `"field": "`+tt.field+`"`) {
			t.Errorf("%s: %d %s; want 409 naming %s", tt.body, status, out, tt.field)
		}
	}
	if _, ok := clientsJSON(t)["x"]; ok {
		t.Error("a refused client was added")
	}

	// The stored change holds bob's key as its digest, and no key.
	raw, err := os.ReadFile(filepath.Join(root, "proxycast", "runtime.json"))
	sum := sha256.Sum256([]byte(bobKey))
	if err != nil || !strings.Contains(string(raw), hex.EncodeToString(sum[:])) {
		t.Fatalf("runtime.json: %v %s", err, raw)
	}
	checkSecrets("runtime.json", string(raw))

	// PATCH: models back to all, then new keys replace the old.
	call("PATCH", "/proxycast/clients/bob", `{"models":[]}`, 200)
	works(bobKey, "glm-4.6", 200)
	if v := call("PATCH", "/proxycast/clients/bob", `{"keys":["`+newKey+`"]}`, 200); v.Keys != 1 || len(v.Models) != 0 {
		t.Errorf("bob patched: %+v", v)
	}
	works(bobKey, "qwen3-max", 401)
	works(newKey, "qwen3-max", 200)
	for _, tt := range []struct {
		path, body string
		status     int
		says       string
	}{
		{"/proxycast/clients/bob", `{"name":"robert"}`, 400, "name cannot be changed"},
		{"/proxycast/clients/bob", `{"rate_limit":"0/m"}`, 400, "rate_limit"},
		{"/proxycast/clients/bob", `{"keys":["` + cfgKey + `"]}`, 409, "same key"},
		// A client of the config may not take another's key either, even
		// one listed after it.
		{"/proxycast/clients/cfgc", `{"keys":["` + dKey + `"]}`, 409, "same key"},
		{"/proxycast/clients/nobody", `{"models":[]}`, 404, `there is no client`},
	} {
		status, out := admin(t, "PATCH", tt.path, tt.body)
		checkSecrets("a refused patch", out)
		if status != tt.status || !strings.Contains(out, tt.says) {
			t.Errorf("PATCH %s %s: %d %s; want %d saying %q", tt.path, tt.body, status, out, tt.status, tt.says)
		}
	}
	works(newKey, "qwen3-max", 200)
	works(cfgKey, "qwen3-max", 200)
	works(dKey, "qwen3-max", 200)

	// A client of the config: changed, then deleted.
	if v := call("PATCH", "/proxycast/clients/cfgc", `{"rate_limit":"1/h"}`, 200); v.Source != "config" || v.RateLimit != "1/h" {
		t.Errorf("cfgc patched: %+v", v)
	}
	works(cfgKey, "qwen3-max", 200)
	works(cfgKey, "qwen3-max", 429)
	call("DELETE", "/proxycast/clients/cfgc", "", 204)
	works(cfgKey, "qwen3-max", 401)
	call("DELETE", "/proxycast/clients/cfgc", "", 404)
	call("GET", "/proxycast/clients/cfgc", "", 404)

	// A stop and a start: the runtime clients and changes come back from
	// storage, and so does bob's usage.
	before := clientsJSON(t)["bob"].UsageTotal
	if status, body := loadCaddyfile(t, storageOptions(root)+site("\trespond \"nothing here\"")); status != 200 {
		t.Fatalf("stopping: %d %s", status, body)
	}
	if status, body := reload(t, root, cfg); status != 200 {
		t.Fatalf("starting again: %d %s", status, body)
	}
	works(newKey, "glm-4.6", 200)
	works(cfgKey, "qwen3-max", 401)
	if got := clientsJSON(t)["bob"].UsageTotal; got.Requests != before.Requests+1 {
		t.Errorf("bob's usage after the start: %+v, before %+v", got, before)
	}

	// A config that changes cfgc wins over its deletion; one that gives
	// bob's key to a client of its own leaves bob out, saying why.
	changed := strings.Replace(cfgClient, "models qwen3-*", "models qwen3-* glm-*", 1) +
		"\t\tclient dup {\n\t\t\tkey " + newKey + "\n\t\t}\n"
	if status, body := reload(t, root, "\tproxycast {\n"+poolConfig(srv, changed, "sk-a")+"\t}"); status != 200 {
		t.Fatalf("reload: %d %s", status, body)
	}
	works(cfgKey, "glm-4.6", 200)
	list := clientsJSON(t)
	if b := list["bob"]; !strings.Contains(b.LeftOut, `client "dup" and client "bob" have the same key`) {
		t.Errorf("bob after the config took its key: %+v", b)
	}
	if list["dup"].Source != "config" {
		t.Errorf("dup: %+v", list["dup"])
	}
	works(newKey, "qwen3-max", 200) // as dup
	_, body := admin(t, "GET", "/proxycast/clients", "")
	checkSecrets("the list", body)

	// A config with no key of its own starts when runtime clients give it
	// some, and serves them alone.
	call("DELETE", "/proxycast/clients/bob", "", 204)
	call("POST", "/proxycast/clients", `{"name":"solo","keys":["`+bobKey+`"]}`, 201)
	keyless := strings.Replace(poolConfig(srv, "", "sk-a"), "\t\tapi_keys "+clientKey+"\n", "", 1)
	if status, body := reload(t, root, "\tproxycast {\n"+keyless+"\t}"); status != 200 {
		t.Fatalf("a config with only runtime clients: %d %s", status, body)
	}
	works(bobKey, "qwen3-max", 200)
	works(clientKey, "qwen3-max", 401)
	works(cfgKey, "qwen3-max", 401)
}

// TestAdminClientsConfigWins: a config that gives a key to one of its
// clients wins over a runtime change that gave another client the same
// key: the change is set aside, saying why, and the config loads.
func TestAdminClientsConfigWins(t *testing.T) {
	srv := fakeIFlow(t, "sk-a")
	root := t.TempDir()
	const (
		pKey   = "p-key-0123456789abcdef"
		qKey   = "q-key-0123456789abcdef"
		movedK = "moved-key-0123456789abcdef"
	)
	cfg := func(q string) string {
		return "\tproxycast {\n" + poolConfig(srv, "\t\tclient p {\n\t\t\tkey "+pKey+"\n\t\t}\n\t\tclient q {\n\t\t\tkey "+q+"\n\t\t}\n", "sk-a") + "\t}"
	}
	startWithStorage(t, root, cfg(qKey))
	if status, body := admin(t, "PATCH", "/proxycast/clients/p", `{"keys":["`+movedK+`"]}`); status != 200 {
		t.Fatalf("patching p: %d %s", status, body)
	}
	if status, _, _ := dialectCall(t, "chat", movedK, "qwen3-max"); status != 200 {
		t.Fatalf("p's new key: %d", status)
	}
	if status, body := reload(t, root, cfg(movedK)); status != 200 {
		t.Fatalf("a config giving q p's runtime key: %d %s", status, body)
	}
	list := clientsJSON(t)
	if p := list["p"]; !strings.Contains(p.RuntimeChange, `client "q" and client "p" have the same key`) {
		t.Errorf("p after the reload: %+v", p)
	}
	for key, want := range map[string]int{pKey: 200, movedK: 200, qKey: 401} {
		if status, _, body := dialectCall(t, "chat", key, "qwen3-max"); status != want {
			t.Errorf("%s…: %d, want %d: %s", key[:6], status, want, body)
		}
	}
	if got := clientsJSON(t)["q"].UsageTotal.Requests; got != 1 {
		t.Errorf("q's requests %d: the moved key is q's now", got)
	}
}

package caddymodule_test

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"

	"github.com/proxycast/caddy-proxycast/iflow/iflowtest"
)

// browserContext starts headless Chromium (Debian's chromium package;
// .ci/run installs it). Without it the test is skipped, except in CI.
func browserContext(t *testing.T, lang string) context.Context {
	t.Helper()
	var path string
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("no chromium in PATH: .ci/run installs Debian's chromium package")
		}
		t.Skip("no chromium in PATH (apt-get install chromium)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1440, 1000), chromedp.Flag("lang", lang), chromedp.Flag("accept-lang", lang))
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(func() { cancelTimeout(); cancelCtx(); cancelAlloc() })
	return ctx
}

// pageWatch records what the page's console and network say.
type pageWatch struct {
	mu       sync.Mutex
	problems []string            // console errors and exceptions
	answers  []network.RequestID // finished answers of the admin API
	urls     map[network.RequestID]string
}

func watchPage(t *testing.T, ctx context.Context) *pageWatch {
	w := &pageWatch{urls: map[network.RequestID]string{}}
	err := chromedp.Listen(ctx, func(ev any) {
		w.mu.Lock()
		defer w.mu.Unlock()
		switch ev := ev.(type) {
		case *runtime.EventExceptionThrown:
			d := ev.ExceptionDetails
			msg := d.Text
			if d.Exception != nil {
				msg += " " + d.Exception.Description
			}
			w.problems = append(w.problems, "exception: "+msg)
		case *runtime.EventConsoleAPICalled:
			if ev.Type == runtime.ConsoleAPICalledTypeError || ev.Type == runtime.ConsoleAPICalledTypeWarning {
				var args []string
				for _, a := range ev.Args {
					args = append(args, string(a.Value)+a.Description)
				}
				w.problems = append(w.problems, "console."+string(ev.Type)+": "+strings.Join(args, " "))
			}
		case *cdplog.EventEntryAdded:
			// The API's refusals the test provokes (a refused cookie) are
			// logged as failed loads; anything else is a problem.
			api := strings.Contains(ev.Entry.URL, "/proxycast/") && !strings.Contains(ev.Entry.URL, "/proxycast/ui/")
			if ev.Entry.Level == cdplog.EntryLevelError && !(ev.Entry.Source == cdplog.EntrySourceNetwork && api) {
				w.problems = append(w.problems, "log: "+ev.Entry.Text+" "+ev.Entry.URL)
			}
		case *network.EventResponseReceived:
			w.urls[ev.RequestID] = ev.Response.URL
		case *network.EventLoadingFinished:
			if strings.Contains(w.urls[ev.RequestID], "/proxycast/") {
				w.answers = append(w.answers, ev.RequestID)
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// TestManagementPage drives the page in headless Chromium through `caddy
// proxycast ui`, against a real Caddy and the fake iFlow: every action,
// an OAuth login completed through the fake's authorize page and one
// completed by a pasted callback URL, a refused cookie's message, the
// refresh that keeps what is typed, the filter, sorting, the language
// switch; and no secret anywhere in the page or in what it was sent.
func TestManagementPage(t *testing.T) {
	ctx := browserContext(t, "en-US")
	srv := fakeIFlow(t, "sk-a")
	web := srv.AddAccount("browser@example.com", "")
	good := srv.AddCookieAccount("bx-ui-cookie")
	root := t.TempDir()
	withClient := strings.Replace(adminSite(srv), "api_keys "+clientKey,
		"api_keys "+clientKey+"\n\t\tclient gina {\n\t\t\tkey gina-secret-key\n\t\t\tmodels qwen3-*\n\t\t\ttoken_budget 1000000/day\n\t\t}", 1)
	startWithStorage(t, root, withClient)
	if status, _, body := dialectCall(t, "chat", "gina-secret-key", "qwen3-max"); status != 200 {
		t.Fatalf("gina's request: %d %s", status, body)
	}
	page := startUI(t, adminAddr)
	shots := os.Getenv("PROXYCAST_SCREENSHOTS") // docs/, to update the README's
	if shots == "" {
		shots = t.TempDir()
	}
	w := watchPage(t, ctx)

	run := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		if err := chromedp.Do(sctx, actions...); err != nil {
			msg, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("message").innerText`))
			w.mu.Lock()
			defer w.mu.Unlock()
			t.Fatalf("%s: %v (message %q; console: %q)", what, err, msg, w.problems)
		}
	}
	// js evaluates expr in the page; the reads below do not wait.
	js := func(expr string) string {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
		if err != nil {
			t.Fatalf("%s: %v", expr, err)
		}
		return v
	}
	q := func(sel string) string { b, _ := json.Marshal(sel); return string(b) }
	// step runs a statement in the page, as a step.
	step := func(stmt string) chromedp.Action[chromedp.Void] {
		return func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
			_, err := chromedp.Evaluate[bool](`(() => { `+stmt+`; return true })()`)(ctx, tg)
			return chromedp.Void{}, err
		}
	}
	// setv sets a field's value as typing would end.
	setv := func(sel, v string) chromedp.Action[chromedp.Void] {
		return step(`const e = document.querySelector(` + q(sel) + `); e.value = ` + q(v) + `; e.dispatchEvent(new Event("input", {bubbles: true}))`)
	}
	text := func(sel string) string {
		t.Helper()
		return js(`(document.querySelector(` + q(sel) + `) || {}).innerText || ""`)
	}
	value := func(sel string) string {
		t.Helper()
		return js(`(document.querySelector(` + q(sel) + `) || {}).value || ""`)
	}
	rowIDs := func() string {
		t.Helper()
		return js(`[...document.querySelectorAll('section[data-provider="iflow"] tbody tr')].map((r) => r.dataset.id).join(",")`)
	}
	shot := func(name string) {
		t.Helper()
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(shots, name), png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	const iflow = `section[data-provider="iflow"] `
	form := func(kind string) string { return iflow + `form[data-kind="` + kind + `"] ` }
	rowSel := func(id string) string { return iflow + `tr[data-id="` + id + `"]` }

	// Credential a rests after a 429: the page counts its cooldown down.
	srv.SetBehavior("sk-a", iflowtest.RateLimited)
	if resp, _ := chat(t, qwenBody); resp.StatusCode != 429 {
		t.Fatalf("the rate-limited chat: %d", resp.StatusCode)
	}
	srv.SetBehavior("sk-a", iflowtest.Normal)

	for _, err := range []error{
		call(ctx, cdplog.Enable), call(ctx, runtime.Enable),
		func() error { _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); return err }(),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	run("opening the page",
		chromedp.Navigate(page),
		chromedp.WaitVisible(chromedp.CSS(rowSel("a"))),
		chromedp.WaitVisible(chromedp.CSS(rowSel("a")+` .countdown`)))
	run("the clients", chromedp.WaitVisible(chromedp.CSS(`#clients tr[data-client="gina"]`)))
	if s := text(`#clients tr[data-client="gina"]`); !strings.Contains(s, "1 key ·") || !strings.Contains(s, "qwen3-*") ||
		!strings.Contains(s, "1000000/day") || !strings.Contains(s, "qwen3-max: 1") || !strings.Contains(s, "spent, renews") {
		t.Errorf("gina's row: %q", s)
	}

	// The credential's usage by model, in its tokens' tooltip.
	if tip := js(`document.querySelector(` + q(rowSel("a")+` td:nth-child(11)`) + `).title`); !strings.Contains(tip, "qwen3-max: 1 requests, 3 tokens") {
		t.Errorf("a's tokens tooltip: %q", tip)
	}
	if s := text(rowSel("a")); !strings.Contains(s, "cooling down") || !strings.Contains(s, "rate limit") {
		t.Errorf("the cooling row says %q", s)
	}
	first := text(rowSel("a") + ` .countdown`)
	waitFor(t, "the cooldown to count down", func() bool { return text(rowSel("a")+` .countdown`) != first })

	// A client added on the page, with a key made in the browser.
	const clients = `#clients `
	clientRow := func(name string) string { return clients + `tr[data-client="` + name + `"]` }
	run("generating a key",
		chromedp.SendKeys(chromedp.CSS(clients+`input[name="name"]`), "hal"),
		chromedp.Click(chromedp.CSS(clients+`.client-form .generate`)),
		chromedp.WaitVisible(chromedp.CSS(clients+`.client-form .key-note`)))
	halKey := value(clients + `input[name="key"]`)
	if !strings.HasPrefix(halKey, "sk-pc-") || len(halKey) != 54 || js(`document.querySelector(`+q(clients+`input[name="key"]`)+`).type`) != "text" {
		t.Fatalf("the generated key: %q", halKey)
	}
	// A generated key is not sent before it is copied.
	run("adding before copying",
		chromedp.Click(chromedp.CSS(clients+`.client-form button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(clients+`.client-form .form-message.error`)))
	if m := text(clients + `.client-form .form-message`); !strings.Contains(m, "Copy the key first") {
		t.Errorf("adding an uncopied key says %q", m)
	}
	if _, ok := clientsJSON(t)["hal"]; ok {
		t.Error("an uncopied key was sent")
	}
	run("copying the key",
		chromedp.Click(chromedp.CSS(clients+`.client-form .copy`)),
		chromedp.WaitVisible(chromedp.CSS(clients+`.client-form .form-message.ok`)))
	run("a refused client",
		chromedp.SendKeys(chromedp.CSS(clients+`input[name="rate_limit"]`), "lots"),
		chromedp.Click(chromedp.CSS(clients+`.client-form button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(clients+`.client-form .form-message.error`)),
		chromedp.WaitVisible(chromedp.CSS(clients+`input[name="rate_limit"][aria-invalid="true"]`)))
	if m := text(clients + `.client-form .form-message`); !strings.HasPrefix(m, "rate_limit: ") || !strings.Contains(m, `"lots"`) {
		t.Errorf("the refused client says %q", m)
	}
	run("adding a client",
		setv(clients+`input[name="rate_limit"]`, "10/m"),
		chromedp.SendKeys(chromedp.CSS(clients+`input[name="models"]`), "glm-*"),
		chromedp.Click(chromedp.CSS(clients+`.client-form button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(clientRow("hal"))),
		chromedp.WaitVisible(chromedp.CSS(clients+`.client-form .form-message.ok`)))
	if m := text(clients + `.client-form .form-message`); !strings.Contains(m, "Client hal added") {
		t.Errorf("after adding hal: %q", m)
	}
	if value(clients+`input[name="key"]`) != "" || value(clients+`input[name="name"]`) != "" {
		t.Error("the client form keeps what was sent")
	}
	// (Until credential a's rest ends, the pool turns hal away.)
	waitFor(t, "hal's key to be served", func() bool {
		status, _, _ := dialectCall(t, "chat", halKey, "glm-4.6")
		return status == 200
	})
	if status, _, _ := dialectCall(t, "chat", halKey, "qwen3-max"); status != 403 {
		t.Errorf("hal asking for qwen3-max: %d", status)
	}
	waitFor(t, "hal's request on the page", func() bool {
		s := text(clientRow("hal"))
		return strings.Contains(s, "glm-4.6: 1") && strings.Contains(s, "10/m") && strings.Contains(s, "added at run time")
	})
	shot("ui-clients.png")
	run("editing a client",
		chromedp.Click(chromedp.CSS(clientRow("hal")+` button[data-action="edit"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#edit-client[open]`)),
		setv(`#edit-client input[name="models"]`, ""),
		chromedp.Click(chromedp.CSS(`#edit-client .save`)),
		chromedp.WaitNotVisible(chromedp.CSS(`#edit-client`)))
	waitFor(t, "hal's models on the page", func() bool { return text(clientRow("hal")+` td:nth-child(2)`) == "all" })
	if status, _, _ := dialectCall(t, "chat", halKey, "qwen3-max"); status != 200 {
		t.Errorf("hal, with every model, asking for qwen3-max: %d", status)
	}
	run("deleting a client",
		chromedp.Click(chromedp.CSS(clientRow("hal")+` button[data-action="delete"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#confirm[open]`)),
		chromedp.Click(chromedp.CSS(`#confirm button[value="ok"]`)),
		chromedp.WaitNotPresent(chromedp.CSS(clientRow("hal"))))
	if status, _, _ := dialectCall(t, "chat", halKey, "qwen3-max"); status != 401 {
		t.Errorf("hal's key after the delete: %d", status)
	}

	// An API key.
	run("adding an API key",
		chromedp.Click(chromedp.CSS(iflow+`.tab[data-kind="api_key"]`)),
		chromedp.SendKeys(chromedp.CSS(form("api_key")+`input[name="id"]`), "ui-key"),
		chromedp.SendKeys(chromedp.CSS(form("api_key")+`input[name="api_key"]`), "sk-ui-typed-secret"),
		chromedp.Click(chromedp.CSS(form("api_key")+`button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(rowSel("ui-key"))),
		chromedp.WaitVisible(chromedp.CSS(form("api_key")+`.form-message.ok`)))
	if m := text(form("api_key") + `.form-message`); !strings.Contains(m, "ui-key added") {
		t.Errorf("after adding: %q", m)
	}
	if value(form("api_key")+`input[name="api_key"]`) != "" {
		t.Error("the API key stays in its field after saving")
	}

	// Cookie import: refused first, with the platform's reason and what to
	// do; then a good one.
	run("a refused cookie",
		chromedp.Click(chromedp.CSS(iflow+`.tab[data-kind="cookie"]`)),
		chromedp.SendKeys(chromedp.CSS(form("cookie")+`input[name="id"]`), "ui-cookie"),
		chromedp.SendKeys(chromedp.CSS(form("cookie")+`textarea[name="cookies"]`), "theme=dark; BXAuth=bx-not-an-account"),
		chromedp.Click(chromedp.CSS(form("cookie")+`button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(form("cookie")+`.form-message.error`)),
		chromedp.WaitVisible(chromedp.CSS(form("cookie")+`textarea[aria-invalid="true"]`)))
	if m := text(form("cookie") + `.form-message`); !strings.HasPrefix(m, "cookies: ") || !strings.Contains(strings.ToLower(m), "cookie") {
		t.Errorf("the refused cookie says %q", m)
	}
	shot("ui-cookie.png")
	run("a good cookie",
		setv(form("cookie")+`textarea[name="cookies"]`, ""),
		chromedp.SendKeys(chromedp.CSS(form("cookie")+`textarea[name="cookies"]`), "theme=dark; BXAuth=bx-ui-cookie"),
		chromedp.Click(chromedp.CSS(form("cookie")+`button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(rowSel("ui-cookie"))),
		chromedp.WaitVisible(chromedp.CSS(form("cookie")+`.form-message.ok`)))

	// OAuth login: the page opens the authorize page in a new tab, the fake
	// logs in and comes back to Caddy's callback, the page follows.
	run("an OAuth login",
		chromedp.Click(chromedp.CSS(iflow+`.tab[data-kind="oauth"]`)),
		chromedp.SendKeys(chromedp.CSS(form("oauth")+`input[name="id"]`), "ui-web"),
		setv(form("oauth")+`input[name="port"]`, strconv.Itoa(freePort(t))),
		chromedp.Click(chromedp.CSS(form("oauth")+`button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(form("oauth")+`.login-state.good-text`)),
		chromedp.WaitVisible(chromedp.CSS(rowSel("ui-web"))))
	if m := text(form("oauth") + `.form-message`); !strings.Contains(m, "browser@example.com") || !strings.Contains(m, "ui-web") {
		t.Errorf("after the login: %q", m)
	}
	waitFor(t, "ui-web's account on the page", func() bool { return strings.Contains(text(rowSel("ui-web")), "browser@example.com") })
	shot("ui-oauth.png")

	// The same with the browser on another machine: no tab opens here,
	// the user logs in there and pastes the address it ends on.
	srv.AddAccount("far@example.com", "")
	run("a login for another machine",
		step(`window.realOpen = window.open; window.open = () => null`),
		chromedp.SendKeys(chromedp.CSS(form("oauth")+`input[name="id"]`), "ui-far"),
		setv(form("oauth")+`input[name="port"]`, strconv.Itoa(freePort(t))),
		chromedp.Click(chromedp.CSS(form("oauth")+`button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(form("oauth")+`.login-paste:not([disabled])`)))
	authorize := js(`document.querySelector(` + q(form("oauth")+`.login-link`) + `).href`)
	if m := text(form("oauth") + `.form-message`); !strings.Contains(m, "blocked") {
		t.Errorf("with the tab blocked: %q", m)
	}
	run("pasting the callback",
		chromedp.SendKeys(chromedp.CSS(form("oauth")+`input[name="callback"]`), authorizeRedirect(t, authorize)),
		chromedp.Click(chromedp.CSS(form("oauth")+`.login-paste`)),
		chromedp.WaitVisible(chromedp.CSS(rowSel("ui-far"))),
		chromedp.WaitVisible(chromedp.CSS(form("oauth")+`.login-state.good-text`)))
	waitFor(t, "ui-far's account on the page", func() bool { return strings.Contains(text(rowSel("ui-far")), "far@example.com") })

	// A login that iFlow refuses ends failed, with its reason.
	srv.SetAuthorizeError("access_denied")
	run("a refused login",
		step(`window.open = window.realOpen`),
		setv(form("oauth")+`input[name="id"]`, "ui-refused"),
		setv(form("oauth")+`input[name="port"]`, strconv.Itoa(freePort(t))),
		chromedp.Click(chromedp.CSS(form("oauth")+`button[type="submit"]`)),
		chromedp.WaitVisible(chromedp.CSS(form("oauth")+`.login-state.bad-text`)))
	if m := text(form("oauth") + `.form-message`); !strings.Contains(m, "The login failed") || !strings.Contains(m, "access_denied") {
		t.Errorf("after a refused login: %q", m)
	}
	srv.SetAuthorizeError("")

	// Disable, enable, edit, refresh now, delete.
	run("disabling",
		chromedp.Click(chromedp.CSS(rowSel("ui-key")+` button[data-action="disable"]`)),
		chromedp.WaitVisible(chromedp.CSS(rowSel("ui-key")+`[data-state="disabled"]`)))
	if m := text("#message"); m != "Credential ui-key disabled." {
		t.Errorf("after disabling: %q", m)
	}
	run("enabling",
		chromedp.Click(chromedp.CSS(rowSel("ui-key")+` button[data-action="enable"]`)),
		chromedp.WaitVisible(chromedp.CSS(rowSel("ui-key")+`[data-state="active"]`)))
	edit := func(what string, priority, proxy string) {
		t.Helper()
		actions := []chromedp.Action[chromedp.Void]{
			chromedp.Click(chromedp.CSS(rowSel("ui-key") + ` button[data-action="edit"]`)),
			chromedp.WaitVisible(chromedp.CSS(`#edit[open]`)),
			setv(`#edit input[name="priority"]`, priority),
		}
		if proxy != "" {
			actions = append(actions, setv(`#edit input[name="proxy_url"]`, proxy))
		}
		run(what, append(actions, chromedp.Click(chromedp.CSS(`#edit .save`)),
			chromedp.WaitNotVisible(chromedp.CSS(`#edit`)))...)
		waitFor(t, "the priority on the page", func() bool {
			return text(rowSel("ui-key")+` td:nth-child(4)`) == priority
		})
	}
	edit("editing priority and proxy", "3", "http://user:pw-ui-secret@127.0.0.1:3128")
	if v := credentialJSON(t, "iflow", "ui-key"); v["priority"] != 3.0 || v["proxy_url"] != "http://user:xxxxx@127.0.0.1:3128" {
		t.Errorf("after the edit: %v", v)
	}
	// The masked proxy_url the page shows is not sent back.
	edit("editing the priority alone", "4", "")
	stored, err := os.ReadFile(filepath.Join(root, "proxycast", "runtime.json"))
	if err != nil || !strings.Contains(string(stored), "pw-ui-secret") {
		t.Errorf("the proxy's password after a second edit: %v %s", err, stored)
	}
	run("refreshing a cookie credential",
		chromedp.Click(chromedp.CSS(rowSel("ui-cookie")+` button[data-action="refresh"]`)))
	waitFor(t, "the refresh's message", func() bool { return text("#message") == "Credential ui-cookie renewed." })
	run("deleting, confirmed",
		chromedp.Click(chromedp.CSS(rowSel("ui-key")+` button[data-action="delete"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#confirm[open]`)),
		chromedp.Click(chromedp.CSS(`#confirm button[value="ok"]`)),
		chromedp.WaitNotPresent(chromedp.CSS(rowSel("ui-key"))))
	if _, ok := list(t)["ui-key"]; ok {
		t.Error("deleted on the page, and still in the admin API")
	}
	run("deleting, canceled",
		chromedp.Click(chromedp.CSS(rowSel("ui-far")+` button[data-action="delete"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#confirm[open]`)),
		chromedp.Click(chromedp.CSS(`#confirm button[value="cancel"]`)),
		chromedp.WaitNotVisible(chromedp.CSS(`#confirm`)))
	if _, ok := list(t)["ui-far"]; !ok {
		t.Error("a canceled delete deleted")
	}

	// What is being typed survives the page's refresh.
	before := text("#updated")
	run("typing", chromedp.Click(chromedp.CSS(iflow+`.tab[data-kind="api_key"]`)),
		chromedp.SendKeys(chromedp.CSS(form("api_key")+`input[name="id"]`), "half-typed"))
	waitFor(t, "a refresh", func() bool { return text("#updated") != before })
	if typed := value(form("api_key") + `input[name="id"]`); typed != "half-typed" {
		t.Errorf("after a refresh the field holds %q", typed)
	}

	// Filter and sort.
	run("filtering", chromedp.SendKeys(chromedp.CSS(`#filter`), "far"))
	waitFor(t, "the filter", func() bool { return rowIDs() == "ui-far" })
	run("clearing the filter", setv(`#filter`, ""),
		chromedp.SendKeys(chromedp.CSS(`#filter`), " "),
		chromedp.Click(chromedp.CSS(iflow+`th[data-sort="id"]`)))
	waitFor(t, "descending ids", func() bool { return rowIDs() == "ui-web,ui-far,ui-cookie,a" })
	run("sorting back", chromedp.Click(chromedp.CSS(iflow+`th[data-sort="id"]`)))
	shot("ui-main.png")

	// Chinese, as the product page.
	run("switching to Chinese", chromedp.Click(chromedp.CSS(`#lang`)),
		chromedp.WaitVisible(chromedp.CSS(iflow+`.tab[data-kind="cookie"]`)))
	waitFor(t, "the Chinese words", func() bool {
		return text(`h1 [data-t="title"]`) == "提供商" && text(iflow+`.tab[data-kind="cookie"]`) == "Cookie 导入" &&
			text(iflow+`.tab[data-kind="oauth"]`) == "OAuth 登录" && strings.Contains(text(rowSel("ui-web")), "可用")
	})
	shot("ui-main-zh.png")

	// No secret anywhere: the page, and every answer it was sent.
	secrets := []string{"sk-a", "gina-secret-key", halKey, "sk-ui-typed-secret", "bx-ui-cookie", "bx-not-an-account", "pw-ui-secret", web.APIKey(), good.APIKey()}
	html := js(`document.documentElement.outerHTML`)
	w.mu.Lock()
	answers := append([]network.RequestID(nil), w.answers...)
	problems := append([]string(nil), w.problems...)
	w.mu.Unlock()
	bodies := []string{html}
	for _, id := range answers {
		if res, err := chromedp.Call(ctx, network.GetResponseBody, network.GetResponseBodyParams{RequestID: id}); err == nil {
			bodies = append(bodies, string(res.Body))
		}
	}
	if len(bodies) < 10 {
		t.Errorf("only %d answers read", len(bodies))
	}
	for _, b := range bodies {
		for _, s := range secrets {
			if s != "" && strings.Contains(b, s) {
				t.Errorf("secret %q in %.300s", s, b)
			}
		}
	}
	if len(problems) > 0 {
		t.Errorf("console: %q", problems)
	}
}

func call(ctx context.Context, cmd cdp.Command[cdp.Empty, cdp.Empty]) error {
	_, err := chromedp.Call(ctx, cmd, cdp.Empty{})
	return err
}

// TestManagementPageChinese: a browser that prefers Chinese gets the
// product page's words without touching the switch.
func TestManagementPageChinese(t *testing.T) {
	ctx := browserContext(t, "zh-CN")
	srv := fakeIFlow(t, "sk-a")
	startWithStorage(t, t.TempDir(), adminSite(srv))
	page := startUI(t, adminAddr)
	if err := chromedp.Do(ctx, chromedp.Navigate(page),
		chromedp.WaitVisible(chromedp.CSS(`section[data-provider="iflow"] tr[data-id="a"]`))); err != nil {
		t.Fatal(err)
	}
	got, err := chromedp.Run(ctx, chromedp.Evaluate[string](`[document.documentElement.lang,
		document.querySelector('h1 [data-t="title"]').innerText,
		document.querySelector('.tab[data-kind="oauth"]').innerText,
		document.querySelector('.tab[data-kind="cookie"]').innerText,
		document.querySelector('tr[data-id="a"] .badge').innerText,
		document.getElementById('lang').innerText].join("|")`))
	if err != nil || got != "zh-CN|提供商|OAuth 登录|Cookie 导入|可用|English" {
		t.Errorf("a Chinese browser sees %q (%v)", got, err)
	}
}

// TestScreenshotsCommitted: the README shows the test's screenshots.
func TestScreenshotsCommitted(t *testing.T) {
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"ui-main.png", "ui-cookie.png", "ui-oauth.png"} {
		raw, err := os.ReadFile(filepath.Join("..", "docs", name))
		if err != nil || !strings.HasPrefix(string(raw), "\x89PNG") {
			t.Errorf("docs/%s: %v", name, err)
		}
		if !strings.Contains(string(readme), "docs/"+name) {
			t.Errorf("the README does not show docs/%s", name)
		}
	}
}

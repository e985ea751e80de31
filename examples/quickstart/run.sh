#!/usr/bin/env bash
# Builds Caddy with proxycast (xcaddy), starts the project's stand-ins for
# iFlow on 127.0.0.1:9777, for an OpenAI-compatible API on 127.0.0.1:9778
# and for Anthropic's API on 127.0.0.1:9779, serves
# examples/quickstart/Caddyfile on 127.0.0.1:8999 (admin API on
# localhost:2019) and sends plain and streamed requests through it, in
# OpenAI's chat API, Anthropic's Messages API (Claude Code) and OpenAI's
# Responses API (Codex). The stand-in has a demo account for
# each way of adding one: a browser login (its login page logs
# demo@example.com in at once; the callback is localhost:11451) and a
# cookie (BXAuth=demo-cookie). Offline: no iFlow account and no network
# besides the Go module proxy for the first build. Caddy keeps its config
# and data in a temporary directory, not in yours.
#
#   examples/quickstart/run.sh          # then keeps serving until Ctrl-C
#   examples/quickstart/run.sh --check  # also logs in and imports the cookie
#                                       # itself, then exits
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
check=false
[ "${1:-}" = "--check" ] && check=true

caddy_version=v2.11.9
xcaddy_version=v0.4.5
client_key=demo-key
fake=127.0.0.1:9777
fake_openai=127.0.0.1:9778
fake_anthropic=127.0.0.1:9779
admin=localhost:2019
login_port=11451
ui_listen=127.0.0.1:2020
demo_cookie="BXAuth=demo-cookie"
work=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

# Every curl here talks to loopback: a proxy from the environment must
# not get these requests.
lcurl() { curl --noproxy '*' "$@"; }

# listening reports whether something accepts connections on host:port.
listening() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

# The ports, and who needs them. A taken port would otherwise show up
# later as a confusing failure (or, for 9777, as Caddy talking to another
# program).
taken=()
listening 127.0.0.1 8999 && taken+=("8999 on 127.0.0.1 (Caddy serves the API there)")
listening 127.0.0.1 9777 && taken+=("9777 on 127.0.0.1 (the stand-in for iFlow)")
listening 127.0.0.1 9778 && taken+=("9778 on 127.0.0.1 (the stand-in for an OpenAI-compatible API)")
listening 127.0.0.1 9779 && taken+=("9779 on 127.0.0.1 (the stand-in for Anthropic's API)")
listening 127.0.0.1 2019 && taken+=("2019 on 127.0.0.1 (Caddy's admin API; is another Caddy running?)")
login_taken=""
for host in 127.0.0.1 ::1; do
	if [ -z "$login_taken" ] && listening "$host" "$login_port"; then
		login_taken="$login_port on $host (the callback of the browser login)"
	fi
done
if $check && [ -n "$login_taken" ]; then
	taken+=("$login_taken")
fi
if $check && listening 127.0.0.1 2020; then
	taken+=("2020 on 127.0.0.1 (caddy proxycast ui, the management page)")
fi
if ((${#taken[@]})); then
	echo "error: the quickstart needs these ports, and something holds them:" >&2
	for t in "${taken[@]}"; do echo "  port $t" >&2; done
	echo "Stop what holds them (ss -ltnp or lsof -i :<port> shows it) and run this again." >&2
	exit 1
fi

if [ ! -x ./caddy ] || [ -n "$(find . -name '*.go' -newer ./caddy -print -quit)" ] || [ go.mod -nt ./caddy ]; then
	echo "==> building Caddy $caddy_version with proxycast (xcaddy; about 90 s the first time)"
	go run "github.com/caddyserver/xcaddy/cmd/xcaddy@$xcaddy_version" build "$caddy_version" \
		--with "github.com/proxycast/caddy-proxycast@v0.0.0=." --output ./caddy
fi
modules=$(./caddy list-modules)
if ! grep -qx 'http.handlers.proxycast' <<<"$modules"; then
	echo "error: ./caddy was built without the proxycast module" >&2
	exit 1
fi

# standin builds and starts one of the project's stand-ins (name: its
# command under ./<pkg>/cmd/) on addr, and waits until it answers (any
# answer will do: both answer 404 at /).
standin() {
	local what=$1 pkg=$2 addr=$3 name pid up=false
	shift 3
	name=$(basename "$pkg")
	echo "==> starting the stand-in for $what on $addr"
	go build -o "$work/$name" "./$pkg"
	"$work/$name" -listen "$addr" "$@" 2>"$work/$name.log" &
	pid=$!
	pids+=("$pid")
	for _ in $(seq 1 100); do
		if lcurl -s -o /dev/null "http://$addr/"; then
			up=true
			break
		fi
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if ! $up; then
		echo "error: the stand-in for $what did not come up on $addr (the port must be free); its log:" >&2
		cat "$work/$name.log" >&2
		exit 1
	fi
}

standin iFlow iflow/iflowtest/cmd/fakeiflow "$fake" -api-key sk-demo-account \
	-oauth-email demo@example.com -cookie "${demo_cookie#BXAuth=}"
standin "an OpenAI-compatible API" openai/openaitest/cmd/fakeopenai "$fake_openai" \
	-key sk-demo-openai -model demo-chat,demo-reasoner
standin "Anthropic's API" anthropic/anthropictest/cmd/fakeanthropic "$fake_anthropic" \
	-key sk-demo-anthropic -model claude-demo-sonnet,claude-demo-haiku

echo "==> starting Caddy on 127.0.0.1:8999 (admin API on $admin)"
export PROXYCAST_API_KEY=$client_key IFLOW_KEY=sk-demo-account OPENAI_COMPAT_KEY=sk-demo-openai \
	ANTHROPIC_COMPAT_KEY=sk-demo-anthropic
# The CLI commands below use the same data directory as Caddy.
export XDG_CONFIG_HOME=$work/config XDG_DATA_HOME=$work/data
./caddy run --config examples/quickstart/Caddyfile --adapter caddyfile >"$work/caddy.log" 2>&1 &
caddy_pid=$!
pids+=("$caddy_pid")

up=false
for _ in $(seq 1 100); do
	if lcurl -fsS -o /dev/null http://127.0.0.1:8999/v1/models -H "Authorization: Bearer $client_key" 2>/dev/null; then
		up=true
		break
	fi
	kill -0 "$caddy_pid" 2>/dev/null || break
	sleep 0.1
done
if ! $up; then
	echo "error: Caddy did not come up on 127.0.0.1:8999 (ports 8999 and 2019 must be free); its log:" >&2
	cat "$work/caddy.log" >&2
	exit 1
fi

set -x
curl -sS http://127.0.0.1:8999/v1/chat/completions \
	-H "Authorization: Bearer $client_key" \
	-H "Content-Type: application/json" \
	-d '{"model": "iflow-qwen3-max", "messages": [{"role": "user", "content": "Hello!"}]}' | tee "$work/plain.json"
echo
curl -sSN http://127.0.0.1:8999/v1/chat/completions \
	-H "Authorization: Bearer $client_key" \
	-H "Content-Type: application/json" \
	-d '{"model": "glm-4.6", "stream": true, "messages": [{"role": "user", "content": "Stream me"}]}' | tee "$work/stream.txt"
curl -sS http://127.0.0.1:8999/v1/chat/completions \
	-H "Authorization: Bearer $client_key" \
	-H "Content-Type: application/json" \
	-d '{"model": "demo-chat", "messages": [{"role": "user", "content": "Hello, OpenAI-compatible!"}]}' | tee "$work/openai.json"
echo
curl -sS http://127.0.0.1:8999/v1/messages \
	-H "x-api-key: $client_key" \
	-H "anthropic-version: 2023-06-01" \
	-H "Content-Type: application/json" \
	-d '{"model": "claude-sonnet-4-5", "max_tokens": 256, "messages": [{"role": "user", "content": "Hello, Claude Code!"}]}' | tee "$work/messages.json"
echo
curl -sSN http://127.0.0.1:8999/v1/messages \
	-H "x-api-key: $client_key" \
	-H "anthropic-version: 2023-06-01" \
	-H "Content-Type: application/json" \
	-d '{"model": "claude-demo-sonnet", "max_tokens": 256, "stream": true, "messages": [{"role": "user", "content": "Hello, Anthropic!"}]}' | tee "$work/anthropic.txt"
curl -sS http://127.0.0.1:8999/v1/responses \
	-H "Authorization: Bearer $client_key" \
	-H "Content-Type: application/json" \
	-d '{"model": "glm-4.6", "instructions": "Be brief.", "input": "Hello, Codex!", "store": false}' | tee "$work/responses.json"
echo
curl -sSN http://127.0.0.1:8999/v1/responses \
	-H "Authorization: Bearer $client_key" \
	-H "Content-Type: application/json" \
	-d '{"model": "demo-chat", "input": [{"role": "user", "content": [{"type": "input_text", "text": "Stream me, Codex!"}]}], "stream": true, "store": false}' | tee "$work/responses.txt"
set +x

fail() {
	echo "error: $*; Caddy's log:" >&2
	cat "$work/caddy.log" >&2
	exit 1
}

if ! grep -q '"echo: Hello!"' "$work/plain.json" || ! grep -q '^data: \[DONE\]' "$work/stream.txt" ||
	! grep -q 'echo: Hello, OpenAI-compatible!' "$work/openai.json" ||
	! grep -q '"type":"message"' "$work/messages.json" || ! grep -q 'echo: Hello, Claude Code!' "$work/messages.json" ||
	! grep -q '^event: message_stop' "$work/anthropic.txt" ||
	! grep -q '"object":"response"' "$work/responses.json" || ! grep -q 'echo: Hello, Codex!' "$work/responses.json" ||
	! grep -q '^event: response.completed' "$work/responses.txt" || ! grep -q 'echo: Stream me, Codex!' "$work/responses.txt"; then
	fail "the demo requests did not get the expected answers"
fi
echo "==> quickstart works"

token_file=iflow/demo-file.json
if ! $check; then
	login_hint=""
	if [ -n "$login_taken" ]; then
		login_hint="
  Port $login_taken is taken: add --port <a free port> to the login."
	fi
	cat <<MSG

Caddy with proxycast is serving http://127.0.0.1:8999 (client key: $client_key).
Try:  curl http://127.0.0.1:8999/v1/models -H 'Authorization: Bearer $client_key'

Add the stand-in's demo accounts as you would add real ones, from
$root in another terminal:

  Log in with the browser (the stand-in logs demo@example.com in at once):
    ./caddy proxycast login iflow --admin $admin --id demo-oauth
  (with --no-browser it prints the URL: open it in a browser, or curl -L it)$login_hint

  Import a cookie: paste $demo_cookie when asked:
    ./caddy proxycast import-cookie --admin $admin --id demo-cookie

  Or in the browser, on the management page (OAuth 登录, Cookie 导入):
    ./caddy proxycast ui --admin $admin --listen $ui_listen
  then open http://$ui_listen/

  Or log in without the admin API, writing a token file into Caddy's
  storage, and hand that file to Caddy:
    XDG_DATA_HOME=$XDG_DATA_HOME ./caddy proxycast login iflow --oauth-base http://$fake --token-file $token_file
    curl -X POST $admin/proxycast/credentials/iflow -H 'Content-Type: application/json' \\
      -d '{"id": "demo-file", "auth_type": "oauth", "token_file": "$token_file"}'

Each answer names the account that served it in its X-Proxycast-Credential
header (curl -i shows it); requests take the accounts in turn.
Caddy's log is in $work/caddy.log. Ctrl-C stops everything.
MSG
	wait
	exit 0
fi

# --check: the flows as a newcomer goes through them, without a person:
# logins with --no-browser, their URL opened with curl; the cookie pasted
# on standard input. Every wait is bounded.

# bounded runs a command for at most $1 seconds.
bounded() {
	local secs=$1
	shift
	if command -v timeout >/dev/null; then
		timeout "$secs" "$@"
	else
		"$@"
	fi
}

# browser_login runs a login command given with --no-browser, plays the
# browser on the URL it prints and waits for the command to finish.
logins=0
browser_login() {
	logins=$((logins + 1))
	local out=$work/login-$logins.out pid url=""
	echo "==> browser login: $*"
	"$@" >"$out" 2>&1 &
	pid=$!
	pids+=("$pid")
	for _ in $(seq 1 200); do
		url=$(grep -o 'http://[^[:space:]]*/oauth?[^[:space:]]*' "$out" || true)
		[ -n "$url" ] && break
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if [ -z "$url" ]; then
		cat "$out" >&2
		fail "the login printed no URL"
	fi
	# The stand-in's login page sends the browser straight back to the
	# callback on localhost:11451, which answers the "Logged in" page.
	if ! lcurl -fsS -L --max-time 30 -o "$work/callback.html" "$url" || ! grep -q 'Logged in' "$work/callback.html"; then
		cat "$out" "$work/callback.html" >&2 2>/dev/null || true
		fail "the login's callback did not answer \"Logged in\""
	fi
	for _ in $(seq 1 200); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null || ! wait "$pid"; then
		cat "$out" >&2
		fail "the login command did not finish well"
	fi
	grep -m1 '^Logged in' "$out"
}

browser_login ./caddy proxycast login iflow --admin "$admin" --id demo-oauth --no-browser --timeout 60s

echo "==> cookie import: ./caddy proxycast import-cookie --admin $admin --id demo-cookie (cookie on standard input)"
if ! printf '%s\n' "$demo_cookie" | bounded 60 ./caddy proxycast import-cookie --admin "$admin" --id demo-cookie >"$work/cookie.out" 2>&1; then
	cat "$work/cookie.out" >&2
	fail "the cookie import failed"
fi
tail -1 "$work/cookie.out"

browser_login ./caddy proxycast login iflow --oauth-base "http://$fake" --token-file "$token_file" --no-browser --timeout 60s
echo "==> handing $token_file to Caddy as demo-file"
if ! lcurl -fsS --max-time 30 -o "$work/add.json" -X POST "http://$admin/proxycast/credentials/iflow" \
	-H 'Content-Type: application/json' \
	-d "{\"id\": \"demo-file\", \"auth_type\": \"oauth\", \"token_file\": \"$token_file\"}"; then
	fail "the admin API did not add demo-file"
fi

# Requests take the credentials in turn: a few requests reach each one.
want="demo-oauth demo-cookie demo-file"
seen=" "
for _ in $(seq 1 16); do
	status=$(lcurl -sS --max-time 30 -o "$work/chat.json" -D "$work/chat.headers" -w '%{http_code}' \
		http://127.0.0.1:8999/v1/chat/completions \
		-H "Authorization: Bearer $client_key" \
		-H "Content-Type: application/json" \
		-d '{"model": "iflow-qwen3-max", "messages": [{"role": "user", "content": "Hello, new account!"}]}')
	cred=$(tr -d '\r' <"$work/chat.headers" | awk -F': ' 'tolower($1) == "x-proxycast-credential" { print $2 }')
	if [ "$status" != 200 ] || ! grep -q '"echo: Hello, new account!"' "$work/chat.json"; then
		cat "$work/chat.json" >&2
		fail "a chat request got HTTP $status (credential ${cred:-none})"
	fi
	case "$seen" in *" $cred "*) ;; *) seen="$seen$cred " ;; esac
	missing=""
	for c in $want; do
		case "$seen" in *" $c "*) ;; *) missing="$missing $c" ;; esac
	done
	[ -z "$missing" ] && break
done
if [ -n "$missing" ]; then
	fail "no chat request was served by$missing (served by:$seen)"
fi
for c in $want; do echo "==> $c served a chat request"; done

echo "==> the management page: ./caddy proxycast ui --admin $admin --listen $ui_listen"
./caddy proxycast ui --admin "$admin" --listen "$ui_listen" >"$work/ui.out" 2>&1 &
pids+=($!)
for _ in $(seq 1 50); do
	listening 127.0.0.1 2020 && break
	sleep 0.2
done
# As a browser asks: a navigation to the page, then a same-origin fetch.
if ! lcurl -fsS --max-time 10 -o "$work/ui.html" -H 'Sec-Fetch-Site: none' -H 'Sec-Fetch-Mode: navigate' "http://$ui_listen/proxycast/ui/" ||
	! grep -q 'app.js' "$work/ui.html" ||
	! lcurl -fsS --max-time 10 -o "$work/ui.json" -H 'Sec-Fetch-Site: same-origin' "http://$ui_listen/proxycast/credentials" ||
	! grep -q '"demo-cookie"' "$work/ui.json"; then
	cat "$work/ui.out" >&2
	fail "the management page did not answer through caddy proxycast ui"
fi
echo "==> the page and its credentials came through http://$ui_listen/"
echo "==> quickstart check passed"

#!/usr/bin/env bash
# Builds Caddy with proxycast (xcaddy), starts the project's stand-in for
# iFlow on 127.0.0.1:9777, serves examples/quickstart/Caddyfile on
# 127.0.0.1:8999 (admin API on localhost:2019) and sends a plain and a
# streamed chat request through it. Offline: no iFlow account and no
# network besides the Go module proxy for the first build. Caddy keeps its
# config and data in a temporary directory, not in yours.
#
#   examples/quickstart/run.sh          # then keeps serving until Ctrl-C
#   examples/quickstart/run.sh --check  # exits after the demo requests
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
check=false
[ "${1:-}" = "--check" ] && check=true

caddy_version=v2.11.9
xcaddy_version=v0.4.5
work=$(mktemp -d)
pids=()
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	wait 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT

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

echo "==> starting the stand-in for iFlow on 127.0.0.1:9777"
go build -o "$work/fakeiflow" ./iflow/iflowtest/cmd/fakeiflow
"$work/fakeiflow" -listen 127.0.0.1:9777 -api-key sk-demo-account &
pids+=($!)

echo "==> starting Caddy on 127.0.0.1:8999"
export PROXYCAST_API_KEY=demo-key IFLOW_KEY=sk-demo-account
XDG_CONFIG_HOME=$work/config XDG_DATA_HOME=$work/data \
	./caddy run --config examples/quickstart/Caddyfile --adapter caddyfile >"$work/caddy.log" 2>&1 &
caddy_pid=$!
pids+=("$caddy_pid")

up=false
for _ in $(seq 1 100); do
	if curl -fsS -o /dev/null http://127.0.0.1:8999/v1/models -H "Authorization: Bearer $PROXYCAST_API_KEY" 2>/dev/null; then
		up=true
		break
	fi
	kill -0 "$caddy_pid" 2>/dev/null || break
	sleep 0.1
done
if ! $up; then
	echo "error: Caddy did not come up on 127.0.0.1:8999 (ports 8999, 2019 and 9777 must be free); its log:" >&2
	cat "$work/caddy.log" >&2
	exit 1
fi

set -x
curl -sS http://127.0.0.1:8999/v1/chat/completions \
	-H "Authorization: Bearer $PROXYCAST_API_KEY" \
	-H "Content-Type: application/json" \
	-d '{"model": "iflow-qwen3-max", "messages": [{"role": "user", "content": "Hello!"}]}' | tee "$work/plain.json"
echo
curl -sSN http://127.0.0.1:8999/v1/chat/completions \
	-H "Authorization: Bearer $PROXYCAST_API_KEY" \
	-H "Content-Type: application/json" \
	-d '{"model": "glm-4.6", "stream": true, "messages": [{"role": "user", "content": "Stream me"}]}' | tee "$work/stream.txt"
set +x

if ! grep -q '"echo: Hello!"' "$work/plain.json" || ! grep -q '^data: \[DONE\]' "$work/stream.txt"; then
	echo "error: the demo requests did not get the expected answers; Caddy's log:" >&2
	cat "$work/caddy.log" >&2
	exit 1
fi
echo "==> quickstart works"
if $check; then
	exit 0
fi
cat <<MSG

Caddy with proxycast is serving http://127.0.0.1:8999 (client key: demo-key).
Try:  curl http://127.0.0.1:8999/v1/models -H 'Authorization: Bearer demo-key'
Caddy's log is in $work/caddy.log. Ctrl-C stops everything.
MSG
wait

#!/usr/bin/env bash
# Benchmark proxycast (an iflow provider and an openai-type provider)
# against Caddy's plain reverse_proxy, all in front of the same stub
# upstream, in the same Caddy process and the same run, and proxycast's
# Anthropic Messages and OpenAI Responses fronts against its chat front on
# the openai target.
# Loopback only; stops by itself.
#
#   bench/run.sh                        # from anywhere; see bench/README.md
#
# Environment:
#   BENCH_DURATION  length of each measured run (default 10s)
#   BENCH_CONNS     connections of the throughput scenario (default 64)
#   BENCH_CONNS2    connections of the throughput256 scenario (default 256)
#   BENCH_HOLD      held streams: how many at once (default "500 1000 2000";
#                   empty skips them); BENCH_HOLD_DELAY between chunks
#   BENCH_ROUNDS    repeat every scenario this many times (default 1)
#   BENCH_WARMUP    warm-up per target (default 3s)
#   BENCH_CHUNKS    SSE chunks per streamed reply of the stream scenario
#                   (default 16)
#   BENCH_EVENTS    SSE chunks per streamed reply of the stream64 and
#                   messages64 scenarios (default 64; the names stay)
#   BENCH_CHUNK_DELAY  pause between the stub's SSE chunks (default 0, such
#                   as 2ms to look like token-by-token generation)
#   BENCH_PROFILE   1: afterwards, capture 10 s CPU profiles of Caddy under
#                   throughput and under stream load (BENCH_CONNS
#                   connections) on each target, and under stream64 and
#                   messages64 load on proxycast-openai, into bench/out/
#   BENCH_TARGETS   the targets to measure (default the first three:
#                   "proxycast-iflow proxycast-openai reverse_proxy"; also
#                   proxycast-client1 and proxycast-clients1000)
#   BENCH_REBUILD   1: rebuild bench/out/caddy even if it looks current
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT=$ROOT/bench/out
cd "$ROOT"
mkdir -p "$OUT"

secs() { # "10s" or "10" -> seconds, for timeouts
	local d=${1%s}
	[[ $d =~ ^[0-9]+$ ]] || { echo "run.sh: durations must be whole seconds, such as 10s (got $1)" >&2; exit 2; }
	echo "$d"
}
DURATION=${BENCH_DURATION:-10s}; DURATION="$(secs "$DURATION")s"
WARMUP=${BENCH_WARMUP:-3s}; WARMUP="$(secs "$WARMUP")s"
CONNS=${BENCH_CONNS:-64}
CONNS2=${BENCH_CONNS2:-256}
ROUNDS=${BENCH_ROUNDS:-1}
CHUNKS=${BENCH_CHUNKS:-16}
# The stream of the front scenarios (stream64, messages64): the stub sends
# as many chunks as the body's max_tokens asks for.
EVENTS=${BENCH_EVENTS:-64}
[[ $EVENTS =~ ^[0-9]+$ ]] && (( EVENTS >= 3 && EVENTS <= 4096 )) ||
	{ echo "run.sh: BENCH_EVENTS must be a number from 3 to 4096 (got $EVENTS)" >&2; exit 2; }
# Held streams: how many at once (a list; empty skips the scenario) and
# the pause between their chunks.
HOLD=${BENCH_HOLD-500 1000 2000}
HOLD_DELAY=${BENCH_HOLD_DELAY:-250ms}
# Thousands of open streams need thousands of descriptors per process.
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

UP_ADDR=127.0.0.1:9800
ADMIN=http://127.0.0.1:9803
# The targets, all in the one Caddy of bench/Caddyfile.
ALL_TARGETS=(proxycast-iflow proxycast-openai reverse_proxy proxycast-client1 proxycast-clients1000)
DEFAULT_TARGETS=(proxycast-iflow proxycast-openai reverse_proxy)
read -r -a TARGETS <<<"${BENCH_TARGETS:-${DEFAULT_TARGETS[*]}}"
for t in "${TARGETS[@]}"; do
	[[ " ${ALL_TARGETS[*]} " == *" $t "* ]] || { echo "run.sh: unknown target $t (known: ${ALL_TARGETS[*]})" >&2; exit 2; }
done
(( ${#TARGETS[@]} > 0 )) || { echo "run.sh: BENCH_TARGETS is empty" >&2; exit 2; }
# url_of / hdr_of: a target's URL, and its client key (reverse_proxy gets
# none: it would just forward it).
url_of() {
	case $1 in
	proxycast-iflow) echo http://127.0.0.1:9801/v1/chat/completions ;;
	proxycast-openai) echo http://127.0.0.1:9804/v1/chat/completions ;;
	reverse_proxy) echo http://127.0.0.1:9802/v1/chat/completions ;;
	proxycast-client1) echo http://127.0.0.1:9805/v1/chat/completions ;;
	proxycast-clients1000) echo http://127.0.0.1:9806/v1/chat/completions ;;
	esac
}
HDR=()
hdr_of() { HDR=(); [[ $1 == reverse_proxy ]] || HDR=(-header "$AUTH"); }
BODY='{"model":"qwen3-max","messages":[{"role":"user","content":"hello"}]}'
STREAM_BODY='{"model":"qwen3-max","messages":[{"role":"user","content":"hello"}],"stream":true}'
AUTH='Authorization: Bearer bench-key'
# The front scenarios: the same request through proxycast-openai's chat
# front and its Messages front (where the Caddyfile routes claude-* to the
# openai instance as qwen3-max), each with max_tokens EVENTS, which the
# translation keeps and which sizes the stub's stream. An Anthropic client
# sends its key as x-api-key, with anthropic-version.
FRONT_TARGET=proxycast-openai
MESSAGES_URL=http://127.0.0.1:9804/v1/messages
STREAM64_BODY='{"model":"qwen3-max","max_tokens":'$EVENTS',"messages":[{"role":"user","content":"hello"}],"stream":true}'
MESSAGES64_BODY='{"model":"claude-sonnet-4-5","max_tokens":'$EVENTS',"messages":[{"role":"user","content":"hello"}],"stream":true}'
MSG_HDR=(-header 'x-api-key: bench-key' -header 'anthropic-version: 2023-06-01')
# A Messages stream carries the text of the stub's chunks but the first
# (role, empty content) and the last (finish_reason, empty delta).
MESSAGES_DELTAS=$((EVENTS - 2))
# The Responses front (what Codex speaks), translated for the same
# upstream: max_output_tokens becomes max_tokens; its text comes in as
# many response.output_text.delta events as the Messages front's deltas.
RESPONSES_URL=http://127.0.0.1:9804/v1/responses
RESPONSES64_BODY='{"model":"qwen3-max","max_output_tokens":'$EVENTS',"input":"hello","stream":true,"store":false}'

log() { printf '[bench %s] %s\n' "$(date +%T)" "$*" >&2; }

# ---- build ---------------------------------------------------------------
caddy_stale() {
	[[ ${BENCH_REBUILD:-0} == 1 || ! -x $OUT/caddy ]] && return 0
	[[ -n $(find "$ROOT" -path "$ROOT/bench" -prune -o -path "$ROOT/.git" -prune -o \
		\( \( -name '*.go' ! -name '*_test.go' \) -o -name go.mod -o -name go.sum \) \
		-newer "$OUT/caddy" -print -quit) ]]
}
if caddy_stale; then
	log "building Caddy v2.11.9 with the plugin (xcaddy; ~90 s cold, ~20 s warm)"
	go run github.com/caddyserver/xcaddy/cmd/xcaddy@v0.4.5 build v2.11.9 \
		--with github.com/proxycast/caddy-proxycast@v0.0.0=. --output "$OUT/caddy.new" >"$OUT/xcaddy.log" 2>&1 ||
		{ tail -30 "$OUT/xcaddy.log" >&2; log "FAILED: xcaddy build (log: $OUT/xcaddy.log)"; exit 1; }
	mv "$OUT/caddy.new" "$OUT/caddy"
	# What it was built from: others may be editing the tree.
	if git -C "$ROOT" rev-parse --git-dir >/dev/null 2>&1; then
		{ git -C "$ROOT" rev-parse --short HEAD
			git -C "$ROOT" status --porcelain -- . ':!bench' | wc -l; } 2>/dev/null | paste -sd' ' |
			awk '{print $1 ($2 > 0 ? " + " $2 " changed files outside bench/" : "")}' >"$OUT/caddy.source" || true
	fi
fi
# Not `caddy list-modules | grep -q`: under pipefail, grep -q exiting early
# can kill caddy with SIGPIPE and fail the check at random.
modules=$("$OUT/caddy" list-modules) || { log "FAILED: $OUT/caddy list-modules"; exit 1; }
if ! grep -qx 'http.handlers.proxycast' <<<"$modules"; then
	log "FAILED: $OUT/caddy has no http.handlers.proxycast module (built without the plugin?)"
	exit 1
fi
SOURCE=$(cat "$OUT/caddy.source" 2>/dev/null) || SOURCE=
log "caddy: $OUT/caddy${SOURCE:+ (plugin at $SOURCE)}"
log "building the upstream stub and the load generator"
go build -o "$OUT/upstream" ./bench/upstream
go build -o "$OUT/load" ./bench/load
go build -o "$OUT/streams" ./bench/streams

# ---- start ---------------------------------------------------------------
for port in 9800 9801 9802 9803 9804; do
	if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
		log "FAILED: 127.0.0.1:$port is already in use (another bench running?)"
		exit 1
	fi
done

PIDS=()
cleanup() {
	local pid
	for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
	for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT
trap 'exit 130' INT TERM

"$OUT/upstream" -listen "$UP_ADDR" -chunks "$CHUNKS" -chunk-delay "${BENCH_CHUNK_DELAY:-0}" >"$OUT/upstream.log" 2>&1 &
UP_PID=$!; PIDS+=("$UP_PID")
mkdir -p "$OUT/xdg/config" "$OUT/xdg/data"
# clients_sites writes the two named-client sites that bench/Caddyfile
# imports: bench-key is client "bench", alone on 9805 and the 501st of
# 1,000 clients on 9806.
clients_sites() {
	local n=$1 i
	echo "http://127.0.0.1:$2 {"
	echo "	proxycast {"
	for ((i = 0; i < n; i++)); do
		if ((i == n / 2)); then
			printf '\t\tclient bench {\n\t\t\tkey bench-key\n\t\t}\n'
		else
			printf '\t\tclient c%d {\n\t\t\tkey bench-client-%d-0123456789abcdef\n\t\t}\n' "$i" "$i"
		fi
	done
	printf '\t\tcredential_pool {\n\t\t\topenai {\n\t\t\t\tcredential bench {\n\t\t\t\t\tauth_type api_key\n\t\t\t\t\tapi_key sk-bench\n\t\t\t\t}\n\t\t\t}\n\t\t}\n'
	printf '\t\tprovider openai {\n\t\t\ttype openai\n\t\t\tapi_base http://127.0.0.1:9800/v1\n\t\t}\n\t}\n}\n'
}
{ clients_sites 1 9805; clients_sites 1000 9806; } >"$OUT/clients-sites.caddy"
start_caddy() {
	XDG_CONFIG_HOME=$OUT/xdg/config XDG_DATA_HOME=$OUT/xdg/data \
		"$OUT/caddy" run --config bench/Caddyfile --adapter caddyfile >>"$OUT/caddy.log" 2>&1 &
	CADDY_PID=$!; PIDS+=("$CADDY_PID")
}
: >"$OUT/caddy.log"
start_caddy

wait_ok() { # name, curl args...
	local name=$1; shift
	for _ in $(seq 1 150); do
		if curl -fsS -o /dev/null --max-time 2 "$@" 2>/dev/null; then return 0; fi
		kill -0 "$UP_PID" 2>/dev/null && kill -0 "$CADDY_PID" 2>/dev/null || break
		sleep 0.2
	done
	log "FAILED: $name does not answer; last lines of the logs:"
	tail -5 "$OUT/upstream.log" "$OUT/caddy.log" >&2
	curl -sS --max-time 2 "$@" >&2 || true
	exit 1
}
# wait_targets waits until every target of the Caddy answers.
wait_targets() {
	local t auth
	for t in "${ALL_TARGETS[@]}"; do
		auth=(-H "$AUTH"); [[ $t == reverse_proxy ]] && auth=()
		wait_ok "$t" -X POST "${auth[@]}" -H 'Content-Type: application/json' -d "$BODY" "$(url_of "$t")"
	done
}
# restart_caddy gives the next measurement a fresh process.
restart_caddy() {
	kill "$CADDY_PID" 2>/dev/null || true
	wait "$CADDY_PID" 2>/dev/null || true
	start_caddy
	wait_targets
}
wait_ok upstream "http://$UP_ADDR/healthz"
wait_targets
log "upstream (pid $UP_PID) and caddy (pid $CADDY_PID) are up"

# ---- check the openai path -----------------------------------------------
# One stream through proxycast-openai, alone: the stub must have been called
# with a Bearer key and asked for usage (stream_usage is on by default), the
# client (which did not ask) must get the chunks without the usage chunk,
# and the credential must have counted the usage chunk's completion tokens
# (the stub reports CHUNKS of them). Then the benchmark measures the path a
# user's default config takes.
num() { # num KEY JSON: the first integer member KEY of JSON (0 if none)
	local v
	v=$(grep -o "\"$1\": *[0-9]*" <<<"$2" | head -1 | grep -o '[0-9]*$') || true
	echo "${v:-0}"
}
check_openai() {
	local stats0 stats1 tok0 tok1 out n
	stats0=$(curl -fsS --max-time 5 "http://$UP_ADDR/stats")
	tok0=$(curl -sS --max-time 5 "$ADMIN/proxycast/credentials/openai/bench") || true
	out=$(curl -fsS --max-time 10 -N -X POST -H "$AUTH" -H 'Content-Type: application/json' \
		-d "$STREAM_BODY" "$(url_of proxycast-openai)") || { log "FAILED: a stream through proxycast-openai"; return 1; }
	stats1=$(curl -fsS --max-time 5 "http://$UP_ADDR/stats")
	tok1=$(curl -fsS --max-time 5 "$ADMIN/proxycast/credentials/openai/bench") ||
		{ log "FAILED: no credential openai/bench in the proxycast admin API"; return 1; }
	n=$(grep -c '^data: {' <<<"$out") || true
	if [[ $(( $(num stream_usage "$stats1") - $(num stream_usage "$stats0") )) != 1 ]]; then
		log "FAILED: proxycast-openai did not ask the stub for usage in the stream (stream_options.include_usage)"; return 1
	fi
	if [[ $(( $(num bearer "$stats1") - $(num bearer "$stats0") )) != 1 ]]; then
		log "FAILED: proxycast-openai did not send Authorization: Bearer <key>"; return 1
	fi
	if [[ $n != "$CHUNKS" ]] || ! grep -q '^data: \[DONE\]' <<<"$out" || grep -q '"choices":\[\]' <<<"$out"; then
		log "FAILED: proxycast-openai's stream had $n chunks (want $CHUNKS, [DONE], and no usage chunk):"
		head -c 600 <<<"$out" >&2; return 1
	fi
	if [[ $(( $(num completion "$tok1") - $(num completion "$tok0") )) != "$CHUNKS" ]]; then
		log "FAILED: proxycast-openai did not count the stream's usage (completion tokens $(num completion "$tok0") -> $(num completion "$tok1"), want +$CHUNKS)"
		return 1
	fi
	log "openai path checked: Bearer key, usage asked for and counted (+$CHUNKS completion tokens), usage chunk hidden from the client"
}
# check_messages sends one Messages stream through proxycast-openai and
# checks it the way an Anthropic SDK reads it: message_start first, one
# text block with the stub's text (EVENTS - 2 deltas), message_delta with
# the usage (EVENTS output tokens) and end_turn, message_stop last, no
# [DONE]; upstream, the stub must have had one chat stream sized by
# max_tokens that asked for usage, and the credential must have counted
# it. Then it checks the chat front's stream64 has its EVENTS chunks.
check_messages() {
	local stats0 stats1 tok0 tok1 out events text want i k n
	stats0=$(curl -fsS --max-time 5 "http://$UP_ADDR/stats")
	tok0=$(curl -fsS --max-time 5 "$ADMIN/proxycast/credentials/openai/bench") || true
	out=$(curl -sS --max-time 10 -N -X POST -H 'x-api-key: bench-key' -H 'anthropic-version: 2023-06-01' \
		-H 'Content-Type: application/json' -d "$MESSAGES64_BODY" -w '\n%{http_code} %{content_type}\n' "$MESSAGES_URL") ||
		{ log "FAILED: a Messages stream through proxycast-openai"; return 1; }
	stats1=$(curl -fsS --max-time 5 "http://$UP_ADDR/stats")
	tok1=$(curl -fsS --max-time 5 "$ADMIN/proxycast/credentials/openai/bench") || true
	if [[ $(tail -1 <<<"$out") != "200 text/event-stream"* ]]; then
		log "FAILED: the Messages front answered $(tail -1 <<<"$out"):"; head -c 600 <<<"$out" >&2; echo >&2; return 1
	fi
	events=$(sed -n 's/^event: *//p' <<<"$out" | tr -d '\r' | uniq -c | awk '{print $2 ($1 > 1 ? "*" $1 : "")}' | paste -sd' ')
	want="message_start content_block_start content_block_delta*$MESSAGES_DELTAS content_block_stop message_delta message_stop"
	if [[ $events != "$want" ]]; then
		log "FAILED: the Messages front's events were: $events"
		log "        want: $want"
		head -c 1500 <<<"$out" >&2; echo >&2; return 1
	fi
	text=$(grep '^data: .*"content_block_delta"' <<<"$out" | grep -o '"text": *"[^"]*"' | sed 's/^"text": *"//; s/"$//' | tr -d '\n')
	want=; for (( i = 1; i <= MESSAGES_DELTAS; i++ )); do want+="tok$i "; done
	if [[ $text != "$want" ]]; then
		log "FAILED: the Messages front's text was \"${text:0:200}\", want \"${want:0:200}\""; return 1
	fi
	n=$(grep '^data: .*"message_delta"' <<<"$out")
	if [[ $(num output_tokens "$n") != "$EVENTS" ]] || ! grep -q '"stop_reason": *"end_turn"' <<<"$n"; then
		log "FAILED: the Messages front's message_delta lacks end_turn or output_tokens $EVENTS: $n"; return 1
	fi
	if grep -q '\[DONE\]' <<<"$out" || ! grep -q '"model": *"claude-sonnet-4-5"' <<<"$(grep '^data: .*"message_start"' <<<"$out")"; then
		log "FAILED: the Messages front sent [DONE], or its message_start does not name the model asked for:"
		grep '^data: .*"message_start"' <<<"$out" >&2; return 1
	fi
	for k in stream_sized stream_usage bearer; do
		if [[ $(( $(num "$k" "$stats1") - $(num "$k" "$stats0") )) != 1 ]]; then
			log "FAILED: the stub's $k did not grow by 1 for one Messages stream ($stats0 -> $stats1)"; return 1
		fi
	done
	if [[ $(( $(num completion "$tok1") - $(num completion "$tok0") )) != "$EVENTS" ]]; then
		log "FAILED: proxycast-openai did not count the Messages stream's usage (completion tokens $(num completion "$tok0") -> $(num completion "$tok1"), want +$EVENTS)"
		return 1
	fi
	out=$(curl -fsS --max-time 10 -N -X POST -H "$AUTH" -H 'Content-Type: application/json' \
		-d "$STREAM64_BODY" "$(url_of proxycast-openai)") || { log "FAILED: a stream64 stream through proxycast-openai"; return 1; }
	n=$(grep -c '^data: {' <<<"$out") || true
	if [[ $n != "$EVENTS" ]] || ! grep -q '^data: \[DONE\]' <<<"$out"; then
		log "FAILED: proxycast-openai's stream64 stream had $n chunks (want $EVENTS and [DONE])"; return 1
	fi
	log "messages front checked: $events, the stub's text, end_turn and $EVENTS output tokens (counted), no [DONE]; stream64 has $EVENTS chunks"
}
if [[ " ${TARGETS[*]} " == *" proxycast-openai "* ]]; then
	check_openai || exit 1
	check_messages || exit 1
fi

# ---- measure -------------------------------------------------------------
STAMP=$(date +%Y%m%d-%H%M%S)
RESULTS=$OUT/results-$STAMP.jsonl
: >"$RESULTS"
FAILED=0

# load <target> <scenario> <conns> <duration> <round> [extra flags]
# runs the load generator and leaves its JSON line in LAST_LINE; a failed
# run sets FAILED (so it must not run in a subshell). Scenarios named
# messages* go to the target's Messages front, as an Anthropic client.
load() {
	local target=$1 scenario=$2 c=$3 d=$4 round=$5; shift 5
	local url
	url=$(url_of "$target")
	hdr_of "$target"
	if [[ $scenario == messages* || $scenario == *-messages* ]]; then
		url=$MESSAGES_URL
		HDR=("${MSG_HDR[@]}")
	fi
	if [[ $scenario == responses* || $scenario == *-responses* ]]; then
		url=$RESPONSES_URL
	fi
	local rc=0
	LAST_LINE=$(timeout "$(( $(secs "$d") + 60 ))" "$OUT/load" -url "$url" -c "$c" -d "$d" "${HDR[@]}" \
		-target "$target" -scenario "$scenario" -round "$round" \
		-cpu-pids "caddy=$CADDY_PID,upstream=$UP_PID" "$@") || rc=$?
	if [[ $rc -ne 0 ]]; then
		log "FAILED: $target $scenario (exit $rc)"
		FAILED=1
	fi
	return 0
}
LAST_LINE=

# front_args <scenario> <conns> <duration> <round>: the arguments of load
# for a front scenario (stream64*, messages64*), in ARGS.
front_args() {
	case $1 in
	stream64*) ARGS=("$2" "$3" "$4" -stream -events "$EVENTS" -min-chunks "$EVENTS" -body "$STREAM64_BODY") ;;
	messages64*) ARGS=("$2" "$3" "$4" -messages -events "$EVENTS" -min-chunks "$MESSAGES_DELTAS" -body "$MESSAGES64_BODY") ;;
	responses64*) ARGS=("$2" "$3" "$4" -responses -events "$EVENTS" -min-chunks "$MESSAGES_DELTAS" -body "$RESPONSES64_BODY") ;;
	esac
}
FRONTS=0
[[ " ${TARGETS[*]} " == *" $FRONT_TARGET "* ]] && FRONTS=1

log "warm-up: $WARMUP per target at c=$CONNS"
for t in "${TARGETS[@]}"; do
	load "$t" warmup "$CONNS" "$WARMUP" 0 -body "$BODY"
	load "$t" warmup 1 1s 0 -stream -body "$STREAM_BODY"
done
if [[ $FRONTS == 1 ]]; then
	for s in stream64 messages64 responses64; do
		front_args "$s" "$CONNS" "$WARMUP" 0
		load "$FRONT_TARGET" "warmup-$s" "${ARGS[@]}"
	done
fi
[[ $FAILED == 0 ]] || { log "FAILED during warm-up: not measuring"; exit 1; }

log "measuring: $ROUNDS round(s) x (4 scenarios x ${#TARGETS[@]} targets$( ((FRONTS)) && echo " + 6 front scenarios on $FRONT_TARGET")) x $DURATION ($(nproc) CPUs, load avg $(cut -d' ' -f1-3 /proc/loadavg))"
n=0
for round in $(seq 1 "$ROUNDS"); do
	for scenario in latency throughput throughput256 stream; do
		case $scenario in
		latency) args=(1 "$DURATION" "$round" -body "$BODY") ;;
		throughput) args=("$CONNS" "$DURATION" "$round" -body "$BODY") ;;
		throughput256) args=("$CONNS2" "$DURATION" "$round" -body "$BODY") ;;
		stream) args=(1 "$DURATION" "$round" -stream -events "$CHUNKS" -body "$STREAM_BODY") ;;
		esac
		# Rotate the order of the targets from one scenario to the next, so
		# that none always runs on the warmer (or the more disturbed) side:
		# with 3 targets and 4 scenarios a round, 3 rounds give each target
		# every place in every scenario.
		order=()
		for (( i = 0; i < ${#TARGETS[@]}; i++ )); do
			order+=("${TARGETS[(i + n) % ${#TARGETS[@]}]}")
		done
		n=$((n + 1))
		for t in "${order[@]}"; do
			log "round $round: $scenario -> $t"
			load "$t" "$scenario" "${args[@]}"
			[[ -z $LAST_LINE ]] || printf '%s\n' "$LAST_LINE" | tee -a "$RESULTS"
		done
	done
	# The two fronts on the same target, back to back at each number of
	# connections; which goes first alternates from round to round.
	if [[ $FRONTS == 1 ]]; then
		# The three fronts, rotated: each goes first in one round of three.
		all_fronts=(stream64 messages64 responses64)
		fronts=()
		for (( i = 0; i < 3; i++ )); do fronts+=("${all_fronts[(i + round) % 3]}"); done
		front_conns=(1)
		(( CONNS > 1 )) && front_conns+=("$CONNS")
		for c in "${front_conns[@]}"; do
			for s in "${fronts[@]}"; do
				scenario=$s; (( c > 1 )) && scenario=$s-tput
				front_args "$s" "$c" "$DURATION" "$round"
				log "round $round: $scenario -> $FRONT_TARGET"
				load "$FRONT_TARGET" "$scenario" "${ARGS[@]}"
				[[ -z $LAST_LINE ]] || printf '%s\n' "$LAST_LINE" | tee -a "$RESULTS"
			done
		done
	fi
done

# ---- held streams --------------------------------------------------------
# Many slow streams open at once: every chunk must arrive, and Caddy's
# memory is read while they are open. Each target gets a fresh Caddy, so
# that the memory figures are not one target's leftovers.
HOLD_RESULTS=$OUT/hold-$STAMP.jsonl
: >"$HOLD_RESULTS"
if [[ -n $HOLD ]]; then
	for n in $HOLD; do
		for t in "${TARGETS[@]}"; do
			restart_caddy
			hdr_of "$t"
			log "holding $n streams open on $t"
			line=$(timeout 300 "$OUT/streams" -url "$(url_of "$t")" -n "$n" -chunks "$CHUNKS" -delay "$HOLD_DELAY" \
				-pid "$CADDY_PID" -target "$t" "${HDR[@]}") || { log "FAILED: $n held streams on $t"; FAILED=1; }
			[[ -z $line ]] || printf '%s\n' "$line" | tee -a "$HOLD_RESULTS"
		done
	done
fi

# ---- report --------------------------------------------------------------
echo
echo "== results ($RESULTS; caddy $("$OUT/caddy" version | cut -d' ' -f1)${SOURCE:+ with the plugin at $SOURCE}, $(nproc) CPUs, load avg now $(cut -d' ' -f1-3 /proc/loadavg)) =="
report_rc=0
"$OUT/load" -report "$RESULTS" || report_rc=$?
if [[ -s $HOLD_RESULTS ]]; then
	echo
	echo "== held streams ($HOLD_RESULTS; $CHUNKS chunks, $HOLD_DELAY apart) =="
	"$OUT/streams" -report "$HOLD_RESULTS" || report_rc=$?
fi

# ---- optional profiles ---------------------------------------------------
if [[ ${BENCH_PROFILE:-0} == 1 ]]; then
	profiles=()
	for scenario in throughput stream; do
		for t in "${TARGETS[@]}"; do profiles+=("$t $scenario"); done
	done
	((FRONTS)) && profiles+=("$FRONT_TARGET stream64" "$FRONT_TARGET messages64" "$FRONT_TARGET responses64")
	for p in "${profiles[@]}"; do
		read -r t scenario <<<"$p"
		prof=$OUT/$t-$scenario-$STAMP.cpu.pprof
		log "profiling caddy under $scenario load (c=$CONNS) on $t for 10 s -> $prof"
		case $scenario in
		throughput) extra=("$CONNS" 13s 0 -body "$BODY") ;;
		stream) extra=("$CONNS" 13s 0 -stream -body "$STREAM_BODY") ;;
		*) front_args "$scenario" "$CONNS" 13s 0; extra=("${ARGS[@]}") ;;
		esac
		# In a subshell: a failure here does not fail the comparison. The
		# run's JSON line goes next to the profile, to turn samples into
		# time per request.
		{ load "$t" "profile-$scenario" "${extra[@]}"
			printf '%s\n' "$LAST_LINE" >"${prof%.pprof}.load.json"; } &
		lpid=$!
		sleep 1
		curl -fsS --max-time 30 -o "$prof" "$ADMIN/debug/pprof/profile?seconds=10" || log "profile capture failed"
		wait "$lpid" || true
		if [[ -s $prof ]]; then
			go tool pprof -top -nodecount=40 "$prof" >"${prof%.pprof}.top.txt" 2>/dev/null || true
			go tool pprof -top -cum -nodecount=40 -focus 'caddy-proxycast' "$prof" \
				>"${prof%.pprof}.plugin-cum.txt" 2>/dev/null || true
			log "top functions: ${prof%.pprof}.top.txt"
		fi
	done
fi

if [[ $FAILED != 0 || $report_rc != 0 ]]; then
	log "FAILED: some requests failed; see above"
	exit 1
fi
log "done"

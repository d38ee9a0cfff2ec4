#!/usr/bin/env bash
# Load benchmark of imsproxy with sipp, on 127.0.0.1 only.
#
#   test/bench/run.sh [--rate N] [--duration S] [--flows LIST]
#                     [--transport u1|t1] [--proxy BIN] [--log-level L]
#                     [--keep]
#
# Flows (--flows, comma separated, default baseline,rr,fork):
#   baseline  sipp uac.xml -> sipp uas.xml directly: what sipp itself does.
#   rr        sipp uac.xml -> imsproxy (record_route) -> sipp uas.xml; the
#             callee is a static location entry (sip:bob@127.0.0.1).
#   fork      sipp uac.xml -> imsproxy -> two static contacts of one AOR
#             (equal q: parallel fork): uas.xml answers, uas_ring.xml rings
#             and is cancelled by the proxy.
#   plocal    the rr flow with a call limit per caller (limits, key
#             from_uri) on a node-local profile.
#   pshared   the same limit on a shared profile (caller/s) in a
#             redis-server this script starts on a loopback port; it also
#             prints the Redis round trips per call: the scripts (EVAL,
#             EVALSHA in INFO commandstats) run over the flow / calls.
#             Compare its calls/s with plocal's (target: at least 80%).
#
# Every flow places at most rate*duration calls (-m) at --rate calls/s
# (default 200 cps for 20 s), and each sipp stops at duration+60 s at the
# latest (-timeout). For each flow it prints calls/s achieved, successful
# and failed calls and retransmissions, from the last line of every sipp's
# -trace_stat file. Exits non-zero when a sipp reports a failed call or
# exits non-zero, or when the proxy does not start or exit cleanly.
#
# The proxy is built from ./cmd/imsproxy into the work directory unless
# --proxy names a binary. Its config (YAML) and every sipp's output and
# traces go to the work directory, removed at the end unless --keep or a
# failure.
set -uo pipefail

rate=200
duration=20
flows=baseline,rr,fork
transport=u1
proxy_bin=
log_level=warn
keep=0

usage() { sed -n '2,/^set -uo/{/^set -uo/d;s/^# \{0,1\}//;p}' "$0"; }
die() {
	printf 'bench: %s\n' "$*" >&2
	exit 2
}

while (($# > 0)); do
	case $1 in
	--rate) rate=${2:?--rate N}; shift 2 ;;
	--duration) duration=${2:?--duration S}; shift 2 ;;
	--flows) flows=${2:?--flows LIST}; shift 2 ;;
	--transport) transport=${2:?--transport u1|t1}; shift 2 ;;
	--proxy) proxy_bin=${2:?--proxy BIN}; shift 2 ;;
	--log-level) log_level=${2:?--log-level L}; shift 2 ;;
	--keep) keep=1; shift ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; die "unknown argument: $1" ;;
	esac
done
[[ $rate =~ ^[1-9][0-9]*$ ]] || die "--rate must be a positive integer"
[[ $duration =~ ^[1-9][0-9]*$ ]] || die "--duration must be a positive integer (seconds)"
[[ $transport == u1 || $transport == t1 ]] || die "--transport must be u1 or t1"
calls=$((rate * duration)) # hard cap on calls per flow
timeout=$((duration + 60))

cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 2
root=$PWD
scen=$root/test/sipp
command -v sipp >/dev/null 2>&1 || die "sipp not found (Debian package sip-tester; scripts/test.sh installs it)"

work=$(mktemp -d "${TMPDIR:-/tmp}/imsdlg-bench.XXXXXX") || die "mktemp failed"
pids=()
cleanup() {
	local p
	for p in "${pids[@]}"; do
		kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null
	done
	if ((keep)) || ((failed)); then
		printf 'bench: files kept in %s\n' "$work" >&2
	else
		rm -rf "$work"
	fi
}
failed=0
trap cleanup EXIT
trap 'exit 130' INT TERM

# port_in_use PORT: a socket of this machine is bound to PORT (any family).
port_in_use() {
	local hex
	hex=$(printf ':%04X ' "$1")
	# Files, not a pipe: under pipefail, grep -q's early exit would make
	# the writer's SIGPIPE the status.
	grep -qs "$hex" /proc/net/udp /proc/net/udp6 /proc/net/tcp /proc/net/tcp6
}
# free_port: a port of 20000-59999 with nothing bound, not handed out before.
taken=" "
free_port() {
	local p i
	for ((i = 0; i < 200; i++)); do
		p=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
		[[ $taken == *" $p "* ]] && continue
		port_in_use "$p" && continue
		taken+="$p "
		echo "$p"
		return 0
	done
	die "no free port found"
}

# wait_bound PORT PID: poll until PORT is bound, while PID lives (10 s).
wait_bound() {
	local i
	for ((i = 0; i < 200; i++)); do
		port_in_use "$1" && return 0
		kill -0 "$2" 2>/dev/null || return 1
		sleep 0.05
	done
	return 1
}

# sipp_start NAME SCENARIO PORT [REMOTE] [args...]: starts sipp in the
# background, traces in $work/NAME.*; sets SIPP_PID.
sipp_start() {
	local name=$1 scenario=$2 port=$3 remote=$4
	shift 4
	local args=()
	[[ -n $remote ]] && args+=("$remote")
	args+=(-sf "$scen/$scenario" -i 127.0.0.1 -p "$port" -bind_local -t "$transport"
		-m "$calls" -nostdin -ci 127.0.0.1 -mi 127.0.0.1
		-timeout "${timeout}s" -timeout_error
		-trace_err -error_file "$work/$name.errors.log"
		-trace_stat -stf "$work/$name.stats.csv" -fd 5
		"$@")
	echo "sipp ${args[*]}" >"$work/$name.cmd"
	(cd "$work" && exec sipp "${args[@]}" >"$work/$name.out" 2>&1) &
	SIPP_PID=$!
	pids+=("$SIPP_PID")
}

# csv_col: lib.sh.
. "$root/test/bench/lib.sh"
# epoch TIMEFIELD: "date<TAB>time<TAB>epoch" -> epoch
epoch() { awk -F'\t' '{ print $NF }' <<<"$1"; }

results=()
# report FLOW UAC [UAS...]: one result line; sets failed on failures.
report() {
	local flow=$1 uac=$2
	shift 2
	local f ok fail retrans=0 start end elapsed cps r
	f=$work/$uac.stats.csv
	ok=$(csv_col "$f" 'SuccessfulCall(C)')
	fail=$(csv_col "$f" 'FailedCall(C)')
	start=$(epoch "$(csv_col "$f" StartTime)")
	end=$(epoch "$(csv_col "$f" CurrentTime)")
	for r in "$uac" "$@"; do
		local x
		x=$(csv_col "$work/$r.stats.csv" 'Retransmissions(C)')
		[[ $x =~ ^[0-9]+$ ]] && retrans=$((retrans + x))
		x=$(csv_col "$work/$r.stats.csv" 'FailedCall(C)')
		if [[ ! $x =~ ^[0-9]+$ ]] || ((x > 0)); then
			printf 'bench: %s: %s reports %s failed calls (%s)\n' "$flow" "$r" "$x" "$work/$r.errors.log" >&2
			failed=1
		fi
	done
	if [[ $ok =~ ^[0-9]+$ && $start =~ ^[0-9.]+$ && $end =~ ^[0-9.]+$ ]]; then
		elapsed=$(awk -v s="$start" -v e="$end" 'BEGIN { printf "%.2f", e - s }')
		cps=$(awk -v n="$ok" -v s="$start" -v e="$end" 'BEGIN { printf "%.1f", (e > s) ? n / (e - s) : 0 }')
	else
		elapsed=? cps=?
	fi
	results+=("$(printf '%-9s %7s %7s %7s %8s %9s %8s' "$flow" "$calls" "$ok" "$fail" "$retrans" "$cps" "$elapsed")")
}

# wait_all NAME PID...: wait for the sipp processes of a flow.
wait_all() {
	local flow=$1 p rc
	shift
	for p in "$@"; do
		wait "$p"
		rc=$?
		if ((rc != 0)); then
			printf 'bench: %s: a sipp exited %d\n' "$flow" "$rc" >&2
			failed=1
		fi
	done
}

run_baseline() {
	local pu pc uas
	pu=$(free_port)
	pc=$(free_port)
	echo "== baseline: sipp uac -> sipp uas, $calls calls at $rate cps"
	sipp_start baseline.uas uas.xml "$pu" ""
	uas=$SIPP_PID
	wait_bound "$pu" "$uas" || { echo "bench: baseline UAS did not start" >&2; failed=1; return; }
	sipp_start baseline.uac uac.xml "$pc" "127.0.0.1:$pu" -s bob -r "$rate"
	wait_all baseline "$SIPP_PID" "$uas"
	report baseline baseline.uac baseline.uas
}

proxy_pid=
proxy_start() { # NAME SIPPORT MGMTPORT STATIC_YAML [EXTRA_YAML]
	local name=$1 sip=$2 mgmt=$3 static=$4 extra=${5:-} i
	if [[ -z $proxy_bin ]]; then
		proxy_bin=$work/imsproxy
		echo "== building ./cmd/imsproxy"
		go build -o "$proxy_bin" ./cmd/imsproxy || { failed=1; return 1; }
	fi
	cat >"$work/$name.yaml" <<EOF
listen: ["udp:127.0.0.1:$sip", "tcp:127.0.0.1:$sip"]
domains: [localhost, 127.0.0.1]
record_route: true
location:
  static:
$static
mgmt:
  listen: 127.0.0.1:$mgmt
log: {level: $log_level, format: text}
tm: {fr_timeout: 30s, fr_inv_timeout: 120s}
$extra
EOF
	"$proxy_bin" --config "$work/$name.yaml" >"$work/$name.proxy.log" 2>&1 &
	proxy_pid=$!
	pids+=("$proxy_pid")
	# Poll /healthz (bash's /dev/tcp: no curl needed), 10 s.
	for ((i = 0; i < 200; i++)); do
		if timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" &&
			printf "GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n" >&3 &&
			head -n 1 <&3 | grep -q " 200"' _ "$mgmt" 2>/dev/null; then
			return 0
		fi
		kill -0 "$proxy_pid" 2>/dev/null || break
		sleep 0.05
	done
	echo "bench: $name: imsproxy did not answer /healthz; its output:" >&2
	cat "$work/$name.proxy.log" >&2
	failed=1
	return 1
}
proxy_stop() { # NAME
	local i
	kill -TERM "$proxy_pid" 2>/dev/null
	for ((i = 0; i < 100; i++)); do
		kill -0 "$proxy_pid" 2>/dev/null || break
		sleep 0.05
	done
	if kill -0 "$proxy_pid" 2>/dev/null; then
		echo "bench: $1: imsproxy still running 5 s after SIGTERM: killed" >&2
		kill -KILL "$proxy_pid"
		failed=1
	fi
	wait "$proxy_pid"
	local rc=$?
	if ((rc != 0)); then
		echo "bench: $1: imsproxy exited $rc after SIGTERM (log: $work/$1.proxy.log)" >&2
		failed=1
	fi
}

run_rr() {
	local ps pm pu pc uas
	ps=$(free_port)
	pm=$(free_port)
	pu=$(free_port)
	pc=$(free_port)
	echo "== rr: sipp uac -> imsproxy (record-route) -> sipp uas, $calls calls at $rate cps"
	local contact="sip:bob@127.0.0.1:$pu"
	[[ $transport == t1 ]] && contact="<sip:bob@127.0.0.1:$pu;transport=tcp>"
	proxy_start rr "$ps" "$pm" "    \"sip:bob@127.0.0.1\": [\"$contact\"]" || return
	sipp_start rr.uas uas.xml "$pu" ""
	uas=$SIPP_PID
	wait_bound "$pu" "$uas" || { echo "bench: rr UAS did not start" >&2; failed=1; proxy_stop rr; return; }
	sipp_start rr.uac uac.xml "$pc" "127.0.0.1:$ps" -s bob -r "$rate"
	wait_all rr "$SIPP_PID" "$uas"
	proxy_stop rr
	report rr rr.uac rr.uas
}

run_fork() {
	local ps pm pa pr pc ua ur
	ps=$(free_port)
	pm=$(free_port)
	pa=$(free_port)
	pr=$(free_port)
	pc=$(free_port)
	echo "== fork: sipp uac -> imsproxy -> {sipp uas (answers), sipp uas_ring (cancelled)}, $calls calls at $rate cps"
	local ca="sip:bob@127.0.0.1:$pa" cr="sip:bob@127.0.0.1:$pr"
	if [[ $transport == t1 ]]; then
		ca="<$ca;transport=tcp>"
		cr="<$cr;transport=tcp>"
	fi
	proxy_start fork "$ps" "$pm" "    \"sip:bob@127.0.0.1\": [\"$ca\", \"$cr\"]" || return
	sipp_start fork.uas uas.xml "$pa" ""
	ua=$SIPP_PID
	sipp_start fork.uas_ring uas_ring.xml "$pr" ""
	ur=$SIPP_PID
	if ! wait_bound "$pa" "$ua" || ! wait_bound "$pr" "$ur"; then
		echo "bench: fork UAS did not start" >&2
		failed=1
		proxy_stop fork
		return
	fi
	sipp_start fork.uac uac.xml "$pc" "127.0.0.1:$ps" -s bob -r "$rate"
	wait_all fork "$SIPP_PID" "$ua" "$ur"
	proxy_stop fork
	report fork fork.uac fork.uas fork.uas_ring
}

redis_pid=
notes=()
# run_profile local|shared: the rr flow with a per-caller limit.
run_profile() {
	local kind=$1 ps pm pu pc uas rp name=p$1 profile=caller before after
	ps=$(free_port)
	pm=$(free_port)
	pu=$(free_port)
	pc=$(free_port)
	local extra
	if [[ $kind == shared ]]; then
		command -v redis-server >/dev/null 2>&1 || die "redis-server not found (scripts/test.sh installs it)"
		rp=$(free_port)
		redis-server --port "$rp" --bind 127.0.0.1 --save "" --appendonly no >"$work/$name.redis.log" 2>&1 &
		redis_pid=$!
		pids+=("$redis_pid")
		wait_bound "$rp" "$redis_pid" || { echo "bench: redis-server did not start" >&2; failed=1; return; }
		profile=caller/s
		extra="profiles: {cachedb_url: \"redis://127.0.0.1:$rp/0\", with_value: [$profile]}"
	else
		extra="profiles: {with_value: [$profile]}"
	fi
	extra+=$'\n'"limits: [{profile: $profile, key: from_uri, max: 1000000}]"
	echo "== $name: sipp uac -> imsproxy (limit on a $kind profile) -> sipp uas, $calls calls at $rate cps"
	local contact="sip:bob@127.0.0.1:$pu"
	[[ $transport == t1 ]] && contact="<sip:bob@127.0.0.1:$pu;transport=tcp>"
	proxy_start "$name" "$ps" "$pm" "    \"sip:bob@127.0.0.1\": [\"$contact\"]" "$extra" || return
	sipp_start "$name.uas" uas.xml "$pu" ""
	uas=$SIPP_PID
	wait_bound "$pu" "$uas" || { echo "bench: $name UAS did not start" >&2; failed=1; proxy_stop "$name"; return; }
	[[ $kind == shared ]] && before=$(redis_commands "$rp")
	sipp_start "$name.uac" uac.xml "$pc" "127.0.0.1:$ps" -s bob -r "$rate"
	wait_all "$name" "$SIPP_PID" "$uas"
	proxy_stop "$name"
	report "$name" "$name.uac" "$name.uas"
	if [[ $kind == shared ]]; then
		after=$(redis_commands "$rp")
		local ok
		ok=$(csv_col "$work/$name.uac.stats.csv" 'SuccessfulCall(C)')
		if [[ $before =~ ^[0-9]+$ && $after =~ ^[0-9]+$ && $ok =~ ^[1-9][0-9]*$ ]]; then
			notes+=("$(awk -v b="$before" -v a="$after" -v n="$ok" 'BEGIN { printf "pshared: %d Redis round trips for %d calls: %.2f per call", a - b, n, (a - b) / n }')")
		fi
		kill -TERM "$redis_pid" 2>/dev/null
		wait "$redis_pid" 2>/dev/null
	fi
}
# redis_commands PORT: the scripts (EVAL, EVALSHA) clients ran so far: every
# profile change is one script, so this is the round trips. INFO's command
# totals also count the commands a script runs inside Redis, which are not.
redis_commands() {
	timeout 5 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" &&
		printf "INFO commandstats\r\nQUIT\r\n" >&3 &&
		tr -d "\r" <&3 | sed -n "s/^cmdstat_\(evalsha\|eval\):calls=\([0-9]*\),.*/\2/p" |
		awk "{ n += \$1 } END { print n + 0 }"' _ "$1" 2>/dev/null
}

IFS=, read -r -a flow_list <<<"$flows"
for flow in "${flow_list[@]}"; do
	case $flow in
	baseline) run_baseline ;;
	rr) run_rr ;;
	fork) run_fork ;;
	plocal) run_profile local ;;
	pshared) run_profile shared ;;
	*) die "unknown flow $flow (baseline, rr, fork, plocal, pshared)" ;;
	esac
done

echo
echo "imsdlg bench: transport $transport, target $rate cps, $duration s, cap $calls calls per flow"
printf '%-9s %7s %7s %7s %8s %9s %8s\n' flow calls ok failed retrans "calls/s" "time(s)"
for r in "${results[@]}"; do
	echo "$r"
done
for n in "${notes[@]}"; do
	echo "$n"
done
if ((failed)); then
	echo "bench: FAILED (see above)" >&2
	exit 1
fi

#!/usr/bin/env bash
# Memory under sustained load: sipp UAC -> imsproxy (record_route, dialog)
# -> sipp UAS, short calls (INVITE, 200, ACK, BYE, 200) at RATE calls/s
# for DURATION seconds, on 127.0.0.1 only.
#
#   test/bench/sustained_mem.sh [--rate R] [--duration S]   (defaults 2000, 300)
#                               [--gogc N] [--memory-limit L]
#                               [--proxy BIN] [--profile FILE]
#
# Every 10 s it prints the proxy's VmRSS, its live Go heap (of the last GC:
# go_gc_heap_live_bytes, no collection forced, which would disturb the
# load) and the calls so far; at the end the peak VmRSS, and the live heap
# when the load ends (after a GC forced through /debug/pprof/heap?gc=1)
# per call/s of load: what an operator sizes memory with (every call's
# transactions stay tm.wt_timer, 5 s, after it ends to absorb
# retransmissions; the RFC's 64*T1 = 32 s would hold 6x more). --gogc and --memory-limit set runtime.gogc / runtime.memory_limit
# of the proxy's config (defaults: the proxy's own). --profile writes the
# in-use heap profile at the end of the load (go tool pprof -sample_index
# inuse_space). Bounded: the UAC places exactly RATE*DURATION calls and
# every process is killed DURATION+120 s after the start at the latest.
# Exits non-zero when a call failed or the proxy died.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 2
rate=2000
duration=300
gogc=
memlimit=
proxy_bin=
profile=
while [ $# -gt 0 ]; do
	case $1 in
	--rate) rate=${2:?--rate R}; shift 2 ;;
	--duration) duration=${2:?--duration S}; shift 2 ;;
	--gogc) gogc=${2:?--gogc N}; shift 2 ;;
	--memory-limit) memlimit=${2:?--memory-limit L}; shift 2 ;;
	--proxy) proxy_bin=${2:?--proxy BIN}; shift 2 ;;
	--profile) profile=${2:?--profile FILE}; shift 2 ;;
	*) sed -n '2,/^set -uo/{/^set -uo/d;s/^# \{0,1\}//;p}' "$0" >&2; exit 2 ;;
	esac
done
[[ $rate =~ ^[1-9][0-9]*$ ]] || { echo "$0: --rate must be a positive integer" >&2; exit 2; }
[[ $duration =~ ^[1-9][0-9]*$ ]] || { echo "$0: --duration must be a positive integer (seconds)" >&2; exit 2; }
command -v sipp >/dev/null 2>&1 || { echo "$0: sipp not found (Debian package sip-tester; scripts/test.sh installs it)" >&2; exit 2; }
export PATH=$PATH:/usr/local/go/bin
work=$(mktemp -d /tmp/imsdlg-mem.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
. test/bench/lib.sh
sipport=$(free_port); mgmt=$(free_port); uasport=$(free_port); uacport=$(free_port)
calls=$((rate * duration))
limit=$((duration + 120))
if [ -z "$proxy_bin" ]; then
	go build -o "$work/imsproxy" ./cmd/imsproxy || exit 2
	proxy_bin=$work/imsproxy
fi
{
	rr_proxy_yaml "$sipport" "$uasport" "$mgmt"
	[ -n "$gogc$memlimit" ] && echo "runtime:"
	[ -n "$gogc" ] && echo "  gogc: $gogc"
	[ -n "$memlimit" ] && echo "  memory_limit: \"$memlimit\""
} >"$work/p.yaml"
"$proxy_bin" --config "$work/p.yaml" >"$work/proxy.log" 2>&1 &
ppid=$!
(sleep "$limit"; kill "$ppid" 2>/dev/null) &
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$mgmt/healthz" >/dev/null && break; sleep 0.1; done
curl -sf "http://127.0.0.1:$mgmt/healthz" >/dev/null || { echo "$0: the proxy did not start:" >&2; cat "$work/proxy.log" >&2; exit 1; }
rss() { awk '/VmRSS/{print $2}' "/proc/$ppid/status" 2>/dev/null; }
metric() { curl -s "http://127.0.0.1:$mgmt/metrics" | awk -v m="$1" '$1 == m {printf "%d", $2}'; }
# heap: the live heap after a forced GC.
heap() {
	curl -s -o /dev/null "http://127.0.0.1:$mgmt/debug/pprof/heap?gc=1"
	metric go_memstats_heap_alloc_bytes
}
base=$(rss)
baseheap=$(heap)
timeout "$limit" sipp -sf test/sipp/uas.xml -i 127.0.0.1 -p "$uasport" -m "$calls" -nostdin -ci 127.0.0.1 -mi 127.0.0.1 \
	-trace_stat -stf "$work/uas.csv" >"$work/uas.out" 2>&1 &
sleep 0.5
timeout "$limit" sipp 127.0.0.1:"$sipport" -sf test/sipp/uac.xml -s bob -i 127.0.0.1 -p "$uacport" \
	-m "$calls" -r "$rate" -l $((rate * 10)) -nostdin -ci 127.0.0.1 -mi 127.0.0.1 \
	-trace_stat -fd 1 -stf "$work/uac.csv" >"$work/uac.out" 2>&1 &
uac=$!
peak=0
start=$SECONDS
next=$((start + 10))
end=$((start + duration))
endheap=
echo "load: $rate calls/s for $duration s ($calls calls), proxy VmRSS at start ${base} kB, live heap $((baseheap / 1024)) kB"
while kill -0 "$uac" 2>/dev/null || [ -z "$endheap" ]; do
	r=$(rss)
	[ -n "$r" ] || { echo "$0: the proxy died:" >&2; tail -20 "$work/proxy.log" >&2; exit 1; }
	((r > peak)) && peak=$r
	if ((SECONDS >= end)) && [ -z "$endheap" ]; then
		endheap=$(heap)
		[ -n "$profile" ] && curl -s -o "$profile" "http://127.0.0.1:$mgmt/debug/pprof/heap"
		printf '%4d s: end of the load, live heap after a GC %d kB\n' $((SECONDS - start)) $((endheap / 1024))
	elif ((SECONDS >= next)); then
		h=$(metric go_gc_heap_live_bytes)
		done_calls=$(csv_col "$work/uac.csv" 'TotalCallCreated')
		printf '%4d s: VmRSS %7d kB, live heap %7d kB, calls %s\n' $((SECONDS - start)) "$r" $((h / 1024)) "${done_calls:-?}"
		next=$((next + 10))
	fi
	sleep 1
done
wait "$uac"
rc=$?
r=$(rss)
((r > peak)) && peak=$r
failed=$(csv_col "$work/uac.csv" 'FailedCall(C)')
ok=$(csv_col "$work/uac.csv" 'SuccessfulCall(C)')
retrans=$(csv_col "$work/uac.csv" 'Retransmissions(C)')
live=$((endheap - baseheap))
echo "calls: ${ok:-?} ok, ${failed:-?} failed, ${retrans:-?} retransmissions (UAC)"
echo "peak VmRSS: $peak kB ($(((peak - base) / 1024)) MB above the idle proxy)"
echo "live heap at the end of the load: $((live / 1024 / 1024)) MB above the idle proxy: $((live / rate)) B per call/s"
[ "$rc" -eq 0 ] && [ "$failed" = 0 ]

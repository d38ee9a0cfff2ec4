#!/usr/bin/env bash
# Resident memory per confirmed dialog: sipp UAC -> imsproxy -> sipp UAS,
# N calls held open (long pause) at RATE calls/s, on 127.0.0.1 only.
#
#   test/bench/dialogs_rss.sh [--calls N] [--rate R]     (defaults 100000, 1000)
#
# It reads imsproxy's VmRSS and live Go heap (go_memstats_heap_alloc_bytes
# from /metrics right after a GC forced through /debug/pprof/heap?gc=1)
# once the proxy is up, and again 45 s after dlg.stats shows N
# active dialogs (so the transactions of the call set-ups have ended and
# only the dialogs remain), prints the difference per dialog, then stops
# everything (the held calls are not ended cleanly: that is not measured).
# Bounded: the UAC places exactly N calls; every process is killed after
# N/RATE + 180 s at the latest.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 2
calls=100000
rate=1000
while [ $# -gt 0 ]; do
	case $1 in
	--calls) calls=$2; shift 2 ;;
	--rate) rate=$2; shift 2 ;;
	*) echo "usage: $0 [--calls N] [--rate R]" >&2; exit 2 ;;
	esac
done
export PATH=$PATH:/usr/local/go/bin
work=$(mktemp -d /tmp/imsdlg-rss.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
go build -o "$work/imsproxy" ./cmd/imsproxy || exit 2
port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
sipport=$(port); mgmt=$(port); uasport=$(port); uacport=$(port)
ramp=$((calls / rate + 1))
hold=$((ramp + 120))
cat >"$work/p.yaml" <<YAML
listen: ["udp:127.0.0.1:$sipport"]
domains: [127.0.0.1]
location: {static: {"sip:bob@127.0.0.1": ["sip:bob@127.0.0.1:$uasport"]}}
mgmt: {listen: "127.0.0.1:$mgmt", pprof: true}
log: {level: warn}
YAML
"$work/imsproxy" --config "$work/p.yaml" >"$work/proxy.log" 2>&1 &
ppid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$mgmt/healthz" >/dev/null && break; sleep 0.1; done
rss() { awk '/VmRSS/{print $2}' "/proc/$ppid/status"; }
# The live heap: a GC first (pprof's gc=1), so garbage is not counted.
heap() {
	curl -s -o /dev/null "http://127.0.0.1:$mgmt/debug/pprof/heap?gc=1"
	curl -s "http://127.0.0.1:$mgmt/metrics" | awk '/^go_memstats_heap_alloc_bytes /{printf "%d", $2}'
}
base=$(rss)
baseheap=$(heap)
sipp -sf test/sipp/uas.xml -i 127.0.0.1 -p "$uasport" -m "$calls" -nostdin -ci 127.0.0.1 -mi 127.0.0.1 \
	-max_socket 200000 >"$work/uas.out" 2>&1 &
sleep 0.5
timeout $((hold + 60)) sipp 127.0.0.1:"$sipport" -sf test/sipp/uac.xml -s bob -i 127.0.0.1 -p "$uacport" \
	-m "$calls" -r "$rate" -d $((hold * 1000)) -l $((calls + 10)) -nostdin -ci 127.0.0.1 -mi 127.0.0.1 \
	>"$work/uac.out" 2>&1 &
active=0
deadline=$((SECONDS + ramp + 60))
while [ $SECONDS -lt $deadline ]; do
	active=$(curl -s -d '{"jsonrpc":"2.0","id":1,"method":"dlg.stats"}' "http://127.0.0.1:$mgmt/rpc" |
		python3 -c 'import json,sys;print(json.load(sys.stdin)["result"]["active_dialogs"])')
	[ "$active" -ge "$calls" ] && break
	sleep 1
done
sleep 45
peak=$(rss)
peakheap=$(heap)
echo "dialogs active: $active of $calls"
echo "imsproxy VmRSS: ${base} kB at start, ${peak} kB with the dialogs (45 s after the last set-up)"
echo "imsproxy Go heap: ${baseheap} B at start, ${peakheap} B with the dialogs"
if [ "$active" -gt 0 ]; then
	echo "per dialog: $(( (peak - base) * 1024 / active )) bytes resident, $(( (peakheap - baseheap) / active )) bytes of live heap"
fi
[ "$active" -ge "$calls" ]

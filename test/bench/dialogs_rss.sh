#!/usr/bin/env bash
# Resident memory per confirmed dialog: sipp UAC -> imsproxy -> sipp UAS,
# N calls held open (long pause) at RATE calls/s, on 127.0.0.1 only.
#
#   test/bench/dialogs_rss.sh [--calls N] [--rate R]     (defaults 100000, 1000)
#                             [--kamailio] [--profile FILE]
#
# It reads imsproxy's VmRSS and live Go heap (go_memstats_heap_alloc_bytes
# from /metrics right after a GC forced through /debug/pprof/heap?gc=1)
# once the proxy is up, and again 45 s after dlg.stats shows N
# active dialogs (so the transactions of the call set-ups have ended and
# only the dialogs remain), prints the difference per dialog, then stops
# everything (the held calls are not ended cleanly: that is not measured).
# Bounded: the UAC places exactly N calls; every process is killed after
# N/RATE + 180 s at the latest.
#
# --profile FILE saves imsproxy's in-use heap profile with the dialogs held
# (go tool pprof -sample_index=inuse_space FILE): what a held dialog is made of.
#
# --kamailio measures Kamailio instead (installed: see compare.sh), with
# test/bench/kamailio.cfg in the rr flow of compare.sh (record-route, dialog,
# the caller profile; -x tlsf, 1 GB of shared memory): the proportional set
# size (Pss, shared memory split between the processes, so counted once)
# summed over all its processes, and the shared memory in use
# (kamcmd core.shmmem real_used), at start and 45 s after
# dlg.stats_active shows N dialogs.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 2
calls=100000
rate=1000
kamailio=0
profile=
while [ $# -gt 0 ]; do
	case $1 in
	--calls) calls=$2; shift 2 ;;
	--rate) rate=$2; shift 2 ;;
	--kamailio) kamailio=1; shift ;;
	--profile) profile=$2; shift 2 ;;
	*) echo "usage: $0 [--calls N] [--rate R] [--kamailio] [--profile FILE]" >&2; exit 2 ;;
	esac
done
export PATH=$PATH:/usr/local/go/bin
work=$(mktemp -d /tmp/imsdlg-rss.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
. test/bench/lib.sh
sipport=$(free_port); mgmt=$(free_port); uasport=$(free_port); uacport=$(free_port)
ramp=$((calls / rate + 1))
hold=$((ramp + 120))
# sipp_load: the UAS, then the UAC holding every call.
sipp_load() {
	sipp -sf test/sipp/uas.xml -i 127.0.0.1 -p "$uasport" -m "$calls" -nostdin -ci 127.0.0.1 -mi 127.0.0.1 \
		-max_socket 200000 >"$work/uas.out" 2>&1 &
	sleep 0.5
	timeout $((hold + 60)) sipp 127.0.0.1:"$sipport" -sf test/sipp/uac.xml -s bob -i 127.0.0.1 -p "$uacport" \
		-m "$calls" -r "$rate" -d $((hold * 1000)) -l $((calls + 10)) -nostdin -ci 127.0.0.1 -mi 127.0.0.1 \
		>"$work/uac.out" 2>&1 &
}
if ((kamailio)); then
	PATH=$PATH:/usr/sbin
	command -v kamailio >/dev/null && command -v kamcmd >/dev/null ||
		{ echo "$0: kamailio/kamcmd not found (test/bench/compare.sh installs them)" >&2; exit 2; }
	ctl=unix:$work/kamailio.ctl
	mkdir -p "$work/run"
	kamailio -DD -E -f test/bench/kamailio.cfg -l "udp:127.0.0.1:$sipport" -P "$work/kamailio.pid" \
		-Y "$work/run" -w "$work" -m 1024 -M 16 -x tlsf -a no -A WITH_PROFILE \
		-A "UAS1=\"sip:bob@127.0.0.1:$uasport\"" -A "CTL_SOCK=\"$ctl\"" >"$work/kamailio.log" 2>&1 &
	kpid=$!
	for _ in $(seq 100); do kamcmd -s "$ctl" core.psx >/dev/null 2>&1 && break; sleep 0.1; done
	# Pss of the main process and all its children (kB).
	pss() {
		local p n=0 v
		for p in $kpid $(ps -o pid= --ppid "$kpid"); do
			v=$(awk '/^Pss:/ { print $2 }' "/proc/$p/smaps_rollup" 2>/dev/null)
			n=$((n + ${v:-0}))
		done
		echo "$n"
	}
	shm() { kamcmd -s "$ctl" core.shmmem | awk '$1 == "real_used:" { print $2 }'; }
	base=$(pss)
	baseshm=$(shm)
	sipp_load
	active=0
	deadline=$((SECONDS + ramp + 60))
	while [ $SECONDS -lt $deadline ]; do
		active=$(kamcmd -s "$ctl" dlg.stats_active | awk '$1 == "all:" { print $2 }')
		[ "${active:-0}" -ge "$calls" ] && break
		sleep 1
	done
	sleep 45
	peak=$(pss)
	peakshm=$(shm)
	echo "dialogs active: $active of $calls"
	echo "kamailio Pss (all processes): ${base} kB at start, ${peak} kB with the dialogs (45 s after the last set-up)"
	echo "kamailio shared memory real_used: ${baseshm} B at start, ${peakshm} B with the dialogs"
	if [ "${active:-0}" -gt 0 ]; then
		echo "per dialog: $(((peak - base) * 1024 / active)) bytes resident (Pss), $(((peakshm - baseshm) / active)) bytes of shared memory"
	fi
	[ "${active:-0}" -ge "$calls" ]
	exit
fi
build_imsproxy "$PWD" "$work" || exit 2
rr_proxy_yaml "$sipport" "$uasport" "$mgmt" >"$work/p.yaml"
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
sipp_load
active=0
deadline=$((SECONDS + ramp + 60))
while [ $SECONDS -lt $deadline ]; do
	active=$(curl -s -H 'Content-Type: application/json' -d '{"jsonrpc":"2.0","id":1,"method":"dlg.stats"}' "http://127.0.0.1:$mgmt/rpc" |
		python3 -c 'import json,sys;print(json.load(sys.stdin)["result"]["active_dialogs"])')
	[ "$active" -ge "$calls" ] && break
	sleep 1
done
sleep 45
peak=$(rss)
peakheap=$(heap)
if [ -n "$profile" ]; then
	curl -s -o "$profile" "http://127.0.0.1:$mgmt/debug/pprof/heap" && echo "heap profile: $profile"
fi
echo "dialogs active: $active of $calls"
echo "imsproxy VmRSS: ${base} kB at start, ${peak} kB with the dialogs (45 s after the last set-up)"
echo "imsproxy Go heap: ${baseheap} B at start, ${peakheap} B with the dialogs"
if [ "$active" -gt 0 ]; then
	echo "per dialog: $(( (peak - base) * 1024 / active )) bytes resident, $(( (peakheap - baseheap) / active )) bytes of live heap"
fi
[ "$active" -ge "$calls" ]

#!/usr/bin/env bash
# Side-by-side benchmark: the same sipp flows through Kamailio (Debian's
# package, configured by test/bench/kamailio.cfg) and through imsproxy, one
# after the other in one run, on 127.0.0.1 only.
#
#   test/bench/compare.sh [--rates 500,1000,1500,2000] [--duration 15]
#                         [--flows rr,fork] [--proxies kamailio,imsproxy]
#                         [--proxy BIN | --rev REV] [--kamailio BIN]
#                         [--kamailio-mem tlsf|fm|qm] [--latency RATE|auto]
#                         [--perf] [--quiet-wait S] [--uac FILE] [--keep]
#
# Flows (--flows, comma separated):
#   rr    sipp uac.xml -> proxy -> sipp uas.xml: record-routed, a dialog per
#         call, the call in a per-caller dialog profile "caller" (count
#         only). Kamailio: record_route(), dlg_manage(),
#         set_dlg_profile("caller", "$fu"). imsproxy: record_route, dialog
#         module on (its default), limits: [{profile: caller, key: from_uri,
#         max: 0}] on the with_value profile caller.
#   fork  sipp uac.xml -> proxy -> {uas.xml answers, uas_ring.xml rings and
#         is cancelled by the proxy}: parallel fork to two contacts of one
#         AOR, record-routed, a dialog per call, no profile. Kamailio:
#         $ru + append_branch(), t_relay(). imsproxy: two static contacts
#         of equal q (as test/bench/run.sh's fork flow).
#
# For every flow and every rate of --rates (calls/s; "none": no sweep) it
# runs Kamailio, then imsproxy: a fresh proxy process and fresh sipp
# processes per step, the same sipp arguments for both, the proxy stopped
# between steps. Each step places rate*duration calls (-m) and every sipp
# stops after duration+60 s at the latest (-timeout). The caller runs with
# -default_behaviors all,-abortunexp: a provisional response that arrives
# after the 200 (a multi-process proxy may reorder the 180 and the 200 that
# the callee sends back to back) is counted ("late msgs") instead of failing
# the call; every other failure still fails the call.
#
# It prints one markdown table: per flow, rate and proxy the calls/s
# achieved, calls ok and failed, retransmissions (all sipps), messages the
# caller did not expect, the proxy's CPU (utime+stime from /proc of the
# proxy's process and all its descendants, over the window from the start
# to the end of the caller; sipp is not counted) as % of one CPU and per
# call, the ratio imsproxy/Kamailio of CPU per call, whether the step passes
# (every call ok, none failed, retransmissions <= 1 % of the calls), the
# proxy's context switches per call, the CPU of sipp and of everything else
# in the window, and the datagrams the kernel dropped (all sockets, and the
# proxy's); then the highest passing rate per proxy and flow, and the
# machine. test/bench/README.md explains each column.
#
# --latency RATE runs each flow once more per proxy at RATE with the
# capture tool test/bench/latency (AF_PACKET on lo: root or CAP_NET_RAW) and
# prints the added latency per message, p50/p99/max in microseconds.
# "auto" is half the lower of the two proxies' highest passing rates of the
# flow in this run's sweep. Those steps are not in the CPU table (the
# capture itself uses CPU).
#
# The machine may be shared: before each step it waits (at most
# --quiet-wait seconds, default 30) for a second in which the machine is
# less than half a CPU busy, and the table shows, per step, the CPU that
# sipp and everything else ("other": other users, the capture tool, perf)
# used in the window.
#
# --uac FILE is the caller's scenario (in test/sipp; default uac.xml).
# uac_shed.xml also takes a 503 (an overloaded proxy shedding the call,
# imsproxy's tm.shed_congested) and acknowledges it as a UA does; the 503s
# it got (its -trace_counts file) are counted as failed calls, "shed".
#
# --perf records a CPU profile of the proxy during each step (perf record
# -g; the report is left in the step's directory: use with --keep). The
# CPU numbers of such a run include perf's overhead.
#
# imsproxy is built (go build ./cmd/imsproxy) into the work directory unless
# --proxy names a binary; --rev REV builds the committed revision REV
# instead of the working tree (git archive into the work directory).
# sipp (Debian's sip-tester) and Kamailio are installed with apt-get (as
# root, or through sudo -n) when missing; Kamailio's packaged service is
# kept from starting (policy-rc.d) and stopped and disabled if it runs. Kamailio runs in the foreground (-DD -E)
# with its own pid file (-P), runtime dir (-Y) and listen address, never as
# the service, with the memory manager --kamailio-mem (default tlsf; the
# package's default, qm, costs about three times the CPU per call).
#
# Every sipp's and proxy's files go to the work directory, one directory
# per step, removed at the end unless --keep. Exits 2 on a broken setup
# (sipp missing, a build or install failure, a proxy that does not start);
# failed calls are results, not errors (exit 0).
set -uo pipefail

rates=500,1000,1500,2000
duration=15
flows=rr,fork
proxies=kamailio,imsproxy
proxy_bin=
rev=
rev_desc=
kamailio_bin=
kamailio_mem=tlsf
latency=
perf=0
quiet_wait=30
uac_scenario=uac.xml
keep=0
log_level=warn

usage() { sed -n '2,/^set -uo/{/^set -uo/d;s/^# \{0,1\}//;p}' "$0"; }
die() {
	printf 'compare: %s\n' "$*" >&2
	exit 2
}

while (($# > 0)); do
	case $1 in
	--rates) rates=${2:?--rates LIST}; shift 2 ;;
	--duration) duration=${2:?--duration S}; shift 2 ;;
	--flows) flows=${2:?--flows LIST}; shift 2 ;;
	--proxies) proxies=${2:?--proxies LIST}; shift 2 ;;
	--proxy) proxy_bin=${2:?--proxy BIN}; shift 2 ;;
	--rev) rev=${2:?--rev REV}; shift 2 ;;
	--kamailio) kamailio_bin=${2:?--kamailio BIN}; shift 2 ;;
	--kamailio-mem) kamailio_mem=${2:?--kamailio-mem qm|fm|tlsf}; shift 2 ;;
	--latency) latency=${2:?--latency RATE|auto}; shift 2 ;;
	--perf) perf=1; shift ;;
	--quiet-wait) quiet_wait=${2:?--quiet-wait S}; shift 2 ;;
	--keep) keep=1; shift ;;
	--uac) uac_scenario=${2:?--uac FILE}; shift 2 ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; die "unknown argument: $1" ;;
	esac
done
[[ $duration =~ ^[1-9][0-9]*$ ]] || die "--duration must be a positive integer (seconds)"
[[ $quiet_wait =~ ^[0-9]+$ ]] || die "--quiet-wait must be a number of seconds"
rate_list=()
if [[ $rates != none ]]; then
	IFS=, read -r -a rate_list <<<"$rates"
	declare -A seen_rate=()
	for r in "${rate_list[@]}"; do
		[[ $r =~ ^[1-9][0-9]*$ ]] || die "--rates: $r is not a positive integer"
		# A step's results are kept by flow, rate and proxy: a repeat would
		# overwrite the first and print the last twice.
		[[ -z ${seen_rate[$r]:-} ]] || die "--rates: $r is given twice; each rate is one step (run compare.sh again to repeat it)"
		seen_rate[$r]=1
	done
fi
IFS=, read -r -a flow_list <<<"$flows"
for f in "${flow_list[@]}"; do
	[[ $f == rr || $f == fork ]] || die "--flows: unknown flow $f (rr, fork)"
done
IFS=, read -r -a proxy_list <<<"$proxies"
for p in "${proxy_list[@]}"; do
	[[ $p == kamailio || $p == imsproxy ]] || die "--proxies: unknown proxy $p (kamailio, imsproxy)"
done
[[ $kamailio_mem == qm || $kamailio_mem == fm || $kamailio_mem == tlsf ]] || die "--kamailio-mem must be qm, fm or tlsf"
[[ -z $latency || $latency == auto || $latency =~ ^[1-9][0-9]*$ ]] || die "--latency must be a rate or auto"
[[ $latency == auto && ${#rate_list[@]} -eq 0 ]] && die "--latency auto needs a sweep (--rates)"
((${#rate_list[@]} > 0)) || [[ -n $latency ]] || die "nothing to do (--rates none and no --latency)"
timeout=$((duration + 60))

# Binaries named relative to the caller's directory, before the cd.
[[ -n $proxy_bin && $proxy_bin != /* ]] && proxy_bin=$PWD/$proxy_bin
[[ $kamailio_bin == */* && $kamailio_bin != /* ]] && kamailio_bin=$PWD/$kamailio_bin
cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 2
root=$PWD
scen=$root/test/sipp
kcfg=$root/test/bench/kamailio.cfg
[[ $uac_scenario != */* && -f $scen/$uac_scenario ]] || die "--uac: $uac_scenario is not a scenario in test/sipp"
hz=$(getconf CLK_TCK 2>/dev/null) || hz=100
[[ $hz =~ ^[1-9][0-9]*$ ]] || hz=100

work=$(mktemp -d "${TMPDIR:-/tmp}/imsdlg-compare.XXXXXX") || die "mktemp failed"
pids=()      # every background process of ours, for the cleanup
tree_pids=() # proxies: killed with their descendants
cleanup() {
	local p c
	for p in "${tree_pids[@]}"; do
		for c in $(descendants "$p"); do
			kill -KILL "$c" 2>/dev/null
		done
	done
	for p in "${pids[@]}"; do
		kill -0 "$p" 2>/dev/null && kill -KILL "$p" 2>/dev/null
	done
	if ((keep)); then
		printf 'compare: files kept in %s\n' "$work" >&2
	else
		rm -rf "$work"
	fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

as_root() {
	if ((EUID == 0)); then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo -n "$@"
	else
		echo "compare: not root and no sudo: cannot run $*" >&2
		return 1
	fi
}

# ---------------------------------------------------------------- setup

# sipp: Debian's sip-tester, installed like Kamailio when absent (a fresh
# machine has neither).
if ! command -v sipp >/dev/null 2>&1; then
	echo "== installing sipp (apt-get install sip-tester)"
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends sip-tester ||
		{ as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q &&
			as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends sip-tester; } ||
		die "sipp not found and apt-get install sip-tester failed (Debian package sip-tester; scripts/test.sh installs it)"
	command -v sipp >/dev/null 2>&1 || die "sipp not found after installing sip-tester"
fi

# install_kamailio: Debian's package, its service kept from starting.
install_kamailio() {
	local policy=/usr/sbin/policy-rc.d created=0
	echo "== installing kamailio (apt-get install kamailio)"
	if [[ ! -e $policy ]]; then
		# Debian's invoke-rc.d asks this script before starting a service:
		# 101 = not allowed. Removed again after the install.
		printf '#!/bin/sh\nexit 101\n' | as_root tee "$policy" >/dev/null &&
			as_root chmod 755 "$policy" && created=1
	fi
	local rc=0
	as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends kamailio ||
		{ as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q &&
			as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends kamailio; } || rc=1
	((created)) && as_root rm -f "$policy"
	((rc == 0)) || die "apt-get install kamailio failed"
	# Whatever policy was in place: the packaged service must not hold 5060.
	if [[ -d /run/systemd/system ]] && command -v systemctl >/dev/null 2>&1; then
		as_root systemctl stop kamailio.service 2>/dev/null
		as_root systemctl disable kamailio.service 2>/dev/null
	elif [[ -x /etc/init.d/kamailio ]]; then
		as_root /etc/init.d/kamailio stop >/dev/null 2>&1
	fi
}

need_kamailio=0
need_imsproxy=0
for p in "${proxy_list[@]}"; do
	[[ $p == kamailio ]] && need_kamailio=1
	[[ $p == imsproxy ]] && need_imsproxy=1
done
if ((need_kamailio)); then
	if [[ -z $kamailio_bin ]]; then
		kamailio_bin=$(PATH=$PATH:/usr/sbin:/sbin command -v kamailio) || {
			install_kamailio
			kamailio_bin=$(PATH=$PATH:/usr/sbin:/sbin command -v kamailio) || die "kamailio not found after the install"
		}
	fi
	[[ -x $kamailio_bin ]] || die "$kamailio_bin is not executable"
	kamcmd_bin=$(PATH=$PATH:/usr/sbin:/sbin command -v kamcmd) || kamcmd_bin=
	# The packaged service, if it runs, is not ours: say so (it does not
	# disturb the bench, which uses its own ports).
	if [[ -r /run/kamailio/kamailio.pid ]] && kill -0 "$(cat /run/kamailio/kamailio.pid 2>/dev/null)" 2>/dev/null; then
		echo "compare: note: the packaged kamailio service runs (pid $(cat /run/kamailio/kamailio.pid)); not touched" >&2
	fi
	"$kamailio_bin" -c -f "$kcfg" -A WITH_FORK -A WITH_PROFILE -l udp:127.0.0.1:5999 -Y "$work" >"$work/kamailio-check.log" 2>&1 ||
		{ cat "$work/kamailio-check.log" >&2; die "kamailio -c rejects $kcfg"; }
fi
# gobin, build_imsproxy, csv_col: lib.sh.
. "$root/test/bench/lib.sh"
if ((need_imsproxy)) && [[ -z $proxy_bin ]]; then
	if [[ -n $rev ]]; then
		echo "== building ./cmd/imsproxy of $rev"
		build_imsproxy "$root" "$work" "$rev" || die "building imsproxy of $rev failed"
		rev_desc=$(git -C "$root" rev-parse --short "$rev" 2>/dev/null)
		[[ $rev_desc == "$rev" ]] || rev_desc+=" ($rev)"
	else
		echo "== building ./cmd/imsproxy"
		build_imsproxy "$root" "$work" || die "building imsproxy failed"
	fi
	proxy_bin=$work/imsproxy
fi
if ((need_imsproxy)); then
	[[ -x $proxy_bin ]] || die "$proxy_bin is not executable"
fi
latency_bin=
if [[ -n $latency ]]; then
	go=$(gobin) || die "go not found (PATH, /usr/local/go/bin)"
	"$go" build -o "$work/latency" ./test/bench/latency || die "go build ./test/bench/latency failed"
	latency_bin=$work/latency
fi
if ((perf)); then
	command -v perf >/dev/null 2>&1 || die "--perf: perf not found (Debian package linux-perf)"
fi

# ---------------------------------------------------------------- helpers

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

# proc_ticks PID: "pid ticks" (utime+stime, clock ticks) of PID and of all
# its descendants, one line each, from /proc/*/stat.
proc_ticks() {
	cat /proc/[0-9]*/stat 2>/dev/null | awk -v root="$1" '
		{
			# comm (field 2) may hold spaces and parentheses: the fields
			# that follow start after the last ")".
			rest = $0; off = 0
			while ((k = index(rest, ")")) > 0) { off += k; rest = substr(rest, k + 1) }
			n = split(substr($0, off + 2), f, " ")
			if (n < 13) next
			parent[$1] = f[2]; ticks[$1] = f[12] + f[13]
		}
		END {
			for (p in ticks) {
				q = p
				for (d = 0; d < 16 && q != "" && q != 0; d++) {
					if (q == root) { print p, ticks[p]; break }
					q = parent[q]
				}
			}
		}'
}
# descendants PID: PID and its descendants (pids).
descendants() { proc_ticks "$1" | awk '{ print $1 }'; }
sum_ticks() { awk '{ n += $2 } END { print n + 0 }' "$1"; }
# busy_ticks: CPU ticks of the whole machine not idle (/proc/stat).
busy_ticks() { awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8 + $9; exit }' /proc/stat; }
# reaped_ticks: utime+stime of this shell's reaped children (the sipp
# caller once waited for, and the small commands of the script).
reaped_ticks() {
	awk '{ rest = $0; off = 0
		while ((k = index(rest, ")")) > 0) { off += k; rest = substr(rest, k + 1) }
		split(substr($0, off + 2), f, " "); print f[14] + f[15] }' "/proc/$$/stat"
}
# ctx_switches PID: context switches (voluntary and not) of all threads of
# PID and its descendants so far.
ctx_switches() {
	local p
	for p in $(descendants "$1"); do
		cat /proc/"$p"/task/*/status 2>/dev/null
	done | awk '/^(non)?voluntary_ctxt_switches:/ { n += $2 } END { print n + 0 }'
}
# udp_drops: datagrams the kernel dropped for want of socket buffer
# (RcvbufErrors of /proc/net/snmp, this network namespace).
udp_drops() {
	awk '$1 == "Udp:" { if (!h) { for (i = 2; i <= NF; i++) c[$i] = i; h = 1; next } print $c["RcvbufErrors"] + 0; exit }' /proc/net/snmp
}
# socket_drops PORT: datagrams dropped so far by the UDP sockets bound to
# PORT (the last column of /proc/net/udp).
socket_drops() {
	awk -v port="$(printf '%04X' "$1")" '
		NR > 1 { split($2, a, ":"); if (a[2] == port) n += $NF }
		END { print n + 0 }' /proc/net/udp
}
# pid_ticks PID...: utime+stime of live processes.
pid_ticks() {
	local p n=0 t
	for p in "$@"; do
		t=$(proc_ticks "$p" | awk -v p="$p" '$1 == p { print $2 }')
		[[ $t =~ ^[0-9]+$ ]] && n=$((n + t))
	done
	echo "$n"
}
now() { date +%s.%N; }

# sipp_start DIR NAME SCENARIO PORT REMOTE CALLS [args...]: sipp in the
# background in DIR, files DIR/NAME.*; sets SIPP_PID. The arguments are
# test/bench/run.sh's.
sipp_start() {
	local dir=$1 name=$2 scenario=$3 port=$4 remote=$5 calls=$6
	shift 6
	local args=()
	[[ -n $remote ]] && args+=("$remote")
	args+=(-sf "$scen/$scenario" -i 127.0.0.1 -p "$port" -bind_local -t u1
		-m "$calls" -nostdin -ci 127.0.0.1 -mi 127.0.0.1
		-timeout "${timeout}s" -timeout_error
		-trace_err -error_file "$dir/$name.errors.log"
		-trace_stat -stf "$dir/$name.stats.csv" -fd 5
		"$@")
	echo "sipp ${args[*]}" >"$dir/$name.cmd"
	(cd "$dir" && exec sipp "${args[@]}" >"$dir/$name.out" 2>&1) &
	SIPP_PID=$!
	pids+=("$SIPP_PID")
}
# unexpected DIR: messages the caller received but did not expect (the sum
# of the *_Unexp columns of its -trace_counts file).
unexpected() {
	local f
	f=$(ls "$1"/uac_*_counts.csv 2>/dev/null | head -n 1)
	[[ -n $f ]] || { echo "?"; return; }
	awk -F';' '
		NR == 1 { for (i = 1; i <= NF; i++) if ($i ~ /_Unexp$/) u[i] = 1; next }
		{ last = $0 }
		END { n = split(last, f, ";"); s = 0; for (i in u) if (i <= n) s += f[i]; print s }
	' "$f"
}
# shed DIR: the 503s the caller received (the *_503_Recv columns of its
# -trace_counts file; 0 when its scenario takes none).
shed() {
	local f
	f=$(ls "$1"/uac_*_counts.csv 2>/dev/null | head -n 1)
	[[ -n $f ]] || { echo 0; return; }
	awk -F';' '
		NR == 1 { for (i = 1; i <= NF; i++) if ($i ~ /_503_Recv$/) u[i] = 1; next }
		{ last = $0 }
		END { n = split(last, f, ";"); s = 0; for (i in u) if (i <= n) s += f[i]; print s }
	' "$f"
}
epoch() { awk -F'\t' '{ print $NF }' <<<"$1"; }

# ---------------------------------------------------------------- proxies

PROXY_PID=
STOP_SECONDS=
# kamailio_start DIR FLOW PORT UAS1 [UAS2]
kamailio_start() {
	local dir=$1 flow=$2 port=$3 uas1=$4 uas2=${5:-} i
	local defs=(-A "UAS1=\"sip:bob@127.0.0.1:$uas1\"" -A "CTL_SOCK=\"unix:$dir/kamailio.ctl\"")
	[[ $flow == rr ]] && defs+=(-A WITH_PROFILE)
	[[ $flow == fork ]] && defs+=(-A WITH_FORK -A "UAS2=\"sip:bob@127.0.0.1:$uas2\"")
	mkdir -p "$dir/run"
	local args=(-DD -E -f "$kcfg" -l "udp:127.0.0.1:$port" -P "$dir/kamailio.pid" -Y "$dir/run"
		-w "$dir" -m 512 -M 16 -x "$kamailio_mem" -a no "${defs[@]}")
	echo "$kamailio_bin ${args[*]}" >"$dir/proxy.cmd"
	"$kamailio_bin" "${args[@]}" >"$dir/proxy.log" 2>&1 &
	PROXY_PID=$!
	pids+=("$PROXY_PID")
	tree_pids+=("$PROXY_PID")
	# Ready: the SIP port is bound and the ctl process (forked after the
	# UDP receivers) answers.
	wait_bound "$port" "$PROXY_PID" || { cat "$dir/proxy.log" >&2; return 1; }
	for ((i = 0; i < 200; i++)); do
		if [[ -z $kamcmd_bin ]]; then
			sleep 0.5
			break
		fi
		"$kamcmd_bin" -s "unix:$dir/kamailio.ctl" core.psx >"$dir/kamailio.psx" 2>/dev/null && break
		kill -0 "$PROXY_PID" 2>/dev/null || break
		sleep 0.05
	done
	kill -0 "$PROXY_PID" 2>/dev/null || { cat "$dir/proxy.log" >&2; return 1; }
}
# imsproxy_start DIR FLOW PORT UAS1 [UAS2]; sets MGMT_PORT.
MGMT_PORT=
imsproxy_start() {
	local dir=$1 flow=$2 port=$3 uas1=$4 uas2=${5:-} i contacts extra=
	MGMT_PORT=$(free_port)
	contacts="\"sip:bob@127.0.0.1:$uas1\""
	[[ $flow == fork ]] && contacts+=", \"sip:bob@127.0.0.1:$uas2\""
	[[ $flow == rr ]] && extra=$'profiles: {with_value: [caller]}\nlimits: [{profile: caller, key: from_uri, max: 0}]'
	cat >"$dir/imsproxy.yaml" <<EOF
listen: ["udp:127.0.0.1:$port"]
domains: [localhost, 127.0.0.1]
record_route: true
location:
  static:
    "sip:bob@127.0.0.1": [$contacts]
mgmt:
  listen: 127.0.0.1:$MGMT_PORT
log: {level: $log_level, format: text}
tm: {fr_timeout: 30s, fr_inv_timeout: 120s}
$extra
EOF
	echo "$proxy_bin --config $dir/imsproxy.yaml" >"$dir/proxy.cmd"
	"$proxy_bin" --config "$dir/imsproxy.yaml" >"$dir/proxy.log" 2>&1 &
	PROXY_PID=$!
	pids+=("$PROXY_PID")
	tree_pids+=("$PROXY_PID")
	for ((i = 0; i < 200; i++)); do
		if timeout 2 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" &&
			printf "GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n" >&3 &&
			head -n 1 <&3 | grep -q " 200"' _ "$MGMT_PORT" 2>/dev/null; then
			return 0
		fi
		kill -0 "$PROXY_PID" 2>/dev/null || break
		sleep 0.05
	done
	cat "$dir/proxy.log" >&2
	return 1
}
# imsproxy_http VERB PATH [BODY]: the body of the management server's
# answer (HTTP/1.0, so neither chunked nor kept alive).
imsproxy_http() {
	timeout 5 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" &&
		printf "%s %s HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" "$2" "$3" "${#4}" "$4" >&3 &&
		sed "1,/^\r\{0,1\}$/d" <&3' _ "$MGMT_PORT" "$1" "$2" "${3:-}" 2>/dev/null
}
# imsproxy_rpc METHOD: the JSON-RPC answer of the management server.
imsproxy_rpc() {
	imsproxy_http POST /rpc "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"$1\"}"
}
# proxy_stop NAME: SIGTERM, then SIGKILL to what is left after 10 s.
proxy_stop() {
	local name=$1 i left t0
	left=$(descendants "$PROXY_PID")
	t0=$(now)
	kill -TERM "$PROXY_PID" 2>/dev/null
	for ((i = 0; i < 200; i++)); do
		kill -0 "$PROXY_PID" 2>/dev/null || break
		sleep 0.05
	done
	STOP_SECONDS=$(awk -v a="$t0" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')
	if kill -0 "$PROXY_PID" 2>/dev/null; then
		if [[ $name == imsproxy ]]; then
			# Go prints every goroutine's stack on SIGQUIT: what it waits on.
			kill -QUIT "$PROXY_PID" 2>/dev/null
			sleep 1
			echo "compare: $name still running 10 s after SIGTERM: killed (goroutine dump in its proxy.log)" >&2
		else
			echo "compare: $name still running 10 s after SIGTERM: killed" >&2
		fi
		STOP_SECONDS=">10"
	fi
	for i in $left; do
		kill -KILL "$i" 2>/dev/null
	done
	wait "$PROXY_PID" 2>/dev/null
}

# ---------------------------------------------------------------- steps

# wait_quiet: the machine is shared: before a step, wait (at most
# --quiet-wait seconds) for a second in which the other processes use less
# than half a CPU.
wait_quiet() {
	local deadline=$((SECONDS + quiet_wait)) a b busy
	while :; do
		a=$(busy_ticks)
		sleep 1
		b=$(busy_ticks)
		busy=$(((b - a) * 100 / hz))
		((busy < 50)) && return 0
		if ((SECONDS >= deadline)); then
			printf '   (the machine is busy: %d %% of a CPU used by others; going on)\n' "$busy"
			return 0
		fi
	done
}

declare -A R # results: R[flow/rate/proxy/field]
rows=()      # flow/rate/proxy of each CPU step, in order
lat_rows=()  # flow/rate/proxy of each latency step

# step PROXY FLOW RATE [lat]: one measured run; results in R.
step() {
	local proxy=$1 flow=$2 rate=$3 mode=${4:-}
	local id=$flow/$rate/$proxy${mode:+/$mode}
	local dir=$work/$flow-$rate-$proxy${mode:+-$mode}
	local calls=$((rate * duration))
	mkdir -p "$dir"
	local ps pa pr=0 pc
	ps=$(free_port)
	pa=$(free_port)
	[[ $flow == fork ]] && pr=$(free_port)
	pc=$(free_port)
	wait_quiet
	printf '== %-5s %5s cps  %-8s %s\n' "$flow" "$rate" "$proxy" "${mode:+(latency capture)}"
	if [[ $proxy == kamailio ]]; then
		kamailio_start "$dir" "$flow" "$ps" "$pa" "$pr" || die "$id: kamailio did not start (log: $dir/proxy.log)"
	else
		imsproxy_start "$dir" "$flow" "$ps" "$pa" "$pr" || die "$id: imsproxy did not start (log: $dir/proxy.log)"
	fi
	local uas=() ok=1
	sipp_start "$dir" uas uas.xml "$pa" "" "$calls"
	uas+=("$SIPP_PID")
	wait_bound "$pa" "$SIPP_PID" || ok=0
	if [[ $flow == fork ]]; then
		sipp_start "$dir" uas_ring uas_ring.xml "$pr" "" "$calls"
		uas+=("$SIPP_PID")
		wait_bound "$pr" "$SIPP_PID" || ok=0
	fi
	((ok)) || { proxy_stop "$proxy"; die "$id: a sipp UAS did not start (see $dir)"; }
	local lat_pid=
	if [[ $mode == lat ]]; then
		"$latency_bin" -port "$ps" >"$dir/latency.out" 2>"$dir/latency.err" &
		lat_pid=$!
		pids+=("$lat_pid")
		local i
		for ((i = 0; i < 100; i++)); do
			grep -q capturing "$dir/latency.err" 2>/dev/null && break
			kill -0 "$lat_pid" 2>/dev/null || break
			sleep 0.05
		done
		grep -q capturing "$dir/latency.err" 2>/dev/null ||
			{ cat "$dir/latency.err" >&2; proxy_stop "$proxy"; die "$id: the latency capture did not start"; }
	fi
	local perf_pid=
	if ((perf)); then
		perf record -q -F 499 -g -o "$dir/perf.data" -p "$(descendants "$PROXY_PID" | paste -sd,)" \
			>"$dir/perf.log" 2>&1 &
		perf_pid=$!
		pids+=("$perf_pid")
	fi
	# The window: from the caller's start to its end.
	local t0 t1 m0 m1 s0 s1 d0 d1 x0 x1
	proc_ticks "$PROXY_PID" >"$dir/cpu.before"
	m0=$(busy_ticks)
	d0=$(udp_drops)
	x0=$(ctx_switches "$PROXY_PID")
	s0=$(($(reaped_ticks) + $(pid_ticks "${uas[@]}")))
	t0=$(now)
	sipp_start "$dir" uac "$uac_scenario" "$pc" "127.0.0.1:$ps" "$calls" -s bob -r "$rate" \
		-default_behaviors all,-abortunexp -trace_counts
	local uac=$SIPP_PID
	wait "$uac"
	R[$id/uac_rc]=$?
	t1=$(now)
	proc_ticks "$PROXY_PID" >"$dir/cpu.after"
	m1=$(busy_ticks)
	d1=$(udp_drops)
	R[$id/proxy_drops]=$(socket_drops "$ps")
	x1=$(ctx_switches "$PROXY_PID")
	s1=$(($(reaped_ticks) + $(pid_ticks "${uas[@]}")))
	if [[ -n $perf_pid ]]; then
		kill -INT "$perf_pid" 2>/dev/null
		wait "$perf_pid" 2>/dev/null
		{
			perf report -i "$dir/perf.data" --stdio --no-children -g none --sort dso 2>/dev/null | grep -v '^#' | grep .
			echo
			perf report -i "$dir/perf.data" --stdio --no-children -g none --percent-limit 0.3 \
				--sort dso,sym 2>/dev/null | grep -v '^#' | grep .
		} >"$dir/perf.txt"
	fi
	if [[ -n $lat_pid ]]; then
		kill -TERM "$lat_pid" 2>/dev/null
		wait "$lat_pid" 2>/dev/null
	fi
	local p
	for p in "${uas[@]}"; do
		wait "$p"
	done
	# What the proxy says it did (dialogs), for the record.
	if [[ $proxy == kamailio && -n $kamcmd_bin ]]; then
		"$kamcmd_bin" -s "unix:$dir/kamailio.ctl" stats.get_statistics dialog: >"$dir/dialog.stats" 2>&1
		R[$id/dialogs]=$(sed -n 's/^dialog:processed_dialogs = //p' "$dir/dialog.stats")
	elif [[ $proxy == imsproxy ]]; then
		imsproxy_rpc dlg.stats >"$dir/dialog.stats"
		R[$id/dialogs]=$(grep -o '"processed_dialogs":[0-9]*' "$dir/dialog.stats" | cut -d: -f2)
		# Readers the UDP read watchdog woke (udp.read_watchdog).
		imsproxy_http GET /metrics >"$dir/metrics.txt"
		R[$id/kicks]=$(sed -n 's/^imsdlg_transport_udp_read_kicks_total //p' "$dir/metrics.txt")
	fi
	proxy_stop "$proxy"
	R[$id/stop]=$STOP_SECONDS

	# Results.
	local f=$dir/uac.stats.csv okc fail start end retrans=0 x r
	okc=$(csv_col "$f" 'SuccessfulCall(C)')
	fail=$(csv_col "$f" 'FailedCall(C)')
	start=$(epoch "$(csv_col "$f" StartTime)")
	end=$(epoch "$(csv_col "$f" CurrentTime)")
	for r in uac uas uas_ring; do
		[[ -f $dir/$r.stats.csv ]] || continue
		x=$(csv_col "$dir/$r.stats.csv" 'Retransmissions(C)')
		[[ $x =~ ^[0-9]+$ ]] && retrans=$((retrans + x))
		if [[ $r != uac ]]; then
			x=$(csv_col "$dir/$r.stats.csv" 'FailedCall(C)')
			[[ $x =~ ^[0-9]+$ && $fail =~ ^[0-9]+$ ]] && fail=$((fail + x))
		fi
	done
	# A call shed with 503 ends sipp's scenario "successfully": it is a
	# failed call.
	local shed_n
	shed_n=$(shed "$dir")
	if [[ $shed_n =~ ^[1-9][0-9]*$ && $okc =~ ^[0-9]+$ && $fail =~ ^[0-9]+$ ]]; then
		okc=$((okc - shed_n))
		fail=$((fail + shed_n))
	fi
	R[$id/shed]=$shed_n
	R[$id/shed_note]=
	[[ $shed_n =~ ^[1-9][0-9]*$ ]] && R[$id/shed_note]=" ($shed_n shed with 503)"
	R[$id/calls]=$calls
	R[$id/drops]=$((d1 - d0))
	R[$id/ok]=$okc
	R[$id/failed]=$fail
	R[$id/retrans]=$retrans
	R[$id/unexp]=$(unexpected "$dir")
	if [[ $okc =~ ^[0-9]+$ && $start =~ ^[0-9.]+$ && $end =~ ^[0-9.]+$ ]]; then
		R[$id/cps]=$(awk -v n="$okc" -v s="$start" -v e="$end" 'BEGIN { printf "%.0f", (e > s) ? n / (e - s) : 0 }')
	else
		R[$id/cps]=?
	fi
	local b a
	b=$(sum_ticks "$dir/cpu.before")
	a=$(sum_ticks "$dir/cpu.after")
	R[$id/cpu]=$(awk -v b="$b" -v a="$a" -v hz="$hz" -v t0="$t0" -v t1="$t1" \
		'BEGIN { printf "%.1f", (a - b) / hz / (t1 - t0) * 100 }')
	# Everything else the machine ran in the window (other users, the
	# capture tool, perf), as % of one CPU: a busy neighbour makes a step
	# noisy.
	R[$id/other]=$(awk -v m=$((m1 - m0)) -v p=$((a - b)) -v s=$((s1 - s0)) -v hz="$hz" -v t0="$t0" -v t1="$t1" \
		'BEGIN { o = (m - p - s) / hz / (t1 - t0) * 100; printf "%.0f", (o < 0) ? 0 : o }')
	R[$id/sipp]=$(awk -v s=$((s1 - s0)) -v hz="$hz" -v t0="$t0" -v t1="$t1" 'BEGIN { printf "%.0f", s / hz / (t1 - t0) * 100 }')
	if [[ $okc =~ ^[1-9][0-9]*$ ]]; then
		R[$id/cpu_call]=$(awk -v b="$b" -v a="$a" -v hz="$hz" -v n="$okc" 'BEGIN { printf "%.0f", (a - b) / hz / n * 1e6 }')
		R[$id/cs_call]=$(awk -v x=$((x1 - x0)) -v n="$okc" 'BEGIN { printf "%.1f", x / n }')
	else
		R[$id/cpu_call]=-
		R[$id/cs_call]=-
	fi
	# Per process (Kamailio: the roles of core.psx), for the record.
	awk 'NR == FNR { b[$1] = $2; next } { printf "%s %d\n", $1, $2 - b[$1] }' \
		"$dir/cpu.before" "$dir/cpu.after" | sort -k2,2nr >"$dir/cpu.per-process"
	local pass=no
	if [[ $fail == 0 && $okc == "$calls" && $retrans =~ ^[0-9]+$ ]] && ((retrans * 100 <= calls)); then
		pass=yes
	fi
	R[$id/pass]=$pass
	if [[ $mode == lat ]]; then
		lat_rows+=("$id")
		R[$id/lat]=$(awk '$1 == "all" { print $2, $3, $4, $5 }' "$dir/latency.out")
		R[$id/lat_drops]=$(sed -n 's/^capture: .*, \([0-9]*\) dropped.*/\1/p' "$dir/latency.out")
	else
		rows+=("$id")
	fi
	printf '   %s cps, %s ok, %s failed%s, %s retrans, %s late msgs, CPU %s %% (%s us/call, %s context switches/call), sipp %s %%, other %s %%, %s UDP drops (%s by the proxy), %s dialogs%s, exit %s s after SIGTERM, pass: %s\n' \
		"${R[$id/cps]}" "$okc" "$fail" "${R[$id/shed_note]}" "$retrans" "${R[$id/unexp]}" "${R[$id/cpu]}" "${R[$id/cpu_call]}" \
		"${R[$id/cs_call]}" "${R[$id/sipp]}" "${R[$id/other]}" "${R[$id/drops]}" "${R[$id/proxy_drops]}" "${R[$id/dialogs]:-?}" "${R[$id/kicks]:+, ${R[$id/kicks]} read kicks}" "${R[$id/stop]}" "$pass"
}

started=$(date -u '+%Y-%m-%d %H:%M UTC')
for flow in "${flow_list[@]}"; do
	for rate in "${rate_list[@]}"; do
		for proxy in "${proxy_list[@]}"; do
			step "$proxy" "$flow" "$rate"
		done
	done
done

# highest FLOW PROXY: the highest passing rate of the sweep (0: none).
highest() {
	local best=0 r
	for r in "${rate_list[@]}"; do
		[[ ${R[$1/$r/$2/pass]:-no} == yes ]] && ((r > best)) && best=$r
	done
	echo "$best"
}

if [[ -n $latency ]]; then
	for flow in "${flow_list[@]}"; do
		rate=$latency
		if [[ $latency == auto ]]; then
			rate=0
			for proxy in "${proxy_list[@]}"; do
				h=$(highest "$flow" "$proxy")
				if ((rate == 0 || h < rate)); then rate=$h; fi
			done
			rate=$((rate / 2))
			if ((rate == 0)); then
				echo "compare: --latency auto: no passing rate for $flow: skipped" >&2
				continue
			fi
		fi
		for proxy in "${proxy_list[@]}"; do
			step "$proxy" "$flow" "$rate" lat
		done
	done
fi

# ---------------------------------------------------------------- report

kv=
((need_kamailio)) && kv=$("$kamailio_bin" -v 2>/dev/null | sed -n 's/^version: //p' | head -n 1 | sed 's/[[:space:]]*$//')
if [[ -n $rev_desc ]]; then
	rev=$rev_desc
elif [[ -n $proxy_bin && $proxy_bin != "$work/imsproxy" ]]; then
	rev=$proxy_bin
else
	rev=$(git -C "$root" rev-parse --short HEAD 2>/dev/null)
	[[ -n $(git -C "$root" status --porcelain 2>/dev/null) ]] && rev+=" + uncommitted changes"
fi
echo
echo "## imsproxy vs Kamailio, $started"
echo
echo "Machine: $(nproc) CPUs, $(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1), Linux $(uname -r)."
echo "imsproxy ${rev:-?}${kv:+; $kv}; sipp $(sipp -v 2>/dev/null | sed -n 's/.*SIPp \(v[^ -]*\).*/\1/p' | head -n 1); UDP, $duration s per step, loopback."
if ((${#rows[@]} > 0)); then
	echo
	echo "| flow | rate | proxy | cps | ok | failed | retrans | late msgs | CPU % | CPU us/call | CPU ratio | pass | ctx sw/call | sipp CPU % | other CPU % | UDP drops (proxy) |"
	echo "|---|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|---|--:|--:|--:|--:|"
	for id in "${rows[@]}"; do
		IFS=/ read -r flow rate proxy <<<"$id"
		ratio=
		if [[ $proxy == imsproxy ]]; then
			k=${R[$flow/$rate/kamailio/cpu_call]:-}
			m=${R[$id/cpu_call]}
			if [[ $k =~ ^[1-9][0-9]*$ && $m =~ ^[0-9]+$ ]]; then
				ratio=$(awk -v m="$m" -v k="$k" 'BEGIN { printf "%.2f", m / k }')
			fi
		fi
		printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$flow" "$rate" "$proxy" \
			"${R[$id/cps]}" "${R[$id/ok]}" "${R[$id/failed]}" "${R[$id/retrans]}" "${R[$id/unexp]}" \
			"${R[$id/cpu]}" "${R[$id/cpu_call]}" "${ratio:-}" "${R[$id/pass]}" "${R[$id/cs_call]}" "${R[$id/sipp]}" \
			"${R[$id/other]}" "${R[$id/drops]} (${R[$id/proxy_drops]})"
	done
	echo
	echo "Highest passing rate (of ${rates} cps; 0: none):"
	echo
	for flow in "${flow_list[@]}"; do
		line="- $flow:"
		for proxy in "${proxy_list[@]}"; do
			line+=" $proxy $(highest "$flow" "$proxy"),"
		done
		echo "${line%,}"
	done
fi
if ((${#lat_rows[@]} > 0)); then
	echo
	echo "Added latency per relayed message (capture on lo, out minus in):"
	echo
	echo "| flow | rate | proxy | cps | failed | messages | p50 us | p99 us | max us | capture drops | other CPU % |"
	echo "|---|--:|---|--:|--:|--:|--:|--:|--:|--:|--:|"
	for id in "${lat_rows[@]}"; do
		IFS=/ read -r flow rate proxy _ <<<"$id"
		read -r n p50 p99 mx <<<"${R[$id/lat]:-? ? ? ?}"
		printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$flow" "$rate" "$proxy" \
			"${R[$id/cps]}" "${R[$id/failed]}" "$n" "$p50" "$p99" "$mx" "${R[$id/lat_drops]:-?}" "${R[$id/other]}"
	done
fi
exit 0

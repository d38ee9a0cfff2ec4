#!/bin/bash
# Repeated side-by-side pairs: compare.sh's step of one flow at one rate,
# Kamailio then imsproxy, run N times in a row, and the ratio of CPU per
# call (imsproxy/Kamailio) of each pair with their median. One pair moves
# 5-10 % from run to run on a shared machine; the median of several says
# more than any one of them.
#
#   test/bench/pairs.sh [--flow rr|fork] [--rate CPS] [--runs N]
#                       [--proxy BIN | --rev REV] [--duration S]
#                       [--quiet-wait S]
#
# Defaults: fork, 1500 cps, 5 runs, 15 s per step, --quiet-wait 10, and an
# imsproxy built once from the working tree (or --rev REV) for all runs.
# Each run is a compare.sh of its own (fresh proxies and sipps, the same
# checks); a run whose steps did not both pass, or that another process
# disturbed (its "other CPU %" above 5), is printed and left out of the
# median. Prints one line per run and the median; exit 2 on a broken setup.
set -uo pipefail

flow=fork
rate=1500
runs=5
proxy_bin=
rev=
duration=15
quiet_wait=10

usage() { sed -n '2,/^set -uo/{/^set -uo/d;s/^# \{0,1\}//;p}' "$0"; }
die() {
	printf 'pairs: %s\n' "$*" >&2
	exit 2
}

while (($# > 0)); do
	case $1 in
	--flow) flow=${2:?--flow rr|fork}; shift 2 ;;
	--rate) rate=${2:?--rate CPS}; shift 2 ;;
	--runs) runs=${2:?--runs N}; shift 2 ;;
	--proxy) proxy_bin=${2:?--proxy BIN}; shift 2 ;;
	--rev) rev=${2:?--rev REV}; shift 2 ;;
	--duration) duration=${2:?--duration S}; shift 2 ;;
	--quiet-wait) quiet_wait=${2:?--quiet-wait S}; shift 2 ;;
	-h | --help) usage; exit 0 ;;
	*) usage >&2; die "unknown argument: $1" ;;
	esac
done
[[ $flow == rr || $flow == fork ]] || die "--flow: unknown flow $flow (rr, fork)"
[[ $rate =~ ^[1-9][0-9]*$ ]] || die "--rate must be a positive integer (calls/s)"
[[ $runs =~ ^[1-9][0-9]*$ ]] && ((runs <= 50)) || die "--runs must be 1..50"
[[ $duration =~ ^[1-9][0-9]*$ ]] || die "--duration must be a positive integer (seconds)"
[[ $quiet_wait =~ ^[0-9]+$ ]] || die "--quiet-wait must be a number of seconds"
[[ -n $proxy_bin && -n $rev ]] && die "--proxy and --rev exclude each other"
[[ -n $proxy_bin && $proxy_bin != /* ]] && proxy_bin=$PWD/$proxy_bin
[[ -z $proxy_bin || -x $proxy_bin ]] || die "--proxy $proxy_bin: not an executable"

cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 2
work=$(mktemp -d "${TMPDIR:-/tmp}/imsdlg-pairs.XXXXXX") || die "mktemp failed"
trap 'rm -rf "$work"' EXIT
# build_imsproxy: lib.sh.
. test/bench/lib.sh
if [[ -z $proxy_bin ]]; then
	# One build for every run, so that each compares the same binary.
	build_imsproxy "$PWD" "$work" "$rev" || die "building imsproxy failed"
	proxy_bin=$work/imsproxy
fi

# compare.sh's table row: | flow | rate | proxy | cps | ok | failed |
# retrans | late | CPU % | CPU us/call | ratio | pass | ctx | sipp | other | drops |
ratios=()
for ((i = 1; i <= runs; i++)); do
	out=$work/run$i.txt
	test/bench/compare.sh --proxy "$proxy_bin" --rates "$rate" --flows "$flow" \
		--duration "$duration" --quiet-wait "$quiet_wait" >"$out" 2>&1
	rc=$?
	((rc == 0)) || { cat "$out" >&2; die "run $i: compare.sh exited $rc"; }
	row() { awk -F' *[|] *' -v f="$flow" -v r="$rate" -v p="$1" '$2 == f && $3 == r && $4 == p' "$out"; }
	k=$(row kamailio)
	m=$(row imsproxy)
	[[ -n $k && -n $m ]] || { cat "$out" >&2; die "run $i: no result rows in compare.sh's table"; }
	read -r kus kpass kother < <(awk -F' *[|] *' '{ print $11, $13, $16 }' <<<"$k")
	read -r ius ratio ipass iother < <(awk -F' *[|] *' '{ print $11, $12, $13, $16 }' <<<"$m")
	verdict=counted
	if [[ $kpass != yes || $ipass != yes ]]; then
		verdict="left out (passed: Kamailio $kpass, imsproxy $ipass)"
	elif awk -v a="$kother" -v b="$iother" 'BEGIN { exit !(a > 5 || b > 5) }'; then
		verdict="left out (other CPU: $kother % / $iother %)"
	else
		ratios+=("$ratio")
	fi
	printf 'run %d: %s %s cps, Kamailio %s us/call, imsproxy %s us/call, ratio %s, %s\n' \
		"$i" "$flow" "$rate" "$kus" "$ius" "$ratio" "$verdict"
done
if ((${#ratios[@]} == 0)); then
	echo "median: none (no run counted)"
	exit 0
fi
printf '%s\n' "${ratios[@]}" | sort -g | awk '{ v[NR] = $1 } END {
	m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
	printf "median ratio imsproxy/Kamailio: %.2f of %d runs (range %.2f-%.2f)\n", m, NR, v[1], v[NR]
}'

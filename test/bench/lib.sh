# Shell functions the benchmark scripts of test/bench share; sourced, not run.

# csv_col FILE COLUMN: the named column of the last line of a sipp stats CSV
# (-trace_stat), "?" when the file or the column is missing.
csv_col() {
	awk -F';' -v col="$2" '
		NR == 1 { for (i = 1; i <= NF; i++) if ($i == col) c = i; next }
		{ last = $0 }
		END { if (!c || last == "") { print "?"; exit } split(last, f, ";"); print f[c] }
	' "$1" 2>/dev/null
}

# free_port: a TCP/UDP port number free on 127.0.0.1 right now.
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }

# rr_proxy_yaml SIP_PORT UAS_PORT MGMT_PORT: imsproxy's config for the
# record-routed flow (sip:bob@127.0.0.1 -> the UAS), the management port
# with pprof (a GC can be forced), warnings only.
rr_proxy_yaml() {
	cat <<YAML
listen: ["udp:127.0.0.1:$1"]
domains: [127.0.0.1]
location: {static: {"sip:bob@127.0.0.1": ["sip:bob@127.0.0.1:$2"]}}
mgmt: {listen: "127.0.0.1:$3", pprof: true}
log: {level: warn}
YAML
}

# gobin: the go command (PATH, else /usr/local/go/bin/go); fails when there
# is none.
gobin() {
	if command -v go >/dev/null 2>&1; then
		command -v go
	elif [[ -x /usr/local/go/bin/go ]]; then
		echo /usr/local/go/bin/go
	else
		return 1
	fi
}

# build_imsproxy ROOT WORK [REV]: builds ./cmd/imsproxy of the repository at
# ROOT into WORK/imsproxy, from the working tree or, with REV, from that
# committed revision exported (git archive) into WORK/src (the working tree
# is not touched). Says on stderr what failed and returns 1.
build_imsproxy() {
	local root=$1 work=$2 rev=${3:-} go
	go=$(gobin) || { echo "go not found (PATH, /usr/local/go/bin)" >&2; return 1; }
	if [[ -z $rev ]]; then
		(cd "$root" && "$go" build -o "$work/imsproxy" ./cmd/imsproxy) ||
			{ echo "go build ./cmd/imsproxy failed" >&2; return 1; }
		return 0
	fi
	mkdir -p "$work/src" && git -C "$root" archive --format=tar "$rev" | tar -x -C "$work/src" ||
		{ echo "git archive $rev failed" >&2; return 1; }
	(cd "$work/src" && "$go" build -o "$work/imsproxy" ./cmd/imsproxy) ||
		{ echo "go build ./cmd/imsproxy of $rev failed" >&2; return 1; }
}

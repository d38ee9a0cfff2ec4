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

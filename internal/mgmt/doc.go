// Package mgmt owns the daemon's management HTTP server: the JSON-RPC 2.0
// endpoint (POST /rpc) through which operators and tools inspect and act on
// the proxy, plus /metrics (Prometheus), /healthz (the process is alive) and
// /readyz (the process can serve SIP).
//
// Other packages contribute RPC methods by calling Server.Register with a
// Handler; a handler decodes its arguments with DecodeParams and reports
// failures as *Error values (InvalidParams, NotFound, ...), which become
// JSON-RPC error objects. The package knows nothing of SIP.
//
// The server has no authentication: it is meant to listen on a loopback or
// management interface only.
package mgmt

// Command dlgctl is the command line client of imsproxy's management API
// (JSON-RPC 2.0 at POST http://HOST:PORT/rpc): it lists, shows and ends
// dialogs, reads profile sizes and counters, and can call any method raw.
//
//	dlgctl [--addr HOST:PORT] [-o table|json] [--timeout 5s] COMMAND [ARGS]
//
//	dlgctl dlg list [--ctx]
//	dlgctl dlg get       --callid X --ftag Y [--ttag Z] | --id H_ENTRY:H_ID
//	dlgctl dlg terminate --callid X --ftag Y [--ttag Z] | --id H_ENTRY:H_ID
//	                     [--side caller|callee|both] [--reason TEXT] [--header "Name: value"]...
//	dlgctl dlg end       --id H_ENTRY:H_ID (or --callid ...), same options as terminate
//	dlgctl profile size NAME [VALUE]
//	dlgctl stats
//	dlgctl version
//	dlgctl call METHOD [JSON-PARAMS]
//
// The address defaults to $DLGCTL_ADDR, else 127.0.0.1:8080. Global flags
// may also follow the command, so a flag can be appended to a command line
// recalled from the shell history.
//
// Output is a table for people; -o json prints the method's result exactly
// as the daemon returned it (pretty-printed), so scripts see the API's own
// contract rather than a client-side rendering of it. `stats -o json`
// prints {"tm": <tm.stats>, "dlg": <dlg.stats>}; `call` always prints JSON.
//
// Exit status: 0 done; 1 the daemon refused the call (a JSON-RPC error,
// printed as "dlgctl: METHOD: MESSAGE (code N)") or answered something that
// is not JSON-RPC; 2 bad usage, or the daemon could not be reached or did
// not answer within --timeout.
//
// dlgctl deliberately imports no package of this module: it speaks only the
// documented JSON protocol, so it keeps working against a daemon of another
// version and proves that the API is usable on its own.
package main

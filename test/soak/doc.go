// Package soak holds the long fault-injection run of issue 15 §15: calls at
// a steady rate for half an hour while Redis restarts (with and without its
// data) and stalls, the callee dies and comes back, 1 % of messages are
// lost and malformed UDP and idle TCP connections arrive beside the load;
// at the end nothing may be left (dialogs, transactions, Redis counts and
// records) and goroutines and heap must be back at their baseline.
//
// It is behind the build tag soak, so scripts/test.sh does not run it:
//
//	test/soak/run.sh                       # 30 minutes at 1200 calls/s
//	test/soak/run.sh -soak.duration 5m -soak.rate 300
package soak

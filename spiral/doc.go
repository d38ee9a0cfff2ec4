// Package spiral decides whether an initial request that reaches the proxy
// belongs to a dialog it already holds: DESIGN §4 "Spirals", seed 002 §5.9
// detect_spirals.
//
// A request that comes back through an application server (S-CSCF → AS →
// S-CSCF) must join its dialog, not create a second one. Kamailio decides
// this on Call-ID + From-tag alone, so an upstream fork or a replayed INVITE
// is taken for a spiral (DESIGN §8). Classify also requires a marker of ours
// on the request: one of our Route or Record-Route entries carrying the
// dialog's did cookie, or one of our Via entries below the top.
//
// The package is a pure classifier: no I/O, no goroutines, no clock, no
// package-level mutable state. It reads the message without writing to it
// and does not import tm: what is "ours" is the caller's (tm.Sender's IsOurURI
// and IsOurVia).
package spiral

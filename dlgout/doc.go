// Package dlgout owns the callee legs of one dialog: the dlg_out entries of
// Kamailio's ims_dialog (seed 002), one per To-tag a callee (or a forking
// proxy downstream) put in a 1xx or 2xx to the dialog-creating INVITE.
//
// A proxied INVITE that forks can hold several early legs at once, from one
// branch or from several. Set keeps them in creation order with, per leg,
// what a request this proxy generates on that leg needs (RFC 3261 §12.1.2,
// §12.2.1.1): remote target, route set from us towards the callee, the
// highest CSeq seen in each direction, the transport and source the leg's
// replies came from, and the leg's state. It also remembers which leg
// answered, so that a BYE goes to that leg and not to the first one (a
// Kamailio bug, DESIGN §8), and prunes the others when the INVITE
// transaction ends.
//
// The package is pure: no I/O, no goroutines, no clock (time is passed in),
// no package-level mutable state. A Set is not safe for concurrent use; the
// dialog module calls it under the lock of the dialog that owns it.
//
// Messages are only read, never written: headers are taken from the parsed
// header list rather than through sipgo's accessors (To(), Contact(), ...),
// which cache lazily parsed headers inside the message and, for repeated
// headers, return the last one instead of the first.
package dlgout

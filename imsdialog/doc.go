// Package imsdialog is the IMS dialog module of imsdlg: it tracks the
// dialogs created by proxied INVITEs, with several early callee legs per
// dialog (dlgout), spiral detection (spiral), and terminates calls in any
// state (early: CANCEL down, final reply up; confirmed: BYE both ways),
// after Kamailio's ims_dialog and OpenSIPS's dialog modules.
//
// # The cell and the manager
//
// A dialog is a Cell: a pure value holding the life cycle (state, end
// reason, times), the caller leg (remote target, route set, CSeq), the
// callee legs (dlgout.Set), the INVITE's CSeq, variables and flags. Its one
// entry point is Step(now, Event) []Action, in the shape of etcd raft's
// RawNode: events carry facts read off messages and timers (a reply's
// branch, code, To tag, Contact, Record-Route and CSeq; a request within
// the dialog; the INVITE's outcome; a timeout; a terminate command; a BYE
// answered), never the messages; actions carry what to do, ready to be
// done (a request to send, built to the last header; a reply upstream; a
// timer to arm; a state change; a callback to fire; profiles to release; a
// change to persist). Every decision of the module (which leg answered,
// what a second or late 2xx gets, where a BYE goes with which route set
// and CSeq, how an early call is ended, what a timeout does) is taken in
// Step and table-tested in cell_test.go without sockets or clock.
//
// The Manager is the I/O around the cells: the sharded table of Dialogs
// (hash_size entries, each with its own lock), the timers, the tm module
// (a middleware on the request route and an observer of transactions, see
// Module), and the plug-ins given to New: a Limiter (call limits, package
// calllimit), a Persister (db_mode, package dlgpersist) and a StateFunc
// (E_DLG_STATE_CHANGED, package events). imsdialog imports tm, dlgout and
// spiral only, so it embeds without Redis.
//
// # The usage loop
//
// For every event, whoever saw it (tm's goroutine of a request or reply, a
// timer, a management call) does the same three steps:
//
//	d.mu.Lock()
//	acts := d.cell.Step(now, ev)   // decide
//	m.timersLocked(d, acts)        // arm and stop the dialog's timers
//	d.mu.Unlock()
//	m.run(d, acts, params)         // send, reply, callbacks, plug-ins
//
// Timers are handled under the lock so that a timer never outlives the
// decision that stopped it; everything that may block or call user code
// runs after the lock is released.
//
// # Goroutines
//
// The module starts one kind of goroutine of its own: the admission of a
// new dialog when the Limiter has limits (Admit may wait on Redis, so the
// INVITE answers tm.Defer and the admission goroutine calls Decide); Close
// waits for them. Everything else runs on goroutines others own: tm's
// (requests, replies, the final reply of a BYE the module sent, through
// tm.Sender.Send), the clock's timers (runtime timers, no goroutine until
// they fire), and the callers of the management methods. A confirmed call
// that is only held costs no goroutine.
//
// # Lock order
//
// A Dialog's mu, then (briefly, inside insert/remove/lookups) a table
// entry's mu. Never the other way round: table lookups return a Dialog and
// release the entry before the dialog is locked. No lock is held while a
// plug-in, a callback, the state observer or tm is called.
package imsdialog

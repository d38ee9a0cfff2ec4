// Package imsdialog is the IMS dialog module of imsdlg: it tracks the
// dialogs created by proxied INVITEs, with several early callee legs per
// dialog (dlgout), spiral detection (spiral), and terminates calls in any
// state (early: CANCEL down, final reply up; confirmed: BYE both ways),
// after Kamailio's ims_dialog and OpenSIPS's dialog modules.
//
// The dialog life cycle is a pure state machine, FSM.Step(now, event)
// returning actions, so every transition is table-tested without sockets
// or a clock; the manager around it (sharded table, timers, tm I/O,
// callbacks, statistics) executes those actions.
package imsdialog

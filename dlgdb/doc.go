// Package dlgdb keeps the confirmed dialogs of a node outside its memory
// (the dialog module's db_mode), so that a restarted proxy, also one that
// was killed, still knows its calls: their legs, CSeqs, timeouts and
// profile memberships. It stores opaque records; what goes in them and
// when they are written is the dialog module's business.
//
// Redis layout: one hash per node, imsdlg_dlg_<node>, field = the dialog's
// did, value = the record as JSON. One hash per node because a node only
// ever restores its own dialogs, and a whole flush (every dirty dialog,
// written and deleted) is then one pipelined round trip.
package dlgdb

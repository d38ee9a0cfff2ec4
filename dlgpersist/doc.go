// Package dlgpersist is the db_mode plug-in of the dialog module: a
// write-behind of confirmed dialogs to a dlgdb.Store (Redis), and their
// restore when the proxy starts again.
//
// It implements imsdialog.Persister: the dialog module only marks a dialog
// as changed (no I/O on the SIP path); Run, one goroutine the daemon owns,
// writes what changed as it changes (db_mode 1) or every db_update_period
// (db_mode 2), and Flush writes at a stop (every confirmed dialog in
// db_mode 3). Records carry the dialog's profile memberships through
// Options.Memberships, so a restored dialog is counted once.
package dlgpersist

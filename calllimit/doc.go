// Package calllimit is the call-limits plug-in of the dialog module: every
// dialog imsdialog creates is put in the dialog profiles of the configured
// limits (OpenSIPS set_dlg_profile with a limit, counted locally or shared
// through Redis by package profiles), and rejected when a count would pass
// its maximum; the dialog leaves its profiles when it is destroyed, however
// it ended.
//
// It implements imsdialog.Limiter. Admit may wait on Redis: the dialog
// manager calls it on a goroutine of its own, never on tm's request path.
// Release never waits: it queues the dialog for the goroutine that Run
// provides, which the daemon owns and waits for.
package calllimit

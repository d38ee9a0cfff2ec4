package imsdialog

import (
	"context"
	"time"

	"github.com/emiago/sipgo/sip"
)

// Call is what a Limiter is told of an initial INVITE that creates a
// dialog.
type Call struct {
	DID    string
	CallID string
	From   sip.Uri // the From URI
	To     sip.Uri // the To URI
	RURI   sip.Uri // the Request-URI as received
	Source string  // "ip:port" the INVITE came from
}

// Rejection is how a Limiter refuses a call: the final reply upstream.
type Rejection struct {
	Code    int
	Reason  string
	Headers []Header
}

// Limiter is the call-limits plug-in (set_dlg_profile with a limit, on
// every dialog the module creates): it counts a new dialog, and uncounts it
// when the dialog is destroyed, however it ended.
type Limiter interface {
	// HasLimits tells whether new calls are to be counted: when false every
	// call is admitted at once (a limiter without limits still releases
	// the memberships set by other means, e.g. set_dlg_profile).
	HasLimits() bool
	// Admit counts the call and says whether it may go on: nil admits it.
	// It may wait on the network (a shared count in Redis): the manager
	// calls it on a goroutine of its own, never on tm's request path, and
	// the INVITE waits meanwhile (tm.Defer).
	Admit(ctx context.Context, c Call) *Rejection
	// Release uncounts an admitted dialog that was destroyed. It must not
	// block: it runs where the dialog ended, often in tm's reply path.
	Release(did string)
}

// InlineLimiter is a Limiter that can say its Admit never waits (its
// counts are all node-local): the manager then admits on tm's request
// path, without a goroutine and a deferred decision.
type InlineLimiter interface {
	Limiter
	AdmitsInline() bool
}

// Persister is the db_mode plug-in: a write-behind of confirmed dialogs.
type Persister interface {
	// Changed says that what Dialog.Snapshot returns may have changed, or
	// that the dialog is no longer confirmed (Snapshot then says false and
	// the record goes). It must not block: a cheap mark, written later.
	Changed(d *Dialog)
}

// StateFunc observes every state change of every dialog (the
// E_DLG_STATE_CHANGED event). It runs on the goroutine that made the
// change, without the dialog's lock, so it must not block.
type StateFunc func(d *Dialog, from, to State, at time.Time)

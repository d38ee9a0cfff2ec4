package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/imsdlg/imsdlg/dlgpersist"
	"github.com/imsdlg/imsdlg/imsdialog"
	"github.com/imsdlg/imsdlg/profiles"
	"github.com/imsdlg/imsdlg/tm"
)

// recovery brings back what the node's last run left in Redis: its saved
// dialogs (db_mode) and then its shared profile counts (reconciled: those
// of calls that no longer exist removed). Both need Redis; when it is down
// or stalled at start the proxy starts anyway (a P-CSCF that will not
// start without Redis turns a Redis outage into a SIP outage) and retries
// until both succeed, saying not ready meanwhile. The order matters: the
// reconcile keeps the restored dialogs' counts, so it waits for the
// restore.
type recovery struct {
	db      *dialogDB
	prof    *profileRuntime
	dialogs *imsdialog.Manager
	sender  tm.Sender
	log     *slog.Logger
	// reconcileTimeout bounds one reconcile (it walks every membership
	// of the node).
	reconcileTimeout time.Duration

	// Only one goroutine steps at a time (start, then run).
	restored   []string // dids, once restoreOK
	restoreOK  bool
	reconciled bool

	// mu guards lastErr alone: /readyz must not wait for an attempt.
	mu      sync.Mutex
	lastErr error // why the last attempt did not finish; nil when done
}

// restoreTimeout bounds one attempt to read the saved dialogs.
const restoreTimeout = 30 * time.Second

// recoveryBackoff bounds the wait between two attempts.
const recoveryBackoff = 15 * time.Second

func newRecovery(db *dialogDB, prof *profileRuntime, m *imsdialog.Manager, s tm.Sender, timeout time.Duration, log *slog.Logger) *recovery {
	r := &recovery{db: db, prof: prof, dialogs: m, sender: s, log: log, reconcileTimeout: timeout}
	r.restoreOK = db.persister == nil
	r.reconciled = prof.shared == nil
	if !r.restoreOK || !r.reconciled {
		r.lastErr = errors.New("not tried yet")
	}
	return r
}

// step makes one attempt at what is left and reports whether all is done.
func (r *recovery) step(ctx context.Context) bool {
	var err error
	if !r.restoreOK {
		if err = r.restore(ctx); err != nil {
			err = fmt.Errorf("dialogs not yet restored from dialog.db_url (retrying): %w", err)
		}
	}
	if err == nil && !r.reconciled {
		if err = r.reconcile(ctx); err != nil {
			err = fmt.Errorf("profile counts of node %s not yet reconciled in profiles.cachedb_url (retrying): %w", r.prof.node, err)
		}
	}
	r.mu.Lock()
	r.lastErr = err
	r.mu.Unlock()
	return err == nil
}

func (r *recovery) restore(ctx context.Context) error {
	rctx, cancel := context.WithTimeout(ctx, restoreTimeout)
	dids, err := r.db.persister.Restore(rctx, r.dialogs, r.sender)
	cancel()
	if errors.Is(err, dlgpersist.ErrUnavailable) {
		return err
	}
	if err != nil {
		// Records that cannot be used stay unusable: say which, and go
		// on without them.
		r.log.Warn("dialogs not all restored from dialog.db_url", "restored", len(dids), "error", err)
	}
	if len(dids) > 0 {
		r.log.Info("dialogs restored", "node", r.db.node, "dialogs", len(dids))
	}
	r.restored, r.restoreOK = dids, true
	return nil
}

func (r *recovery) reconcile(ctx context.Context) error {
	rctx, cancel := context.WithTimeout(ctx, r.reconcileTimeout)
	defer cancel()
	n, err := r.prof.set.Reconcile(rctx, profiles.KeepRestored(r.restored))
	if err != nil {
		return err
	}
	if n > 0 {
		r.log.Info("profiles: removed counts this node left before it stopped", "node", r.prof.node, "memberships", n,
			"kept_for_restored_dialogs", len(r.restored))
	}
	// From here on a change of generation means Redis lost what this
	// node counted.
	if _, err := r.prof.set.CheckGeneration(rctx); err != nil {
		r.log.Warn("profiles: generation of the shared store not read; read again within a second", "error", err)
	}
	r.reconciled = true
	return nil
}

// run retries until done or ctx ends, waiting longer after each failure.
func (r *recovery) run(ctx context.Context) {
	wait := time.Second
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		if r.step(ctx) {
			r.log.Info("recovered from Redis what the last run left: dialogs restored, profile counts reconciled")
			return
		}
		wait = min(2*wait, recoveryBackoff)
	}
}

// ready is nil once done; until then the reason, for /readyz.
func (r *recovery) ready() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lastErr
}

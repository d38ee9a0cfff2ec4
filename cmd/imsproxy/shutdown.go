package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/imsdlg/imsdlg/dlgpersist"
	"github.com/imsdlg/imsdlg/imsdialog"
	"github.com/imsdlg/imsdlg/tm"
)

// ShutdownSection is the shutdown section: what SIGTERM does.
type ShutdownSection struct {
	// DrainPeriod: new calls get 503 while the dialogs in progress end by
	// themselves (their in-dialog requests are still relayed); the drain
	// ends early once no dialog and no transaction is left.
	DrainPeriod time.Duration `config:"drain_period" unit:"s"`
	// EndCalls ends the dialogs still up when the drain ends (BYE both
	// ways, CANCEL and 487 for early ones), with db_mode 0; otherwise they
	// are only logged (with db_mode they are saved, and the next start
	// takes them over).
	EndCalls bool `config:"end_calls"`
	// Grace is how long transactions in progress may take to get their
	// final reply after the drain; then callers still ringing get 503 and
	// their branches a CANCEL.
	Grace time.Duration `config:"grace" unit:"s"`
	// PersistTimeout is the time the last write of db_mode gets, on its own.
	PersistTimeout time.Duration `config:"persist_timeout" unit:"s"`
}

func shutdownDefaults() map[string]any {
	return map[string]any{
		"shutdown.drain_period":    "30s",
		"shutdown.end_calls":       false,
		"shutdown.grace":           "5s",
		"shutdown.persist_timeout": "10s",
	}
}

func (c *Config) validateShutdown() []error {
	var errs []error
	s := c.Shutdown
	if s.DrainPeriod < 0 {
		errs = append(errs, fmt.Errorf("config: shutdown.drain_period = %q: must not be negative", s.DrainPeriod))
	}
	if s.Grace <= 0 {
		errs = append(errs, fmt.Errorf("config: shutdown.grace = %q: must be positive", s.Grace))
	}
	if s.PersistTimeout <= 0 {
		errs = append(errs, fmt.Errorf("config: shutdown.persist_timeout = %q: must be positive", s.PersistTimeout))
	}
	return errs
}

// stopper runs the stop sequence of a daemon that got SIGTERM.
type stopper struct {
	cfg     *Config
	log     *slog.Logger
	proxy   *tm.Proxy
	dialogs *imsdialog.Manager
	db      *dialogDB
	// interrupt ends the drain and the grace at once (a second signal).
	interrupt <-chan struct{}
}

// run drains, ends what is left, gives the transactions their grace and
// writes the dialogs; the error says what was lost.
func (s *stopper) run() error {
	s.proxy.Drain()
	left := s.drain()
	if len(left) > 0 && s.cfg.Dialog.DBMode == dlgpersist.DBModeNone {
		for _, d := range left {
			in := d.Info(false)
			s.log.Warn("dialog still up at the end of the drain", "callid", in.CallID, "did", in.DID, "state", in.State.String(),
				"ended", s.cfg.Shutdown.EndCalls)
			if s.cfg.Shutdown.EndCalls {
				_ = s.dialogs.Terminate(d, imsdialog.SideBoth, 503, "proxy shutting down")
			}
		}
	}
	s.log.Info("imsproxy stopping: waiting for transactions in progress", "grace", s.cfg.Shutdown.Grace)
	gctx, cancel := context.WithTimeout(context.Background(), s.cfg.Shutdown.Grace)
	go func() {
		select {
		case <-s.interrupt:
			cancel()
		case <-gctx.Done():
		}
	}()
	err := s.proxy.Shutdown(gctx)
	cancel()
	if err != nil {
		// A caller still ringing must hear that the call is over, and the
		// callee stop ringing (CANCEL).
		n := s.proxy.EndPending(503, "Service Unavailable - shutting down")
		s.log.Warn("stopping with transactions in progress: callers still ringing got 503", "calls", n, "error", err)
		ectx, ecancel := context.WithTimeout(context.Background(), time.Second)
		_ = s.proxy.Shutdown(ectx)
		ecancel()
	}
	// The last write of db_mode gets its own time, whatever the grace took.
	pctx, pcancel := context.WithTimeout(context.Background(), s.cfg.Shutdown.PersistTimeout)
	defer pcancel()
	if err := s.db.flush(pctx, s.dialogs); err != nil {
		lost := s.db.pending()
		s.log.Error("dialogs not written to dialog.db_url at shutdown: they are lost", "dialogs", lost, "error", err)
		return fmt.Errorf("%d dialogs not written to dialog.db_url: %w", lost, err)
	}
	return nil
}

// drain waits for the dialogs and transactions in progress to end, at most
// shutdown.drain_period, and returns the dialogs still there.
func (s *stopper) drain() []*imsdialog.Dialog {
	period := s.cfg.Shutdown.DrainPeriod
	if period > 0 && (len(s.dialogs.Dialogs()) > 0 || s.proxy.InUse() > 0) {
		s.log.Info("imsproxy draining: new calls get 503, calls in progress go on", "drain_period", period,
			"dialogs", len(s.dialogs.Dialogs()))
		deadline := time.NewTimer(period)
		defer deadline.Stop()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
	wait:
		for len(s.dialogs.Dialogs()) > 0 || s.proxy.InUse() > 0 {
			select {
			case <-deadline.C:
				break wait
			case <-s.interrupt:
				break wait
			case <-tick.C:
			}
		}
	}
	return s.dialogs.Dialogs()
}

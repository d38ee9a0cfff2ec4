package profiles

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/imsdlg/imsdlg/cachedb"
)

// storeKind tells the node-local store from the shared one, for health,
// logs and metrics: an operator acts on a Redis outage, not on a profile.
type storeKind int

const (
	kindLocal storeKind = iota
	kindShared
	numKinds
)

func (k storeKind) String() string {
	if k == kindShared {
		return "shared"
	}
	return "local"
}

// DefaultRetryPeriod is Run's period when it is given none: short enough
// that counts come back soon after Redis does, long enough that an outage
// costs one timed-out probe every few seconds, not one per dialog.
const DefaultRetryPeriod = 5 * time.Second

// isStoreError tells a failing store from a store that answered "no": a
// limit, an unknown profile or a bad value say nothing about reachability.
func isStoreError(err error) bool {
	return err != nil &&
		!errors.Is(err, cachedb.ErrLimit) &&
		!errors.Is(err, ErrUnknownProfile) &&
		!errors.Is(err, ErrValue)
}

// health is whether the last call to one store failed, and since when. The
// flag is read without the lock so that a healthy store costs one atomic
// load per call; the lock only orders the transitions, each logged once.
type health struct {
	failing  atomic.Bool
	mu       sync.Mutex
	since    time.Time
	warned   bool      // the current outage was logged
	lastWarn time.Time // when an outage was last logged
	flaps    int       // outages not logged since lastWarn
}

// flapWindow rate-limits the outage log: a store that is slow rather than
// down fails one call in many, and each success-then-failure would be a
// new "outage" and a line.
const flapWindow = 30 * time.Second

// SetLogger sets where store outages and recoveries are logged; nil means
// slog.Default() (looked up at each log, so a later slog.SetDefault
// applies).
func (s *Set) SetLogger(l *slog.Logger) { s.logger.Store(l) }

func (s *Set) log() *slog.Logger {
	if l := s.logger.Load(); l != nil {
		return l
	}
	return slog.Default()
}

// observe notes the outcome of one store call. A call that failed because
// the caller cancelled it is no evidence about the store, so it changes
// neither the health nor the error count. A caller's deadline that ran out
// is: the store did not answer in the time the call could wait, which is
// the slow Redis this is meant to show (callers typically give the store
// call the same budget as the store's own timeout).
func (s *Set) observe(ctx context.Context, k storeKind, err error) {
	h := &s.health[k]
	if !isStoreError(err) {
		if h.failing.Load() {
			h.recover(s, k)
		}
		return
	}
	if errors.Is(ctx.Err(), context.Canceled) {
		return
	}
	s.stats.storeErrors[k].Add(1)
	if !h.failing.Load() {
		h.fail(s, k, err)
	}
}

func (h *health) fail(s *Set, k storeKind, err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.failing.Load() {
		return
	}
	h.failing.Store(true)
	now := s.now()
	// Once per outage, not per call: during an outage every call fails and
	// a line per call would bury everything else.
	if !h.lastWarn.IsZero() && now.Sub(h.lastWarn) < flapWindow {
		h.flaps++
		return
	}
	h.since, h.lastWarn, h.warned = now, now, true
	s.log().Warn("profile store unreachable", "store", k.String(), "error", err, "outages_not_logged", h.flaps)
	h.flaps = 0
}

func (h *health) recover(s *Set, k storeKind) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.failing.Load() {
		return
	}
	h.failing.Store(false)
	if h.warned {
		h.warned = false
		s.log().Info("profile store reachable again", "store", k.String(), "down_for", s.now().Sub(h.since))
	}
}

// Healthy reports whether the last call to the shared store succeeded (true
// when there is no shared profile). It is the last result, not a probe:
// with no traffic it keeps the last answer, which is why Run pings an
// unhealthy store.
func (s *Set) Healthy() bool { return !s.health[kindShared].failing.Load() }

// Ping reads the size of one shared profile, so that a recovery is noticed
// (and logged) even when no call reaches the store; it updates Healthy. It
// does nothing without a shared profile. It reads a real profile rather
// than adding a ping to cachedb.Store, which OpenSIPS-compatible stores
// need not offer.
func (s *Set) Ping(ctx context.Context) error {
	p := s.probe
	if p == nil {
		return nil
	}
	_, err := p.store.Size(ctx, p.cp, "")
	s.observe(ctx, p.kind, err)
	if err != nil {
		return fmt.Errorf("profiles: ping shared store (size of %s): %w", describe(p, ""), err)
	}
	return nil
}

// Release is EndDialog for a dialog that has ended: when a removal fails
// the dialog is remembered as pending, so RetryPending (or Run) removes it
// later instead of leaving the store counting a dialog that no longer
// exists until the TTL. It returns the error, for the caller to log. The
// dialog id must not be reused while it is pending.
func (s *Set) Release(ctx context.Context, dialogID string) error {
	_, err := s.endDialog(ctx, dialogID)
	if err != nil {
		s.addPending(dialogID)
		return fmt.Errorf("profiles: release dialog %s (pending, will retry): %w", dialogID, err)
	}
	return nil
}

// Counts reports whether this node counts the dialog in any profile (or
// may: an uncertain membership): a dialog ending with nothing counted needs
// no store call. It takes a shared lock and does not allocate.
func (s *Set) Counts(dialogID string) bool {
	s.mu.RLock()
	d := s.dialogs[dialogID]
	s.mu.RUnlock()
	return d != nil
}

// MarkPending leaves a dialog that ended for RetryPending (or Run) to
// release, when releasing it now is not possible without waiting.
func (s *Set) MarkPending(dialogID string) {
	if !s.Counts(dialogID) {
		return
	}
	s.addPending(dialogID)
}

func (s *Set) addPending(dialogID string) {
	s.pmu.Lock()
	s.pending[dialogID] = struct{}{}
	s.npending.Store(int64(len(s.pending)))
	s.pmu.Unlock()
}

func (s *Set) dropPending(dialogID string) {
	if s.npending.Load() == 0 {
		return
	}
	s.pmu.Lock()
	delete(s.pending, dialogID)
	s.npending.Store(int64(len(s.pending)))
	s.pmu.Unlock()
}

// Pending is the number of released dialogs whose removal has not yet
// succeeded.
func (s *Set) Pending() int {
	s.pmu.Lock()
	defer s.pmu.Unlock()
	return len(s.pending)
}

// RetryPending makes one pass over the pending dialogs, ending each, and
// returns how many remain pending. Once a store fails in the pass, the
// dialogs that still need that store are left for the next pass: during an
// outage each attempt would wait out the same timeout, and one failed
// attempt per pass is enough to find out whether the store is back. The
// pass goes in map order, so no dialog is always the one tried first.
func (s *Set) RetryPending(ctx context.Context) (left int) {
	s.retryPass(ctx, false)
	return s.Pending()
}

// retryPass is one pass of RetryPending; it reports which stores failed
// and the first error. With sharedOnly it ends only the dialogs that have
// something left in the shared store (an admission waits for no other).
func (s *Set) retryPass(ctx context.Context, sharedOnly bool) (down [numKinds]bool, first error) {
	s.pmu.Lock()
	ids := make([]string, 0, len(s.pending))
	for id := range s.pending {
		ids = append(ids, id)
	}
	s.pmu.Unlock()
	for _, id := range ids {
		if ctx.Err() != nil {
			break
		}
		if s.needs(id, down) || (sharedOnly && !s.needs(id, [numKinds]bool{kindShared: true})) {
			continue
		}
		r, err := s.endDialog(ctx, id)
		s.stats.retriedOK.Add(uint64(r.removed))
		for k, failed := range r.failed {
			down[k] = down[k] || failed
		}
		if first == nil {
			first = err
		}
	}
	return down, first
}

// needs reports whether what is left of the dialog's record uses a store
// marked in down.
func (s *Set) needs(dialogID string, down [numKinds]bool) bool {
	if !down[kindLocal] && !down[kindShared] {
		return false
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	d := s.dialogs[dialogID]
	if d == nil {
		return false
	}
	for _, set := range []memberSet{d.members, d.uncertain} {
		for _, m := range set {
			if down[s.profiles[m.Profile].kind] {
				return true
			}
		}
	}
	return false
}

// Run calls RetryPending every period (DefaultRetryPeriod when period <= 0)
// until ctx is done. With nothing pending and the shared store unhealthy it
// pings the store instead, so Healthy and the recovery log do not wait for
// the next call.
func (s *Set) Run(ctx context.Context, period time.Duration) {
	if period <= 0 {
		period = DefaultRetryPeriod
	}
	t := time.NewTicker(period)
	defer t.Stop()
	var gen <-chan time.Time
	if _, ok := s.shared.(cachedb.Generationer); ok {
		g := time.NewTicker(GenerationCheckPeriod)
		defer g.Stop()
		gen = g.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-gen:
			// A failure is the store's health (logged once per outage);
			// the next tick tries again.
			if _, err := s.CheckGeneration(ctx); err != nil && s.Healthy() {
				s.log().Warn("profiles: shared store generation not checked", "error", err)
			}
			continue
		case <-t.C:
		}
		if s.RetryPending(ctx) == 0 && !s.Healthy() {
			_ = s.Ping(ctx)
		}
	}
}

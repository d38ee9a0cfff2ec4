package profiles

import (
	"context"
	"fmt"
	"time"

	"github.com/imsdlg/imsdlg/cachedb"
)

// GenerationCheckPeriod is how often Run asks the shared store whether it
// lost its data. Between a loss and its detection a limit counts only the
// calls admitted since: short, because that is over-admission, and cheap
// (two round trips).
const GenerationCheckPeriod = time.Second

// settleCall is one pass over the pending releases that concurrent
// admissions wait for together.
type settleCall struct {
	done chan struct{}
	err  error
}

// settle applies the releases still pending before a limited admission
// counts against a shared profile. After a store outage they are
// decrements of calls that have ended, and until they are applied the
// counts look higher than the calls that exist: admissions would be
// refused that the limit allows. Concurrent admissions share one pass, so
// during an outage each waits for at most one failing attempt, as its own
// Add would. It returns the shared store's error when the pass could not
// reach it: then the count cannot be trusted, and the caller's fail mode
// decides.
func (s *Set) settle(ctx context.Context) error {
	if s.npending.Load() == 0 {
		return nil
	}
	s.smu.Lock()
	c := s.settling
	if c == nil {
		c = &settleCall{done: make(chan struct{})}
		s.settling = c
		s.smu.Unlock()
		down, err := s.retryPass(context.WithoutCancel(ctx), true)
		if down[kindShared] {
			c.err = fmt.Errorf("profiles: pending releases not applied before the admission: %w", err)
		}
		s.smu.Lock()
		s.settling = nil
		s.smu.Unlock()
		close(c.done)
		return c.err
	}
	s.smu.Unlock()
	select {
	case <-c.done:
		return c.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Reconcile removes from the shared store what this node counted and no
// longer does: memberships of dialogs of an earlier run of the node (a
// crash, a restart) or ended while the store was unreachable. keep names
// the dialogs to keep besides those this Set counts now (e.g. the dialogs
// restored from the dialog store; nil: none). It returns how many
// memberships it removed; without a shared profile it does nothing.
//
// It keeps what the Set counts so that it may run late, after calls were
// admitted (a store that was down at start): a membership of a live call
// is never reconciled away.
func (s *Set) Reconcile(ctx context.Context, keep func(dialog string) bool) (int, error) {
	if s.shared == nil {
		return 0, nil
	}
	n, err := s.shared.Reconcile(ctx, s.node, func(did string) bool {
		return (keep != nil && keep(did)) || (s.Counts(did) && !s.isPending(did))
	})
	s.observe(ctx, kindShared, err)
	if err != nil {
		return n, fmt.Errorf("profiles: reconcile node %s: %w", s.node, err)
	}
	return n, nil
}

// CheckGeneration asks the shared store whether it may have lost its data
// since the last check (cachedb.Generationer: a Redis restarted without
// persistence, flushed, or replaced by a replica that lagged) and, if so,
// re-publishes this node's live memberships: every call this node counts
// is added again (no limit: the calls exist), and what the store holds of
// this node beyond them (ended calls a stale replica still had) is
// removed. The first call only learns the generation. It reports whether
// it re-published. A store that cannot tell does nothing.
//
// Until the re-publishing succeeds the old generation is kept, so the next
// check tries again.
func (s *Set) CheckGeneration(ctx context.Context) (bool, error) {
	g, ok := s.shared.(cachedb.Generationer)
	if !ok {
		return false, nil
	}
	s.gmu.Lock()
	defer s.gmu.Unlock()
	gen, err := g.Generation(ctx)
	s.observe(ctx, kindShared, err)
	if err != nil {
		return false, fmt.Errorf("profiles: generation of the shared store: %w", err)
	}
	if s.generation == "" || gen == s.generation {
		s.generation = gen
		return false, nil
	}
	added, err := s.republish(ctx)
	if err != nil {
		return false, fmt.Errorf("profiles: the shared store may have lost data (generation %s, was %s); re-publishing this node's memberships: %w",
			gen, s.generation, err)
	}
	removed, err := s.Reconcile(ctx, nil)
	if err != nil {
		return false, err
	}
	s.log().Warn("shared profile store may have lost data (restarted, flushed or failed over); re-published this node's counts",
		"node", s.node, "memberships_added", added, "stale_removed", removed, "generation", gen, "was", s.generation)
	s.generation = gen
	s.stats.republished.Add(1)
	return true, nil
}

// republish adds again every shared membership the Set counts for a live
// dialog (not one pending release), and returns how many it added. A
// dialog being ended meanwhile waits for its store calls (the per-dialog
// lock), so it is either re-added and then removed, or skipped.
func (s *Set) republish(ctx context.Context) (int, error) {
	s.mu.RLock()
	ids := make([]string, 0, len(s.dialogs))
	for id := range s.dialogs {
		ids = append(ids, id)
	}
	s.mu.RUnlock()
	added := 0
	for _, id := range ids {
		if s.isPending(id) {
			continue
		}
		d := s.acquire(id, false)
		if d == nil {
			continue
		}
		s.mu.RLock()
		var todo []Membership
		for _, m := range d.members {
			if s.profiles[m.Profile].kind == kindShared {
				todo = append(todo, m)
			}
		}
		s.mu.RUnlock()
		var err error
		for _, m := range todo {
			p := s.profiles[m.Profile]
			_, err = p.store.Add(ctx, p.cp, m.Value, cachedb.Member{Node: s.node, Dialog: id}, 0)
			s.observe(ctx, p.kind, err)
			if err != nil {
				break
			}
			added++
		}
		s.release(id, d)
		if err != nil {
			return added, fmt.Errorf("dialog %s: %w", id, err)
		}
	}
	return added, nil
}

func (s *Set) isPending(dialogID string) bool {
	if s.npending.Load() == 0 {
		return false
	}
	s.pmu.Lock()
	_, ok := s.pending[dialogID]
	s.pmu.Unlock()
	return ok
}

package profiles

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/imsdlg/imsdlg/cachedb"
	"github.com/imsdlg/imsdlg/internal/redistest"
)

// Issue 15 §4: after a store outage the releases of the calls that ended
// meanwhile are applied before the next admission counts, so a limit
// admits what it allows at once, not after the next retry pass.
func TestIssue15_4_PendingReleasesAppliedBeforeAdmission(t *testing.T) {
	s, _, shared := faultSet(t)
	mustSet(t, s, "1.1", "trunk", "", 2, 1)
	mustSet(t, s, "1.2", "trunk", "", 2, 2)
	shared.set(faultDown)
	for _, id := range []string{"1.1", "1.2"} {
		if err := s.Release(ctx, id); err == nil {
			t.Fatalf("Release(%s) with the store down: no error", id)
		}
	}
	// Still down: the admission cannot know the count, and says so
	// instead of counting against stale numbers.
	failed := shared.failed.Load()
	_, err := s.SetProfile(ctx, "1.3", "trunk", "", 2)
	if err == nil || errors.Is(err, cachedb.ErrLimit) || !errors.Is(err, errUnreachable) {
		t.Fatalf("admission with the store down and releases pending: %v, want the store's error", err)
	}
	if n := shared.failed.Load() - failed; n != 1 {
		t.Errorf("the admission made %d failing store calls, want 1 (one settle attempt, no Add)", n)
	}
	if got := s.Memberships("1.3"); len(got) != 0 {
		t.Errorf("memberships of the refused call: %v", got)
	}
	shared.set(faultNone)
	mustSet(t, s, "1.3", "trunk", "", 2, 1)
	if p := s.Pending(); p != 0 {
		t.Errorf("pending = %d after the admission, want 0", p)
	}
	if n := count(t, shared, "trunk", false, ""); n != 1 {
		t.Errorf("trunk counts %d, want 1 (the new call)", n)
	}
}

// slowDown is a store that answers every Remove after a delay with a
// failure, as a Redis that times out does.
type slowDown struct {
	cachedb.Store
	delay time.Duration
}

func (s *slowDown) Remove(ctx context.Context, p cachedb.Profile, value string, m cachedb.Member) (int64, error) {
	time.Sleep(s.delay)
	return 0, errUnreachable
}

// Admissions that arrive together while releases are pending wait for one
// settle attempt, not one each: during an outage an admission costs one
// store timeout, as its own Add would.
func TestIssue15_4_ConcurrentAdmissionsShareOneSettleAttempt(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &slowDown{Store: newMem(), delay: 500 * time.Millisecond}
		s, err := New(Config{NoValue: []string{"trunk/s"}}, nil, st, "node1")
		if err != nil {
			t.Fatal(err)
		}
		s.SetLogger(slog.New(slog.DiscardHandler))
		mustSet(t, s, "1.1", "trunk", "", 0, 1)
		if err := s.Release(ctx, "1.1"); err == nil {
			t.Fatal("release: no error")
		}
		start := time.Now()
		var wg sync.WaitGroup
		for i := range 10 {
			wg.Go(func() {
				if _, err := s.SetProfile(ctx, "2."+string(rune('a'+i)), "trunk", "", 5); !errors.Is(err, errUnreachable) {
					t.Errorf("admission %d: %v, want the store's error", i, err)
				}
			})
		}
		wg.Wait()
		if d := time.Since(start); d != 500*time.Millisecond {
			t.Errorf("10 concurrent admissions took %v, want one store timeout (500ms)", d)
		}
	})
}

// Issue 15 §3: Redis restarts without its data (or a replica that lagged
// takes over, holding a call that has ended): the node re-publishes its
// live calls and removes what it no longer counts, so a limit of 5 still
// admits 5, not 10.
func TestIssue15_3_RedisLosesItsDataAndTheNodeRepublishes(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	st, err := cachedb.NewRedis(cachedb.RedisOptions{URL: srv.URL(), Keys: cachedb.DefaultKeys(), TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	s, err := New(Config{NoValue: []string{"trunk/s"}, WithValue: []string{"caller/s"}}, newMem(), st, "node1")
	if err != nil {
		t.Fatal(err)
	}
	s.SetLogger(slog.New(slog.DiscardHandler))
	for i, id := range []string{"1.1", "1.2", "1.3", "1.4", "1.5"} {
		mustSet(t, s, id, "trunk", "", 5, int64(i+1))
		mustSet(t, s, id, "caller", "alice", 0, int64(i+1))
	}
	if again, err := s.CheckGeneration(ctx); err != nil || again {
		t.Fatalf("first CheckGeneration = %v, %v; want it to learn the generation only", again, err)
	}
	srv.Kill()
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	// The new data set holds a call of this node that ended (a stale
	// replica), and another node's call.
	mustAdd := func(node, dlg string) {
		t.Helper()
		if _, err := st.Add(ctx, cachedb.Profile{Name: "trunk"}, "", cachedb.Member{Node: node, Dialog: dlg}, 0); err != nil {
			t.Fatal(err)
		}
	}
	mustAdd("node1", "0.9")
	mustAdd("node2", "7.7")
	again, err := s.CheckGeneration(ctx)
	if err != nil || !again {
		t.Fatalf("CheckGeneration after the restart = %v, %v; want a re-publishing", again, err)
	}
	if n := size(t, s, "trunk", ""); n != 6 {
		t.Errorf("trunk = %d after re-publishing, want 6 (5 of node1, 1 of node2; node1's ended call removed)", n)
	}
	if n := size(t, s, "caller", "alice"); n != 5 {
		t.Errorf("caller alice = %d after re-publishing, want 5", n)
	}
	if _, err := s.SetProfile(ctx, "1.6", "trunk", "", 5); !errors.Is(err, cachedb.ErrLimit) {
		t.Errorf("a sixth call of node1 with limit 5: %v, want the limit", err)
	}
	if again, err := s.CheckGeneration(ctx); err != nil || again {
		t.Errorf("CheckGeneration with nothing lost = %v, %v; want no re-publishing", again, err)
	}
	if got := s.Stats().Snapshot()["store_republished"]; got != 1 {
		t.Errorf("store_republished = %d, want 1", got)
	}
}

// Reconcile keeps the dialogs the Set counts as well as those it is told
// to keep: run late (a store down at start), it must not take away the
// counts of calls admitted since.
func TestIssue15_2_LateReconcileKeepsLiveCalls(t *testing.T) {
	shared := newMem()
	s, err := New(Config{NoValue: []string{"trunk/s"}}, nil, shared, "node1")
	if err != nil {
		t.Fatal(err)
	}
	// Left by the node's previous run: one restored, one ended.
	for _, id := range []string{"0.1", "0.2"} {
		if _, err := shared.Add(ctx, cachedb.Profile{Name: "trunk"}, "", cachedb.Member{Node: "node1", Dialog: id}, 0); err != nil {
			t.Fatal(err)
		}
	}
	mustSet(t, s, "1.1", "trunk", "", 0, 3) // admitted before the reconcile
	n, err := s.Reconcile(ctx, KeepRestored([]string{"0.1"}))
	if err != nil || n != 1 {
		t.Fatalf("Reconcile = %d, %v; want 1 removed (the ended call)", n, err)
	}
	if got := size(t, s, "trunk", ""); got != 2 {
		t.Errorf("trunk = %d, want 2 (the restored call and the live one)", got)
	}
}

package cachedb

import (
	"context"
	"testing"
	"time"

	"github.com/imsdlg/imsdlg/internal/redistest"
)

// Issue 15 §4: an Add sent to a stalled Redis times out, and its call is
// rejected (or counted as uncertain); when Redis runs again it serves
// what it buffered, and that late Add must not count the call.
func TestIssue15_4_AddServedAfterItsDeadlineIsNotCounted(t *testing.T) {
	for _, split := range []bool{false, true} {
		name := map[bool]string{false: "one script", true: "cluster steps"}[split]
		t.Run(name, func(t *testing.T) {
			needRedis(t)
			srv := redistest.Start(t, redistest.Options{})
			s, err := NewRedis(RedisOptions{URL: srv.URL(), Keys: DefaultKeys(), Timeout: 200 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			s.split = split
			p := Profile{Name: "trunk"}
			ctx := context.Background()
			// A first call teaches the store the server's clock.
			if _, err := s.Add(ctx, p, "", Member{Node: "n1", Dialog: "1.1"}, 5); err != nil {
				t.Fatal(err)
			}
			srv.Pause()
			_, err = s.Add(ctx, p, "", Member{Node: "n1", Dialog: "1.2"}, 5)
			// A real stall outlasts the caller's wait by far more than the
			// round trip it takes to give up.
			time.Sleep(100 * time.Millisecond)
			srv.Resume()
			if err == nil {
				t.Fatal("Add to a paused Redis succeeded")
			}
			// Let Redis work through what it buffered: a few round trips
			// after it runs again.
			var n int64
			for range 3 {
				if n, err = s.Size(ctx, p, ""); err != nil {
					t.Fatal(err)
				}
			}
			if n != 1 {
				t.Errorf("count = %d after the stall, want 1: the Add its caller gave up on was applied late", n)
			}
			live, _, err := s.liveMembers(ctx, s.keys.Membership("n1"))
			if err != nil || len(live) != 1 {
				t.Errorf("memberships of n1 = %v (%v), want only dialog 1.1", live, err)
			}
		})
	}
}

// The deadline is sent only once the server's clock is known, and an Add
// that arrives in time is counted as before.
func TestRedisDeadlineNeedsTheServerClock(t *testing.T) {
	s := newRedisStore(t, false)
	ctx := context.Background()
	if d := s.deadline(ctx, time.Now()); d != 0 {
		t.Fatalf("deadline before any reply = %d, want 0 (none)", d)
	}
	if _, err := s.Add(ctx, Profile{Name: "p"}, "", Member{Node: "n", Dialog: "1.1"}, 0); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	d := s.deadline(ctx, now)
	// Same host: the server's clock is ours, give or take the round trip.
	if want := now.Add(s.timeout).UnixMilli(); d < want-50 || d > want+50 {
		t.Errorf("deadline = %d, want about %d (now + timeout)", d, want)
	}
	short, cancel := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel()
	if d := s.deadline(short, now); d > now.Add(100*time.Millisecond).UnixMilli() {
		t.Errorf("deadline %d ignores the caller's shorter deadline", d)
	}
}

// Issue 15 §3: the generation stays while the data does, and changes when
// Redis restarts without its data or is flushed.
func TestIssue15_3_GenerationChangesWhenRedisLosesItsData(t *testing.T) {
	needRedis(t)
	srv := redistest.Start(t, redistest.Options{})
	s, err := NewRedis(RedisOptions{URL: srv.URL(), Keys: DefaultKeys()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	gen := func() string {
		t.Helper()
		g, err := s.Generation(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	g1 := gen()
	if g2 := gen(); g2 != g1 {
		t.Fatalf("generation changed with nothing happening: %q then %q", g1, g2)
	}
	srv.Kill()
	if _, err := s.Generation(ctx); err == nil {
		t.Fatal("Generation of a stopped Redis: no error")
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	g3 := gen()
	if g3 == g1 {
		t.Fatalf("generation %q unchanged after a restart without persistence", g3)
	}
	if err := srv.Client(t).FlushAll(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if g4 := gen(); g4 == g3 {
		t.Fatalf("generation %q unchanged after FLUSHALL", g4)
	}
}

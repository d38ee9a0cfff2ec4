package cachedb

import (
	"context"
	"sync"
	"testing"
	"time"
)

// clock is a settable clock for the Memory store's lazy expiry.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newClock() *clock { return &clock{t: time.Unix(1_700_000_000, 0)} }

func TestMemoryConformance(t *testing.T) {
	runConformance(t, func(t *testing.T) Store {
		return NewMemory(DefaultKeys(), confTTL, newClock().now)
	})
}

func TestMemoryExpiry(t *testing.T) {
	ctx := context.Background()
	k := DefaultKeys()
	keys := []string{k.Value("caller", "a"), k.Size("caller"), k.NoValue("trunk")}
	tests := []struct {
		name    string
		advance time.Duration
		present bool
	}{
		{"just before", confTTL - time.Second, true},
		{"at ttl", confTTL, false},
		{"after", confTTL + time.Minute, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := newClock()
			s := NewMemory(k, confTTL, c.now)
			mustAdd(t, s, caller, "a", mem("n1", "d1"), 0, 1)
			mustAdd(t, s, trunk, "", mem("n1", "d1"), 0, 1)
			c.advance(tc.advance)
			for _, key := range keys {
				if _, ok := s.rawGet(key); ok != tc.present {
					t.Errorf("%s present = %v, want %v", key, ok, tc.present)
				}
			}
			wantN, wantReconciled := int64(0), 0
			if tc.present {
				wantN, wantReconciled = 1, 2
			}
			if n := size(t, s, caller, "a"); n != wantN {
				t.Errorf("Size = %d, want %d", n, wantN)
			}
			// An expired membership took its count with it: reconciling
			// it must not decrement anything.
			if n, err := s.Reconcile(ctx, "n1", nil); err != nil || n != wantReconciled {
				t.Errorf("Reconcile = %d, %v; want %d", n, err, wantReconciled)
			}
			// Adding again after expiry counts afresh.
			mustAdd(t, s, caller, "a", mem("n1", "d1"), 0, 1)
		})
	}
}

func TestMemoryTTLRefreshedOnChange(t *testing.T) {
	c := newClock()
	s := NewMemory(DefaultKeys(), confTTL, c.now)
	mustAdd(t, s, trunk, "", mem("n1", "d1"), 0, 1)
	c.advance(confTTL / 2)
	mustAdd(t, s, trunk, "", mem("n1", "d2"), 0, 2)
	c.advance(confTTL/2 + time.Second)
	// d1's membership expired, but the counter was refreshed by d2's add,
	// so it still holds both counts (as Redis would).
	if n := size(t, s, trunk, ""); n != 2 {
		t.Fatalf("count %d, want 2 (TTL refreshed by the second add)", n)
	}
	if n, _ := s.Remove(context.Background(), trunk, "", mem("n1", "d1")); n != 2 {
		t.Errorf("Remove of expired membership = %d, want 2 (no decrement)", n)
	}
}

// Issue 14: a call through a local profile whose counters exist (the
// caller called before) costs one allocation in the store, the membership
// record's key; the keys built as strings were ten.
func TestIssue14_MemoryAddRemoveAllocatesTheRecordOnly(t *testing.T) {
	s := NewMemory(DefaultKeys(), time.Hour, nil)
	ctx := context.Background()
	caller := Profile{Name: "caller", WithValue: true}
	m := Member{Node: "n1", Dialog: "1.1"}
	if _, err := s.Add(ctx, caller, "sip:alice@example.com", m, 0); err != nil {
		t.Fatal(err)
	}
	call := Member{Node: "n1", Dialog: "2.2"}
	n := testing.AllocsPerRun(100, func() {
		if got, err := s.Add(ctx, caller, "sip:alice@example.com", call, 0); err != nil || got != 2 {
			t.Fatalf("Add = %d, %v; want 2", got, err)
		}
		if got, err := s.Remove(ctx, caller, "sip:alice@example.com", call); err != nil || got != 1 {
			t.Fatalf("Remove = %d, %v; want 1", got, err)
		}
	})
	if n > 1 {
		t.Errorf("Add and Remove allocate %v times, want at most 1", n)
	}
}

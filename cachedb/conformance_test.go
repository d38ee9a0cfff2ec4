package cachedb

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"testing"
	"time"
)

// confTTL is the TTL every store under the conformance suite must be built
// with, so the suite can check expiries.
const confTTL = time.Hour

// raw reads and writes keys by name, behind the Store's back, the way an
// operator or an OpenSIPS node sharing the Redis would.
type raw interface {
	get(t *testing.T, key string) (int64, bool)
	set(t *testing.T, key string, n int64)
	ttl(t *testing.T, key string) (time.Duration, bool)
}

// memoryRaw adapts *Memory to raw.
type memoryRaw struct{ m *Memory }

func (r memoryRaw) get(_ *testing.T, key string) (int64, bool)         { return r.m.rawGet(key) }
func (r memoryRaw) set(_ *testing.T, key string, n int64)              { r.m.rawSet(key, n) }
func (r memoryRaw) ttl(_ *testing.T, key string) (time.Duration, bool) { return r.m.rawTTL(key) }

// rawOf finds the raw access for a store built by newStore.
var rawOf = func(t *testing.T, s Store) raw {
	switch s := s.(type) {
	case *Memory:
		return memoryRaw{s}
	case *Redis:
		return redisRaw(t, s)
	}
	t.Fatalf("no raw access for %T", s)
	return nil
}

var (
	caller = Profile{Name: "caller", WithValue: true}
	trunk  = Profile{Name: "trunk"}
)

func mem(node, dialog string) Member { return Member{Node: node, Dialog: dialog} }

// runConformance is the one suite both stores pass. newStore must return an
// empty store with DefaultKeys and confTTL.
func runConformance(t *testing.T, newStore func(t *testing.T) Store) {
	ctx := context.Background()
	k := DefaultKeys()

	t.Run("KeyNames", func(t *testing.T) {
		s := newStore(t)
		r := rawOf(t, s)
		mustAdd(t, s, caller, "1234", mem("n1", "1.1"), 0, 1)
		mustAdd(t, s, trunk, "", mem("n1", "1.1"), 0, 1)
		for _, key := range []string{"dlg_val_caller_MTIzNA==", "dlg_size_caller", "dlg_noval_trunk"} {
			if n, ok := r.get(t, key); !ok || n != 1 {
				t.Errorf("key %s = %d, %v; want 1, present", key, n, ok)
			}
		}
	})

	t.Run("Counts", func(t *testing.T) {
		type step struct {
			remove      bool
			p           Profile
			value       string
			m           Member
			want        int64 // returned count
			wantSize    int64 // size counter (with value) after the step
			wantNoValue int64
		}
		tests := []struct {
			name  string
			steps []step
		}{
			{"add and remove one value", []step{
				{p: caller, value: "a", m: mem("n1", "d1"), want: 1, wantSize: 1},
				{p: caller, value: "a", m: mem("n1", "d2"), want: 2, wantSize: 2},
				{p: caller, value: "b", m: mem("n2", "d3"), want: 1, wantSize: 3},
				{remove: true, p: caller, value: "a", m: mem("n1", "d1"), want: 1, wantSize: 2},
				{remove: true, p: caller, value: "b", m: mem("n2", "d3"), want: 0, wantSize: 1},
			}},
			{"idempotent add", []step{
				{p: caller, value: "a", m: mem("n1", "d1"), want: 1, wantSize: 1},
				{p: caller, value: "a", m: mem("n1", "d1"), want: 1, wantSize: 1},
				{p: trunk, m: mem("n1", "d1"), want: 1, wantSize: 1, wantNoValue: 1},
				{p: trunk, m: mem("n1", "d1"), want: 1, wantSize: 1, wantNoValue: 1},
			}},
			{"same dialog on two nodes counts twice", []step{
				{p: trunk, m: mem("n1", "d1"), want: 1, wantNoValue: 1},
				{p: trunk, m: mem("n2", "d1"), want: 2, wantNoValue: 2},
			}},
			{"one dialog with two values", []step{
				{p: caller, value: "a", m: mem("n1", "d1"), want: 1, wantSize: 1},
				{p: caller, value: "b", m: mem("n1", "d1"), want: 1, wantSize: 2},
				{remove: true, p: caller, value: "a", m: mem("n1", "d1"), want: 0, wantSize: 1},
			}},
			{"remove unknown is a no-op", []step{
				{p: caller, value: "a", m: mem("n1", "d1"), want: 1, wantSize: 1},
				{remove: true, p: caller, value: "a", m: mem("n1", "other"), want: 1, wantSize: 1},
				{remove: true, p: caller, value: "a", m: mem("other", "d1"), want: 1, wantSize: 1},
				{remove: true, p: caller, value: "b", m: mem("n1", "d1"), want: 0, wantSize: 1},
				{remove: true, p: trunk, m: mem("n1", "d1"), want: 0, wantSize: 1},
			}},
			{"double remove counts once", []step{
				{p: trunk, m: mem("n1", "d1"), want: 1, wantNoValue: 1},
				{p: trunk, m: mem("n1", "d2"), want: 2, wantNoValue: 2},
				{remove: true, p: trunk, m: mem("n1", "d1"), want: 1, wantNoValue: 1},
				{remove: true, p: trunk, m: mem("n1", "d1"), want: 1, wantNoValue: 1},
			}},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				s := newStore(t)
				for i, st := range tc.steps {
					var n int64
					var err error
					if st.remove {
						n, err = s.Remove(ctx, st.p, st.value, st.m)
					} else {
						n, err = s.Add(ctx, st.p, st.value, st.m, 0)
					}
					if err != nil || n != st.want {
						t.Fatalf("step %d %+v: got %d, %v; want %d", i, st, n, err, st.want)
					}
					if got := size(t, s, caller, ""); got != st.wantSize {
						t.Fatalf("step %d: size counter %d, want %d", i, got, st.wantSize)
					}
					if got := size(t, s, trunk, ""); got != st.wantNoValue {
						t.Fatalf("step %d: no-value counter %d, want %d", i, got, st.wantNoValue)
					}
				}
			})
		}
	})

	t.Run("RemoveUnknownCreatesNoKey", func(t *testing.T) {
		s := newStore(t)
		r := rawOf(t, s)
		if n, err := s.Remove(ctx, caller, "x", mem("n1", "d1")); err != nil || n != 0 {
			t.Fatalf("Remove = %d, %v; want 0, nil", n, err)
		}
		for _, key := range []string{k.Value("caller", "x"), k.Size("caller")} {
			if _, ok := r.get(t, key); ok {
				t.Errorf("key %s exists after removing a member never added", key)
			}
		}
	})

	t.Run("NeverBelowZero", func(t *testing.T) {
		s := newStore(t)
		r := rawOf(t, s)
		mustAdd(t, s, caller, "a", mem("n1", "d1"), 0, 1)
		mustAdd(t, s, trunk, "", mem("n1", "d1"), 0, 1)
		// Another writer reset the counters while our members were live.
		for _, key := range []string{k.Value("caller", "a"), k.Size("caller"), k.NoValue("trunk")} {
			r.set(t, key, 0)
		}
		if n, err := s.Remove(ctx, caller, "a", mem("n1", "d1")); err != nil || n != 0 {
			t.Fatalf("Remove = %d, %v; want 0", n, err)
		}
		if n, err := s.Remove(ctx, trunk, "", mem("n1", "d1")); err != nil || n != 0 {
			t.Fatalf("Remove = %d, %v; want 0", n, err)
		}
		for _, key := range []string{k.Value("caller", "a"), k.Size("caller"), k.NoValue("trunk")} {
			if n, _ := r.get(t, key); n != 0 {
				t.Errorf("%s = %d after decrement from 0, want 0", key, n)
			}
		}
		// And a negative counter written by someone else is lifted on add.
		r.set(t, k.NoValue("trunk"), -5)
		mustAdd(t, s, trunk, "", mem("n1", "d2"), 0, 1)
	})

	t.Run("Limit", func(t *testing.T) {
		tests := []struct {
			name  string
			p     Profile
			value string
			limit int64
		}{
			{"with value", caller, "1234", 3},
			{"without value", trunk, "", 2},
			{"limit one", caller, "x", 1},
		}
		for _, tc := range tests {
			t.Run(tc.name, func(t *testing.T) {
				s := newStore(t)
				for i := range tc.limit {
					mustAdd(t, s, tc.p, tc.value, mem("n1", fmt.Sprint("d", i)), tc.limit, i+1)
				}
				before := snapshot(t, s, tc.p, tc.value)
				n, err := s.Add(ctx, tc.p, tc.value, mem("n2", "over"), tc.limit)
				if !errors.Is(err, ErrLimit) {
					t.Fatalf("Add N+1 = %d, %v; want ErrLimit", n, err)
				}
				if n != tc.limit {
					t.Errorf("Add N+1 returned count %d, want current %d", n, tc.limit)
				}
				if after := snapshot(t, s, tc.p, tc.value); after != before {
					t.Errorf("limit reached but counts changed: %v -> %v", before, after)
				}
				// The refused member was not recorded: removing it changes nothing.
				if n, err := s.Remove(ctx, tc.p, tc.value, mem("n2", "over")); err != nil || n != tc.limit {
					t.Errorf("Remove refused member = %d, %v; want %d", n, err, tc.limit)
				}
				if c, _ := s.Reconcile(ctx, "n2", nil); c != 0 {
					t.Errorf("Reconcile n2 = %d; the refused member was recorded", c)
				}
				// A member already counted is not refused.
				mustAdd(t, s, tc.p, tc.value, mem("n1", "d0"), tc.limit, tc.limit)
				// After one leaves, one more fits.
				if _, err := s.Remove(ctx, tc.p, tc.value, mem("n1", "d0")); err != nil {
					t.Fatal(err)
				}
				mustAdd(t, s, tc.p, tc.value, mem("n2", "over"), tc.limit, tc.limit)
			})
		}
	})

	t.Run("SizeSemantics", func(t *testing.T) {
		s := newStore(t)
		mustAdd(t, s, caller, "a", mem("n1", "d1"), 0, 1)
		mustAdd(t, s, caller, "a", mem("n1", "d2"), 0, 2)
		mustAdd(t, s, caller, "b", mem("n1", "d3"), 0, 1)
		mustAdd(t, s, trunk, "", mem("n1", "d1"), 0, 1)
		tests := []struct {
			p     Profile
			value string
			want  int64
		}{
			{caller, "a", 2},
			{caller, "b", 1},
			{caller, "", 3},
			{caller, "missing", 0},
			{trunk, "", 1},
			{trunk, "ignored", 1},
			{Profile{Name: "nobody", WithValue: true}, "", 0},
			{Profile{Name: "nobody"}, "", 0},
		}
		for _, tc := range tests {
			if got := size(t, s, tc.p, tc.value); got != tc.want {
				t.Errorf("Size(%+v, %q) = %d, want %d", tc.p, tc.value, got, tc.want)
			}
		}
	})

	t.Run("Values", func(t *testing.T) {
		s := newStore(t)
		r := rawOf(t, s)
		// base64: "a" YQ==, "ab" YWI=, "\xff\xfe" //4=, "?>?" Pz4/, "*" Kg==.
		want := map[string]int64{"a": 2, "ab": 1, "\xff\xfe": 1, "?>?": 1, "*": 1, "sip:bob@example.com": 1}
		for v, n := range want {
			for i := range n {
				mustAdd(t, s, caller, v, mem("n1", fmt.Sprint("d", i)), 0, i+1)
			}
		}
		for _, key := range []string{"dlg_val_caller_//4=", "dlg_val_caller_Pz4/", "dlg_val_caller_YWI="} {
			if _, ok := r.get(t, key); !ok {
				t.Errorf("key %s missing", key)
			}
		}
		// Neighbours that must not leak in: a profile whose name extends
		// ours, a no-value profile, a value counted down to zero.
		mustAdd(t, s, Profile{Name: "caller_x", WithValue: true}, "a", mem("n1", "d1"), 0, 1)
		mustAdd(t, s, Profile{Name: "caller"}, "", mem("n1", "d1"), 0, 1)
		mustAdd(t, s, caller, "gone", mem("n1", "d1"), 0, 1)
		if _, err := s.Remove(ctx, caller, "gone", mem("n1", "d1")); err != nil {
			t.Fatal(err)
		}
		got, err := s.Values(ctx, caller)
		if err != nil {
			t.Fatal(err)
		}
		if !maps.Equal(got, want) {
			t.Errorf("Values = %v, want %v", got, want)
		}
		if _, err := s.Values(ctx, trunk); err == nil {
			t.Error("Values of a profile without value: no error")
		}
	})

	t.Run("Reconcile", func(t *testing.T) {
		s := newStore(t)
		mustAdd(t, s, caller, "a", mem("A", "d1"), 0, 1)
		mustAdd(t, s, caller, "a", mem("A", "d2"), 0, 2)
		mustAdd(t, s, caller, "b", mem("A", "d1"), 0, 1)
		mustAdd(t, s, trunk, "", mem("A", "d1"), 0, 1)
		mustAdd(t, s, caller, "a", mem("B", "d1"), 0, 3)
		mustAdd(t, s, trunk, "", mem("B", "d9"), 0, 2)
		mustAdd(t, s, caller, "a", mem("AB", "d1"), 0, 4) // a node id that extends A's

		if n, err := s.Reconcile(ctx, "A", nil); err != nil || n != 4 {
			t.Fatalf("Reconcile A = %d, %v; want 4", n, err)
		}
		checkSizes(t, s, map[string]int64{"a": 2, "b": 0, "": 2}, 1)
		if n, err := s.Reconcile(ctx, "A", nil); err != nil || n != 0 {
			t.Fatalf("second Reconcile A = %d, %v; want 0", n, err)
		}
		checkSizes(t, s, map[string]int64{"a": 2, "b": 0, "": 2}, 1)
		// A's members are gone: removing one changes nothing.
		if n, _ := s.Remove(ctx, caller, "a", mem("A", "d1")); n != 2 {
			t.Errorf("Remove after reconcile = %d, want 2", n)
		}
		// A restarted node counts afresh without double counting.
		mustAdd(t, s, caller, "a", mem("A", "d1"), 0, 3)
		if n, err := s.Reconcile(ctx, "B", nil); err != nil || n != 2 {
			t.Fatalf("Reconcile B = %d, %v; want 2", n, err)
		}
		if n, err := s.Reconcile(ctx, "nobody", nil); err != nil || n != 0 {
			t.Fatalf("Reconcile nobody = %d, %v; want 0", n, err)
		}
		checkSizes(t, s, map[string]int64{"a": 2, "": 2}, 0)
	})

	// A node restarted with its dialogs restored (db_mode) keeps their
	// counts and drops the rest.
	t.Run("ReconcileKeepsRestoredDialogs", func(t *testing.T) {
		s := newStore(t)
		mustAdd(t, s, caller, "a", mem("A", "d1"), 0, 1)
		mustAdd(t, s, caller, "a", mem("A", "d2"), 0, 2)
		mustAdd(t, s, trunk, "", mem("A", "d2"), 0, 1)
		keep := func(dialog string) bool { return dialog == "d2" }
		if n, err := s.Reconcile(ctx, "A", keep); err != nil || n != 1 {
			t.Fatalf("Reconcile A keeping d2 = %d, %v; want 1", n, err)
		}
		checkSizes(t, s, map[string]int64{"a": 1}, 1)
		if n, _ := s.Remove(ctx, caller, "a", mem("A", "d2")); n != 0 {
			t.Errorf("Remove of the kept member = %d, want 0 (it was still counted)", n)
		}
	})

	t.Run("ConcurrentReconcileOnce", func(t *testing.T) {
		s := newStore(t)
		const members = 20
		for i := range members {
			mustAdd(t, s, trunk, "", mem("A", fmt.Sprint("d", i)), 0, int64(i+1))
		}
		var wg sync.WaitGroup
		counts := make([]int, 4)
		for g := range counts {
			wg.Go(func() {
				n, err := s.Reconcile(ctx, "A", nil)
				if err != nil {
					t.Error(err)
				}
				counts[g] = n
			})
		}
		wg.Wait()
		total := 0
		for _, n := range counts {
			total += n
		}
		if total != members {
			t.Errorf("concurrent reconciles removed %v = %d, want %d", counts, total, members)
		}
		if n := size(t, s, trunk, ""); n != 0 {
			t.Errorf("no-value counter %d after reconcile, want 0", n)
		}
	})

	t.Run("TTL", func(t *testing.T) {
		s := newStore(t)
		r := rawOf(t, s)
		keys := []string{k.Value("caller", "a"), k.Size("caller"), k.NoValue("trunk")}
		check := func(when string) {
			t.Helper()
			for _, key := range keys {
				d, ok := r.ttl(t, key)
				if !ok || d <= 0 || d > confTTL {
					t.Errorf("%s: TTL of %s = %v, %v; want in (0, %v]", when, key, d, ok, confTTL)
				}
			}
		}
		mustAdd(t, s, caller, "a", mem("n1", "d1"), 0, 1)
		mustAdd(t, s, caller, "a", mem("n1", "d2"), 0, 2)
		mustAdd(t, s, trunk, "", mem("n1", "d1"), 0, 1)
		check("after add")
		if _, err := s.Remove(ctx, caller, "a", mem("n1", "d1")); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Remove(ctx, trunk, "", mem("n1", "d1")); err != nil {
			t.Fatal(err)
		}
		check("after remove")
	})

	t.Run("ConcurrentLimit", func(t *testing.T) {
		tests := []struct {
			p     Profile
			value string
		}{{caller, "1234"}, {trunk, ""}}
		for _, tc := range tests {
			t.Run(tc.p.Name, func(t *testing.T) {
				s := newStore(t)
				const limit, callers = 10, 64
				var wg sync.WaitGroup
				var mu sync.Mutex
				ok, refused := 0, 0
				for i := range callers {
					wg.Go(func() {
						n, err := s.Add(ctx, tc.p, tc.value, mem(fmt.Sprint("node", i%3), fmt.Sprint("d", i)), limit)
						mu.Lock()
						defer mu.Unlock()
						switch {
						case errors.Is(err, ErrLimit):
							refused++
						case err != nil:
							t.Error(err)
						case n > limit:
							t.Errorf("Add returned %d > limit %d", n, limit)
						default:
							ok++
						}
					})
				}
				wg.Wait()
				if ok != limit || refused != callers-limit {
					t.Errorf("%d accepted, %d refused; want %d, %d", ok, refused, limit, callers-limit)
				}
				if n := size(t, s, tc.p, tc.value); n != limit {
					t.Errorf("count %d, want %d", n, limit)
				}
			})
		}
	})

	t.Run("BadInput", func(t *testing.T) {
		s := newStore(t)
		tests := []struct {
			name string
			p    Profile
			m    Member
		}{
			{"empty profile", Profile{}, mem("n1", "d1")},
			{"no node", caller, mem("", "d1")},
			{"no dialog", caller, mem("n1", "")},
			{"NUL in dialog", caller, mem("n1", "d\x001")},
		}
		for _, tc := range tests {
			if _, err := s.Add(ctx, tc.p, "v", tc.m, 0); err == nil {
				t.Errorf("%s: Add accepted it", tc.name)
			}
		}
	})
}

func mustAdd(t *testing.T, s Store, p Profile, value string, m Member, limit, want int64) {
	t.Helper()
	n, err := s.Add(context.Background(), p, value, m, limit)
	if err != nil || n != want {
		t.Fatalf("Add(%s, %q, %+v, limit %d) = %d, %v; want %d", p.Name, value, m, limit, n, err, want)
	}
}

func size(t *testing.T, s Store, p Profile, value string) int64 {
	t.Helper()
	n, err := s.Size(context.Background(), p, value)
	if err != nil {
		t.Fatalf("Size(%s, %q): %v", p.Name, value, err)
	}
	return n
}

// snapshot is every counter Add may touch for p and value.
func snapshot(t *testing.T, s Store, p Profile, value string) [3]int64 {
	t.Helper()
	return [3]int64{size(t, s, p, value), size(t, s, caller, ""), size(t, s, trunk, "")}
}

// checkSizes checks caller's value counters ("" = size counter) and trunk.
func checkSizes(t *testing.T, s Store, want map[string]int64, trunkWant int64) {
	t.Helper()
	for v, n := range want {
		if got := size(t, s, caller, v); got != n {
			t.Errorf("caller %q = %d, want %d", v, got, n)
		}
	}
	if got := size(t, s, trunk, ""); got != trunkWant {
		t.Errorf("trunk = %d, want %d", got, trunkWant)
	}
}

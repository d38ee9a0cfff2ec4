package profiles

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/imsdlg/imsdlg/cachedb"
)

var ctx = context.Background()

func newMem() *cachedb.Memory { return cachedb.NewMemory(cachedb.DefaultKeys(), 0, nil) }

// testSet declares caller (with value, local), callee/s (with value,
// shared), inbound (no value, local) and trunk/s (no value, shared).
func testSet(t *testing.T) (*Set, *cachedb.Memory, *cachedb.Memory) {
	t.Helper()
	local, shared := newMem(), newMem()
	s, err := New(Config{
		WithValue: []string{"caller", "callee/s"},
		NoValue:   []string{"inbound", "trunk/s"},
	}, local, shared, "node1")
	if err != nil {
		t.Fatal(err)
	}
	return s, local, shared
}

func mustSet(t *testing.T, s *Set, dlg, profile, value string, limit, want int64) {
	t.Helper()
	n, err := s.SetProfile(ctx, dlg, profile, value, limit)
	if err != nil {
		t.Fatalf("SetProfile(%s, %s, %q): %v", dlg, profile, value, err)
	}
	if n != want {
		t.Fatalf("SetProfile(%s, %s, %q) = %d, want %d", dlg, profile, value, n, want)
	}
}

func size(t *testing.T, s *Set, profile, value string) int64 {
	t.Helper()
	n, err := s.Size(ctx, profile, value)
	if err != nil {
		t.Fatalf("Size(%s, %q): %v", profile, value, err)
	}
	return n
}

func storeSize(t *testing.T, st cachedb.Store, name string, withValue bool, value string) int64 {
	t.Helper()
	n, err := st.Size(ctx, cachedb.Profile{Name: name, WithValue: withValue}, value)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// Seed 1.6.36/1.6.37 profiles_with_value / profiles_no_value.
func TestSeedProfilesDeclaration(t *testing.T) {
	tests := []struct {
		name     string
		cfg      Config
		noShared bool
		wantErr  []string // substrings, each must appear
	}{
		{name: "ok", cfg: Config{WithValue: []string{"caller", "share/s"}, NoValue: []string{"inbound", "shared2/s"}}},
		{name: "empty", cfg: Config{WithValue: []string{""}}, wantErr: []string{"empty profile name"}},
		{name: "empty shared", cfg: Config{NoValue: []string{"/s"}}, wantErr: []string{`empty profile name "/s"`}},
		{name: "space", cfg: Config{WithValue: []string{"my profile"}}, wantErr: []string{`"my profile"`}},
		{name: "control", cfg: Config{NoValue: []string{"a\tb"}}, wantErr: []string{`"a\tb"`}},
		{name: "nul", cfg: Config{NoValue: []string{"a\x00b"}}, wantErr: []string{`"a\x00b"`}},
		{name: "slash", cfg: Config{NoValue: []string{"a/x"}}, wantErr: []string{`"a/x"`}},
		{name: "clusterer", cfg: Config{NoValue: []string{"repl/b"}}, wantErr: []string{`"repl"`, "/b"}},
		{name: "bad utf8", cfg: Config{NoValue: []string{"a\xffb"}}, wantErr: []string{"UTF-8"}},
		{name: "duplicate", cfg: Config{WithValue: []string{"caller", "caller"}}, wantErr: []string{`"caller" declared twice`}},
		{name: "duplicate shared and local", cfg: Config{NoValue: []string{"trunk", "trunk/s"}}, wantErr: []string{`"trunk" declared twice`}},
		{name: "both lists", cfg: Config{WithValue: []string{"x"}, NoValue: []string{"x/s"}}, wantErr: []string{`"x" declared in both`}},
		{name: "shared without store", cfg: Config{WithValue: []string{"caller/s"}}, noShared: true, wantErr: []string{`"caller/s"`, "cachedb_url"}},
		{name: "local without shared store", cfg: Config{WithValue: []string{"caller"}}, noShared: true},
		{name: "all errors reported", cfg: Config{WithValue: []string{"a b", "c/b"}, NoValue: []string{""}}, wantErr: []string{`"a b"`, `"c"`, "empty"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var shared cachedb.Store = newMem()
			if tt.noShared {
				shared = nil
			}
			_, err := New(tt.cfg, newMem(), shared, "n1")
			if len(tt.wantErr) == 0 {
				if err != nil {
					t.Fatalf("New: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("New: no error")
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
	if _, err := New(Config{}, nil, nil, ""); err == nil {
		t.Error("empty node accepted")
	}
}

// list_all_profiles.
func TestSeedListAllProfiles(t *testing.T) {
	s, _, _ := testSet(t)
	want := []Info{
		{Name: "callee", WithValue: true, Shared: true},
		{Name: "caller", WithValue: true},
		{Name: "inbound"},
		{Name: "trunk", Shared: true},
	}
	if got := s.Declared(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Declared = %+v, want %+v", got, want)
	}
}

// Seed 1.3 "Dialog profiling" and 1.7.11-1.7.14, profile with value.
func TestSeedDialogProfiling_WithValue(t *testing.T) {
	s, _, _ := testSet(t)
	mustSet(t, s, "1.1", "caller", "alice", 0, 1)
	mustSet(t, s, "1.2", "caller", "alice", 0, 2)
	mustSet(t, s, "1.3", "caller", "bob", 0, 1)
	// Same (profile, value) twice counts once.
	mustSet(t, s, "1.1", "caller", "alice", 0, 2)
	// Several values for one dialog.
	mustSet(t, s, "1.1", "caller", "carol", 0, 1)

	for _, c := range []struct {
		value string
		want  int64
	}{{"alice", 2}, {"bob", 1}, {"carol", 1}, {"dave", 0}, {"", 4}} {
		if got := size(t, s, "caller", c.value); got != c.want {
			t.Errorf("Size(caller, %q) = %d, want %d", c.value, got, c.want)
		}
	}
	isIn := []struct {
		dlg, value string
		want       bool
	}{
		{"1.1", "alice", true}, {"1.1", "carol", true}, {"1.1", "bob", false}, {"1.1", "", true},
		{"1.3", "bob", true}, {"1.3", "alice", false}, {"9.9", "", false},
	}
	for _, c := range isIn {
		if got := s.IsInProfile(c.dlg, "caller", c.value); got != c.want {
			t.Errorf("IsInProfile(%s, caller, %q) = %v, want %v", c.dlg, c.value, got, c.want)
		}
	}
	if s.IsInProfile("1.1", "inbound", "") || s.IsInProfile("1.1", "nosuch", "") {
		t.Error("IsInProfile true for a profile the dialog is not in")
	}
	wantM := []Membership{{"caller", "alice"}, {"caller", "carol"}}
	if got := s.Memberships("1.1"); !reflect.DeepEqual(got, wantM) {
		t.Errorf("Memberships = %+v, want %+v", got, wantM)
	}
	if got, want := s.Dialogs("caller", "alice"), []string{"1.1", "1.2"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Dialogs(caller, alice) = %v, want %v", got, want)
	}
	if got, want := s.Dialogs("caller", ""), []string{"1.1", "1.2", "1.3"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Dialogs(caller) = %v, want %v", got, want)
	}
	vals, err := s.Values(ctx, "caller")
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]int64{"alice": 2, "bob": 1, "carol": 1}; !reflect.DeepEqual(vals, want) {
		t.Errorf("Values = %v, want %v", vals, want)
	}

	// unset_dlg_profile with a value removes that value only.
	if err := s.UnsetProfile(ctx, "1.1", "caller", "alice"); err != nil {
		t.Fatal(err)
	}
	if s.IsInProfile("1.1", "caller", "alice") || !s.IsInProfile("1.1", "caller", "carol") {
		t.Error("unset with value removed the wrong membership")
	}
	if got := size(t, s, "caller", "alice"); got != 1 {
		t.Errorf("Size(caller, alice) after unset = %d, want 1", got)
	}
	// Unsetting again, or what the dialog is not in, does nothing.
	if err := s.UnsetProfile(ctx, "1.1", "caller", "alice"); err != nil {
		t.Fatal(err)
	}
	if err := s.UnsetProfile(ctx, "1.3", "caller", "alice"); err != nil {
		t.Fatal(err)
	}
	if got := size(t, s, "caller", ""); got != 3 {
		t.Errorf("Size(caller) = %d, want 3", got)
	}
	// Value "" removes every value the dialog has.
	mustSet(t, s, "1.1", "caller", "erin", 0, 1)
	if err := s.UnsetProfile(ctx, "1.1", "caller", ""); err != nil {
		t.Fatal(err)
	}
	if s.IsInProfile("1.1", "caller", "") || len(s.Memberships("1.1")) != 0 {
		t.Errorf("1.1 still in caller: %v", s.Memberships("1.1"))
	}
	if got := size(t, s, "caller", ""); got != 2 {
		t.Errorf("Size(caller) = %d, want 2", got)
	}
}

// Seed 1.7.11-1.7.14, profile without value.
func TestSeedDialogProfiling_NoValue(t *testing.T) {
	s, _, _ := testSet(t)
	mustSet(t, s, "1.1", "inbound", "", 0, 1)
	mustSet(t, s, "1.2", "inbound", "", 0, 2)
	mustSet(t, s, "1.1", "inbound", "", 0, 2) // twice counts once
	if got := size(t, s, "inbound", ""); got != 2 {
		t.Errorf("Size(inbound) = %d, want 2", got)
	}
	// A value on a profile without value is ignored by is_in_profile and
	// get_profile_size, as in OpenSIPS.
	if got := size(t, s, "inbound", "x"); got != 2 {
		t.Errorf("Size(inbound, x) = %d, want 2", got)
	}
	if !s.IsInProfile("1.1", "inbound", "") || !s.IsInProfile("1.1", "inbound", "x") || s.IsInProfile("1.3", "inbound", "") {
		t.Error("IsInProfile(inbound) wrong")
	}
	if got, want := s.Dialogs("inbound", ""), []string{"1.1", "1.2"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Dialogs(inbound) = %v, want %v", got, want)
	}
	vals, err := s.Values(ctx, "inbound")
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]int64{"": 2}; !reflect.DeepEqual(vals, want) {
		t.Errorf("Values(inbound) = %v, want %v", vals, want)
	}
	if err := s.UnsetProfile(ctx, "1.1", "inbound", ""); err != nil {
		t.Fatal(err)
	}
	if s.IsInProfile("1.1", "inbound", "") || size(t, s, "inbound", "") != 1 {
		t.Error("unset_dlg_profile(inbound) did not remove 1.1")
	}
}

func TestSeedDialogProfiling_Errors(t *testing.T) {
	s, _, _ := testSet(t)
	tests := []struct {
		name, dlg, profile, value string
		is                        error
		contains                  string
	}{
		{"unknown", "1.1", "nosuch", "", ErrUnknownProfile, "nosuch"},
		{"local with /s", "1.1", "caller/s", "x", ErrUnknownProfile, "caller/s"},
		{"missing value", "1.1", "caller", "", ErrValue, "caller"},
		{"value on no-value", "1.1", "inbound", "x", ErrValue, "inbound"},
		{"empty dialog", "", "inbound", "", nil, "empty dialog id"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.SetProfile(ctx, tt.dlg, tt.profile, tt.value, 0)
			if err == nil {
				t.Fatal("no error")
			}
			if tt.is != nil && !errors.Is(err, tt.is) {
				t.Errorf("error %v is not %v", err, tt.is)
			}
			if !strings.Contains(err.Error(), tt.contains) {
				t.Errorf("error %q does not name %q", err, tt.contains)
			}
		})
	}
	if err := s.UnsetProfile(ctx, "1.1", "inbound", "x"); !errors.Is(err, ErrValue) {
		t.Errorf("UnsetProfile(inbound, x) = %v, want ErrValue", err)
	}
	if err := s.UnsetProfile(ctx, "1.1", "nosuch", ""); !errors.Is(err, ErrUnknownProfile) {
		t.Errorf("UnsetProfile(nosuch) = %v, want ErrUnknownProfile", err)
	}
	if _, err := s.Size(ctx, "nosuch", ""); !errors.Is(err, ErrUnknownProfile) {
		t.Errorf("Size(nosuch) = %v", err)
	}
	if _, err := s.Values(ctx, "nosuch"); !errors.Is(err, ErrUnknownProfile) {
		t.Errorf("Values(nosuch) = %v", err)
	}
	if s.Dialogs("nosuch", "") != nil || len(s.Memberships("1.1")) != 0 {
		t.Error("failed calls left a record")
	}
}

// Call limits: N pass, N+1 fails with cachedb.ErrLimit and is not counted.
func TestSeedDialogProfiling_Limit(t *testing.T) {
	tests := []struct {
		profile, value string
	}{
		{"caller", "alice"}, {"callee", "bob"}, {"callee/s", "bob"}, {"inbound", ""}, {"trunk", ""},
	}
	const limit = 3
	for _, tt := range tests {
		t.Run(tt.profile, func(t *testing.T) {
			s, _, _ := testSet(t)
			for i := 1; i <= limit; i++ {
				mustSet(t, s, fmt.Sprintf("1.%d", i), tt.profile, tt.value, limit, int64(i))
			}
			n, err := s.SetProfile(ctx, "1.99", tt.profile, tt.value, limit)
			if !errors.Is(err, cachedb.ErrLimit) {
				t.Fatalf("SetProfile over the limit: %v, want ErrLimit", err)
			}
			if n != limit || !strings.Contains(err.Error(), "1.99") {
				t.Errorf("over the limit: n=%d err=%q", n, err)
			}
			if got := size(t, s, tt.profile, tt.value); got != limit {
				t.Errorf("size after refused set = %d, want %d", got, limit)
			}
			if s.IsInProfile("1.99", tt.profile, "") || len(s.Memberships("1.99")) != 0 {
				t.Error("refused dialog recorded")
			}
			// A dialog already in counts once and is not refused.
			mustSet(t, s, "1.1", tt.profile, tt.value, limit, limit)
			// After one ends the next one passes.
			if err := s.EndDialog(ctx, "1.2"); err != nil {
				t.Fatal(err)
			}
			mustSet(t, s, "1.99", tt.profile, tt.value, limit, limit)
		})
	}
}

func TestSeedDialogProfiling_EndDialog(t *testing.T) {
	s, local, shared := testSet(t)
	mustSet(t, s, "1.1", "caller", "alice", 0, 1)
	mustSet(t, s, "1.1", "caller", "bob", 0, 1)
	mustSet(t, s, "1.1", "callee", "carol", 0, 1)
	mustSet(t, s, "1.1", "inbound", "", 0, 1)
	mustSet(t, s, "1.1", "trunk", "", 0, 1)
	mustSet(t, s, "1.2", "caller", "alice", 0, 2)
	for i := 0; i < 2; i++ {
		if err := s.EndDialog(ctx, "1.1"); err != nil {
			t.Fatalf("EndDialog #%d: %v", i+1, err)
		}
		if m := s.Memberships("1.1"); len(m) != 0 {
			t.Fatalf("memberships after end: %v", m)
		}
		for _, c := range []struct {
			st        cachedb.Store
			name      string
			withValue bool
			value     string
			want      int64
		}{
			{local, "caller", true, "alice", 1},
			{local, "caller", true, "bob", 0},
			{local, "caller", true, "", 1},
			{local, "inbound", false, "", 0},
			{shared, "callee", true, "", 0},
			{shared, "trunk", false, "", 0},
		} {
			if got := storeSize(t, c.st, c.name, c.withValue, c.value); got != c.want {
				t.Errorf("after EndDialog #%d: %s %q = %d, want %d", i+1, c.name, c.value, got, c.want)
			}
		}
	}
	if got, want := s.Dialogs("caller", ""), []string{"1.2"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Dialogs(caller) = %v, want %v", got, want)
	}
	if err := s.EndDialog(ctx, "never.seen"); err != nil {
		t.Error(err)
	}
	if len(s.dialogs) != 1 || indexedValues(s) != 1 {
		t.Errorf("record not cleaned: %d dialogs, index %v", len(s.dialogs), s.index)
	}
}

// Shared ("/s") profiles go to the shared store under the bare name, local
// ones to the local store.
func TestSeedDialogProfiling_SharedRouting(t *testing.T) {
	s, local, shared := testSet(t)
	mustSet(t, s, "1.1", "caller", "1234", 0, 1)
	mustSet(t, s, "1.1", "callee/s", "1234", 0, 1) // declared name accepted
	mustSet(t, s, "1.2", "callee", "1234", 0, 2)   // bare name too
	mustSet(t, s, "1.1", "inbound", "", 0, 1)
	mustSet(t, s, "1.1", "trunk", "", 0, 1)
	for _, c := range []struct {
		st        *cachedb.Memory
		where     string
		name      string
		withValue bool
		value     string
		want      int64
	}{
		{local, "local", "caller", true, "1234", 1},
		{shared, "shared", "caller", true, "1234", 0},
		{local, "local", "callee", true, "1234", 0},
		{shared, "shared", "callee", true, "1234", 2},
		{shared, "shared", "callee", true, "", 2},
		{local, "local", "inbound", false, "", 1},
		{shared, "shared", "inbound", false, "", 0},
		{local, "local", "trunk", false, "", 0},
		{shared, "shared", "trunk", false, "", 1},
	} {
		if got := storeSize(t, c.st, c.name, c.withValue, c.value); got != c.want {
			t.Errorf("%s store %s %q = %d, want %d", c.where, c.name, c.value, got, c.want)
		}
	}
	if got := size(t, s, "callee/s", ""); got != 2 {
		t.Errorf("Size(callee/s) = %d, want 2", got)
	}
	if got := s.Memberships("1.1"); len(got) != 4 || got[0] != (Membership{"callee", "1234"}) {
		t.Errorf("Memberships = %v (profile names must be bare)", got)
	}
}

// Two nodes sharing one store: a shared limit holds across both, while
// each node lists only its own dialogs.
func TestSeedDialogProfiling_TwoNodes(t *testing.T) {
	shared := newMem()
	cfg := Config{WithValue: []string{"caller/s"}}
	a, err := New(cfg, newMem(), shared, "a")
	if err != nil {
		t.Fatal(err)
	}
	b, err := New(cfg, newMem(), shared, "b")
	if err != nil {
		t.Fatal(err)
	}
	mustSet(t, a, "1.1", "caller", "u", 2, 1)
	mustSet(t, b, "1.1", "caller", "u", 2, 2) // same dialog id, other node: another dialog
	if _, err := a.SetProfile(ctx, "1.2", "caller", "u", 2); !errors.Is(err, cachedb.ErrLimit) {
		t.Fatalf("third call across nodes: %v, want ErrLimit", err)
	}
	if got := a.Dialogs("caller", "u"); !reflect.DeepEqual(got, []string{"1.1"}) {
		t.Errorf("node a Dialogs = %v", got)
	}
	if err := b.EndDialog(ctx, "1.1"); err != nil {
		t.Fatal(err)
	}
	if got := size(t, a, "caller", "u"); got != 1 {
		t.Errorf("size after b ended = %d, want 1", got)
	}
}

// failStore fails Remove while fail is set.
type failStore struct {
	cachedb.Store
	fail atomic.Bool
}

var errDown = errors.New("store down")

func (f *failStore) Remove(ctx context.Context, p cachedb.Profile, value string, m cachedb.Member) (int64, error) {
	if f.fail.Load() {
		return 0, errDown
	}
	return f.Store.Remove(ctx, p, value, m)
}

func TestEndDialogStoreErrorRetried(t *testing.T) {
	local := newMem()
	shared := &failStore{Store: newMem()}
	s, err := New(Config{WithValue: []string{"caller"}, NoValue: []string{"trunk/s"}}, local, shared, "n")
	if err != nil {
		t.Fatal(err)
	}
	mustSet(t, s, "1.1", "caller", "x", 0, 1)
	mustSet(t, s, "1.1", "trunk", "", 0, 1)
	shared.fail.Store(true)
	if err := s.EndDialog(ctx, "1.1"); !errors.Is(err, errDown) {
		t.Fatalf("EndDialog = %v, want errDown", err)
	}
	// The local one was still removed; the shared one stays recorded.
	if got := s.Memberships("1.1"); !reflect.DeepEqual(got, []Membership{{"trunk", ""}}) {
		t.Fatalf("Memberships after failed end = %v", got)
	}
	if got := size(t, s, "caller", ""); got != 0 {
		t.Errorf("caller size = %d, want 0", got)
	}
	shared.fail.Store(false)
	if err := s.EndDialog(ctx, "1.1"); err != nil {
		t.Fatal(err)
	}
	if got := size(t, s, "trunk", ""); got != 0 || len(s.Memberships("1.1")) != 0 {
		t.Errorf("after retry: trunk=%d memberships=%v", got, s.Memberships("1.1"))
	}
}

// Many dialogs on two nodes race for a shared limit while others read and
// end dialogs: exactly limit pass, and everything reads 0 at the end.
func TestConcurrentLimitAndEnd(t *testing.T) {
	shared := newMem()
	cfg := Config{WithValue: []string{"caller/s", "local"}, NoValue: []string{"trunk/s"}}
	var nodes []*Set
	for _, n := range []string{"a", "b"} {
		s, err := New(cfg, newMem(), shared, n)
		if err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, s)
	}
	const limit, workers, perWorker = 10, 8, 25
	var passed atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := nodes[w%2]
			for i := range perWorker {
				id := fmt.Sprintf("%d.%d", w, i)
				_, err := s.SetProfile(ctx, id, "trunk", "", limit)
				switch {
				case err == nil:
					passed.Add(1)
				case !errors.Is(err, cachedb.ErrLimit):
					t.Error(err)
				}
				if _, err := s.SetProfile(ctx, id, "caller", fmt.Sprint(i%3), 0); err != nil {
					t.Error(err)
				}
				if _, err := s.SetProfile(ctx, id, "local", "v", 0); err != nil {
					t.Error(err)
				}
				_ = s.IsInProfile(id, "caller", "")
				_ = s.Dialogs("caller", "")
				_ = s.Memberships(id)
				// A racing EndDialog on the same dialog.
				var inner sync.WaitGroup
				inner.Add(1)
				go func() {
					defer inner.Done()
					if err := s.EndDialog(ctx, id); err != nil {
						t.Error(err)
					}
				}()
				_ = s.UnsetProfile(ctx, id, "caller", "")
				inner.Wait()
				if err := s.EndDialog(ctx, id); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	if passed.Load() < limit {
		t.Errorf("only %d passed the limit", passed.Load())
	}
	for _, s := range nodes {
		for _, c := range []struct{ p, v string }{{"trunk", ""}, {"caller", ""}, {"local", ""}} {
			if got := size(t, s, c.p, c.v); got != 0 {
				t.Errorf("%s %s size %d after all ended", s.node, c.p, got)
			}
		}
		if len(s.dialogs) != 0 || indexedValues(s) != 0 {
			t.Errorf("node %s record not empty: %d dialogs, %v", s.node, len(s.dialogs), s.index)
		}
	}
}

// Without EndDialog in between, a shared limit is exact under contention.
func TestConcurrentLimitExact(t *testing.T) {
	shared := newMem()
	cfg := Config{NoValue: []string{"trunk/s"}}
	a, _ := New(cfg, nil, shared, "a")
	b, _ := New(cfg, nil, shared, "b")
	const limit = 17
	var passed atomic.Int64
	var wg sync.WaitGroup
	for i := range 100 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := a
			if i%2 == 1 {
				s = b
			}
			if _, err := s.SetProfile(ctx, fmt.Sprint(i), "trunk", "", limit); err == nil {
				passed.Add(1)
			} else if !errors.Is(err, cachedb.ErrLimit) {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if passed.Load() != limit || size(t, a, "trunk", "") != limit {
		t.Errorf("passed %d, size %d, want %d", passed.Load(), size(t, a, "trunk", ""), limit)
	}
	if n := len(a.Dialogs("trunk", "")) + len(b.Dialogs("trunk", "")); n != limit {
		t.Errorf("recorded %d dialogs, want %d", n, limit)
	}
}

// indexedValues counts the values indexed over all profiles: a profile's
// own map stays when it empties (record), so len(s.index) says nothing.
func indexedValues(s *Set) int {
	s.mu.RLock()
	defer s.mu.RUnlock()
	n := 0
	for _, byValue := range s.index {
		n += len(byValue)
	}
	return n
}

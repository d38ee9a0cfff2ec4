package profiles

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/imsdlg/imsdlg/cachedb"
)

// fault is how a faultStore misbehaves.
type fault int32

const (
	faultNone fault = iota
	// faultDown fails every call before it reaches the data, as a refused
	// connection does.
	faultDown
	// faultLost applies Add and Remove and then fails them, as a reply
	// lost to a timeout does; reads fail.
	faultLost
)

var errUnreachable = errors.New("dial tcp 127.0.0.1:6379: connect: connection refused")

// faultStore wraps a memory store with switchable failures and counts the
// calls that failed.
type faultStore struct {
	cachedb.Store
	mode   atomic.Int32
	failed atomic.Int64
}

func newFault() *faultStore { return &faultStore{Store: newMem()} }

func (f *faultStore) set(m fault) { f.mode.Store(int32(m)) }

func (f *faultStore) err(op string) error {
	f.failed.Add(1)
	return fmt.Errorf("faultstore: %s: %w", op, errUnreachable)
}

func (f *faultStore) Add(ctx context.Context, p cachedb.Profile, value string, m cachedb.Member, limit int64) (int64, error) {
	switch fault(f.mode.Load()) {
	case faultDown:
		return 0, f.err("add")
	case faultLost:
		if _, err := f.Store.Add(ctx, p, value, m, limit); err != nil {
			return 0, err
		}
		return 0, f.err("add")
	}
	return f.Store.Add(ctx, p, value, m, limit)
}

func (f *faultStore) Remove(ctx context.Context, p cachedb.Profile, value string, m cachedb.Member) (int64, error) {
	switch fault(f.mode.Load()) {
	case faultDown:
		return 0, f.err("remove")
	case faultLost:
		if _, err := f.Store.Remove(ctx, p, value, m); err != nil {
			return 0, err
		}
		return 0, f.err("remove")
	}
	return f.Store.Remove(ctx, p, value, m)
}

func (f *faultStore) Size(ctx context.Context, p cachedb.Profile, value string) (int64, error) {
	if fault(f.mode.Load()) != faultNone {
		return 0, f.err("size")
	}
	return f.Store.Size(ctx, p, value)
}

func (f *faultStore) Values(ctx context.Context, p cachedb.Profile) (map[string]int64, error) {
	if fault(f.mode.Load()) != faultNone {
		return nil, f.err("values")
	}
	return f.Store.Values(ctx, p)
}

// faultSet is testSet over two fault stores: caller (with value) and
// inbound (no value) are local, callee/s and trunk/s shared.
func faultSet(t *testing.T) (*Set, *faultStore, *faultStore) {
	t.Helper()
	local, shared := newFault(), newFault()
	s, err := New(Config{
		WithValue: []string{"caller", "callee/s"},
		NoValue:   []string{"inbound", "trunk/s"},
	}, local, shared, "node1")
	if err != nil {
		t.Fatal(err)
	}
	s.SetLogger(slog.New(slog.DiscardHandler))
	return s, local, shared
}

// count reads a counter straight from the wrapped store, bypassing faults.
func count(t *testing.T, f *faultStore, name string, withValue bool, value string) int64 {
	t.Helper()
	return storeSize(t, f.Store, name, withValue, value)
}

func recordEmpty(t *testing.T, s *Set) {
	t.Helper()
	s.mu.RLock()
	defer s.mu.RUnlock()
	if len(s.dialogs) != 0 || indexedValues(s) != 0 {
		t.Errorf("record not empty: %d dialogs, index %v", len(s.dialogs), s.index)
	}
}

// A failed release leaves the dialog pending with its failed memberships;
// RetryPending removes them once the store is back, and every count reads 0.
func TestReleaseFailureIsPendingAndRetried(t *testing.T) {
	tests := []struct {
		name     string
		shared   bool // which store fails
		mode     fault
		wantLeft []Membership // recorded after the failed release
	}{
		{"shared store down", true, faultDown, []Membership{{"callee", "x"}, {"trunk", ""}}},
		{"shared store reply lost", true, faultLost, []Membership{{"callee", "x"}, {"trunk", ""}}},
		{"local store down", false, faultDown, []Membership{{"caller", "x"}, {"inbound", ""}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, local, shared := faultSet(t)
			bad := local
			if tt.shared {
				bad = shared
			}
			for _, p := range []string{"caller", "callee"} {
				mustSet(t, s, "1.1", p, "x", 0, 1)
				mustSet(t, s, "2.1", p, "x", 0, 2) // another dialog, must stay counted
			}
			mustSet(t, s, "1.1", "inbound", "", 0, 1)
			mustSet(t, s, "1.1", "trunk", "", 0, 1)

			bad.set(tt.mode)
			err := s.Release(ctx, "1.1")
			if !errors.Is(err, errUnreachable) || !strings.Contains(err.Error(), "1.1") {
				t.Fatalf("Release = %v, want an error naming the dialog and wrapping the store's", err)
			}
			if got := s.Pending(); got != 1 {
				t.Fatalf("Pending = %d, want 1", got)
			}
			if got := s.Memberships("1.1"); !reflect.DeepEqual(got, tt.wantLeft) {
				t.Errorf("Memberships after failed release = %v, want %v", got, tt.wantLeft)
			}
			if left := s.RetryPending(ctx); left != 1 {
				t.Errorf("RetryPending while the store is down = %d, want 1", left)
			}

			bad.set(faultNone)
			if left := s.RetryPending(ctx); left != 0 {
				t.Fatalf("RetryPending after recovery = %d, want 0", left)
			}
			if len(s.Memberships("1.1")) != 0 || s.Pending() != 0 {
				t.Errorf("after retry: memberships %v, pending %d", s.Memberships("1.1"), s.Pending())
			}
			for _, st := range []*faultStore{local, shared} {
				for _, c := range []struct {
					name      string
					withValue bool
					value     string
				}{{"caller", true, "x"}, {"callee", true, "x"}, {"caller", true, ""}, {"callee", true, ""}} {
					want := int64(1) // 2.1
					if (c.name == "callee") != (st == shared) {
						want = 0 // not this store's profile
					}
					if got := count(t, st, c.name, c.withValue, c.value); got != want {
						t.Errorf("%s %q = %d after retry, want %d", c.name, c.value, got, want)
					}
				}
				for _, name := range []string{"inbound", "trunk"} {
					if got := count(t, st, name, false, ""); got != 0 {
						t.Errorf("%s = %d after retry, want 0", name, got)
					}
				}
			}
			if got := s.Stats().Snapshot()["decrements_retried_ok"]; got != 2 {
				t.Errorf("decrements_retried_ok = %d, want 2", got)
			}
			if err := s.Release(ctx, "2.1"); err != nil {
				t.Fatal(err)
			}
			recordEmpty(t, s)
		})
	}
}

// During an outage a pass tries the failing store once, not once per
// pending dialog, and still releases the dialogs that need only the other
// store.
func TestRetryPendingTriesAFailingStoreOncePerPass(t *testing.T) {
	s, local, shared := faultSet(t)
	const n = 10
	shared.set(faultDown)
	for i := range n {
		id := fmt.Sprintf("1.%d", i)
		mustSet(t, s, id, "caller", "x", 0, 1)
		if _, err := s.SetProfile(ctx, id, "trunk", "", 0); !errors.Is(err, errUnreachable) {
			t.Fatalf("SetProfile(trunk) = %v", err)
		}
		if err := s.Release(ctx, id); err == nil {
			t.Fatalf("Release(%s) succeeded with the shared store down", id)
		}
	}
	local.set(faultDown)
	mustSetErr := func(id string) {
		if _, err := s.SetProfile(ctx, id, "inbound", "", 0); !errors.Is(err, errUnreachable) {
			t.Fatalf("SetProfile(inbound) = %v", err)
		}
	}
	mustSetErr("9.9")
	if err := s.Release(ctx, "9.9"); err == nil {
		t.Fatal("Release(9.9) succeeded with the local store down")
	}
	local.set(faultNone)
	if got := s.Pending(); got != n+1 {
		t.Fatalf("Pending = %d, want %d", got, n+1)
	}

	shared.failed.Store(0)
	if left := s.RetryPending(ctx); left != n {
		t.Errorf("RetryPending = %d, want %d (the local-only dialog released)", left, n)
	}
	if got := shared.failed.Load(); got != 1 {
		t.Errorf("%d calls to the failing store in one pass, want 1", got)
	}
	if got := count(t, local, "caller", true, ""); got != 0 {
		t.Errorf("caller = %d, want 0 (the local removals succeed at the first release)", got)
	}
	shared.set(faultNone)
	if left := s.RetryPending(ctx); left != 0 {
		t.Errorf("RetryPending after recovery = %d, want 0", left)
	}
	recordEmpty(t, s)
}

// An Add that failed on a store error may have been applied: it is kept out
// of sight but removed when the dialog ends, however it ends.
func TestUncertainAddRemovedWhenTheDialogEnds(t *testing.T) {
	ends := []struct {
		name string
		end  func(s *Set, id string) error
	}{
		{"Release", func(s *Set, id string) error { return s.Release(ctx, id) }},
		{"EndDialog", func(s *Set, id string) error { return s.EndDialog(ctx, id) }},
		{"UnsetProfile", func(s *Set, id string) error { return s.UnsetProfile(ctx, id, "callee", "") }},
	}
	modes := []struct {
		name    string
		mode    fault
		applied int64
	}{
		{"not applied", faultDown, 0},
		{"applied, reply lost", faultLost, 1},
	}
	for _, e := range ends {
		for _, m := range modes {
			t.Run(e.name+"/"+m.name, func(t *testing.T) {
				s, _, shared := faultSet(t)
				mustSet(t, s, "2.1", "callee", "x", 0, 1)
				shared.set(m.mode)
				_, err := s.SetProfile(ctx, "1.1", "callee", "x", 0)
				if !errors.Is(err, errUnreachable) || errors.Is(err, cachedb.ErrLimit) || !strings.Contains(err.Error(), "1.1") {
					t.Fatalf("SetProfile = %v, want the store error naming the dialog", err)
				}
				shared.set(faultNone)
				if s.IsInProfile("1.1", "callee", "") || len(s.Memberships("1.1")) != 0 ||
					!reflect.DeepEqual(s.Dialogs("callee", "x"), []string{"2.1"}) {
					t.Errorf("uncertain membership visible: in=%v memberships=%v dialogs=%v",
						s.IsInProfile("1.1", "callee", ""), s.Memberships("1.1"), s.Dialogs("callee", "x"))
				}
				if got := count(t, shared, "callee", true, "x"); got != 1+m.applied {
					t.Fatalf("callee x = %d before the end, want %d", got, 1+m.applied)
				}
				if err := e.end(s, "1.1"); err != nil {
					t.Fatal(err)
				}
				// The other dialog is still counted: removing a member never
				// added changed nothing.
				if got := count(t, shared, "callee", true, "x"); got != 1 {
					t.Errorf("callee x = %d after the end, want 1", got)
				}
				if got := s.Stats().Snapshot()["uncertain_adds"]; got != 1 {
					t.Errorf("uncertain_adds = %d, want 1", got)
				}
				if err := s.EndDialog(ctx, "2.1"); err != nil {
					t.Fatal(err)
				}
				recordEmpty(t, s)
			})
		}
	}
}

// A later answer from the store settles an uncertain membership: a success
// makes it a membership (counted once), a limit proves it was not counted.
func TestUncertainAddSettledBySetProfile(t *testing.T) {
	tests := []struct {
		name      string
		mode      fault
		limit     int64
		wantErr   error
		wantIn    bool
		wantCount int64
	}{
		{"success after a lost reply counts once", faultLost, 0, nil, true, 2},
		{"success after a refused connection", faultDown, 0, nil, true, 2},
		{"limit after a refused connection drops it", faultDown, 1, cachedb.ErrLimit, false, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _, shared := faultSet(t)
			mustSet(t, s, "2.1", "callee", "x", 0, 1)
			shared.set(tt.mode)
			if _, err := s.SetProfile(ctx, "1.1", "callee", "x", tt.limit); err == nil {
				t.Fatal("SetProfile succeeded on a failing store")
			}
			shared.set(faultNone)
			_, err := s.SetProfile(ctx, "1.1", "callee", "x", tt.limit)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("SetProfile again = %v, want %v", err, tt.wantErr)
			}
			if got := s.IsInProfile("1.1", "callee", "x"); got != tt.wantIn {
				t.Errorf("IsInProfile = %v, want %v", got, tt.wantIn)
			}
			if got := count(t, shared, "callee", true, "x"); got != tt.wantCount {
				t.Errorf("callee x = %d, want %d", got, tt.wantCount)
			}
			s.mu.RLock()
			_, recorded := s.dialogs["1.1"]
			s.mu.RUnlock()
			if recorded != tt.wantIn {
				t.Errorf("record of 1.1 kept = %v, want %v", recorded, tt.wantIn)
			}
		})
	}
}

// logBuf collects JSON log records from concurrent writers.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) records(t *testing.T) []map[string]any {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(l.b.String()), "\n") {
		if line == "" {
			continue
		}
		var r map[string]any
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, r)
	}
	return out
}

func captureLog(s *Set) *logBuf {
	buf := &logBuf{}
	s.SetLogger(slog.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelDebug})))
	return buf
}

// An outage is logged once when it starts and once when it ends, however
// many calls fail; a limit reached is an answer, not an outage.
func TestStoreOutageLoggedOnce(t *testing.T) {
	tests := []struct {
		store       string
		shared      bool
		profile     string
		wantHealthy bool // Healthy during the outage: only the shared store counts
	}{
		{"shared", true, "trunk", false},
		{"local", false, "inbound", true},
	}
	for _, tt := range tests {
		t.Run(tt.store, func(t *testing.T) {
			s, local, shared := faultSet(t)
			bad := local
			if tt.shared {
				bad = shared
			}
			buf := captureLog(s)
			clock := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
			s.now = func() time.Time { return clock }

			mustSet(t, s, "0.1", tt.profile, "", 1, 1)
			if _, err := s.SetProfile(ctx, "0.2", tt.profile, "", 1); !errors.Is(err, cachedb.ErrLimit) {
				t.Fatalf("over the limit: %v", err)
			}
			bad.set(faultDown)
			const failures = 7
			for i := range failures {
				if i%2 == 0 {
					_, _ = s.SetProfile(ctx, fmt.Sprintf("1.%d", i), tt.profile, "", 0)
				} else {
					_, _ = s.Size(ctx, tt.profile, "")
				}
			}
			if s.Healthy() != tt.wantHealthy {
				t.Errorf("Healthy during the outage = %v, want %v", s.Healthy(), tt.wantHealthy)
			}
			clock = clock.Add(90 * time.Second)
			bad.set(faultNone)
			for range 3 {
				_ = size(t, s, tt.profile, "")
			}
			if !s.Healthy() {
				t.Error("Healthy after recovery = false")
			}

			recs := buf.records(t)
			if len(recs) != 2 {
				t.Fatalf("%d log records, want 2: %v", len(recs), recs)
			}
			warn, info := recs[0], recs[1]
			if warn["level"] != "WARN" || warn["msg"] != "profile store unreachable" || warn["store"] != tt.store ||
				!strings.Contains(fmt.Sprint(warn["error"]), "connection refused") {
				t.Errorf("first record = %v", warn)
			}
			if info["level"] != "INFO" || info["msg"] != "profile store reachable again" || info["store"] != tt.store ||
				info["down_for"] != float64(90*time.Second) {
				t.Errorf("second record = %v", info)
			}
			snap := s.Stats().Snapshot()
			if got := snap["store_errors_"+tt.store]; got != failures {
				t.Errorf("store_errors_%s = %d, want %d", tt.store, got, failures)
			}

			// A second outage is a second warning.
			bad.set(faultDown)
			_, _ = s.Size(ctx, tt.profile, "")
			if recs := buf.records(t); len(recs) != 3 || recs[2]["level"] != "WARN" {
				t.Errorf("second outage: records %v", recs)
			}

			// A slow store fails one call in many: within flapWindow of the
			// last warning, outages and recoveries are not logged again.
			for range 5 {
				clock = clock.Add(time.Second)
				bad.set(faultNone)
				_ = size(t, s, tt.profile, "")
				bad.set(faultDown)
				_, _ = s.Size(ctx, tt.profile, "")
			}
			recs = buf.records(t)
			if len(recs) != 4 || recs[3]["msg"] != "profile store reachable again" {
				t.Fatalf("flapping store: %d records, want 4 (the first recovery only): %v", len(recs), recs)
			}
			clock = clock.Add(flapWindow)
			_, _ = s.Size(ctx, tt.profile, "")
			bad.set(faultNone)
			_ = size(t, s, tt.profile, "")
			bad.set(faultDown)
			_, _ = s.Size(ctx, tt.profile, "")
			recs = buf.records(t)
			if len(recs) != 5 || recs[4]["level"] != "WARN" || recs[4]["outages_not_logged"] != float64(5) {
				t.Errorf("after flapWindow the next outage is logged with the count of those not logged: %v", recs)
			}
		})
	}
}

// A call its caller cancelled says nothing about the store; one whose
// deadline ran out does (the store was too slow). Either way what may have
// been counted is still removed later.
func TestCallerContextAndStoreHealth(t *testing.T) {
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	expired, cancel2 := context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel2()
	tests := []struct {
		name        string
		ctx         context.Context
		wantErrors  int64
		wantHealthy bool
		wantLogs    int
	}{
		{"cancelled", cancelled, 0, true, 0},
		{"deadline exceeded", expired, 2, false, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _, shared := faultSet(t)
			buf := captureLog(s)
			shared.set(faultLost)
			if _, err := s.SetProfile(tt.ctx, "1.1", "trunk", "", 0); err == nil {
				t.Fatal("SetProfile succeeded")
			}
			if err := s.Release(tt.ctx, "1.1"); err == nil {
				t.Fatal("Release succeeded")
			}
			if got := s.Stats().Snapshot()["store_errors_shared"]; got != tt.wantErrors {
				t.Errorf("store_errors_shared = %d, want %d", got, tt.wantErrors)
			}
			if s.Healthy() != tt.wantHealthy {
				t.Errorf("Healthy = %v, want %v", s.Healthy(), tt.wantHealthy)
			}
			if got := len(buf.records(t)); got != tt.wantLogs {
				t.Errorf("%d log records, want %d", got, tt.wantLogs)
			}
			shared.set(faultNone)
			if left := s.RetryPending(ctx); left != 0 {
				t.Errorf("RetryPending = %d, want 0", left)
			}
			if got := count(t, shared, "trunk", false, ""); got != 0 {
				t.Errorf("trunk = %d, want 0", got)
			}
			recordEmpty(t, s)
		})
	}
}

// Ping probes the shared store, so health follows it without traffic.
func TestPingFollowsTheSharedStore(t *testing.T) {
	s, _, shared := faultSet(t)
	steps := []struct {
		name    string
		mode    fault
		wantErr bool
	}{
		{"up", faultNone, false},
		{"down", faultDown, true},
		{"back", faultNone, false},
	}
	for _, st := range steps {
		shared.set(st.mode)
		err := s.Ping(ctx)
		if (err != nil) != st.wantErr {
			t.Errorf("%s: Ping = %v", st.name, err)
		}
		if err != nil && (!errors.Is(err, errUnreachable) || !strings.Contains(err.Error(), "callee")) {
			t.Errorf("%s: Ping error %q does not wrap the store's or name the profile", st.name, err)
		}
		if s.Healthy() != !st.wantErr {
			t.Errorf("%s: Healthy = %v", st.name, s.Healthy())
		}
	}
	local, err := New(Config{NoValue: []string{"inbound"}}, newFault(), nil, "n")
	if err != nil {
		t.Fatal(err)
	}
	if err := local.Ping(ctx); err != nil || !local.Healthy() {
		t.Errorf("without a shared profile: Ping = %v, Healthy = %v", err, local.Healthy())
	}
}

// Run retries pending dialogs, pings a store that was failing, and returns
// when its context ends.
func TestRunRetriesPendingUntilCancelled(t *testing.T) {
	s, _, shared := faultSet(t)
	mustSet(t, s, "1.1", "trunk", "", 0, 1)
	shared.set(faultDown)
	if err := s.Release(ctx, "1.1"); err == nil {
		t.Fatal("Release succeeded")
	}
	shared.set(faultNone)
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		s.Run(rctx, time.Millisecond)
		close(done)
	}()
	waitFor(t, "pending retried", func() bool { return s.Pending() == 0 })

	shared.set(faultDown)
	_ = s.Ping(ctx)
	shared.set(faultNone)
	waitFor(t, "healthy again without traffic", s.Healthy)

	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	if got := count(t, shared, "trunk", false, ""); got != 0 {
		t.Errorf("trunk = %d, want 0", got)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for: %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// Dialogs set and released while the shared store flaps, with retries
// running alongside, leave nothing counted once it is back.
func TestConcurrentReleaseDuringOutage(t *testing.T) {
	s, _, shared := faultSet(t)
	stop := make(chan struct{})
	var bg sync.WaitGroup
	bg.Add(2)
	go func() {
		defer bg.Done()
		modes := []fault{faultNone, faultDown, faultLost}
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			shared.set(modes[i%len(modes)])
			time.Sleep(50 * time.Microsecond)
		}
	}()
	go func() {
		defer bg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			s.RetryPending(ctx)
			_ = s.Stats().Snapshot()
		}
	}()
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				id := fmt.Sprintf("%d.%d", w, i)
				_, _ = s.SetProfile(ctx, id, "trunk", "", 0)
				_, _ = s.SetProfile(ctx, id, "callee", fmt.Sprint(i%3), 0)
				_, _ = s.SetProfile(ctx, id, "caller", "v", 0)
				_ = s.Healthy()
				_ = s.Release(ctx, id)
			}
		}()
	}
	wg.Wait()
	close(stop)
	bg.Wait()
	shared.set(faultNone)
	if left := s.RetryPending(ctx); left != 0 {
		t.Fatalf("RetryPending after recovery = %d, want 0", left)
	}
	for _, c := range []struct {
		name      string
		withValue bool
	}{{"trunk", false}, {"callee", true}} {
		if got := count(t, shared, c.name, c.withValue, ""); got != 0 {
			t.Errorf("%s = %d after all released", c.name, got)
		}
	}
	if got := size(t, s, "caller", ""); got != 0 {
		t.Errorf("caller = %d after all released", got)
	}
	recordEmpty(t, s)
}

// A NUL in a dialog id is refused up front rather than taken for a store
// failure (which would leave an uncertain membership to retry for ever).
func TestDialogIDWithNULRefused(t *testing.T) {
	s, _, _ := faultSet(t)
	_, err := s.SetProfile(ctx, "1\x001", "trunk", "", 0)
	if err == nil || !strings.Contains(err.Error(), "NUL") {
		t.Fatalf("SetProfile = %v, want a NUL error", err)
	}
	if got := s.Stats().Snapshot()["uncertain_adds"]; got != 0 {
		t.Errorf("uncertain_adds = %d, want 0", got)
	}
	recordEmpty(t, s)
}

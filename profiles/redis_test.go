package profiles

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/imsdlg/imsdlg/cachedb"
	"github.com/imsdlg/imsdlg/internal/redistest"
	"github.com/redis/go-redis/v9"
)

// Shared profiles on a real Redis use OpenSIPS' key names under the bare
// profile name, with the TTL set, and two nodes share one limit.
func TestSeedDialogProfiling_RedisShared(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	newNode := func(node string) *Set {
		st, err := cachedb.NewRedis(cachedb.RedisOptions{URL: srv.URL(), Keys: cachedb.DefaultKeys(), TTL: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		s, err := New(Config{WithValue: []string{"caller/s", "local"}, NoValue: []string{"trunk/s"}}, newMem(), st, node)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	a, b := newNode("a"), newNode("b")
	raw := srv.Client(t)

	mustSet(t, a, "1.1", "caller", "1234", 2, 1)
	mustSet(t, b, "7.7", "caller", "1234", 2, 2)
	mustSet(t, a, "1.1", "trunk", "", 0, 1)
	mustSet(t, a, "1.1", "local", "x", 0, 1)
	if _, err := a.SetProfile(ctx, "1.2", "caller", "1234", 2); !errors.Is(err, cachedb.ErrLimit) {
		t.Fatalf("third call across nodes: %v, want ErrLimit", err)
	}
	for key, want := range map[string]string{
		"dlg_val_caller_MTIzNA==": "2",
		"dlg_size_caller":         "2",
		"dlg_noval_trunk":         "1",
	} {
		got, err := raw.Get(ctx, key).Result()
		if err != nil || got != want {
			t.Errorf("GET %s = %q, %v; want %q", key, got, err, want)
		}
		if ttl := raw.TTL(ctx, key).Val(); ttl <= 0 || ttl > time.Hour {
			t.Errorf("TTL %s = %v", key, ttl)
		}
	}
	if n := raw.Exists(ctx, "dlg_val_local_eA==", "dlg_size_caller/s", "dlg_size_local").Val(); n != 0 {
		t.Errorf("%d unexpected keys in Redis (local profile or suffixed name)", n)
	}
	vals, err := a.Values(ctx, "caller")
	if err != nil || vals["1234"] != 2 || len(vals) != 1 {
		t.Errorf("Values(caller) = %v, %v", vals, err)
	}
	if got := a.Dialogs("caller", "1234"); len(got) != 1 || got[0] != "1.1" {
		t.Errorf("node a lists %v, want only its own dialog", got)
	}

	for _, end := range []struct {
		s  *Set
		id string
	}{{a, "1.1"}, {b, "7.7"}, {a, "1.1"}} {
		if err := end.s.EndDialog(ctx, end.id); err != nil {
			t.Fatal(err)
		}
	}
	for _, key := range []string{"dlg_val_caller_MTIzNA==", "dlg_size_caller", "dlg_noval_trunk"} {
		if got, _ := raw.Get(ctx, key).Int64(); got != 0 {
			t.Errorf("%s = %d after all ended", key, got)
		}
	}
}

// Redis stops while a call holds a shared profile and another call is
// being set up: the release is kept pending and the possibly counted add is
// remembered, the outage is logged once, and once Redis is back (with its
// data) one retry pass brings every counter back to 0.
func TestReleaseRetriedAfterRedisRestart(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{Persistent: true})
	st, err := cachedb.NewRedis(cachedb.RedisOptions{URL: srv.URL(), Keys: cachedb.DefaultKeys(),
		TTL: time.Hour, Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	s, err := New(Config{WithValue: []string{"caller/s"}, NoValue: []string{"trunk/s"}}, newMem(), st, "a")
	if err != nil {
		t.Fatal(err)
	}
	buf := captureLog(s)
	raw := srv.Client(t)
	counters := []string{"dlg_val_caller_MTIzNA==", "dlg_size_caller", "dlg_noval_trunk"}
	read := func(key string) int64 {
		t.Helper()
		n, err := raw.Get(ctx, key).Int64()
		if err != nil && !errors.Is(err, redis.Nil) {
			t.Fatalf("GET %s: %v", key, err)
		}
		return n
	}

	mustSet(t, s, "1.1", "caller", "1234", 0, 1)
	mustSet(t, s, "1.1", "trunk", "", 0, 1)

	srv.Stop()
	if _, err := s.SetProfile(ctx, "1.2", "trunk", "", 0); err == nil || errors.Is(err, cachedb.ErrLimit) {
		t.Fatalf("SetProfile with Redis stopped = %v, want a store error", err)
	}
	err = s.Release(ctx, "1.1")
	if err == nil || !strings.Contains(err.Error(), "1.1") {
		t.Fatalf("Release with Redis stopped = %v, want an error naming the dialog", err)
	}
	if err := s.Release(ctx, "1.2"); err == nil {
		t.Fatal("Release of the uncertain dialog succeeded with Redis stopped")
	}
	if s.Pending() != 2 || s.Healthy() {
		t.Fatalf("with Redis stopped: Pending = %d, Healthy = %v; want 2, false", s.Pending(), s.Healthy())
	}
	if left := s.RetryPending(ctx); left != 2 {
		t.Errorf("RetryPending with Redis stopped = %d, want 2", left)
	}

	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	for _, key := range counters {
		if got := read(key); got != 1 {
			t.Fatalf("%s = %d after restart, want 1 (kept by the append-only file)", key, got)
		}
	}
	if left := s.RetryPending(ctx); left != 0 {
		t.Fatalf("RetryPending after restart = %d, want 0", left)
	}
	for _, key := range counters {
		if got := read(key); got != 0 {
			t.Errorf("%s = %d after the retry, want 0", key, got)
		}
	}
	if n := raw.ZCard(ctx, cachedb.DefaultKeys().Membership("a")).Val(); n != 0 {
		t.Errorf("%d membership records of node a left", n)
	}
	if !s.Healthy() || len(s.Memberships("1.1")) != 0 {
		t.Errorf("after the retry: Healthy = %v, memberships %v", s.Healthy(), s.Memberships("1.1"))
	}
	snap := s.Stats().Snapshot()
	if snap["pending_decrements"] != 0 || snap["decrements_retried_ok"] != 3 || snap["uncertain_adds"] != 1 {
		t.Errorf("Snapshot = %v", snap)
	}
	var levels []string
	for _, r := range buf.records(t) {
		levels = append(levels, r["level"].(string)+" "+r["msg"].(string))
	}
	if want := []string{"WARN profile store unreachable", "INFO profile store reachable again"}; !slices.Equal(levels, want) {
		t.Errorf("log = %v, want %v", levels, want)
	}
	recordEmpty(t, s)
}

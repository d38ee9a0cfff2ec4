package profiles

import (
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/imsdlg/imsdlg/cachedb"
	"github.com/redis/go-redis/v9"
)

// startRedis starts a throw-away redis-server on a loopback port and
// returns its address. It skips when redis-server is absent (fails in CI).
// cachedb has a fuller harness, but test helpers cannot be imported.
func startRedis(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("redis-server")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("redis-server not found and CI is set: %v", err)
		}
		t.Skip("redis-server not installed")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	cmd := exec.Command(path, "--port", fmt.Sprint(port), "--bind", "127.0.0.1",
		"--save", "", "--appendonly", "no", "--loglevel", "warning")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	c := redis.NewClient(&redis.Options{Addr: addr})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := c.Ping(ctx).Err()
		if err == nil {
			return addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("redis-server on %s not ready: %v", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Shared profiles on a real Redis use OpenSIPS' key names under the bare
// profile name, with the TTL set, and two nodes share one limit.
func TestSeedDialogProfiling_RedisShared(t *testing.T) {
	addr := startRedis(t)
	newNode := func(node string) *Set {
		st, err := cachedb.NewRedis(cachedb.RedisOptions{URL: "redis://" + addr + "/0", Keys: cachedb.DefaultKeys(), TTL: time.Hour})
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
	raw := redis.NewClient(&redis.Options{Addr: addr})
	defer raw.Close()

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

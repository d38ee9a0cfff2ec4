package cachedb

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/imsdlg/imsdlg/internal/redistest"
)

// redisServer is a redis-server on a loopback port, started by the tests.
type redisServer struct {
	*redistest.Server
	addr string
}

var (
	sharedOnce   sync.Once
	sharedServer *redisServer
	sharedErr    error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if sharedServer != nil {
		sharedServer.stop()
	}
	os.Exit(code)
}

// needRedis skips when redis-server is absent, except in CI where its
// absence is a broken setup.
func needRedis(t *testing.T) { redistest.Need(t) }

// startRedis starts a redis-server the caller stops.
func startRedis(t *testing.T, extra ...string) (*redisServer, error) {
	s, err := redistest.StartE(t, redistest.Options{Extra: extra})
	if err != nil {
		return nil, err
	}
	return &redisServer{Server: s, addr: s.Addr}, nil
}

func (s *redisServer) stop() { s.Kill() }

// shared returns the server the whole package's tests share.
func shared(t *testing.T) *redisServer {
	t.Helper()
	needRedis(t)
	sharedOnce.Do(func() { sharedServer, sharedErr = startRedis(t) })
	if sharedErr != nil {
		t.Fatal(sharedErr)
	}
	return sharedServer
}

// storeURLs remembers the URL each test store was built with, so raw access
// can open its own client to the same server or cluster.
var storeURLs sync.Map // *Redis -> string

// rawClient reads and writes the shared server directly.
func rawClient(t *testing.T) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: shared(t).addr})
	t.Cleanup(func() { c.Close() })
	return c
}

type redisRawT struct{ c redis.UniversalClient }

// redisRaw opens a client of its own to the server behind s.
func redisRaw(t *testing.T, s *Redis) raw {
	t.Helper()
	u, ok := storeURLs.Load(s)
	if !ok {
		t.Fatal("store not built by newRedisStore")
	}
	o, err := ParseURL(u.(string))
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewUniversalClient(o)
	t.Cleanup(func() { c.Close() })
	return redisRawT{c}
}

func (r redisRawT) get(t *testing.T, key string) (int64, bool) {
	n, err := r.c.Get(context.Background(), key).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, false
	}
	if err != nil {
		t.Fatalf("GET %s: %v", key, err)
	}
	return n, true
}

func (r redisRawT) set(t *testing.T, key string, n int64) {
	if err := r.c.Set(context.Background(), key, n, confTTL).Err(); err != nil {
		t.Fatalf("SET %s: %v", key, err)
	}
}

func (r redisRawT) ttl(t *testing.T, key string) (time.Duration, bool) {
	d, err := r.c.TTL(context.Background(), key).Result()
	if err != nil {
		t.Fatalf("TTL %s: %v", key, err)
	}
	// -2: no key; -1: no expiry (reported as not positive).
	return d, d != -2*time.Nanosecond && d != -2*time.Second
}

// newRedisStore returns a store on an emptied shared server.
func newRedisStore(t *testing.T, split bool) *Redis {
	t.Helper()
	srv := shared(t)
	if err := rawClient(t).FlushAll(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	s := newStoreAt(t, "redis://"+srv.addr+"/0")
	s.split = split
	return s
}

func newStoreAt(t *testing.T, url string) *Redis {
	t.Helper()
	s, err := NewRedis(RedisOptions{URL: url, Keys: DefaultKeys(), TTL: confTTL, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	storeURLs.Store(s, url)
	t.Cleanup(func() { storeURLs.Delete(s); s.Close() })
	return s
}

func TestRedisConformance(t *testing.T) {
	runConformance(t, func(t *testing.T) Store { return newRedisStore(t, false) })
}

// TestRedisSplitConformance runs the Cluster code path (one script per key)
// against a single node, so it is exercised without a cluster.
func TestRedisSplitConformance(t *testing.T) {
	runConformance(t, func(t *testing.T) Store { return newRedisStore(t, true) })
}

func TestRedisMembershipRecord(t *testing.T) {
	s := newRedisStore(t, false)
	c := rawClient(t)
	ctx := context.Background()
	mustAdd(t, s, caller, "1234", mem("n1", "7.42"), 0, 1)
	zs, err := c.ZRangeWithScores(ctx, "imsdlg_member_n1", 0, -1).Result()
	if err != nil || len(zs) != 1 {
		t.Fatalf("membership = %v, %v; want one record", zs, err)
	}
	if want := "v\x00caller\x00MTIzNA==\x007.42"; zs[0].Member != want {
		t.Errorf("record %q, want %q", zs[0].Member, want)
	}
	now, _ := c.Time(ctx).Result()
	if exp := int64(zs[0].Score) - now.Unix(); exp <= 0 || exp > int64(confTTL.Seconds()) {
		t.Errorf("record expires in %ds, want in (0, %d]", exp, int64(confTTL.Seconds()))
	}
	if d, _ := c.TTL(ctx, "imsdlg_member_n1").Result(); d <= 0 || d > confTTL {
		t.Errorf("membership key TTL %v", d)
	}
}

// TestRedisExpiredMembership: a record past its expiry (written as if long
// ago) is neither counted by Reconcile nor blocks a new Add.
func TestRedisExpiredMembership(t *testing.T) {
	s := newRedisStore(t, false)
	c := rawClient(t)
	ctx := context.Background()
	id := memberID(trunk, "", "old")
	if err := c.ZAdd(ctx, "imsdlg_member_n1", redis.Z{Score: 1, Member: id}).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := s.Reconcile(ctx, "n1", nil); err != nil || n != 0 {
		t.Errorf("Reconcile = %d, %v; want 0", n, err)
	}
	if n, _ := c.ZCard(ctx, "imsdlg_member_n1").Result(); n != 0 {
		t.Errorf("expired record left behind: %d", n)
	}
	mustAdd(t, s, trunk, "", mem("n1", "old"), 0, 1)
}

// TestRedisUnreachable: with Redis gone or silent, every call fails within
// the timeout with an error that wraps the cause and names the profile.
func TestRedisUnreachable(t *testing.T) {
	const timeout = 300 * time.Millisecond

	closedPort := func(t *testing.T) string {
		p, err := redistest.FreePort()
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("127.0.0.1:%d", p)
	}
	// silent accepts connections and never answers: a hung Redis.
	silent := func(t *testing.T) string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		t.Cleanup(func() { l.Close(); wg.Wait() })
		wg.Go(func() {
			for {
				conn, err := l.Accept()
				if err != nil {
					return
				}
				wg.Go(func() { _, _ = io.Copy(io.Discard, conn) })
				t.Cleanup(func() { conn.Close() })
			}
		})
		return l.Addr().String()
	}
	stopped := func(t *testing.T) string {
		srv, err := startRedis(t)
		if err != nil {
			t.Fatal(err)
		}
		s, err := NewRedis(RedisOptions{URL: "redis://" + srv.addr, TTL: confTTL, Keys: DefaultKeys()})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		mustAdd(t, s, trunk, "", mem("n1", "d1"), 0, 1) // it worked before
		srv.stop()
		return srv.addr
	}
	tests := []struct {
		name string
		addr func(t *testing.T) string
	}{
		{"closed port", closedPort},
		{"silent server", silent},
		{"server stopped", stopped},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := NewRedis(RedisOptions{URL: "redis://" + tc.addr(t), Keys: DefaultKeys(), TTL: confTTL, Timeout: timeout})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			ctx := context.Background()
			calls := []struct {
				name string
				call func() error
			}{
				{"Add", func() error { _, err := s.Add(ctx, caller, "1234", mem("n1", "d1"), 5); return err }},
				{"Remove", func() error { _, err := s.Remove(ctx, caller, "1234", mem("n1", "d1")); return err }},
				{"Size", func() error { _, err := s.Size(ctx, caller, "1234"); return err }},
				{"Values", func() error { _, err := s.Values(ctx, caller); return err }},
				{"Reconcile", func() error { _, err := s.Reconcile(ctx, "n1", nil); return err }},
			}
			for _, c := range calls {
				start := time.Now()
				err := c.call()
				took := time.Since(start)
				if err == nil {
					t.Fatalf("%s succeeded with Redis unreachable", c.name)
				}
				if errors.Is(err, ErrLimit) || errors.Unwrap(err) == nil {
					t.Errorf("%s: error %v does not wrap a cause", c.name, err)
				}
				if c.name == "Add" && !strings.Contains(err.Error(), "caller") {
					t.Errorf("Add: error %q does not name the profile", err)
				}
				// Dial, write and read are each bounded by the timeout
				// and the context by it too; allow slack for a loaded CI.
				if took > 4*timeout {
					t.Errorf("%s took %v with timeout %v", c.name, took, timeout)
				}
			}
		})
	}
}

func TestRedisBadURL(t *testing.T) {
	if _, err := NewRedis(RedisOptions{URL: "mysql://h"}); err == nil {
		t.Error("NewRedis accepted a mysql URL")
	}
}

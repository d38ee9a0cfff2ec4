package cachedb

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// TestRedisClusterConformance runs the suite against a three-master Redis
// Cluster on loopback, where the keys of one change hash to different slots
// and the store must take its per-key path.
func TestRedisClusterConformance(t *testing.T) {
	needRedis(t)
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("redis-cli not found and CI is set: %v", err)
		}
		t.Skip("redis-cli not installed")
	}
	if testing.Short() {
		t.Skip("cluster set-up skipped in -short")
	}
	dir := t.TempDir()
	var addrs []string
	for i := range 3 {
		srv, err := startRedis(t, "--cluster-enabled", "yes", "--dir", dir,
			"--cluster-config-file", fmt.Sprintf("nodes-%d.conf", i))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(srv.stop)
		addrs = append(addrs, srv.addr)
	}
	create := exec.Command(cli, append(append([]string{"--cluster", "create"}, addrs...),
		"--cluster-replicas", "0", "--cluster-yes")...)
	if out, err := create.CombinedOutput(); err != nil {
		t.Fatalf("redis-cli --cluster create: %v\n%s", err, out)
	}
	waitClusterOK(t, addrs)

	url := "redis-cluster://" + strings.Join(addrs, ",")

	// The one-script path cannot work here: that is why Cluster is split.
	whole := newStoreAt(t, url)
	whole.split = false
	if _, err := whole.Add(context.Background(), caller, "1234", mem("n1", "d1"), 0); err == nil || !strings.Contains(err.Error(), "CROSSSLOT") {
		t.Fatalf("one-script Add on a cluster = %v; want a CROSSSLOT error", err)
	}
	first := true
	runConformance(t, func(t *testing.T) Store {
		s := newStoreAt(t, url)
		if !s.split {
			t.Fatal("cluster URL did not select the per-key path")
		}
		c := s.c.(*redis.ClusterClient)
		if first {
			// Prove the premise: the keys of one change are on different slots.
			k := DefaultKeys()
			if a, b := slot(t, c, k.Value("caller", "1234")), slot(t, c, k.Size("caller")); a == b {
				t.Fatalf("%s and %s share slot %d: the test proves nothing", k.Value("caller", "1234"), k.Size("caller"), a)
			}
			first = false
		}
		err := c.ForEachMaster(context.Background(), func(ctx context.Context, m *redis.Client) error {
			return m.FlushAll(ctx).Err()
		})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func slot(t *testing.T, c *redis.ClusterClient, key string) int64 {
	n, err := c.ClusterKeySlot(context.Background(), key).Result()
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// waitClusterOK polls CLUSTER INFO until every node reports the cluster up:
// redis-cli returns when the nodes agree on the configuration, but each node
// flips cluster_state in its own cron. There is no event to wait on, hence
// the poll (bounded, 10 s).
func waitClusterOK(t *testing.T, addrs []string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for _, a := range addrs {
		c := redis.NewClient(&redis.Options{Addr: a})
		for {
			info, err := c.ClusterInfo(context.Background()).Result()
			if err == nil && strings.Contains(info, "cluster_state:ok") {
				break
			}
			if time.Now().After(deadline) {
				c.Close()
				t.Fatalf("cluster node %s not ok after 10s: %v %s", a, err, info)
			}
			<-tick.C
		}
		c.Close()
	}
}

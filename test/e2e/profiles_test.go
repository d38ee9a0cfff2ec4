package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/imsdlg/imsdlg/internal/redistest"
)

// The caller of every sipp UAC scenario is sip:alice@127.0.0.1:<port>; a
// from_uri limit counts it without the port.
const callerValue = "alice@127.0.0.1"

// profileTimeout is profiles.profile_timeout in these tests, in seconds.
const profileTimeout = 600

// Key names as OpenSIPS writes them (issue 5 §5): bare profile name,
// standard padded base64 of the value.
var (
	callerValKey  = "dlg_val_caller_" + base64.StdEncoding.EncodeToString([]byte(callerValue))
	callerSizeKey = "dlg_size_caller"
)

// limitedNode starts a proxy whose calls to bob go to uas, with the shared
// profile caller/s limited to max calls per caller.
func limitedNode(t *testing.T, redisURL, node string, max int, mode string, uas *Sipp) *Proxy {
	t.Helper()
	return StartProxy(t, limitedNodeYAML(t, redisURL, node, max, mode, uas))
}

func limitedNodeYAML(t *testing.T, redisURL, node string, max int, mode string, uas *Sipp) string {
	cfg := NewProxyConfig(t)
	cfg.Static["sip:bob@127.0.0.1"] = []string{uas.Contact("bob")}
	cfg.Extra = fmt.Sprintf(`profiles:
  cachedb_url: %q
  with_value: [caller/s]
  profile_timeout: %d
  on_cachedb_error: %s
  cachedb_timeout: 200ms
  retry_period: 1s
  node_id: %s
limits:
  - {profile: caller/s, key: from_uri, max: %d, code: 486, reason: "Too many calls"}
`, redisURL, profileTimeout, mode, node, max)
	return cfg.YAML()
}

// counter reads a Redis counter; a missing key is 0.
func counter(t *testing.T, c *redis.Client, key string) int64 {
	t.Helper()
	n, err := c.Get(context.Background(), key).Int64()
	if err == redis.Nil {
		return 0
	}
	if err != nil {
		t.Fatalf("GET %s: %v", key, err)
	}
	return n
}

// waitCounter polls a Redis counter until it reads want.
func waitCounter(t *testing.T, c *redis.Client, key string, want int64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		got := counter(t, c, key)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s = %d, want %d", key, got, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkKeysSettled checks every profile key: counter 0 (or gone) and a TTL
// within profile_timeout, so nothing a node wrote lives forever.
func checkKeysSettled(t *testing.T, c *redis.Client) {
	t.Helper()
	ctx := context.Background()
	for _, pattern := range []string{"dlg_*", "imsdlg_member_*"} {
		keys, err := c.Keys(ctx, pattern).Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			ttl, err := c.TTL(ctx, k).Result()
			if err != nil {
				t.Fatal(err)
			}
			if ttl <= 0 || ttl > profileTimeout*time.Second {
				t.Errorf("%s: TTL %v, want within (0, %ds]", k, ttl, profileTimeout)
			}
			if pattern == "dlg_*" {
				if n := counter(t, c, k); n != 0 {
					t.Errorf("%s = %d after every call ended, want 0", k, n)
				}
			}
		}
	}
}

func profileSize(t *testing.T, p *Proxy, profile, value string) int64 {
	t.Helper()
	raw, err := p.RPC("dlg.profile_get_size", map[string]any{"profile": profile, "value": value})
	if err != nil {
		t.Fatalf("dlg.profile_get_size: %v", err)
	}
	var r struct {
		Profile string `json:"profile"`
		Value   string `json:"value"`
		Size    int64  `json:"size"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatalf("dlg.profile_get_size: %v: %s", err, raw)
	}
	if r.Profile != profile || r.Value != value {
		t.Errorf("dlg.profile_get_size answered for %q %q, asked %q %q", r.Profile, r.Value, profile, value)
	}
	return r.Size
}

// Issue 5: two nodes share one Redis; a limit of 2 calls per caller holds
// across both (the third call, on either node, gets 486); the keys are
// OpenSIPS's; after the calls every counter is 0 with a TTL.
func TestE2E_SharedLimitAcrossTwoNodes(t *testing.T) {
	RequireTools(t)
	t.Parallel()
	srv := redistest.Start(t, redistest.Options{})
	rc := srv.Client(t)
	uasA := StartSipp(t, SippArgs{Scenario: "uas.xml"})
	uasB := StartSipp(t, SippArgs{Scenario: "uas.xml"})
	pA := limitedNode(t, srv.URL(), "node-a", 2, "fail_closed", uasA)
	pB := limitedNode(t, srv.URL(), "node-b", 2, "fail_closed", uasB)

	hold := 8 * time.Second
	uac1 := StartSipp(t, SippArgs{Scenario: "uac.xml", Remote: pA.Addr("udp"), Service: "bob", Pause: hold})
	uac2 := StartSipp(t, SippArgs{Scenario: "uac.xml", Remote: pB.Addr("udp"), Service: "bob", Pause: hold})
	waitCounter(t, rc, callerValKey, 2)
	if n := counter(t, rc, callerSizeKey); n != 2 {
		t.Errorf("%s = %d, want 2", callerSizeKey, n)
	}
	for _, k := range []string{callerValKey, callerSizeKey, "imsdlg_member_node-a", "imsdlg_member_node-b"} {
		if ttl := rc.TTL(context.Background(), k).Val(); ttl <= 0 || ttl > profileTimeout*time.Second {
			t.Errorf("%s: TTL %v during the calls, want within (0, %ds]", k, ttl, profileTimeout)
		}
	}
	// Both nodes see the count of both.
	for _, p := range []*Proxy{pA, pB} {
		if n := profileSize(t, p, "caller/s", callerValue); n != 2 {
			t.Errorf("dlg.profile_get_size on %s = %d, want 2", p.MgmtAddr, n)
		}
	}

	// The third call, on either node, is over the limit.
	for _, p := range []*Proxy{pA, pB} {
		rej := StartSipp(t, SippArgs{Scenario: "uac_expect.xml", Remote: p.Addr("udp"), Service: "bob",
			Keys: map[string]string{"code": "486"}})
		if err := rej.Wait(); err != nil {
			t.Errorf("third call through %s: %v", p.MgmtAddr, err)
		}
	}
	if n := counter(t, rc, callerValKey); n != 2 {
		t.Errorf("%s = %d after the rejected calls, want 2", callerValKey, n)
	}
	if v, ok := MetricValue(pA.Metrics(), `imsdlg_profile_limit_rejected_total{profile="caller"}`); !ok || v != 1 {
		t.Errorf("imsdlg_profile_limit_rejected_total on node a = %v (found %t), want 1", v, ok)
	}

	waitAll(t, uac1, uac2, uasA, uasB)
	waitCounter(t, rc, callerValKey, 0)
	waitCounter(t, rc, callerSizeKey, 0)
	checkKeysSettled(t, rc)
}

// Issue 5: Redis stops mid-test. fail_closed rejects new limited calls
// with 503 and reports not ready; fail_open lets them through. A call that
// ends during the outage is decremented once Redis is back.
func TestE2E_SharedProfileRedisDown(t *testing.T) {
	RequireTools(t)
	for _, tc := range []struct {
		name, mode string
		scenario   string
		keys       map[string]string
		readyRedis bool // mgmt.ready_requires_redis
		wantReady  int
	}{
		// Issue 12 §11: Redis is shared, so by default its outage does not
		// make every node unready at once: they still relay in-dialog
		// requests. ready_requires_redis restores the strict check.
		{"fail_closed", "fail_closed", "uac_expect.xml", map[string]string{"code": "503"}, false, http.StatusOK},
		{"fail_closed_ready_requires_redis", "fail_closed", "uac_expect.xml", map[string]string{"code": "503"}, true, http.StatusServiceUnavailable},
		{"fail_open", "fail_open", "uac.xml", nil, false, http.StatusOK},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := redistest.Start(t, redistest.Options{Persistent: true})
			rc := srv.Client(t)
			calls := 1
			if tc.mode == "fail_open" {
				calls = 2
			}
			uas := StartSipp(t, SippArgs{Scenario: "uas.xml", Calls: calls})
			p := StartProxyEnv(t, limitedNodeYAML(t, srv.URL(), "node-"+tc.name, 5, tc.mode, uas),
				fmt.Sprintf("IMSDLG_MGMT_READY_REQUIRES_REDIS=%t", tc.readyRedis))

			uac1 := StartSipp(t, SippArgs{Scenario: "uac.xml", Remote: p.Addr("udp"), Service: "bob", Pause: 4 * time.Second})
			waitCounter(t, rc, callerValKey, 1)
			srv.Stop()

			during := StartSipp(t, SippArgs{Scenario: tc.scenario, Remote: p.Addr("udp"), Service: "bob", Keys: tc.keys})
			if err := during.Wait(); err != nil {
				t.Errorf("call while Redis is down (%s): %v", tc.mode, err)
			}
			if code := readyz(t, p); code != tc.wantReady {
				t.Errorf("/readyz while Redis is down = %d, want %d", code, tc.wantReady)
			}
			// The first call ends while Redis is still down.
			waitAll(t, uac1, uas)
			waitMetric(t, p, "imsdlg_profile_pending_decrements", func(v float64) bool { return v >= 1 })

			if err := srv.Restart(); err != nil {
				t.Fatal(err)
			}
			waitCounter(t, rc, callerValKey, 0)
			waitMetric(t, p, "imsdlg_profile_pending_decrements", func(v float64) bool { return v == 0 })
			checkKeysSettled(t, rc)
			if code := readyz(t, p); code != http.StatusOK {
				t.Errorf("/readyz with Redis back = %d, want 200", code)
			}
			metric := "imsdlg_profile_fail_closed_total"
			if tc.mode == "fail_open" {
				metric = "imsdlg_profile_fail_open_total"
			}
			if v, _ := MetricValue(p.Metrics(), metric); v != 1 {
				t.Errorf("%s = %v, want 1", metric, v)
			}
		})
	}
}

// Issue 5 cachedb §4: a node killed with SIGKILL mid-call leaves its count
// in Redis; started again with the same node_id it removes that count
// (once), while the other node's call stays counted.
func TestE2E_SharedProfileKilledNodeIsReconciled(t *testing.T) {
	RequireTools(t)
	t.Parallel()
	srv := redistest.Start(t, redistest.Options{})
	rc := srv.Client(t)
	uasA := StartSipp(t, SippArgs{Scenario: "uas.xml", Timeout: 120 * time.Second})
	uasB := StartSipp(t, SippArgs{Scenario: "uas.xml"})
	yamlA := limitedNodeYAML(t, srv.URL(), "node-a", 5, "fail_closed", uasA)
	pA := StartProxy(t, yamlA)
	pB := limitedNode(t, srv.URL(), "node-b", 5, "fail_closed", uasB)

	uacA := StartSipp(t, SippArgs{Scenario: "uac.xml", Remote: pA.Addr("udp"), Service: "bob", Pause: 60 * time.Second, Timeout: 120 * time.Second})
	waitCounter(t, rc, callerValKey, 1)
	uacB := StartSipp(t, SippArgs{Scenario: "uac.xml", Remote: pB.Addr("udp"), Service: "bob", Pause: 8 * time.Second})
	waitCounter(t, rc, callerValKey, 2)

	pA.Kill()
	uacA.Kill()
	uasA.Kill()
	if n := counter(t, rc, callerValKey); n != 2 {
		t.Fatalf("%s = %d right after the crash, want 2 (nothing removed it yet)", callerValKey, n)
	}
	// The same node again: it reconciles before it takes calls.
	pA2 := StartProxy(t, yamlA)
	if n := counter(t, rc, callerValKey); n != 1 {
		t.Errorf("%s = %d after node-a restarted, want 1 (node-b's call)", callerValKey, n)
	}
	if n := counter(t, rc, callerSizeKey); n != 1 {
		t.Errorf("%s = %d after node-a restarted, want 1", callerSizeKey, n)
	}
	if n := profileSize(t, pA2, "caller/s", callerValue); n != 1 {
		t.Errorf("dlg.profile_get_size on the restarted node = %d, want 1", n)
	}
	waitAll(t, uacB, uasB)
	waitCounter(t, rc, callerValKey, 0)
	checkKeysSettled(t, rc)
}

func readyz(t *testing.T, p *Proxy) int {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get("http://" + p.MgmtAddr + "/readyz")
	if err != nil {
		t.Fatalf("GET /readyz: %v", err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// waitMetric polls /metrics until the series satisfies ok.
func waitMetric(t *testing.T, p *Proxy, series string, ok func(float64) bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		v, found := MetricValue(p.Metrics(), series)
		if found && ok(v) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s = %v (found %t): condition never held", series, v, found)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Issue 15 §3: Redis restarts without its data while two calls are up on
// a node with a limit of 2: the node notices (the data set's generation
// changed), counts its live calls again, and the third call still gets
// 486; when the calls end every count is 0.
func TestIssue15_3_RedisLosesItsDataDuringCalls(t *testing.T) {
	RequireTools(t)
	t.Parallel()
	srv := redistest.Start(t, redistest.Options{})
	rc := srv.Client(t)
	uas := StartSipp(t, SippArgs{Scenario: "uas.xml", Calls: 2, Timeout: 60 * time.Second})
	p := limitedNode(t, srv.URL(), "node-l", 2, "fail_closed", uas)
	uac := StartSipp(t, SippArgs{Scenario: "uac.xml", Remote: p.Addr("udp"), Service: "bob", Calls: 2, Rate: 50,
		Pause: 12 * time.Second, Timeout: 60 * time.Second})
	waitCounter(t, rc, callerValKey, 2)
	srv.Kill()
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	waitCounter(t, rc, callerValKey, 2)
	if n := counter(t, rc, callerSizeKey); n != 2 {
		t.Errorf("%s = %d after the node re-published, want 2", callerSizeKey, n)
	}
	rej := StartSipp(t, SippArgs{Scenario: "uac_expect.xml", Remote: p.Addr("udp"), Service: "bob",
		Keys: map[string]string{"code": "486"}})
	if err := rej.Wait(); err != nil {
		t.Errorf("third call after Redis lost its data: %v", err)
	}
	waitMetric(t, p, "imsdlg_profile_store_republished_total", func(v float64) bool { return v >= 1 })
	waitAll(t, uac, uas)
	waitCounter(t, rc, callerValKey, 0)
	waitCounter(t, rc, callerSizeKey, 0)
}

// Issue 15 §4: Redis stalls (SIGSTOP) with a limit of 2 and two calls up;
// one call ends and a new one is refused (fail_closed, 503) during the
// stall. When Redis runs again, the next call counts against the one call
// that exists: the ended call's release is applied before it, and the
// refused call's increment, which Redis had buffered, is not applied.
func TestIssue15_4_CountsRightAfterARedisStall(t *testing.T) {
	RequireTools(t)
	t.Parallel()
	srv := redistest.Start(t, redistest.Options{})
	rc := srv.Client(t)
	uas := StartSipp(t, SippArgs{Scenario: "uas.xml", Calls: 3, Timeout: 60 * time.Second})
	// The background retry must not do the admission's work before it.
	p := StartProxy(t, strings.Replace(limitedNodeYAML(t, srv.URL(), "node-s", 2, "fail_closed", uas),
		"retry_period: 1s", "retry_period: 10m", 1))
	held := StartSipp(t, SippArgs{Scenario: "uac.xml", Remote: p.Addr("udp"), Service: "bob", Pause: 20 * time.Second, Timeout: 60 * time.Second})
	waitCounter(t, rc, callerValKey, 1)
	ending := StartSipp(t, SippArgs{Scenario: "uac.xml", Remote: p.Addr("udp"), Service: "bob", Pause: 2 * time.Second})
	waitCounter(t, rc, callerValKey, 2)
	srv.Pause()
	resumed := false
	defer func() {
		if !resumed {
			srv.Resume()
		}
	}()
	if err := ending.Wait(); err != nil {
		t.Fatalf("the call that ends during the stall: %v", err)
	}
	waitMetric(t, p, "imsdlg_profile_pending_decrements", func(v float64) bool { return v == 1 })
	refused := StartSipp(t, SippArgs{Scenario: "uac_expect.xml", Remote: p.Addr("udp"), Service: "bob",
		Keys: map[string]string{"code": "503"}})
	if err := refused.Wait(); err != nil {
		t.Fatalf("a call during the stall (fail_closed): %v", err)
	}
	srv.Resume()
	resumed = true
	next := StartSipp(t, SippArgs{Scenario: "uac.xml", Remote: p.Addr("udp"), Service: "bob"})
	if err := next.Wait(); err != nil {
		t.Errorf("the first call after the stall, with one call up and a limit of 2: %v", err)
	}
	waitAll(t, held, uas)
	waitCounter(t, rc, callerValKey, 0)
	waitCounter(t, rc, callerSizeKey, 0)
	checkKeysSettled(t, rc)
}

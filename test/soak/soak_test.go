//go:build soak

package soak

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/imsdlg/imsdlg/internal/redistest"
	"github.com/imsdlg/imsdlg/test/e2e"
)

var (
	duration = flag.Duration("soak.duration", 30*time.Minute, "how long calls are started")
	// 80 % of the highest rate that passed in the latest side-by-side run
	// (record-routed calls, README "Latest side-by-side run": 1500 cps).
	// Lower it on a smaller machine: the soak is about state, not speed.
	rate      = flag.Float64("soak.rate", 1200, "calls per second")
	hold      = flag.Duration("soak.hold", 4*time.Second, "how long each call stays up")
	lost      = flag.Int("soak.lost", 1, "percent of messages each sipp drops (sipp -lost)")
	junk      = flag.Int("soak.junk", 200, "malformed UDP datagrams per second beside the load")
	idle      = flag.Int("soak.idle", 100, "idle TCP connections held open (renewed every minute)")
	drain     = flag.Duration("soak.drain", 3*time.Minute, "how long the proxy may take to be clean after the last call")
	faults    = flag.String("soak.faults", "", "comma-separated names of the faults to inject (redis-keep, callee-5s, redis-lose, redis-stall, callee-10s); empty: all")
	outDir    = flag.String("soak.out", "", "directory for the heap profiles (default: a temporary one)")
	profileAt = flag.Duration("soak.profile_at", 0, "also take a heap profile this long after the start (heap-at.pprof)")
)

func TestMain(m *testing.M) {
	flag.Parse()
	os.Exit(e2e.Main(m))
}

// fault is one injection of the schedule, at a fraction of the duration.
type fault struct {
	at   float64
	id   string
	name string
	do   func(t *testing.T, s *soak)
}

// schedule is what a production day does to a proxy, compressed.
var schedule = []fault{
	{0.10, "redis-keep", "Redis restarted, data kept", func(t *testing.T, s *soak) { s.redisRestart(t, true) }},
	{0.25, "callee-5s", "callee killed, back after 5 s", func(t *testing.T, s *soak) { s.killCallee(t, 5*time.Second) }},
	{0.40, "redis-lose", "Redis restarted without its data", func(t *testing.T, s *soak) { s.redisRestart(t, false) }},
	{0.55, "redis-stall", "Redis stalled 3 s (SIGSTOP)", func(t *testing.T, s *soak) { s.redis.Pause(); time.Sleep(3 * time.Second); s.redis.Resume() }},
	{0.70, "callee-10s", "callee killed, back after 10 s", func(t *testing.T, s *soak) { s.killCallee(t, 10*time.Second) }},
	{0.85, "redis-keep", "Redis restarted, data kept", func(t *testing.T, s *soak) { s.redisRestart(t, true) }},
}

type soak struct {
	redis    *redistest.Server
	redisDir string
	rc       *redis.Client
	proxy    *e2e.Proxy
	uasPort  int

	mu     sync.Mutex
	callee *e2e.Sipp
	events []string
	start  time.Time
}

func (s *soak) note(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, fmt.Sprintf("%7s  %s", time.Since(s.start).Round(time.Second), fmt.Sprintf(format, args...)))
}

func (s *soak) startCallee(t *testing.T) {
	uas := e2e.StartSipp(t, e2e.SippArgs{Scenario: "uas.xml", LocalPort: s.uasPort, Calls: 1 << 30,
		Timeout: *duration + *drain + 10*time.Minute, NoMessageTrace: true,
		Extra: []string{"-lost", fmt.Sprint(*lost)}})
	s.mu.Lock()
	s.callee = uas
	s.mu.Unlock()
}

func (s *soak) killCallee(t *testing.T, down time.Duration) {
	s.mu.Lock()
	uas := s.callee
	s.mu.Unlock()
	uas.Kill()
	time.Sleep(down)
	s.startCallee(t)
}

func (s *soak) redisRestart(t *testing.T, keep bool) {
	if keep {
		s.redis.Stop()
	} else {
		s.redis.Kill()
		entries, _ := os.ReadDir(s.redisDir)
		for _, e := range entries {
			os.RemoveAll(filepath.Join(s.redisDir, e.Name()))
		}
	}
	if err := s.redis.Restart(); err != nil {
		t.Errorf("Redis restart: %v", err)
	}
}

// garbage is what the flood sends: not SIP, half SIP, SIP with smuggled
// bytes, oversized. None may cost more than a counted, rate-limited log.
var garbage = [][]byte{
	[]byte("\x00\x01\x02 not sip at all"),
	[]byte("INVITE sip:bob@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKx\r\n"),
	[]byte("INVITE sip:bob@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKj\r\nFrom: <sip:a@127.0.0.1>;tag=1\r\nTo: <sip:bob@127.0.0.1>\r\nCall-ID: junk\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\nX-Evil: a\nb\r\nContent-Length: 0\r\n\r\n"),
	[]byte("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKnomatch\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"),
	[]byte("OPTIONS sip:127.0.0.1 SIP/2.0\r\nContent-Length: 99999\r\n\r\nshort"),
	[]byte(strings.Repeat("Via: SIP/2.0/UDP 127.0.0.1:9;branch=z9hG4bKv\r\n", 200)),
}

func (s *soak) flood(ctx context.Context, t *testing.T) (sent int) {
	if *junk <= 0 {
		return 0
	}
	c, err := net.Dial("udp", s.proxy.Addr("udp"))
	if err != nil {
		t.Errorf("junk flood: %v", err)
		return 0
	}
	defer c.Close()
	tick := time.NewTicker(time.Second / time.Duration(*junk))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return sent
		case <-tick.C:
		}
		_, _ = c.Write(garbage[sent%len(garbage)])
		sent++
	}
}

func (s *soak) idleTCP(ctx context.Context) (opened int) {
	if *idle <= 0 {
		return 0
	}
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	renew := time.NewTicker(time.Minute)
	defer renew.Stop()
	for {
		for _, c := range conns {
			c.Close()
		}
		conns = conns[:0]
		for i := range *idle {
			c, err := net.DialTimeout("tcp", s.proxy.Addr("tcp"), time.Second)
			if err != nil {
				continue
			}
			opened++
			if i%10 == 0 { // a message that never completes
				_, _ = c.Write([]byte("INVITE sip:bob@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1"))
			}
			conns = append(conns, c)
		}
		select {
		case <-ctx.Done():
			return opened
		case <-renew.C:
		}
	}
}

// heapAfterGC forces a collection (pprof's gc=1) and reads the live heap
// and the goroutines.
func heapAfterGC(t *testing.T, p *e2e.Proxy) (heap, goroutines float64) {
	t.Helper()
	res, err := http.Get("http://" + p.MgmtAddr + "/debug/pprof/heap?gc=1")
	if err != nil {
		t.Fatalf("forcing a GC: %v", err)
	}
	io.Copy(io.Discard, res.Body)
	res.Body.Close()
	m := p.Metrics()
	heap, _ = e2e.MetricValue(m, "go_memstats_heap_alloc_bytes")
	goroutines, _ = e2e.MetricValue(m, "go_goroutines")
	return heap, goroutines
}

func rpcMap[V any](t *testing.T, p *e2e.Proxy, method string) map[string]V {
	t.Helper()
	raw, err := p.RPC(method, nil)
	if err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	var m map[string]V
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	return m
}

// Issue 15 §15: calls at a steady rate for soak.duration with faults on a
// schedule (Redis restarted with and without its data, Redis stalled, the
// callee killed and restarted), 1 % of messages lost at both ends, and a
// flood of malformed UDP and idle TCP connections beside the load. At the
// end: no dialog, no transaction, no Redis count or record, goroutines and
// heap back to their baseline, no panic; the summary is logged.
//
//	go test -tags soak -run TestSoak -timeout 2h -v ./test/soak -args -soak.duration 30m
func TestSoak(t *testing.T) {
	e2e.RequireTools(t)
	s := &soak{redisDir: t.TempDir()}
	// appendfsync everysec: an fsync per count would measure the disk.
	s.redis = redistest.Start(t, redistest.Options{Persistent: true, Dir: s.redisDir,
		Extra: []string{"--appendfsync", "everysec"}})
	s.rc = s.redis.Client(t)
	s.uasPort = e2e.FreePort(t, "udp")
	s.startCallee(t)

	cfg := e2e.NewProxyConfig(t)
	cfg.Static["sip:bob@127.0.0.1"] = []string{fmt.Sprintf("sip:bob@127.0.0.1:%d", s.uasPort)}
	cfg.LogLevel = "warn"
	limit := int(*rate * (hold.Seconds() + 2) * 3) // never reached: counts are what is checked
	cfg.Extra = fmt.Sprintf(`profiles:
  cachedb_url: %q
  no_value: [calls/s]
  on_cachedb_error: fail_open
  node_id: soak-node
limits: [{profile: calls/s, max: %d}]
dialog: {db_mode: 1, db_url: %q}
mgmt: {listen: "127.0.0.1:%d", pprof: true}
`, s.redis.URL(), limit, s.redis.URL(), cfg.MgmtPort)
	// mgmt is in Extra with pprof; drop the harness' own line.
	yaml := strings.Replace(cfg.YAML(), fmt.Sprintf("mgmt:\n  listen: \"127.0.0.1:%d\"\n", cfg.MgmtPort), "", 1)
	s.proxy = e2e.StartProxy(t, yaml)
	baseHeap, baseG := heapAfterGC(t, s.proxy)

	calls := int(*rate * duration.Seconds())
	s.start = time.Now()
	s.note("start: %d calls at %.0f/s, held %v, %d%% lost at each end", calls, *rate, *hold, *lost)
	uac := e2e.StartSipp(t, e2e.SippArgs{Scenario: "uac.xml", Remote: s.proxy.Addr("udp"), Service: "bob",
		Calls: calls, Rate: *rate, Pause: *hold, NoMessageTrace: true,
		Timeout: *duration + *drain + 5*time.Minute,
		Extra:   []string{"-lost", fmt.Sprint(*lost), "-l", fmt.Sprint(int(*rate * (hold.Seconds() + 40)))}})

	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var junkSent, tcpOpened int
	wg.Go(func() { junkSent = s.flood(ctx, t) })
	wg.Go(func() { tcpOpened = s.idleTCP(ctx) })
	var maxRSS float64
	var series []string
	dir := *outDir
	if dir == "" {
		dir = t.TempDir()
	}
	wg.Go(func() {
		tick := time.NewTicker(10 * time.Second)
		defer tick.Stop()
		profiled, profiledAt := false, false
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			if *profileAt > 0 && !profiledAt && time.Since(s.start) >= *profileAt {
				profiledAt = saveHeap(s.proxy, filepath.Join(dir, "heap-at.pprof")) == nil
			}
			m := s.proxy.Metrics()
			rss, _ := e2e.MetricValue(m, "process_resident_memory_bytes")
			inuse, _ := e2e.MetricValue(m, "go_memstats_heap_inuse_bytes")
			g, _ := e2e.MetricValue(m, "go_goroutines")
			active, _ := e2e.MetricValue(m, "imsdlg_dialog_active_dialogs")
			txn, _ := e2e.MetricValue(m, "imsdlg_tm_inuse_transactions")
			if i%3 == 0 || rss > maxRSS {
				series = append(series, fmt.Sprintf("%7s rss %4.0f MB, heap in use %4.0f MB, goroutines %5.0f, dialogs %6.0f, transactions %6.0f",
					time.Since(s.start).Round(time.Second), rss/1e6, inuse/1e6, g, active, txn))
			}
			if rss > maxRSS {
				maxRSS = rss
				// The heap at the highest RSS so far, once it is large.
				if rss > 300e6 && !profiled {
					profiled = saveHeap(s.proxy, filepath.Join(dir, "heap-at-max-rss.pprof")) == nil
				}
			}
		}
	})
	for _, f := range schedule {
		if *faults != "" && !strings.Contains(","+*faults+",", ","+f.id+",") {
			continue
		}
		wait := time.Until(s.start.Add(time.Duration(f.at * float64(*duration))))
		time.Sleep(wait)
		s.note("fault: %s", f.name)
		f.do(t, s)
		s.note("fault over: %s", f.name)
	}
	uacErr := uac.Wait()
	s.note("caller done (%s)", firstLine(uacErr))
	stop()
	wg.Wait()

	// The proxy must come back to nothing by itself: timers end what the
	// faults left (bye_timeout, ack_timeout, fr_timeout).
	deadline := time.Now().Add(*drain)
	var st map[string]int64
	var tms map[string]uint64
	var counted, members, records int64
	for {
		st = rpcMap[int64](t, s.proxy, "dlg.stats")
		tms = rpcMap[uint64](t, s.proxy, "tm.stats")
		bg := context.Background()
		counted, _ = s.rc.Get(bg, "dlg_noval_calls").Int64()
		members = s.rc.ZCount(bg, "imsdlg_member_soak-node", fmt.Sprint(time.Now().Unix()), "+inf").Val()
		records = s.rc.HLen(bg, "imsdlg_dlg_soak-node").Val()
		if st["active_dialogs"] == 0 && st["early_dialogs"] == 0 && tms["inuse_transactions"] == 0 &&
			counted == 0 && members == 0 && records == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("not clean %v after the last call: active %d, early %d, transactions %d, Redis count %d, memberships %d, records %d",
				*drain, st["active_dialogs"], st["early_dialogs"], tms["inuse_transactions"], counted, members, records)
			break
		}
		time.Sleep(2 * time.Second)
	}
	s.note("clean (or gave up)")
	if st["active_dialogs"]+st["early_dialogs"] > 0 {
		raw, _ := s.proxy.RPC("dlg.list", nil)
		t.Logf("dialogs left:\n%s", raw)
	}
	endHeap, endG := heapAfterGC(t, s.proxy)
	if endG > baseG+20 {
		t.Errorf("goroutines: %v at the end, %v at the start", endG, baseG)
	}
	if endHeap > max(2*baseHeap, baseHeap+16<<20) {
		t.Errorf("live heap: %.1f MB at the end, %.1f MB at the start", endHeap/1e6, baseHeap/1e6)
	}
	if s.proxy.Exited() {
		t.Errorf("the proxy exited during the soak")
	}
	out := s.proxy.Output()
	for _, bad := range []string{"panic:", "fatal error:", "DATA RACE"} {
		if strings.Contains(out, bad) {
			t.Errorf("the proxy's log has %q", bad)
		}
	}
	us, _ := uac.Stats()
	cpu, _ := e2e.MetricValue(s.proxy.Metrics(), "process_cpu_seconds_total")
	warns := strings.Count(out, "level=WARN")
	errs := strings.Count(out, "level=ERROR")

	var b strings.Builder
	fmt.Fprintf(&b, "soak summary\n")
	for _, e := range s.events {
		fmt.Fprintf(&b, "  %s\n", e)
	}
	fmt.Fprintf(&b, "  caller: %d created, %d successful, %d failed, %d retransmissions, %.0f calls/s (sipp: %v)\n",
		us.Created, us.Successful, us.Failed, us.Retransmissions, us.CallRate, firstLine(uacErr))
	fmt.Fprintf(&b, "  beside the load: %d malformed UDP datagrams, %d idle/half-sent TCP connections\n", junkSent, tcpOpened)
	fmt.Fprintf(&b, "  end: %d active, %d early dialogs, %d transactions; Redis: count %d, memberships %d, records %d\n",
		st["active_dialogs"], st["early_dialogs"], tms["inuse_transactions"], counted, members, records)
	fmt.Fprintf(&b, "  dialogs: %d processed, %d expired, %d failed; dlg.stats %v\n",
		st["processed_dialogs"], st["expired_dialogs"], st["failed_dialogs"], st)
	fmt.Fprintf(&b, "  goroutines %v -> %v, live heap %.1f MB -> %.1f MB, max RSS %.0f MB, proxy CPU %.0f s (%.2f ms per call)\n",
		baseG, endG, baseHeap/1e6, endHeap/1e6, maxRSS/1e6, cpu, 1000*cpu/float64(max(us.Created, 1)))
	fmt.Fprintf(&b, "  proxy log: %d WARN, %d ERROR lines\n", warns, errs)
	fmt.Fprintf(&b, "  every 30 s (and each new highest RSS):\n")
	for _, l := range series {
		fmt.Fprintf(&b, "  %s\n", l)
	}
	t.Log(b.String())
	if path := os.Getenv("SOAK_SUMMARY"); path != "" {
		_ = os.WriteFile(path, []byte(b.String()+"\n--- proxy log (tail) ---\n"+tail(out, 200)), 0o644)
	}
}

func tail(s string, lines int) string {
	parts := strings.Split(s, "\n")
	if len(parts) > lines {
		parts = parts[len(parts)-lines:]
	}
	return strings.Join(parts, "\n")
}

func firstLine(err error) string {
	if err == nil {
		return "ok"
	}
	l, _, _ := strings.Cut(err.Error(), "\n")
	return l
}

func saveHeap(p *e2e.Proxy, path string) error {
	res, err := http.Get("http://" + p.MgmtAddr + "/debug/pprof/heap")
	if err != nil {
		return err
	}
	defer res.Body.Close()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(f, res.Body)
	return err
}

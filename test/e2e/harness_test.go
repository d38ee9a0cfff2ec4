package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// The harness checked against itself: every sipp scenario pair runs
// sipp -> sipp with no proxy, over UDP and TCP, and the proxy helpers run a
// stand-in daemon (testdata/fakeproxy).

type sippPair struct {
	name     string
	uas, uac SippArgs
	calls    int
}

var sippPairs = []sippPair{
	{name: "basic", uas: SippArgs{Scenario: "uas.xml"}, uac: SippArgs{Scenario: "uac.xml"}},
	{name: "basic_5_calls", calls: 5, uas: SippArgs{Scenario: "uas.xml"}, uac: SippArgs{Scenario: "uac.xml", Rate: 50}},
	{name: "answer_late", uas: SippArgs{Scenario: "uas_answer_late.xml", Pause: 300 * time.Millisecond}, uac: SippArgs{Scenario: "uac.xml"}},
	{name: "answer_silent", uas: SippArgs{Scenario: "uas_answer_silent.xml", Pause: 100 * time.Millisecond}, uac: SippArgs{Scenario: "uac.xml"}},
	{name: "cancel", uas: SippArgs{Scenario: "uas_ring.xml"}, uac: SippArgs{Scenario: "uac_cancel.xml"}},
	{name: "cancel_reason",
		uas: SippArgs{Scenario: "uas_ring.xml", Vars: map[string]string{"require_reason": "1"}},
		uac: SippArgs{Scenario: "uac_cancel.xml", Vars: map[string]string{"cancel_reason": "1"}}},
	{name: "reject_486",
		uas: SippArgs{Scenario: "uas_reply.xml", Keys: map[string]string{"code": "486"}},
		uac: SippArgs{Scenario: "uac_expect.xml", Keys: map[string]string{"code": "486"}}},
	{name: "reject_404",
		uas: SippArgs{Scenario: "uas_reply.xml", Keys: map[string]string{"code": "404"}},
		uac: SippArgs{Scenario: "uac_expect.xml", Keys: map[string]string{"code": "404"}}},
	{name: "reject_603",
		uas: SippArgs{Scenario: "uas_reply.xml", Keys: map[string]string{"code": "603"}},
		uac: SippArgs{Scenario: "uac_expect.xml", Keys: map[string]string{"code": "603"}}},
	{name: "reinvite", uas: SippArgs{Scenario: "uas_reinvite.xml"}, uac: SippArgs{Scenario: "uac_reinvite.xml"}},
}

// startPair starts the UAS, then the UAC calling it directly.
func startPair(t *testing.T, p sippPair, transport string) (uas, uac *Sipp) {
	t.Helper()
	calls := max(p.calls, 1)
	ua, uc := p.uas, p.uac
	ua.Transport, uc.Transport = transport, transport
	ua.Calls, uc.Calls = calls, calls
	if ua.Timeout == 0 {
		ua.Timeout = 20 * time.Second
	}
	if uc.Timeout == 0 {
		uc.Timeout = 20 * time.Second
	}
	uas = StartSipp(t, ua)
	uc.Remote = uas.Addr()
	uc.Service = "bob"
	uac = StartSipp(t, uc)
	return uas, uac
}

func TestSippScenarioPairs(t *testing.T) {
	RequireTools(t)
	for _, p := range sippPairs {
		for _, tr := range []string{"u1", "t1"} {
			t.Run(p.name+"/"+tr, func(t *testing.T) {
				t.Parallel()
				uas, uac := startPair(t, p, tr)
				if err := uac.Wait(); err != nil {
					t.Errorf("UAC: %v", err)
				}
				if err := uas.Wait(); err != nil {
					t.Errorf("UAS: %v", err)
				}
				if t.Failed() {
					return
				}
				want := max(p.calls, 1)
				for _, s := range []*Sipp{uac, uas} {
					st, err := s.Stats()
					if err != nil {
						t.Fatalf("%s: %v", s.Args.Scenario, err)
					}
					if st.Successful != want || st.Failed != 0 {
						t.Errorf("%s: %d successful, %d failed calls; want %d, 0", s.Args.Scenario, st.Successful, st.Failed, want)
					}
				}
			})
		}
	}
}

// The scenarios' checks bite: each of these runs must fail.

func TestUASRingFailsOnCancelWithoutReason(t *testing.T) {
	RequireTools(t)
	t.Parallel()
	uas, uac := startPair(t, sippPair{
		uas: SippArgs{Scenario: "uas_ring.xml", Vars: map[string]string{"require_reason": "1"}},
		uac: SippArgs{Scenario: "uac_cancel.xml"}, // CANCEL without Reason
	}, "t1")
	errUAS := uas.Wait()
	if errUAS == nil || !strings.Contains(errUAS.Error(), "CANCEL without a Reason header") {
		t.Errorf("UAS: got %v, want a failure about the missing Reason header", errUAS)
	}
	if err := uac.Wait(); err == nil {
		t.Error("UAC exited 0 although the UAS stopped before its 487")
	}
}

func TestUACExpectFailsOnOtherCode(t *testing.T) {
	RequireTools(t)
	t.Parallel()
	uas, uac := startPair(t, sippPair{
		uas: SippArgs{Scenario: "uas_reply.xml", Keys: map[string]string{"code": "486"}},
		uac: SippArgs{Scenario: "uac_expect.xml", Keys: map[string]string{"code": "603"}},
	}, "t1")
	errUAC := uac.Wait()
	if errUAC == nil || !strings.Contains(errUAC.Error(), "expected SIP/2.0 603, got SIP/2.0 486") {
		t.Errorf("UAC: got %v, want a failure naming both codes", errUAC)
	}
	uas.Wait() // fails too (no ACK); its outcome is not the point
}

func TestUACExpectFailsOnSuccess(t *testing.T) {
	RequireTools(t)
	t.Parallel()
	uas, uac := startPair(t, sippPair{
		uas: SippArgs{Scenario: "uas.xml"}, // answers 200
		uac: SippArgs{Scenario: "uac_expect.xml", Keys: map[string]string{"code": "486"}},
	}, "u1")
	if err := uac.Wait(); err == nil {
		t.Error("uac_expect.xml exited 0 on a 200 OK")
	}
	uas.Kill()
}

func TestUASReplyRejectsUnlistedCode(t *testing.T) {
	RequireTools(t)
	t.Parallel()
	uas, uac := startPair(t, sippPair{
		uas: SippArgs{Scenario: "uas_reply.xml", Keys: map[string]string{"code": "499"}},
		uac: SippArgs{Scenario: "uac_expect.xml", Keys: map[string]string{"code": "499"}},
	}, "t1")
	errUAS := uas.Wait()
	if errUAS == nil || !strings.Contains(errUAS.Error(), "-key code 499 is not a final error code") {
		t.Errorf("UAS: got %v, want a failure about code 499", errUAS)
	}
	uac.Kill()
}

func TestSippFailsWithoutPeer(t *testing.T) {
	RequireTools(t)
	t.Parallel()
	nobody := FreePort(t, "both")
	uac := StartSipp(t, SippArgs{
		Scenario: "uac.xml",
		Remote:   net.JoinHostPort(Loopback, strconv.Itoa(nobody)),
		Service:  "bob",
		Timeout:  3 * time.Second,
	})
	err := uac.Wait()
	if err == nil {
		t.Fatal("uac.xml exited 0 with nobody listening")
	}
	if !strings.Contains(err.Error(), "$ sipp ") || !strings.Contains(err.Error(), "uac.xml") {
		t.Errorf("the error does not show the command line: %v", err)
	}
}

func TestSippMissingKey(t *testing.T) {
	RequireTools(t)
	t.Parallel()
	uac := StartSipp(t, SippArgs{
		Scenario: "uac_expect.xml", // needs -key code
		Remote:   net.JoinHostPort(Loopback, strconv.Itoa(FreePort(t, "both"))),
		Timeout:  3 * time.Second,
	})
	err := uac.Wait()
	if err == nil || !strings.Contains(err.Error(), "code") {
		t.Fatalf("got %v, want sipp to refuse the scenario without -key code", err)
	}
}

// The UAS is bound once StartSipp returns: a TCP UAC connects at once.
func TestStartSippWaitsForServerPort(t *testing.T) {
	RequireTools(t)
	t.Parallel()
	uas := StartSipp(t, SippArgs{Scenario: "uas.xml", Transport: "t1", Timeout: 10 * time.Second})
	conn, err := net.Dial("tcp", uas.Addr())
	if err != nil {
		t.Fatalf("UAS port not open after StartSipp: %v", err)
	}
	conn.Close()
	bound, err := portBound("tcp", uas.Port)
	if err != nil || !bound {
		t.Fatalf("portBound(tcp, %d) = %v, %v", uas.Port, bound, err)
	}
	uas.Kill()
}

func TestFreePort(t *testing.T) {
	seen := map[int]bool{}
	for range 20 {
		p := FreePort(t, "both")
		if seen[p] {
			t.Fatalf("port %d returned twice", p)
		}
		seen[p] = true
		l, err := net.Listen("tcp", net.JoinHostPort(Loopback, strconv.Itoa(p)))
		if err != nil {
			t.Fatalf("TCP port %d not free: %v", p, err)
		}
		u, err := net.ListenPacket("udp", net.JoinHostPort(Loopback, strconv.Itoa(p)))
		if err != nil {
			l.Close()
			t.Fatalf("UDP port %d not free: %v", p, err)
		}
		if bound, err := portBound("udp", p); err != nil || !bound {
			t.Errorf("portBound(udp, %d) = %v, %v with a socket bound", p, bound, err)
		}
		if bound, err := portBound("tcp", p); err != nil || !bound {
			t.Errorf("portBound(tcp, %d) = %v, %v with a listener", p, bound, err)
		}
		l.Close()
		u.Close()
	}
}

func TestModuleRoot(t *testing.T) {
	root := ModuleRoot(t)
	data, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), "module github.com/imsdlg/imsdlg") {
		t.Fatalf("%s/go.mod is not imsdlg's", root)
	}
	for _, name := range []string{"uac.xml", "uas.xml", "uas_ring.xml", "uas_answer_late.xml", "uac_cancel.xml",
		"uas_reply.xml", "uac_expect.xml", "uac_reinvite.xml", "uas_reinvite.xml"} {
		ScenarioPath(t, name)
	}
}

func TestParseSippStats(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.csv")
	csv := "StartTime;LastResetTime;CurrentTime;ElapsedTime(P);ElapsedTime(C);TargetRate;CallRate(P);CallRate(C);TotalCallCreated;SuccessfulCall(C);FailedCall(C);Retransmissions(C);\n" +
		"2026-01-01\t10:00:00.000000\t1000.000000;x;2026-01-01\t10:00:01.000000\t1001.000000;0;0;10;0;0;0;0;0;0;\n" +
		"2026-01-01\t10:00:00.000000\t1000.000000;x;2026-01-01\t10:00:02.500000\t1002.500000;0;0;10;9;9.5;25;24;1;3;\n"
	if err := os.WriteFile(path, []byte(csv), 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := ParseSippStats(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Created != 25 || st.Successful != 24 || st.Failed != 1 || st.Retransmissions != 3 || st.CallRate != 9.5 {
		t.Errorf("got %+v", st)
	}
	if st.Elapsed != 2500*time.Millisecond {
		t.Errorf("elapsed %v, want 2.5s", st.Elapsed)
	}
}

func TestMetricValue(t *testing.T) {
	text := "# HELP x y\n# TYPE sip_requests_total counter\nsip_requests_total{method=\"INVITE\"} 12\nsip_requests_total{method=\"BYE\"} 3\nup 1\nupx 7\n"
	for series, want := range map[string]float64{`sip_requests_total{method="INVITE"}`: 12, `sip_requests_total{method="BYE"}`: 3, "up": 1} {
		if v, ok := MetricValue(text, series); !ok || v != want {
			t.Errorf("%s = %v, %v; want %v", series, v, ok, want)
		}
	}
	if v, ok := MetricValue(text, "sip_requests_total"); ok {
		t.Errorf("a series without its labels matched: %v", v)
	}
}

func TestProxyConfigYAML(t *testing.T) {
	c := NewProxyConfig(t)
	c.Static["sip:bob@127.0.0.1"] = []string{"sip:bob@127.0.0.1:5071", "sip:bob@127.0.0.1:5072;q=0.5"}
	c.Extra = "tm: {fr_timeout: 2s, fr_inv_timeout: 5s}"
	var got struct {
		Listen      []string `yaml:"listen"`
		Domains     []string `yaml:"domains"`
		RecordRoute bool     `yaml:"record_route"`
		Location    struct {
			Static map[string][]string `yaml:"static"`
		} `yaml:"location"`
		Mgmt struct {
			Listen string `yaml:"listen"`
		} `yaml:"mgmt"`
		Log struct {
			Level  string `yaml:"level"`
			Format string `yaml:"format"`
		} `yaml:"log"`
		TM map[string]string `yaml:"tm"`
	}
	if err := yaml.Unmarshal([]byte(c.YAML()), &got); err != nil {
		t.Fatalf("%v\n%s", err, c.YAML())
	}
	sip := fmt.Sprintf("127.0.0.1:%d", c.SIPPort)
	if len(got.Listen) != 2 || got.Listen[0] != "udp:"+sip || got.Listen[1] != "tcp:"+sip {
		t.Errorf("listen %v", got.Listen)
	}
	if !got.RecordRoute || got.Mgmt.Listen != fmt.Sprintf("127.0.0.1:%d", c.MgmtPort) || got.Log.Level != "info" {
		t.Errorf("got %+v", got)
	}
	if cs := got.Location.Static["sip:bob@127.0.0.1"]; len(cs) != 2 || cs[1] != "sip:bob@127.0.0.1:5072;q=0.5" {
		t.Errorf("location %v", got.Location.Static)
	}
	if got.TM["fr_timeout"] != "2s" {
		t.Errorf("tm %v", got.TM)
	}
}

// --- the proxy helpers, against testdata/fakeproxy ---

var fakeProxy struct {
	once sync.Once
	bin  string
	err  error
}

func fakeProxyBin(t *testing.T) string {
	t.Helper()
	fakeProxy.once.Do(func() {
		dir, err := sharedTempDir("imsdlg-fakeproxy-")
		if err != nil {
			fakeProxy.err = err
			return
		}
		bin := filepath.Join(dir, "fakeproxy")
		out, err := exec.Command(goTool(), "build", "-o", bin, "./testdata/fakeproxy").CombinedOutput()
		if err != nil {
			fakeProxy.err = fmt.Errorf("building testdata/fakeproxy: %v\n%s", err, out)
			return
		}
		fakeProxy.bin = bin
	})
	if fakeProxy.err != nil {
		t.Fatal(fakeProxy.err)
	}
	return fakeProxy.bin
}

// recorder is a testing.TB that records failures instead of failing the
// real test, to check that the harness reports what it must.
type recorder struct {
	testing.TB
	mu       sync.Mutex
	failed   bool
	msgs     []string
	cleanups []func()
}

func (r *recorder) Helper() {}
func (r *recorder) record(fatal bool, s string) {
	r.mu.Lock()
	r.failed = true
	r.msgs = append(r.msgs, s)
	r.mu.Unlock()
	if fatal {
		runtime.Goexit()
	}
}
func (r *recorder) Errorf(f string, a ...any) { r.record(false, fmt.Sprintf(f, a...)) }
func (r *recorder) Error(a ...any)            { r.record(false, fmt.Sprint(a...)) }
func (r *recorder) Fatalf(f string, a ...any) { r.record(true, fmt.Sprintf(f, a...)) }
func (r *recorder) Fatal(a ...any)            { r.record(true, fmt.Sprint(a...)) }
func (r *recorder) Fail()                     { r.record(false, "Fail") }
func (r *recorder) FailNow()                  { r.record(true, "FailNow") }
func (r *recorder) Failed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.failed
}
func (r *recorder) Logf(string, ...any) {}
func (r *recorder) Log(...any)          {}
func (r *recorder) Cleanup(f func()) {
	r.mu.Lock()
	r.cleanups = append(r.cleanups, f)
	r.mu.Unlock()
}

// runRecorded runs fn with a recorder, then its cleanups (last first), each
// in its own goroutine since they may call Fatal.
func runRecorded(t *testing.T, fn func(tb testing.TB)) *recorder {
	r := &recorder{TB: t}
	run := func(f func()) {
		done := make(chan struct{})
		go func() { defer close(done); f() }()
		<-done
	}
	run(func() { fn(r) })
	for i := len(r.cleanups) - 1; i >= 0; i-- {
		run(r.cleanups[i])
	}
	return r
}

func (r *recorder) text() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return strings.Join(r.msgs, "\n")
}

func TestStartProxyAgainstFake(t *testing.T) {
	t.Parallel()
	c := NewProxyConfig(t)
	p := startProxy(t, fakeProxyBin(t), c.YAML(), nil)
	if got, want := p.Addr("udp"), fmt.Sprintf("127.0.0.1:%d", c.SIPPort); got != want {
		t.Errorf("Addr(udp) = %s, want %s", got, want)
	}
	res, err := p.RPC("core.version", nil)
	if err != nil {
		t.Fatal(err)
	}
	var v struct{ Version string }
	if err := json.Unmarshal(res, &v); err != nil || v.Version != "fake" {
		t.Errorf("core.version: %s (%v)", res, err)
	}
	_, err = p.RPC("no.such", map[string]any{"x": 1})
	var rpcErr *RPCError
	if !errors.As(err, &rpcErr) || rpcErr.Code != -32601 {
		t.Errorf("no.such: got %v, want a -32601 RPCError", err)
	}
	if v, ok := MetricValue(p.Metrics(), `fake_requests_total{method="INVITE"}`); !ok || v != 3 {
		t.Errorf("metrics: %v %v", v, ok)
	}
	if err := p.Stop(); err != nil {
		t.Errorf("Stop: %v", err)
	}
	if !p.Exited() || !strings.Contains(p.Output(), "fakeproxy: exiting 0") {
		t.Errorf("output: %s", p.Output())
	}
}

func TestProxyNonZeroExitFailsTheTest(t *testing.T) {
	t.Parallel()
	bin := fakeProxyBin(t)
	r := runRecorded(t, func(tb testing.TB) {
		c := NewProxyConfig(tb)
		startProxy(tb, bin, c.YAML(), []string{"FAKEPROXY_TERM_EXIT=3"})
	})
	if !r.Failed() || !strings.Contains(r.text(), "exit status 3") {
		t.Errorf("recorded: %q", r.text())
	}
}

func TestProxyDeathAtStartFailsTheTest(t *testing.T) {
	t.Parallel()
	bin := fakeProxyBin(t)
	r := runRecorded(t, func(tb testing.TB) {
		c := NewProxyConfig(tb)
		startProxy(tb, bin, c.YAML(), []string{"FAKEPROXY_EXIT_AT_START=0"})
		tb.Error("startProxy returned although the daemon died")
	})
	if txt := r.text(); !strings.Contains(txt, "exited before /healthz answered") || !strings.Contains(txt, "exiting at start") {
		t.Errorf("recorded: %q", txt)
	}
}

func TestProxyIgnoringSIGTERMIsKilled(t *testing.T) {
	t.Parallel()
	bin := fakeProxyBin(t)
	r := runRecorded(t, func(tb testing.TB) {
		c := NewProxyConfig(tb)
		startProxy(tb, bin, c.YAML(), []string{"FAKEPROXY_IGNORE_TERM=1"})
	})
	if !strings.Contains(r.text(), "still running 5 s after SIGTERM: killed") {
		t.Errorf("recorded: %q", r.text())
	}
}

func TestStartProxyNeedsMgmtListen(t *testing.T) {
	t.Parallel()
	r := runRecorded(t, func(tb testing.TB) {
		startProxy(tb, "/nonexistent", "listen: [\"udp:127.0.0.1:5060\"]\n", nil)
	})
	if !strings.Contains(r.text(), "must set mgmt.listen") {
		t.Errorf("recorded: %q", r.text())
	}
}

// TestProxySmoke starts the real daemon: /healthz, core.version, tm.stats,
// /metrics, exit 0 on SIGTERM. It skips while cmd/imsproxy does not exist.
func TestProxySmoke(t *testing.T) {
	if _, err := os.Stat(filepath.Join(ModuleRoot(t), "cmd", "imsproxy")); err != nil {
		t.Skip("cmd/imsproxy does not exist yet")
	}
	t.Parallel()
	c := NewProxyConfig(t)
	p := StartProxy(t, c.YAML())
	for _, m := range []string{"core.version", "tm.stats"} {
		if res, err := p.RPC(m, nil); err != nil {
			t.Errorf("%s: %v", m, err)
		} else if len(res) == 0 {
			t.Errorf("%s: empty result", m)
		}
	}
	if m := p.Metrics(); strings.TrimSpace(m) == "" {
		t.Error("/metrics is empty")
	}
	if err := p.Stop(); err != nil {
		t.Errorf("Stop: %v", err)
	}
}

// gen_codes.sh regenerates the per-code parts of uas_reply.xml and
// uac_expect.xml: the committed files must be what it writes.
func TestGeneratedCodeListsInSync(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	src := filepath.Join(ModuleRoot(t), "test", "sipp")
	dir := t.TempDir()
	files := []string{"gen_codes.sh", "uas_reply.xml", "uac_expect.xml"}
	for _, f := range files {
		data, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if out, err := exec.Command("bash", filepath.Join(dir, "gen_codes.sh")).CombinedOutput(); err != nil {
		t.Fatalf("gen_codes.sh: %v\n%s", err, out)
	}
	for _, f := range files[1:] {
		want, _ := os.ReadFile(filepath.Join(src, f))
		got, _ := os.ReadFile(filepath.Join(dir, f))
		if string(got) != string(want) {
			t.Errorf("test/sipp/%s differs from what gen_codes.sh writes: run test/sipp/gen_codes.sh", f)
		}
	}
}

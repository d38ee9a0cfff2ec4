// Package e2e holds the end-to-end test harness of imsdlg: helpers that run
// the real daemon (cmd/imsproxy) and sipp as independent SIP peers on
// loopback sockets. Tests using it live in this directory (package e2e); see
// README.md for the API and the sipp scenarios under test/sipp.
//
// Rules the helpers follow: real processes and real sockets on 127.0.0.1
// only; waits poll with a deadline only when waiting on an external process
// (a port to open, /healthz to answer, a process to exit); nothing sleeps to
// synchronise.
package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

// Loopback is the only address the harness uses.
const Loopback = "127.0.0.1"

// RequireTools skips the test when sipp (or one of the extra tools, e.g.
// "redis-server") is not on PATH; when the environment variable CI is set it
// fails instead, so CI never silently skips. scripts/test.sh installs them.
func RequireTools(t testing.TB, extra ...string) {
	t.Helper()
	var missing []string
	for _, tool := range append([]string{"sipp"}, extra...) {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) == 0 {
		return
	}
	msg := fmt.Sprintf("missing tools %v on PATH (scripts/test.sh installs them: sipp from package sip-tester, redis-server)", missing)
	if os.Getenv("CI") != "" {
		t.Fatal(msg + "; CI is set, so this is a failure, not a skip")
	}
	t.Skip(msg)
}

var (
	portsMu   sync.Mutex
	portsUsed = map[int]bool{}
)

// FreePort returns a port of 127.0.0.1 that is free for both UDP and TCP
// (a SIP listener takes both), and that no other FreePort call of this test
// binary returned. network is "udp", "tcp" or "both" and only documents
// what the caller will bind: the port is checked for both anyway.
func FreePort(t testing.TB, network string) int {
	t.Helper()
	switch network {
	case "udp", "tcp", "both", "":
	default:
		t.Fatalf("FreePort: network %q, want udp, tcp or both", network)
	}
	for range 100 {
		l, err := net.Listen("tcp", net.JoinHostPort(Loopback, "0"))
		if err != nil {
			t.Fatalf("FreePort: %v", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", net.JoinHostPort(Loopback, strconv.Itoa(port)))
		l.Close()
		if err != nil {
			continue
		}
		u.Close()
		portsMu.Lock()
		used := portsUsed[port]
		portsUsed[port] = true
		portsMu.Unlock()
		if !used {
			return port
		}
	}
	t.Fatal("FreePort: no port free for both UDP and TCP after 100 tries")
	return 0
}

// ModuleRoot returns the directory holding go.mod, found by walking up from
// the working directory (the package directory under go test).
func ModuleRoot(t testing.TB) string {
	t.Helper()
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	return root
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod in the working directory or above it")
		}
		dir = parent
	}
}

var build struct {
	once sync.Once
	dir  string
	bin  string
	err  error
}

// BuildProxy builds ./cmd/imsproxy once per test binary and returns the
// path of the binary. It is built with -race when the tests are (so a data
// race in the daemon makes it exit 66 and StartProxy's exit check fails).
// The binary lives in a temporary directory shared by the tests of the
// binary; Main removes it at the end.
func BuildProxy(t testing.TB) string {
	t.Helper()
	build.once.Do(func() {
		root, err := moduleRoot()
		if err != nil {
			build.err = err
			return
		}
		build.dir, err = sharedTempDir("imsdlg-e2e-")
		if err != nil {
			build.err = err
			return
		}
		bin := filepath.Join(build.dir, "imsproxy")
		// -buildvcs=auto: stamp the commit (imsproxy version) even where
		// GOFLAGS turns it off.
		args := []string{"build", "-buildvcs=auto", "-o", bin}
		if raceEnabled {
			args = append(args, "-race")
		}
		args = append(args, "./cmd/imsproxy")
		cmd := exec.Command(goTool(), args...)
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		if err != nil {
			build.err = fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
			return
		}
		build.bin = bin
	})
	if build.err != nil {
		t.Fatalf("BuildProxy: %v", build.err)
	}
	return build.bin
}

func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	for _, p := range []string{filepath.Join(os.Getenv("GOROOT"), "bin", "go"), "/usr/local/go/bin/go"} {
		if _, err := os.Stat(p); err == nil && filepath.IsAbs(p) {
			return p
		}
	}
	return "go"
}

// Main runs the tests and then removes what BuildProxy built. Use it from
// the package's TestMain:
//
//	func TestMain(m *testing.M) { os.Exit(e2e.Main(m)) }
func Main(m *testing.M) int {
	code := m.Run()
	sharedDirs.Lock()
	for _, d := range sharedDirs.list {
		os.RemoveAll(d)
	}
	sharedDirs.Unlock()
	return code
}

// sharedDirs are temporary directories shared by several tests of the
// binary (t.TempDir belongs to one test), removed by Main.
var sharedDirs struct {
	sync.Mutex
	list []string
}

func sharedTempDir(pattern string) (string, error) {
	dir, err := os.MkdirTemp("", pattern)
	if err != nil {
		return "", err
	}
	sharedDirs.Lock()
	sharedDirs.list = append(sharedDirs.list, dir)
	sharedDirs.Unlock()
	return dir, nil
}

// tailBuffer is an io.Writer safe for concurrent use that keeps the last
// max bytes written to it.
type tailBuffer struct {
	mu      sync.Mutex
	buf     []byte
	max     int
	dropped int64
}

func newTailBuffer(max int) *tailBuffer { return &tailBuffer{max: max} }

func (b *tailBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf = append(b.buf, p...)
	if over := len(b.buf) - b.max; over > 0 {
		b.dropped += int64(over)
		b.buf = append(b.buf[:0], b.buf[over:]...)
	}
	return len(p), nil
}

func (b *tailBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.dropped > 0 {
		return fmt.Sprintf("[... %d bytes dropped ...]\n%s", b.dropped, b.buf)
	}
	return string(b.buf)
}

// ProxyConfig builds a daemon config (YAML) for a test. Zero ports are
// filled by NewProxyConfig.
type ProxyConfig struct {
	SIPPort       int                 // listens on udp: and tcp:127.0.0.1:SIPPort
	MgmtPort      int                 // mgmt.listen 127.0.0.1:MgmtPort
	NoRecordRoute bool                // record_route: false
	Static        map[string][]string // location.static: AOR -> contacts
	LogLevel      string              // log.level, "info" when empty
	SIPTrace      bool                // log.sip_trace: every message in the output
	Extra         string              // raw YAML appended (e.g. "tm: {fr_timeout: 2s}")
}

// NewProxyConfig returns a config with free ports, record-routing on and no
// location entries.
func NewProxyConfig(t testing.TB) *ProxyConfig {
	t.Helper()
	return &ProxyConfig{
		SIPPort:  FreePort(t, "both"),
		MgmtPort: FreePort(t, "tcp"),
		Static:   map[string][]string{},
	}
}

// YAML renders the config.
func (c *ProxyConfig) YAML() string {
	var b strings.Builder
	q := func(s string) string { return strconv.Quote(s) }
	fmt.Fprintf(&b, "listen: [%s, %s]\n",
		q(fmt.Sprintf("udp:%s:%d", Loopback, c.SIPPort)),
		q(fmt.Sprintf("tcp:%s:%d", Loopback, c.SIPPort)))
	fmt.Fprintf(&b, "domains: [localhost, %s]\n", q(Loopback))
	fmt.Fprintf(&b, "record_route: %t\n", !c.NoRecordRoute)
	if len(c.Static) > 0 {
		b.WriteString("location:\n  static:\n")
		for _, aor := range slices.Sorted(maps.Keys(c.Static)) {
			var cs []string
			for _, contact := range c.Static[aor] {
				cs = append(cs, q(contact))
			}
			fmt.Fprintf(&b, "    %s: [%s]\n", q(aor), strings.Join(cs, ", "))
		}
	}
	fmt.Fprintf(&b, "mgmt:\n  listen: %s\n", q(fmt.Sprintf("%s:%d", Loopback, c.MgmtPort)))
	level := c.LogLevel
	if level == "" {
		level = "info"
	}
	fmt.Fprintf(&b, "log: {level: %s, format: text, sip_trace: %t}\n", level, c.SIPTrace)
	if c.Extra != "" {
		b.WriteString(strings.TrimRight(c.Extra, "\n") + "\n")
	}
	return b.String()
}

// Proxy is a running imsproxy started by StartProxy.
type Proxy struct {
	t          testing.TB
	Bin        string   // the binary
	ConfigPath string   // the config file written for it
	Listen     []string // listen entries of the config, e.g. "udp:127.0.0.1:5060"
	MgmtAddr   string   // mgmt.listen of the config, host:port

	cmd  *exec.Cmd
	out  *tailBuffer
	done chan struct{} // closed when the process exited
	werr error         // cmd.Wait's result, valid after done

	stopOnce sync.Once
	stopErr  error
	reported atomic.Bool // the output went into a failure message already
}

// proxyConfigKeys is the part of the config the harness reads.
type proxyConfigKeys struct {
	Listen []string `yaml:"listen"`
	Mgmt   struct {
		Listen string `yaml:"listen"`
	} `yaml:"mgmt"`
}

// StartProxyEnv is StartProxy with variables added to the daemon's
// environment ("IMSDLG_SHUTDOWN_DRAIN_PERIOD=10s").
func StartProxyEnv(t testing.TB, yamlConfig string, env ...string) *Proxy {
	t.Helper()
	return startProxy(t, BuildProxy(t), yamlConfig, env)
}

// StartProxy writes yamlConfig to a temporary file, starts the daemon built
// by BuildProxy with --config FILE and waits until GET /healthz on the mgmt
// address answers 200 (10 s deadline). The config must set mgmt.listen.
// On cleanup the daemon gets SIGTERM (SIGKILL after 5 s) and the test fails
// unless it exits 0; its output is logged when the test failed.
func StartProxy(t testing.TB, yamlConfig string) *Proxy {
	t.Helper()
	return startProxy(t, BuildProxy(t), yamlConfig, nil)
}

// startProxy starts bin as the daemon, with env added to the environment.
func startProxy(t testing.TB, bin, yamlConfig string, env []string) *Proxy {
	t.Helper()
	var keys proxyConfigKeys
	if err := yaml.Unmarshal([]byte(yamlConfig), &keys); err != nil {
		t.Fatalf("StartProxy: config is not YAML: %v\n%s", err, yamlConfig)
	}
	if keys.Mgmt.Listen == "" {
		t.Fatalf("StartProxy: the config must set mgmt.listen (host:port) so the harness can reach /healthz:\n%s", yamlConfig)
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "imsproxy.yaml")
	if err := os.WriteFile(cfg, []byte(yamlConfig), 0o600); err != nil {
		t.Fatal(err)
	}
	p := &Proxy{
		t:          t,
		Bin:        bin,
		ConfigPath: cfg,
		Listen:     keys.Listen,
		MgmtAddr:   keys.Mgmt.Listen,
		out:        newTailBuffer(4 << 20),
		done:       make(chan struct{}),
	}
	p.cmd = exec.Command(bin, "--config", cfg)
	p.cmd.Dir = dir
	// A test that leaves calls up must not wait out a 30 s drain at its
	// cleanup; the drain tests set their own period (the last value wins).
	// Released message blocks and text are poisoned, not reused: a module
	// that kept a string or header past its message reads garbage and the
	// test fails (internal/poolcheck).
	p.cmd.Env = append(append(os.Environ(), "IMSDLG_SHUTDOWN_DRAIN_PERIOD=1s", "POOLCHECK_POISON=1"), env...)
	p.cmd.Stdout = p.out
	p.cmd.Stderr = p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("StartProxy: %v", err)
	}
	go func() {
		p.werr = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		if err := p.Stop(); err != nil {
			t.Errorf("imsproxy: %v", err)
		}
		if t.Failed() && !p.reported.Load() {
			t.Logf("imsproxy output (config %s):\n%s\n--- config ---\n%s", cfg, p.out.String(), yamlConfig)
		}
	})
	if err := p.waitHealthy(10 * time.Second); err != nil {
		p.reported.Store(true)
		t.Fatalf("StartProxy: %v\n--- imsproxy output ---\n%s\n--- config (%s) ---\n%s", err, p.out.String(), cfg, yamlConfig)
	}
	return p
}

func (p *Proxy) waitHealthy(within time.Duration) error {
	client := &http.Client{Timeout: time.Second}
	url := "http://" + p.MgmtAddr + "/healthz"
	deadline := time.Now().Add(within)
	var last error
	for {
		resp, err := client.Get(url)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		last = err
		if time.Now().After(deadline) {
			return fmt.Errorf("no 200 from GET %s within %v: %v", url, within, last)
		}
		// Poll: the daemon is an external process starting up.
		select {
		case <-p.done:
			return fmt.Errorf("imsproxy exited before /healthz answered: %v", p.werr)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Addr returns host:port of the first listen entry of the transport
// ("udp" or "tcp"), e.g. "127.0.0.1:5060". It fails the test when there is
// none.
func (p *Proxy) Addr(transport string) string {
	p.t.Helper()
	for _, l := range p.Listen {
		if tr, addr, ok := strings.Cut(l, ":"); ok && strings.EqualFold(tr, transport) {
			return addr
		}
	}
	p.t.Fatalf("imsproxy: no %s listener in %v", transport, p.Listen)
	return ""
}

// Output returns what the daemon printed so far (its last 4 MiB).
func (p *Proxy) Output() string { return p.out.String() }

// Exited reports whether the daemon process has exited.
func (p *Proxy) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stop sends SIGTERM, waits up to 5 s for the exit (then SIGKILL) and
// returns an error unless the daemon exited 0 because of the SIGTERM.
// It runs once; the cleanup of StartProxy calls it too.
func (p *Proxy) Stop() error {
	p.stopOnce.Do(func() { p.stopErr = p.stop() })
	return p.stopErr
}

// Term sends SIGTERM and returns at once; WaitExit then waits for the
// exit.
func (p *Proxy) Term() {
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		p.t.Fatalf("SIGTERM: %v", err)
	}
}

// WaitExit waits up to within for the daemon to exit after Term and
// returns its exit error (nil for status 0); the cleanup then expects
// nothing more of it.
func (p *Proxy) WaitExit(within time.Duration) error {
	var err error
	p.stopOnce.Do(func() {
		select {
		case <-p.done:
			err = p.werr
		case <-time.After(within):
			_ = p.cmd.Process.Kill()
			<-p.done
			err = fmt.Errorf("still running %v after SIGTERM: killed", within)
		}
	})
	return err
}

// Ready reports /readyz's status code.
func (p *Proxy) Ready() int {
	res, err := (&http.Client{Timeout: time.Second}).Get("http://" + p.MgmtAddr + "/readyz")
	if err != nil {
		return 0
	}
	res.Body.Close()
	return res.StatusCode
}

// Kill ends the daemon with SIGKILL, as a crash would, and waits for it;
// the cleanup of StartProxy then expects nothing more of it.
func (p *Proxy) Kill() {
	p.stopOnce.Do(func() {
		_ = p.cmd.Process.Kill()
		<-p.done
	})
}

func (p *Proxy) stop() error {
	select {
	case <-p.done:
		return fmt.Errorf("exited before SIGTERM: %v", exitDesc(p.werr))
	default:
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("SIGTERM: %v", err)
	}
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
		return errors.New("still running 5 s after SIGTERM: killed")
	}
	if p.werr != nil {
		return fmt.Errorf("exit after SIGTERM: %v, want exit status 0", exitDesc(p.werr))
	}
	return nil
}

func exitDesc(err error) string {
	if err == nil {
		return "exit status 0"
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) && ee.ExitCode() == 66 {
		return err.Error() + " (66: the race detector found a data race, see the output)"
	}
	return err.Error()
}

// RPCError is a JSON-RPC 2.0 error object.
type RPCError struct {
	Code    int             `json:"code"`
	Message string          `json:"message"`
	Data    json.RawMessage `json:"data,omitempty"`
}

func (e *RPCError) Error() string {
	if len(e.Data) > 0 {
		return fmt.Sprintf("JSON-RPC error %d: %s (%s)", e.Code, e.Message, e.Data)
	}
	return fmt.Sprintf("JSON-RPC error %d: %s", e.Code, e.Message)
}

var rpcID struct {
	sync.Mutex
	n int
}

// RPC calls a JSON-RPC 2.0 method at POST http://<mgmt>/rpc and returns its
// result. params is marshalled as is (nil: no params). A JSON-RPC error
// comes back as *RPCError.
func (p *Proxy) RPC(method string, params any) (json.RawMessage, error) {
	rpcID.Lock()
	rpcID.n++
	id := rpcID.n
	rpcID.Unlock()
	req := map[string]any{"jsonrpc": "2.0", "id": id, "method": method}
	if params != nil {
		req["params"] = params
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+p.MgmtAddr+"/rpc", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	hreq.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(hreq)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	var r struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Result  json.RawMessage `json:"result"`
		Error   *RPCError       `json:"error"`
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, fmt.Errorf("%s: HTTP %s, body is not JSON-RPC: %v: %q", method, resp.Status, err, raw)
	}
	if r.Error != nil {
		return nil, r.Error
	}
	if r.JSONRPC != "2.0" {
		return nil, fmt.Errorf("%s: jsonrpc %q in the response, want \"2.0\": %q", method, r.JSONRPC, raw)
	}
	if string(r.ID) != strconv.Itoa(id) {
		return nil, fmt.Errorf("%s: response id %s, want %d", method, r.ID, id)
	}
	if r.Result == nil {
		return nil, fmt.Errorf("%s: response has neither result nor error: %q", method, raw)
	}
	return r.Result, nil
}

// Metrics fetches GET http://<mgmt>/metrics (Prometheus text). It fails the
// test on an error, so call it from the test's goroutine.
func (p *Proxy) Metrics() string {
	p.t.Helper()
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Get("http://" + p.MgmtAddr + "/metrics")
	if err != nil {
		p.t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		p.t.Fatalf("GET /metrics: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		p.t.Fatalf("GET /metrics: %s: %s", resp.Status, body)
	}
	return string(body)
}

// MetricValue returns the value of one series of a Prometheus text
// exposition, series written as in the text: `name` or
// `name{label="v",...}` (labels in the exposition's order).
func MetricValue(metrics, series string) (float64, bool) {
	sc := bufio.NewScanner(strings.NewReader(metrics))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		rest, ok := strings.CutPrefix(line, series)
		if !ok || !strings.HasPrefix(rest, " ") {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			return 0, false
		}
		return v, true
	}
	return 0, false
}

package e2e

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// SippArgs describes one sipp process.
type SippArgs struct {
	// Scenario is a file name under test/sipp ("uac.xml") or a path.
	Scenario string
	// LocalIP is the address sipp binds and writes in Via/Contact
	// (-i, with -bind_local). Default 127.0.0.1.
	LocalIP string
	// LocalPort is sipp's SIP port (-p). 0: a FreePort.
	LocalPort int
	// Remote is "ip:port" of the peer (proxy or UAS). Empty: sipp is a
	// server (UAS scenario) and StartSipp waits until its port is bound.
	Remote string
	// Transport is "u1" (UDP, default) or "t1" (TCP), sipp's -t.
	Transport string
	// Calls is -m: sipp exits after this many calls. Default 1.
	Calls int
	// Rate is -r, calls per second (UAC); 0 leaves sipp's default (10).
	Rate float64
	// Service is -s, the user part of the R-URI ([service]) of a UAC.
	Service string
	// Keys are -key name value pairs ([name] in the scenario), e.g.
	// {"code": "486"} for uas_reply.xml / uac_expect.xml.
	Keys map[string]string
	// Vars are -set name value pairs (global variables), e.g.
	// {"require_reason": "1"} for uas_ring.xml.
	Vars map[string]string
	// Pause is -d: the length of the scenario's <pause/> elements.
	Pause time.Duration
	// Timeout is sipp's -timeout (with -timeout_error: reaching it is a
	// failure) and, plus 10 s, the deadline of Wait. Default 30 s.
	Timeout time.Duration
	// NoMessageTrace turns off -trace_msg (every SIP message in a file,
	// whose tail Wait's error shows); turn it off for load.
	NoMessageTrace bool
	// Extra arguments, appended last.
	Extra []string
}

// Sipp is a running sipp process started by StartSipp.
type Sipp struct {
	t    testing.TB
	Args SippArgs // with defaults filled in
	Dir  string   // working directory: sipp's output and trace files
	Port int      // local SIP port

	cmdline []string
	cmd     *exec.Cmd
	done    chan struct{}
	werr    error

	waitOnce sync.Once
	waitErr  error
	reported atomic.Bool // the traces went into an error or a log already
}

// Files of a sipp run, in Sipp.Dir.
const (
	sippOutFile   = "sipp.out"     // stdout+stderr (screens)
	sippErrFile   = "errors.log"   // -trace_err
	sippMsgFile   = "messages.log" // -trace_msg
	sippStatsFile = "stats.csv"    // -trace_stat
)

// ScenarioPath returns the path of a scenario file under test/sipp.
func ScenarioPath(t testing.TB, name string) string {
	t.Helper()
	if filepath.IsAbs(name) || strings.ContainsRune(name, os.PathSeparator) {
		return name
	}
	p := filepath.Join(ModuleRoot(t), "test", "sipp", name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("scenario %s: %v", name, err)
	}
	return p
}

// StartSipp starts sipp as a child process (no terminal: -nostdin) with
// its traces in a temporary directory: -trace_err (errors.log), -trace_stat
// (stats.csv), -trace_msg (messages.log) unless NoMessageTrace. A server
// (Remote empty) is waited for until its SIP port is bound (10 s deadline).
// sipp's control socket (-ci) and media sockets (-mi) are bound to
// 127.0.0.1 too. Call Wait for the result; on cleanup a sipp still running
// is killed, and when the test failed its traces are logged.
func StartSipp(t testing.TB, a SippArgs) *Sipp {
	t.Helper()
	RequireTools(t)
	if a.LocalIP == "" {
		a.LocalIP = Loopback
	}
	if a.Transport == "" {
		a.Transport = "u1"
	}
	if a.Calls == 0 {
		a.Calls = 1
	}
	if a.Timeout == 0 {
		a.Timeout = 30 * time.Second
	}
	switch a.Transport {
	case "u1", "un", "t1", "tn":
	default:
		t.Fatalf("StartSipp: transport %q, want u1, un, t1 or tn", a.Transport)
	}
	auto := a.LocalPort == 0
	for attempt := 0; ; attempt++ {
		if auto {
			a.LocalPort = FreePort(t, "both")
		}
		if s := startSipp(t, a, auto && attempt < 4); s != nil {
			return s
		}
	}
}

// startSipp starts one sipp process; with retry it returns nil instead of
// failing when a server could not bind its port.
func startSipp(t testing.TB, a SippArgs, retry bool) *Sipp {
	t.Helper()
	s := &Sipp{t: t, Args: a, Dir: t.TempDir(), Port: a.LocalPort, done: make(chan struct{})}
	var args []string
	if a.Remote != "" {
		args = append(args, a.Remote)
	}
	args = append(args,
		"-sf", ScenarioPath(t, a.Scenario),
		"-i", a.LocalIP, "-p", strconv.Itoa(a.LocalPort), "-bind_local",
		"-t", a.Transport,
		"-m", strconv.Itoa(a.Calls),
		"-nostdin",
		"-ci", Loopback, "-mi", Loopback,
		"-timeout", fmt.Sprintf("%dms", a.Timeout.Milliseconds()), "-timeout_error",
		"-trace_err", "-error_file", filepath.Join(s.Dir, sippErrFile),
		"-trace_stat", "-stf", filepath.Join(s.Dir, sippStatsFile),
	)
	if !a.NoMessageTrace {
		args = append(args, "-trace_msg", "-message_file", filepath.Join(s.Dir, sippMsgFile))
	}
	if a.Rate > 0 {
		args = append(args, "-r", strconv.FormatFloat(a.Rate, 'f', -1, 64))
	}
	if a.Service != "" {
		args = append(args, "-s", a.Service)
	}
	for _, k := range slices.Sorted(maps.Keys(a.Keys)) {
		args = append(args, "-key", k, a.Keys[k])
	}
	for _, k := range slices.Sorted(maps.Keys(a.Vars)) {
		args = append(args, "-set", k, a.Vars[k])
	}
	if a.Pause > 0 {
		args = append(args, "-d", strconv.FormatInt(a.Pause.Milliseconds(), 10))
	}
	args = append(args, a.Extra...)
	s.cmdline = append([]string{"sipp"}, args...)

	out, err := os.Create(filepath.Join(s.Dir, sippOutFile))
	if err != nil {
		t.Fatal(err)
	}
	s.cmd = exec.Command("sipp", args...)
	s.cmd.Dir = s.Dir
	s.cmd.Stdout = out
	s.cmd.Stderr = out
	if err := s.cmd.Start(); err != nil {
		out.Close()
		t.Fatalf("StartSipp: %v", err)
	}
	go func() {
		s.werr = s.cmd.Wait()
		out.Close()
		close(s.done)
	}()
	t.Cleanup(func() {
		if !s.exited() {
			s.cmd.Process.Kill()
			<-s.done
		}
		if t.Failed() && !s.reported.Load() {
			t.Logf("%s", s.report(s.werr))
		}
	})
	if a.Remote == "" {
		if err := s.waitBound(10 * time.Second); err != nil {
			if retry && s.exited() {
				// FreePort probes a port and lets it go; another process
				// may take it before sipp binds it. Try another.
				s.reported.Store(true)
				return nil
			}
			s.reported.Store(true)
			t.Fatalf("StartSipp: %v\n%s", err, s.report(s.werr))
		}
	}
	return s
}

// Addr returns "ip:port" of sipp's SIP socket.
func (s *Sipp) Addr() string {
	return net.JoinHostPort(s.Args.LocalIP, strconv.Itoa(s.Port))
}

// URI returns "sip:user@ip:port" for sipp's SIP socket, with
// ";transport=tcp" when sipp runs over TCP.
func (s *Sipp) URI(user string) string {
	u := "sip:" + user + "@" + s.Addr()
	if strings.HasPrefix(s.Args.Transport, "t") {
		u += ";transport=tcp"
	}
	return u
}

// Contact returns the URI as a location.static contact of the proxy
// config: in <> when it has URI parameters (TCP), as the config wants.
func (s *Sipp) Contact(user string) string {
	u := s.URI(user)
	if strings.Contains(u, ";") {
		return "<" + u + ">"
	}
	return u
}

// CommandLine returns the sipp command line, for logs.
func (s *Sipp) CommandLine() string { return strings.Join(s.cmdline, " ") }

func (s *Sipp) exited() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// waitBound polls /proc/net until sipp's SIP port is bound: sipp is an
// external process starting up.
func (s *Sipp) waitBound(within time.Duration) error {
	network := "udp"
	if strings.HasPrefix(s.Args.Transport, "t") {
		network = "tcp"
	}
	deadline := time.Now().Add(within)
	for {
		bound, err := portBound(network, s.Port)
		if err != nil {
			return err
		}
		if bound {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("sipp did not bind %s port %d within %v", network, s.Port, within)
		}
		select {
		case <-s.done:
			return fmt.Errorf("sipp exited before binding %s port %d", network, s.Port)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// portBound reports whether a socket is bound to the local port: for "udp"
// any UDP socket, for "tcp" a listening one (/proc/net/{udp,tcp}{,6}).
func portBound(network string, port int) (bool, error) {
	want := fmt.Sprintf(":%04X", port)
	found := false
	for _, f := range []string{network, network + "6"} {
		data, err := os.ReadFile("/proc/net/" + f)
		if err != nil {
			if errors.Is(err, os.ErrNotExist) {
				continue
			}
			return false, err
		}
		sc := bufio.NewScanner(bytes.NewReader(data))
		sc.Scan() // header
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 4 || !strings.HasSuffix(fields[1], want) {
				continue
			}
			if network == "tcp" && fields[3] != "0A" { // TCP_LISTEN
				continue
			}
			found = true
		}
	}
	return found, nil
}

// Wait waits for sipp to exit: nil when it exited 0 (every call
// succeeded). Otherwise the error tells the exit code and holds sipp's
// error file, its last screen and the tail of its message trace. sipp is
// killed when it has not exited 10 s after its -timeout.
func (s *Sipp) Wait() error {
	s.waitOnce.Do(func() {
		grace := s.Args.Timeout + 10*time.Second
		select {
		case <-s.done:
		case <-time.After(grace):
			s.cmd.Process.Kill()
			<-s.done
			s.reported.Store(true)
			s.waitErr = fmt.Errorf("sipp %s still running %v after start (-timeout %v): killed\n%s",
				s.Args.Scenario, grace, s.Args.Timeout, s.report(s.werr))
			return
		}
		if s.werr != nil {
			s.reported.Store(true)
			s.waitErr = fmt.Errorf("sipp %s failed: %s\n%s", s.Args.Scenario, sippExit(s.werr), s.report(s.werr))
		}
	})
	return s.waitErr
}

// Kill stops sipp at once (SIGKILL) and waits for the exit.
func (s *Sipp) Kill() {
	if !s.exited() {
		s.cmd.Process.Kill()
	}
	<-s.done
}

func sippExit(err error) string {
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		return err.Error()
	}
	code := ee.ExitCode()
	meaning := map[int]string{
		1:   "at least one call failed",
		97:  "exit on internal command",
		99:  "normal exit without calls processed",
		254: "fatal error binding a socket",
		255: "fatal error (or an <error> action of the scenario)",
	}[code]
	if meaning == "" {
		return err.Error()
	}
	return fmt.Sprintf("exit status %d (%s)", code, meaning)
}

// report describes the run for a failure: command line, exit, error file,
// last screen, message trace tail.
func (s *Sipp) report(werr error) string {
	var b strings.Builder
	fmt.Fprintf(&b, "=== sipp %s (%s)\n$ %s\n", s.Args.Scenario, s.Dir, s.CommandLine())
	if s.exited() {
		if werr == nil {
			b.WriteString("exit status 0\n")
		} else {
			fmt.Fprintf(&b, "%s\n", sippExit(werr))
		}
	} else {
		b.WriteString("still running\n")
	}
	section := func(title, file string, max int) {
		data, err := os.ReadFile(filepath.Join(s.Dir, file))
		if err != nil || len(bytes.TrimSpace(data)) == 0 {
			return
		}
		fmt.Fprintf(&b, "--- %s (%s) ---\n%s\n", title, file, tail(data, max))
	}
	section("errors", sippErrFile, 8<<10)
	section("last screen", sippOutFile, 6<<10)
	section("messages, last ones", sippMsgFile, 8<<10)
	return b.String()
}

func tail(data []byte, max int) string {
	if len(data) <= max {
		return string(data)
	}
	cut := data[len(data)-max:]
	if i := bytes.IndexByte(cut, '\n'); i >= 0 {
		cut = cut[i+1:]
	}
	return fmt.Sprintf("[... %d bytes before ...]\n%s", len(data)-len(cut), cut)
}

// SippStats is the last line of sipp's -trace_stat file (cumulative
// counters at exit).
type SippStats struct {
	Elapsed         time.Duration // CurrentTime - StartTime
	CallRate        float64       // CallRate(C), calls per second
	Created         int           // TotalCallCreated
	Successful      int           // SuccessfulCall(C)
	Failed          int           // FailedCall(C)
	Retransmissions int           // Retransmissions(C)
	Unexpected      int           // FailedUnexpectedMessage(C)
	DeadCallMsgs    int           // DeadCallMsgs(C)
	// Fields has every column of the line by name, e.g.
	// "FailedTimeoutOnRecv(C)".
	Fields map[string]string
}

// Stats parses the statistics file; call it after Wait.
func (s *Sipp) Stats() (SippStats, error) {
	return ParseSippStats(filepath.Join(s.Dir, sippStatsFile))
}

// ParseSippStats parses the last line of a sipp -trace_stat CSV file.
func ParseSippStats(path string) (SippStats, error) {
	var st SippStats
	data, err := os.ReadFile(path)
	if err != nil {
		return st, err
	}
	lines := strings.Split(strings.TrimRight(string(data), "\r\n"), "\n")
	if len(lines) < 2 {
		return st, fmt.Errorf("%s: no statistics line", path)
	}
	header := strings.Split(strings.TrimRight(lines[0], ";\r"), ";")
	values := strings.Split(strings.TrimRight(lines[len(lines)-1], ";\r"), ";")
	if len(values) < len(header) {
		return st, fmt.Errorf("%s: %d columns in the last line, %d in the header", path, len(values), len(header))
	}
	st.Fields = make(map[string]string, len(header))
	for i, h := range header {
		st.Fields[h] = values[i]
	}
	num := func(name string) int {
		n, _ := strconv.Atoi(st.Fields[name])
		return n
	}
	st.Created = num("TotalCallCreated")
	st.Successful = num("SuccessfulCall(C)")
	st.Failed = num("FailedCall(C)")
	st.Retransmissions = num("Retransmissions(C)")
	st.Unexpected = num("FailedUnexpectedMessage(C)")
	st.DeadCallMsgs = num("DeadCallMsgs(C)")
	st.CallRate, _ = strconv.ParseFloat(st.Fields["CallRate(C)"], 64)
	// Times are "date\ttime\tepoch".
	epoch := func(name string) float64 {
		f := strings.Split(st.Fields[name], "\t")
		v, _ := strconv.ParseFloat(f[len(f)-1], 64)
		return v
	}
	if start, now := epoch("StartTime"), epoch("CurrentTime"); start > 0 && now >= start {
		st.Elapsed = time.Duration((now - start) * float64(time.Second))
	}
	return st, nil
}

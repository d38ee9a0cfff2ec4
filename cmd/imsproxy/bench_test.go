package main

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/imsdlg/imsdlg/internal/poolcheck"
)

// BenchmarkRecordRoutedCall runs whole calls through the daemon as it
// runs in production (config, tm, transport, dialog module, a per-caller
// profile) over loopback UDP: INVITE, 100, 180, 200, ACK, BYE, 200, with
// the caller and the callee built from byte templates so that they
// allocate nothing themselves. The allocations reported are therefore the
// proxy's per call (issue 14: at most 100 objects and 8 KB). Run it with
//
//	go test ./cmd/imsproxy -run '^$' -bench RecordRoutedCall -benchtime 5000x
func BenchmarkRecordRoutedCall(b *testing.B) {
	uac, uas := listenUDPB(b), listenUDPB(b)
	uasAddr := uas.LocalAddr().(*net.UDPAddr).AddrPort()
	c := &benchCall{uac: uac, uas: uas, uasAddr: uasAddr, uacAddr: uac.LocalAddr().(*net.UDPAddr).AddrPort()}
	c.proxy, c.metrics = startBenchProxy(b, []netip.AddrPort{uasAddr},
		"profiles: {with_value: [caller]}\n"+
			"limits: [{profile: caller, key: from_uri, max: 1000000}]\n")
	c.measure(b, c.run)
}

// measure runs call b.N times after a warm-up call (the first call pays
// for lazily built state), counting the allocations.
func (c *benchCall) measure(b *testing.B, call func(*testing.B, int)) {
	// Blocks given back are reused, as in production, not poisoned as in
	// the tests (internal/poolcheck).
	was := poolcheck.SetPoison(false)
	b.Cleanup(func() { poolcheck.SetPoison(was) })
	call(b, -1)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		call(b, i)
	}
	b.StopTimer()
	// A kick is a reader the watchdog woke: a read that would have stalled
	// (the callers here never retransmit), or a handler slower than a tick.
	b.ReportMetric(c.metric(b, "imsdlg_transport_udp_read_kicks_total"), "read-kicks/run")
}

// BenchmarkForkedCall is test/bench's fork flow through the daemon: the
// INVITE forked in parallel to two contacts of bob, one rings and is
// cancelled by the proxy when the other answers (CANCEL, its 200, the 487
// and the proxy's ACK for it), then ACK, BYE and its 200 with the answering
// callee. The allocations reported are the proxy's per call.
//
//	go test ./cmd/imsproxy -run '^$' -bench ForkedCall -benchtime 5000x
func BenchmarkForkedCall(b *testing.B) {
	uac, uas, ring := listenUDPB(b), listenUDPB(b), listenUDPB(b)
	uasAddr := uas.LocalAddr().(*net.UDPAddr).AddrPort()
	ringAddr := ring.LocalAddr().(*net.UDPAddr).AddrPort()
	c := &benchCall{uac: uac, uas: uas, uasAddr: uasAddr, uacAddr: uac.LocalAddr().(*net.UDPAddr).AddrPort(),
		ring: ring, ringAddr: ringAddr}
	c.proxy, c.metrics = startBenchProxy(b, []netip.AddrPort{uasAddr, ringAddr}, "")
	c.measure(b, c.fork)
}

// startBenchProxy runs the daemon as in production (config, tm,
// transport, dialog module) on loopback UDP, with record-routing and
// sip:bob@127.0.0.1 at contacts (equal q: forked in parallel), plus extra
// config; it returns the SIP address and the metrics URL.
func startBenchProxy(b *testing.B, contacts []netip.AddrPort, extra string) (netip.AddrPort, string) {
	sipPort, mgmtPort := freePortB(b), freePortB(b)
	proxy := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(sipPort))
	var list []string
	for _, a := range contacts {
		list = append(list, "\"sip:bob@"+a.String()+"\"")
	}
	cfg := "listen: [\"udp:127.0.0.1:" + strconv.Itoa(sipPort) + "\"]\n" +
		"domains: [localhost, 127.0.0.1]\nrecord_route: true\n" +
		"location:\n  static:\n    \"sip:bob@127.0.0.1\": [" + strings.Join(list, ", ") + "]\n" +
		"mgmt: {listen: \"127.0.0.1:" + strconv.Itoa(mgmtPort) + "\"}\n" +
		"log: {level: error}\n" + extra +
		// The callers share the process: the daemon's processor count
		// (runtime.gomaxprocs) must not be theirs.
		"runtime: {gomaxprocs: " + strconv.Itoa(runtime.GOMAXPROCS(0)) + "}\n"
	procs := runtime.GOMAXPROCS(0)
	b.Cleanup(func() { runtime.GOMAXPROCS(procs) })
	path := filepath.Join(b.TempDir(), "bench.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var out, errb syncBuffer
	go func() { done <- run(ctx, []string{"--config", path}, &out, &errb) }()
	b.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(20 * time.Second):
			b.Error("daemon did not stop")
		}
	})
	waitHealthy(b, "http://127.0.0.1:"+strconv.Itoa(mgmtPort)+"/healthz", &errb)
	return proxy, "http://127.0.0.1:" + strconv.Itoa(mgmtPort) + "/metrics"
}

// metric reads one unlabelled counter of the proxy.
func (c *benchCall) metric(b *testing.B, name string) float64 {
	res, err := http.Get(c.metrics)
	if err != nil {
		b.Fatal(err)
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				b.Fatalf("metric %s: %v", name, err)
			}
			return f
		}
	}
	b.Fatalf("metric %s: not exposed", name)
	return 0
}

// benchCall is a caller and a callee that speak just enough SIP for one
// record-routed call, with fixed buffers.
type benchCall struct {
	uac, uas         *net.UDPConn
	proxy            netip.AddrPort
	uacAddr, uasAddr netip.AddrPort
	out, in, in2     [4096]byte
	route            [512]byte
	toTag            [512]byte
	routeN, toN      int
	metrics          string // the proxy's, read when a message is missing
	// ring is the fork's second callee, which rings until cancelled.
	ring     *net.UDPConn
	ringAddr netip.AddrPort
	in3, in4 [4096]byte
}

func (c *benchCall) run(b *testing.B, i int) {
	// INVITE, caller to proxy.
	m := c.request(c.out[:0], "INVITE", "sip:bob@127.0.0.1", i, 1, nil, nil)
	c.send(b, c.uac, c.proxy, m)
	inv := c.recv(b, c.uas, c.in[:])
	c.send(b, c.uas, c.proxy, c.response(c.out[:0], "180 Ringing", inv, true))
	c.send(b, c.uas, c.proxy, c.response(c.out[:0], "200 OK", inv, true))
	// The caller waits for the 200 (after the 100 and the 180) and learns
	// the route set and the callee's tag from it.
	for {
		r := c.recv(b, c.uac, c.in2[:])
		if bytes.HasPrefix(r, []byte("SIP/2.0 200")) {
			c.learn(r)
			break
		}
	}
	c.ackAndBye(b, i)
}

// ackAndBye is the rest of an answered call i: the caller's ACK and BYE
// along the route set it learnt, the callee's 200 for the BYE.
func (c *benchCall) ackAndBye(b *testing.B, i int) {
	ack := c.request(c.out[:0], "ACK", "sip:bob@127.0.0.1", i, 1, c.route[:c.routeN], c.toTag[:c.toN])
	c.send(b, c.uac, c.proxy, ack)
	if got := c.recv(b, c.uas, c.in[:]); !bytes.HasPrefix(got, []byte("ACK ")) {
		b.Fatalf("callee got %q, want the ACK", firstLine(got))
	}
	bye := c.request(c.out[:0], "BYE", "sip:bob@127.0.0.1", i, 2, c.route[:c.routeN], c.toTag[:c.toN])
	c.send(b, c.uac, c.proxy, bye)
	bin := c.recv(b, c.uas, c.in[:])
	if !bytes.HasPrefix(bin, []byte("BYE ")) {
		b.Fatalf("callee got %q, want the BYE", firstLine(bin))
	}
	c.send(b, c.uas, c.proxy, c.response(c.out[:0], "200 OK", bin, false))
	if got := c.final(b); !bytes.HasPrefix(got, []byte("SIP/2.0 200")) {
		b.Fatalf("caller got %q, want the 200 for the BYE", firstLine(got))
	}
}

// fork is one call of the fork flow. The proxy's readers may reorder what
// the two callees send (a 180 behind the 200), so the caller skips
// provisional responses wherever it waits for a final one.
func (c *benchCall) fork(b *testing.B, i int) {
	m := c.request(c.out[:0], "INVITE", "sip:bob@127.0.0.1", i, 1, nil, nil)
	c.send(b, c.uac, c.proxy, m)
	inv := c.recv(b, c.uas, c.in[:])
	rinv := c.recv(b, c.ring, c.in3[:])
	c.send(b, c.ring, c.proxy, c.responseFrom(c.out[:0], "180 Ringing", rinv, true, c.ringAddr, ";tag=r"))
	c.send(b, c.uas, c.proxy, c.response(c.out[:0], "200 OK", inv, true))
	// The answer makes the proxy cancel the ringing branch (§16.7 step 10).
	rinv = c.in4[:copy(c.in4[:], rinv)]
	cancel := c.recv(b, c.ring, c.in3[:])
	if !bytes.HasPrefix(cancel, []byte("CANCEL ")) {
		b.Fatalf("ringing callee got %q, want the CANCEL", firstLine(cancel))
	}
	c.send(b, c.ring, c.proxy, c.responseFrom(c.out[:0], "200 OK", cancel, false, c.ringAddr, ""))
	c.send(b, c.ring, c.proxy, c.responseFrom(c.out[:0], "487 Request Terminated", rinv, true, c.ringAddr, ";tag=r"))
	if got := c.recv(b, c.ring, c.in3[:]); !bytes.HasPrefix(got, []byte("ACK ")) {
		b.Fatalf("ringing callee got %q, want the ACK for its 487", firstLine(got))
	}
	c.learn(c.final(b))
	c.ackAndBye(b, i)
}

// final is the caller's next final response, provisional ones skipped.
func (c *benchCall) final(b *testing.B) []byte {
	for {
		r := c.recv(b, c.uac, c.in2[:])
		if !bytes.HasPrefix(r, []byte("SIP/2.0 1")) {
			return r
		}
	}
}

// request builds a request from the caller. The Request-URI of an
// in-dialog request would be the callee's Contact; the proxy routes it by
// its Route header (its own Record-Route), so any URI of ours does.
func (c *benchCall) request(m []byte, method, ruri string, i, cseq int, route, toTag []byte) []byte {
	m = append(m, method...)
	m = append(m, ' ')
	m = append(m, ruri...)
	m = append(m, " SIP/2.0\r\nVia: SIP/2.0/UDP "...)
	m = c.uacAddr.AppendTo(m)
	m = append(m, ";rport;branch=z9hG4bK-b-"...)
	m = strconv.AppendInt(m, int64(i), 10)
	m = append(m, '-')
	m = append(m, method...)
	m = append(m, "\r\nMax-Forwards: 70\r\n"...)
	m = append(m, route...)
	m = append(m, "From: <sip:alice@127.0.0.1>;tag=a"...)
	m = strconv.AppendInt(m, int64(i), 10)
	m = append(m, "\r\nTo: <sip:bob@127.0.0.1>"...)
	m = append(m, toTag...)
	m = append(m, "\r\nCall-ID: bench-"...)
	m = strconv.AppendInt(m, int64(i), 10)
	m = append(m, "@127.0.0.1\r\nCSeq: "...)
	m = strconv.AppendInt(m, int64(cseq), 10)
	m = append(m, ' ')
	m = append(m, method...)
	m = append(m, "\r\nContact: <sip:alice@"...)
	m = c.uacAddr.AppendTo(m)
	m = append(m, ">\r\nContent-Length: 0\r\n\r\n"...)
	return m
}

// response answers req from the callee: its Vias, Record-Routes, From,
// Call-ID and CSeq copied, a To tag added (tagged: the callee's own).
func (c *benchCall) response(m []byte, status string, req []byte, tagged bool) []byte {
	return c.responseFrom(m, status, req, tagged, c.uasAddr, ";tag=b")
}

// responseFrom is response from the callee at contact, whose To tag is tag.
func (c *benchCall) responseFrom(m []byte, status string, req []byte, tagged bool, contact netip.AddrPort, tag string) []byte {
	m = append(m, "SIP/2.0 "...)
	m = append(m, status...)
	m = append(m, "\r\n"...)
	for line := range headerLines(req) {
		switch {
		case hasName(line, "Via"), hasName(line, "v"), hasName(line, "Record-Route"),
			hasName(line, "From"), hasName(line, "f"), hasName(line, "Call-ID"), hasName(line, "i"),
			hasName(line, "CSeq"):
			m = append(m, line...)
			m = append(m, "\r\n"...)
		case hasName(line, "To"), hasName(line, "t"):
			m = append(m, line...)
			if tagged && !bytes.Contains(line, []byte(";tag=")) {
				m = append(m, tag...)
			}
			m = append(m, "\r\n"...)
		}
	}
	m = append(m, "Contact: <sip:bob@"...)
	m = contact.AppendTo(m)
	m = append(m, ">\r\nContent-Length: 0\r\n\r\n"...)
	return m
}

// learn keeps the route set (the Record-Routes, one Route line each; the
// proxy adds one or two of its own, in order, so reversing is moot for a
// single proxy but done anyway) and the To tag of a 200.
func (c *benchCall) learn(r []byte) {
	var rr [4][]byte
	n := 0
	c.toN = 0
	for line := range headerLines(r) {
		switch {
		case hasName(line, "Record-Route") && n < len(rr):
			rr[n] = line[len("Record-Route:"):]
			n++
		case hasName(line, "To") || hasName(line, "t"):
			if j := bytes.Index(line, []byte(";tag=")); j >= 0 {
				c.toN = copy(c.toTag[:], line[j:])
			}
		}
	}
	c.routeN = 0
	for k := n - 1; k >= 0; k-- {
		c.routeN += copy(c.route[c.routeN:], "Route:")
		c.routeN += copy(c.route[c.routeN:], rr[k])
		c.routeN += copy(c.route[c.routeN:], "\r\n")
	}
}

func (c *benchCall) send(b *testing.B, conn *net.UDPConn, to netip.AddrPort, m []byte) {
	if _, err := conn.WriteToUDPAddrPort(m, to); err != nil {
		b.Fatal(err)
	}
}

func (c *benchCall) recv(b *testing.B, conn *net.UDPConn, buf []byte) []byte {
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, _, err := conn.ReadFromUDPAddrPort(buf)
	if err != nil {
		who := "caller"
		switch conn {
		case c.uas:
			who = "callee"
		case c.ring:
			who = "ringing callee"
		}
		b.Fatalf("the %s got no message within 5s (%v); the proxy's counters:\n%s", who, err, c.counters())
	}
	return buf[:n]
}

// counters reads the proxy's tm and transport counters: what a failed
// run needs to tell a lost datagram from a message the proxy dropped.
func (c *benchCall) counters() string {
	res, err := http.Get(c.metrics)
	if err != nil {
		return err.Error()
	}
	defer res.Body.Close()
	var out bytes.Buffer
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		if l := sc.Text(); strings.HasPrefix(l, "imsdlg_tm_") || strings.HasPrefix(l, "imsdlg_transport_") ||
			strings.HasPrefix(l, "imsdlg_dialog") {
			out.WriteString(l)
			out.WriteByte('\n')
		}
	}
	return out.String()
}

// headerLines yields the header lines of a message (unfolded messages
// only: the proxy never folds).
func headerLines(m []byte) func(func([]byte) bool) {
	return func(yield func([]byte) bool) {
		i := bytes.Index(m, []byte("\r\n"))
		for i >= 0 {
			m = m[i+2:]
			i = bytes.Index(m, []byte("\r\n"))
			if i <= 0 {
				return
			}
			if !yield(m[:i]) {
				return
			}
		}
	}
}

func hasName(line []byte, name string) bool {
	if len(line) <= len(name) || !bytes.EqualFold(line[:len(name)], []byte(name)) {
		return false
	}
	rest := bytes.TrimLeft(line[len(name):], " \t")
	return len(rest) > 0 && rest[0] == ':'
}

func firstLine(m []byte) []byte {
	if i := bytes.Index(m, []byte("\r\n")); i >= 0 {
		return m[:i]
	}
	return m
}

func freePortB(b *testing.B) int {
	l, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	return l.LocalAddr().(*net.UDPAddr).Port
}

func listenUDPB(b *testing.B) *net.UDPConn {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return c
}

func waitHealthy(b *testing.B, url string, errb *syncBuffer) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		res, err := http.Get(url)
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			b.Fatalf("daemon not healthy: %v\n%s", err, errb.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

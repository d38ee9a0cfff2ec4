package transport

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/stretchr/testify/require"
)

// waitFor bounds every wait on the network in tests; nothing sleeps to
// assert timing.
const waitFor = 5 * time.Second

// got is a Message as the test keeps it: Raw copied.
type got struct {
	Message
}

type harness struct {
	*Transport
	in chan got
}

// newHarness runs a transport whose handler queues every message.
func newHarness(t testing.TB, o Options) *harness {
	t.Helper()
	h := &harness{in: make(chan got, 1<<16)}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Handler == nil {
		o.Handler = func(m Message) {
			m.Raw = bytes.Clone(m.Raw)
			h.in <- got{m}
		}
	}
	tr, err := New(o)
	require.NoError(t, err)
	h.Transport = tr
	t.Cleanup(func() { tr.Close() })
	return h
}

// next waits for the next message.
func (h *harness) next(t testing.TB) got {
	t.Helper()
	select {
	case m := <-h.in:
		return m
	case <-time.After(waitFor):
		t.Fatalf("no message within %v", waitFor)
	}
	return got{}
}

// none checks that no message is queued now.
func (h *harness) none(t testing.TB) {
	t.Helper()
	select {
	case m := <-h.in:
		t.Fatalf("unexpected message: %+v", m)
	default:
	}
}

// eventually polls cond until it holds, waitFor at most.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", waitFor, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func stat(tr *Transport, name string) uint64 {
	v, ok := tr.Stats().Snapshot()[name]
	if !ok {
		panic("no stat " + name)
	}
	return v
}

var (
	lo4 = netip.MustParseAddr("127.0.0.1")
	lo6 = netip.MustParseAddr("::1")
)

func any0(a netip.Addr) netip.AddrPort { return netip.AddrPortFrom(a, 0) }

// have6 tells whether IPv6 loopback works here.
func have6(t testing.TB) {
	t.Helper()
	c, err := net.ListenUDP("udp6", &net.UDPAddr{IP: net.IPv6loopback})
	if err != nil {
		t.Skip("no IPv6 loopback:", err)
	}
	c.Close()
}

// request builds a request with a correct Content-Length; extra is
// inserted as header lines ("Name: value\r\n").
func request(method, callID, extra, body string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "%s sip:bob@example.com SIP/2.0\r\n", method)
	b.WriteString("Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-" + callID + "\r\n")
	b.WriteString("Max-Forwards: 70\r\n")
	b.WriteString("From: <sip:alice@example.com>;tag=a1\r\n")
	b.WriteString("To: <sip:bob@example.com>\r\n")
	b.WriteString("Call-ID: " + callID + "\r\n")
	fmt.Fprintf(&b, "CSeq: 1 %s\r\n", method)
	b.WriteString(extra)
	if body != "" {
		b.WriteString("Content-Type: application/sdp\r\n")
	}
	fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n%s", len(body), body)
	return []byte(b.String())
}

func invite(callID string) []byte {
	return request("INVITE", callID, "Contact: <sip:alice@192.0.2.1>\r\n",
		"v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n")
}

func response(code int, callID string) []byte {
	return []byte("SIP/2.0 " + strconv.Itoa(code) + " OK\r\n" +
		"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-" + callID + "\r\n" +
		"From: <sip:alice@example.com>;tag=a1\r\nTo: <sip:bob@example.com>;tag=b1\r\n" +
		"Call-ID: " + callID + "\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n")
}

func callID(t testing.TB, m sip.Message) string {
	t.Helper()
	require.NotNil(t, m)
	id := m.CallID()
	require.NotNil(t, id)
	return id.Value()
}

// udpClient is a plain socket standing for a peer.
func udpClient(t testing.TB, a netip.Addr) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(a, 0)))
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

func readUDP(t testing.TB, c *net.UDPConn) ([]byte, netip.AddrPort) {
	t.Helper()
	buf := make([]byte, 1<<16)
	c.SetReadDeadline(time.Now().Add(waitFor))
	n, from, err := c.ReadFromUDPAddrPort(buf)
	require.NoError(t, err)
	return buf[:n], unmap(from)
}

// tcpClient connects a plain socket to addr.
func tcpClient(t testing.TB, addr netip.AddrPort) *net.TCPConn {
	t.Helper()
	c, err := net.DialTCP("tcp", nil, net.TCPAddrFromAddrPort(addr))
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

// closedByPeer waits until the peer closes c: a read returns EOF or a
// reset. Bytes read before are returned.
func closedByPeer(t testing.TB, c net.Conn) []byte {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(waitFor))
	var all []byte
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		all = append(all, buf[:n]...)
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatalf("connection still open after %v", waitFor)
			}
			return all
		}
	}
}

// readUntil reads from c until want has been seen.
func readUntil(t testing.TB, c net.Conn, want string) []byte {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(waitFor))
	var all []byte
	buf := make([]byte, 4096)
	for !bytes.Contains(all, []byte(want)) {
		n, err := c.Read(buf)
		all = append(all, buf[:n]...)
		if err != nil {
			t.Fatalf("reading for %q: %v (got %q)", want, err, all)
		}
	}
	return all
}

// stillOpen checks that the peer has not closed c (nothing to read, no EOF).
func stillOpen(t testing.TB, c net.Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	buf := make([]byte, 1)
	n, err := c.Read(buf)
	if ne, ok := err.(net.Error); ok && ne.Timeout() && n == 0 {
		return
	}
	t.Fatalf("connection not idle-open: n=%d err=%v", n, err)
}

// logCounter counts log records by message.
type logCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (l *logCounter) Enabled(context.Context, slog.Level) bool { return true }
func (l *logCounter) Handle(_ context.Context, r slog.Record) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.n == nil {
		l.n = map[string]int{}
	}
	l.n[r.Message]++
	return nil
}
func (l *logCounter) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *logCounter) WithGroup(string) slog.Handler      { return l }
func (l *logCounter) count(msg string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n[msg]
}

package siptest

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/stretchr/testify/require"
)

// WaitFor bounds every wait on the network in tests; nothing sleeps.
const WaitFor = 5 * time.Second

// Clock fires AfterFunc callbacks only when the test advances it.
type Clock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

type fakeTimer struct {
	c       *Clock
	at      time.Time
	f       func()
	stopped bool
}

func NewClock() *Clock { return &Clock{now: time.Unix(1_700_000_000, 0)} }

func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *Clock) AfterFunc(d time.Duration, f func()) interface{ Stop() bool } {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &fakeTimer{c: c, at: c.now.Add(d), f: f}
	c.timers = append(c.timers, t)
	return t
}

func (t *fakeTimer) Stop() bool {
	t.c.mu.Lock()
	defer t.c.mu.Unlock()
	was := !t.stopped
	t.stopped = true
	return was
}

// Advance moves time on and runs the timers that became due, in order.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	var due []*fakeTimer
	keep := c.timers[:0]
	for _, t := range c.timers {
		switch {
		case t.stopped:
		case !t.at.After(c.now):
			t.stopped = true
			due = append(due, t)
		default:
			keep = append(keep, t)
		}
	}
	// The dropped timers must not stay reachable past keep's end: their
	// callbacks hold what they would have acted on (tests of what is
	// released check that it can be collected).
	clear(c.timers[len(keep):])
	c.timers = keep
	c.mu.Unlock()
	for _, t := range due {
		t.f()
	}
}

// Pending counts armed timers.
func (c *Clock) Pending() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, t := range c.timers {
		if !t.stopped {
			n++
		}
	}
	return n
}

// UA is a bare SIP endpoint on a loopback UDP socket: the tests write
// every message by hand so they can check exactly what the proxy does.
type UA struct {
	t    testing.TB
	conn *net.UDPConn
	Addr *net.UDPAddr
	in   chan sip.Message
	Raw  chan string // what the UA could not parse (e.g. a 400 echoing a bad CSeq)
}

func NewUA(t testing.TB) *UA {
	t.Helper()
	return NewUAOn(t, "udp4", net.IPv4(127, 0, 0, 1))
}

func NewUAOn(t testing.TB, network string, ip net.IP) *UA {
	t.Helper()
	conn, err := net.ListenUDP(network, &net.UDPAddr{IP: ip})
	require.NoError(t, err)
	u := &UA{t: t, conn: conn, Addr: conn.LocalAddr().(*net.UDPAddr), in: make(chan sip.Message, 64), Raw: make(chan string, 8)}
	go func() {
		buf := make([]byte, 65535)
		for {
			n, from, err := conn.ReadFromUDP(buf)
			if err != nil {
				close(u.in)
				return
			}
			m, err := sip.ParseMessage(append([]byte(nil), buf[:n]...))
			if err != nil {
				u.Raw <- string(buf[:n])
				continue
			}
			m.SetSource(from.String()) // the address it came from
			u.in <- m
		}
	}()
	t.Cleanup(func() { conn.Close() })
	return u
}

func (u *UA) HostPort() string { return u.Addr.String() }

func (u *UA) SendRaw(to string, data string) {
	u.t.Helper()
	dst, err := net.ResolveUDPAddr("udp", to)
	require.NoError(u.t, err)
	_, err = u.conn.WriteToUDP([]byte(data), dst)
	require.NoError(u.t, err)
}

func (u *UA) Send(to string, m sip.Message) { u.SendRaw(to, m.String()) }

// next returns the next message, skipping what skip says to skip.
func (u *UA) Next(what string, match func(sip.Message) bool) sip.Message {
	u.t.Helper()
	deadline := time.After(WaitFor)
	for {
		select {
		case m, ok := <-u.in:
			if !ok {
				u.t.Fatalf("%s: socket closed while waiting for %s", u.Addr, what)
			}
			if match(m) {
				return m
			}
		case <-deadline:
			u.t.Fatalf("%s: no %s within %v", u.Addr, what, WaitFor)
			return nil
		}
	}
}

// request waits for a request of the method (retransmissions and other
// methods are skipped).
func (u *UA) Request(method sip.RequestMethod) *sip.Request {
	u.t.Helper()
	m := u.Next(string(method), func(m sip.Message) bool {
		r, ok := m.(*sip.Request)
		return ok && r.Method == method
	})
	return m.(*sip.Request)
}

// response waits for a response with the code (others are skipped).
func (u *UA) Response(code int) *sip.Response {
	u.t.Helper()
	m := u.Next(fmt.Sprintf("%d response", code), func(m sip.Message) bool {
		r, ok := m.(*sip.Response)
		return ok && r.StatusCode == code
	})
	return m.(*sip.Response)
}

// final waits for the first final response (retransmitted provisionals skipped).
func (u *UA) Final() *sip.Response {
	u.t.Helper()
	m := u.Next("final response", func(m sip.Message) bool {
		r, ok := m.(*sip.Response)
		return ok && r.StatusCode >= 200
	})
	return m.(*sip.Response)
}

// quiet asserts that nothing matching arrives for a short while; it is the
// only place a test waits on time, and only to prove an absence.
func (u *UA) Quiet(d time.Duration, what string, match func(sip.Message) bool) {
	u.t.Helper()
	deadline := time.After(d)
	for {
		select {
		case m := <-u.in:
			if match(m) {
				u.t.Fatalf("%s: unexpected %s:\n%s", u.Addr, what, m.String())
			}
		case <-deadline:
			return
		}
	}
}

// reply answers a request received from the proxy, to its top Via.
func (u *UA) Reply(req *sip.Request, code int, toTag string, extra ...string) *sip.Response {
	u.t.Helper()
	res := sip.NewResponseFromRequest(req, code, "Reason "+strconv.Itoa(code), nil)
	if to := res.To(); to != nil && toTag != "" && code > 100 {
		to.Params.Remove("tag")
		to.Params.Add("tag", toTag)
	}
	for _, h := range extra {
		i := strings.IndexByte(h, ':')
		res.AppendHeader(sip.NewHeader(h[:i], strings.TrimSpace(h[i+1:])))
	}
	if code >= 200 && code < 300 && req.IsInvite() {
		res.AppendHeader(sip.NewHeader("Contact", "<sip:uas@"+u.HostPort()+">"))
	}
	via := req.Via()
	u.Send(net.JoinHostPort(via.Host, strconv.Itoa(via.Port)), res)
	return res
}

var callSeq int
var callMu sync.Mutex

func nextCall() int {
	callMu.Lock()
	defer callMu.Unlock()
	callSeq++
	return callSeq
}

// invite builds an INVITE from the UA to ruri.
func (u *UA) Invite(ruri string, extra ...string) *sip.Request {
	return u.NewRequest("INVITE", ruri, 1, extra...)
}

func (u *UA) NewRequest(method, ruri string, cseq int, extra ...string) *sip.Request {
	u.t.Helper()
	n := nextCall()
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s SIP/2.0\r\n", method, ruri)
	fmt.Fprintf(&b, "Via: SIP/2.0/UDP %s;branch=z9hG4bK-uac-%d-%d;rport\r\n", u.HostPort(), n, time.Now().UnixNano())
	b.WriteString("Max-Forwards: 70\r\n")
	fmt.Fprintf(&b, "From: <sip:alice@127.0.0.1>;tag=from%d\r\n", n)
	fmt.Fprintf(&b, "To: <%s>\r\n", ruri)
	fmt.Fprintf(&b, "Call-ID: call-%d-%d@test\r\n", n, time.Now().UnixNano())
	fmt.Fprintf(&b, "CSeq: %d %s\r\n", cseq, method)
	fmt.Fprintf(&b, "Contact: <sip:alice@%s>\r\n", u.HostPort())
	body := ""
	for _, h := range extra {
		if strings.HasPrefix(h, "body:") {
			body = h[5:]
			continue
		}
		b.WriteString(h + "\r\n")
	}
	fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n%s", len(body), body)
	m, err := sip.ParseMessage([]byte(b.String()))
	require.NoError(u.t, err)
	return m.(*sip.Request)
}

// ackFor builds the ACK for a 2xx, along the route set of the response.
func (u *UA) AckFor(inv *sip.Request, res *sip.Response) *sip.Request {
	return u.InDialog("ACK", inv, res, int(inv.CSeq().SeqNo))
}

// inDialog builds a request within the dialog that res established: the
// remote target is the Contact, the route set the reversed Record-Route.
func (u *UA) InDialog(method string, inv *sip.Request, res *sip.Response, cseq int) *sip.Request {
	u.t.Helper()
	contact := res.Contact()
	require.NotNil(u.t, contact, "2xx without Contact")
	n := nextCall()
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s SIP/2.0\r\n", method, contact.Address.String())
	fmt.Fprintf(&b, "Via: SIP/2.0/UDP %s;branch=z9hG4bK-dlg-%d-%d;rport\r\n", u.HostPort(), n, time.Now().UnixNano())
	b.WriteString("Max-Forwards: 70\r\n")
	rr := res.GetHeaders("Record-Route")
	for i := len(rr) - 1; i >= 0; i-- {
		fmt.Fprintf(&b, "Route: %s\r\n", rr[i].Value())
	}
	fmt.Fprintf(&b, "From: %s\r\n", inv.From().Value())
	fmt.Fprintf(&b, "To: %s\r\n", res.To().Value())
	fmt.Fprintf(&b, "Call-ID: %s\r\n", inv.CallID().Value())
	fmt.Fprintf(&b, "CSeq: %d %s\r\n", cseq, method)
	b.WriteString("Content-Length: 0\r\n\r\n")
	m, err := sip.ParseMessage([]byte(b.String()))
	require.NoError(u.t, err)
	return m.(*sip.Request)
}

// cancelFor builds the CANCEL of an INVITE the UA sent (§9.1).
func (u *UA) CancelFor(inv *sip.Request, extra ...string) *sip.Request {
	u.t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "CANCEL %s SIP/2.0\r\n", inv.Recipient.String())
	fmt.Fprintf(&b, "Via: %s\r\n", inv.Via().Value())
	b.WriteString("Max-Forwards: 70\r\n")
	fmt.Fprintf(&b, "From: %s\r\nTo: %s\r\nCall-ID: %s\r\nCSeq: %d CANCEL\r\n",
		inv.From().Value(), inv.To().Value(), inv.CallID().Value(), inv.CSeq().SeqNo)
	for _, h := range extra {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("Content-Length: 0\r\n\r\n")
	m, err := sip.ParseMessage([]byte(b.String()))
	require.NoError(u.t, err)
	return m.(*sip.Request)
}

// ackNon2xx is the ACK a UAC sends for a non-2xx final (§17.1.1.3).
func (u *UA) AckNon2xx(inv *sip.Request, res *sip.Response) *sip.Request {
	u.t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "ACK %s SIP/2.0\r\n", inv.Recipient.String())
	fmt.Fprintf(&b, "Via: %s\r\n", inv.Via().Value())
	b.WriteString("Max-Forwards: 70\r\n")
	fmt.Fprintf(&b, "From: %s\r\nTo: %s\r\nCall-ID: %s\r\nCSeq: %d ACK\r\nContent-Length: 0\r\n\r\n",
		inv.From().Value(), res.To().Value(), inv.CallID().Value(), inv.CSeq().SeqNo)
	m, err := sip.ParseMessage([]byte(b.String()))
	require.NoError(u.t, err)
	return m.(*sip.Request)
}

func ListenTCP() (net.Listener, error) { return net.Listen("tcp4", "127.0.0.1:0") }

// readTCPRequest accepts one connection and parses the first request on it.
func ReadTCPRequest(t testing.TB, ln net.Listener) *sip.Request {
	t.Helper()
	type result struct {
		req *sip.Request
		err error
	}
	ch := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			ch <- result{err: err}
			return
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(WaitFor))
		var buf []byte
		tmp := make([]byte, 65535)
		for {
			n, err := c.Read(tmp)
			if err != nil {
				ch <- result{err: err}
				return
			}
			buf = append(buf, tmp[:n]...)
			if m, err := sip.ParseMessage(buf); err == nil {
				if r, ok := m.(*sip.Request); ok && len(r.Body()) == int(*r.ContentLength()) {
					ch <- result{req: r}
					return
				}
			}
		}
	}()
	select {
	case r := <-ch:
		require.NoError(t, r.err)
		return r.req
	case <-time.After(WaitFor):
		t.Fatal("no request on TCP")
		return nil
	}
}

// Eventually polls cond until it holds or WaitFor passes: the code under
// test finishes its work on its own goroutines, after the message the test
// waited for left.
func Eventually(t testing.TB, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(WaitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf(format, args...)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// ProxyOnce acts as a stateless proxy for one request: it sends req to
// `to` with a Via of its own on top, then relays the replies (100 Trying
// aside) back with that Via removed, until the final one. It returns the
// final status. Errors of the UA (a timeout) come back as an error, so it
// can run on its own goroutine.
func (u *UA) ProxyOnce(req *sip.Request, to string) (code int, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("proxy %s: %v", u.HostPort(), r)
		}
	}()
	branch := sip.NewParams()
	branch.Add("branch", fmt.Sprintf("z9hG4bK-px-%d-%d", nextCall(), time.Now().UnixNano()))
	req.PrependHeader(&sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: "UDP",
		Host: u.Addr.IP.String(), Port: u.Addr.Port, Params: branch})
	u.Send(to, req)
	for {
		m := u.Next("reply to the proxied "+string(req.Method), func(m sip.Message) bool {
			r, ok := m.(*sip.Response)
			return ok && r.StatusCode > 100
		})
		res := m.(*sip.Response)
		res.RemoveHeader("Via")
		u.Send(to, res)
		if res.StatusCode >= 200 {
			return res.StatusCode, nil
		}
	}
}

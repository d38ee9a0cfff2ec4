package transport

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/stretchr/testify/require"
)

// TestTCPFramingRFC3261_18_3 runs the framing over a real connection.
func TestTCPFramingRFC3261_18_3(t *testing.T) {
	inv, opt := invite("t-1"), request("OPTIONS", "t-2", "", "")
	compact := bytes.Replace(opt, []byte("Content-Length: 0"), []byte("l:0"), 1)
	for _, tc := range []struct {
		name   string
		writes [][]byte
		ids    []string
		pongs  int
	}{
		{"two messages in one write", whole(string(inv), string(opt)), []string{"t-1", "t-2"}, 0},
		{"one message split byte by byte", bytewise(string(inv)), []string{"t-1"}, 0},
		{"CRLF keep-alives between messages", whole("\r\n\r\n", string(inv), "\r\n", string(opt), "\r\n\r\n"), []string{"t-1", "t-2"}, 2},
		{"compact Content-Length", whole(string(compact), string(inv)), []string{"t-2", "t-1"}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, Options{})
			addr, err := h.ListenTCP(any0(lo4))
			require.NoError(t, err)
			c := tcpClient(t, addr)
			for _, w := range tc.writes {
				_, err := c.Write(w)
				require.NoError(t, err)
			}
			for _, id := range tc.ids {
				m := h.next(t)
				require.NoError(t, m.Err)
				require.Equal(t, id, callID(t, m.Msg))
				require.Equal(t, TCP, m.Transport)
				require.Equal(t, "TCP", m.Msg.Transport())
				require.NotNil(t, m.Conn)
				require.Equal(t, addr, m.Local)
				require.Equal(t, unmap(c.LocalAddr().(*net.TCPAddr).AddrPort()), m.Remote)
			}
			if tc.pongs > 0 {
				got := readUntil(t, c, strings.Repeat("\r\n", tc.pongs))
				require.Equal(t, strings.Repeat("\r\n", tc.pongs), string(got))
				eventually(t, "pongs counted", func() bool { return stat(h.Transport, "tcp_keepalives") == uint64(tc.pongs) })
			}
			stillOpen(t, c)
			h.none(t)
		})
	}
}

// A message with intact framing that does not parse comes up with its
// error and bytes; the connection stays open for the other calls on it and
// for the 400.
func TestTCPBadMessageKeepsConnection(t *testing.T) {
	h := newHarness(t, Options{})
	addr, err := h.ListenTCP(any0(lo4))
	require.NoError(t, err)
	c := tcpClient(t, addr)
	bad := bytes.Replace(request("OPTIONS", "bad-1", "", "x"), []byte("CSeq: 1 OPTIONS"), []byte("CSeq: one OPTIONS"), 1)
	_, err = c.Write(append(append(append([]byte{}, invite("ok-1")...), bad...), invite("ok-2")...))
	require.NoError(t, err)

	m1 := h.next(t)
	require.NoError(t, m1.Err)
	require.Equal(t, "ok-1", callID(t, m1.Msg))
	m2 := h.next(t)
	require.Error(t, m2.Err)
	require.Nil(t, m2.Msg)
	require.Equal(t, string(bad), string(m2.Raw))
	require.Same(t, m1.Conn, m2.Conn)
	m3 := h.next(t)
	require.NoError(t, m3.Err)
	require.Equal(t, "ok-2", callID(t, m3.Msg))

	// The owner answers 400 on the same connection, and the first call
	// still gets its answer there.
	answer400 := "SIP/2.0 400 Bad Request - malformed CSeq header\r\nCall-ID: bad-1\r\nContent-Length: 0\r\n\r\n"
	require.NoError(t, h.Send([]byte(answer400), Dest{Transport: TCP, Conn: m2.Conn}))
	require.NoError(t, h.Send(response(200, "ok-1"), Dest{Transport: TCP, Conn: m1.Conn}))
	got := readUntil(t, c, "Call-ID: ok-1")
	require.True(t, bytes.HasPrefix(got, []byte(answer400)))
	require.False(t, m1.Conn.Closed())
	require.Equal(t, uint64(1), stat(h.Transport, "tcp_parse_failures"))
	require.Zero(t, stat(h.Transport, "tcp_framing_failures"))
	stillOpen(t, c)
}

// Lost framing closes the connection, after the messages before it.
func TestTCPLostFramingClosesConnection(t *testing.T) {
	opt := string(request("OPTIONS", "lf-1", "", ""))
	noCL := strings.Replace(string(request("OPTIONS", "lf-2", "", "")), "Content-Length: 0\r\n", "", 1)
	for _, tc := range []struct {
		name string
		data string
	}{
		{"missing Content-Length", opt + noCL + opt},
		{"body past max_message_size", opt + strings.Replace(opt, "Content-Length: 0", "Content-Length: 5000", 1)},
		{"no end of headers within max_message_size", opt + "INVITE sip:x SIP/2.0\r\n" + strings.Repeat("X-Pad: 0123456789\r\n", 300)},
		{"malformed Content-Length", opt + strings.Replace(opt, "Content-Length: 0", "Content-Length: 0x10", 1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, Options{MaxMessageSize: 4096})
			addr, err := h.ListenTCP(any0(lo4))
			require.NoError(t, err)
			c := tcpClient(t, addr)
			_, err = c.Write([]byte(tc.data))
			require.NoError(t, err)
			m := h.next(t)
			require.NoError(t, m.Err)
			require.Equal(t, "lf-1", callID(t, m.Msg))
			closedByPeer(t, c)
			eventually(t, "connection dropped", func() bool { return m.Conn.Closed() && stat(h.Transport, "tcp_connections_open") == 0 })
			require.Equal(t, uint64(1), stat(h.Transport, "tcp_framing_failures"))
			h.none(t)
			require.ErrorIs(t, h.Send(response(200, "lf-1"), Dest{Transport: TCP, Conn: m.Conn}), ErrConnClosed)
		})
	}
}

// Responses go back on the connection of the request; a later message to
// the same address reuses it, whichever side opened it (§18.1, §18.2.2).
func TestTCPDialAndReuse(t *testing.T) {
	for _, ip := range []netip.Addr{lo4, lo6} {
		t.Run(ip.String(), func(t *testing.T) {
			if ip.Is6() {
				have6(t)
			}
			a := newHarness(t, Options{})
			b := newHarness(t, Options{})
			baddr, err := b.ListenTCP(any0(ip))
			require.NoError(t, err)

			require.NoError(t, a.Send(invite("d-1"), Dest{Transport: TCP, Addr: baddr}))
			mb := b.next(t)
			require.Equal(t, "d-1", callID(t, mb.Msg))
			require.False(t, mb.Conn.Outbound())
			require.NoError(t, b.Send(response(180, "d-1"), Dest{Transport: TCP, Conn: mb.Conn}))
			// Without Conn, by the address the request came from.
			require.NoError(t, b.Send(response(200, "d-1"), Dest{Transport: TCP, Addr: mb.Remote, NoDial: true}))
			for _, code := range []int{180, 200} {
				ma := a.next(t)
				require.Equal(t, code, ma.Msg.(*sip.Response).StatusCode)
				require.True(t, ma.Conn.Outbound())
				require.Equal(t, baddr, ma.Conn.Remote())
				require.Equal(t, ma.Conn, a.LookupConn(baddr))
			}
			require.NoError(t, a.Send(request("BYE", "d-1", "", ""), Dest{Transport: TCP, Addr: baddr}))
			require.Equal(t, "d-1", callID(t, b.next(t).Msg))
			require.Equal(t, uint64(1), stat(a.Transport, "tcp_connections_dialed"))
			require.Zero(t, stat(b.Transport, "tcp_connections_dialed"))
			require.Equal(t, uint64(1), stat(b.Transport, "tcp_connections_accepted"))

			// Concurrent first sends to a new destination share one dial.
			c := newHarness(t, Options{})
			done := make(chan error, 20)
			for i := 0; i < 20; i++ {
				go func() { done <- c.Send(request("OPTIONS", "d-2", "", ""), Dest{Transport: TCP, Addr: baddr}) }()
			}
			for i := 0; i < 20; i++ {
				require.NoError(t, <-done)
			}
			for i := 0; i < 20; i++ {
				b.next(t)
			}
			require.Equal(t, uint64(1), stat(c.Transport, "tcp_connections_dialed"))

			// The connection closed: NoDial fails, a plain send dials again.
			ma := a.LookupConn(baddr)
			require.NoError(t, ma.Close())
			eventually(t, "gone from the table", func() bool { return a.LookupConn(baddr) == nil })
			require.ErrorIs(t, a.Send(invite("d-3"), Dest{Transport: TCP, Addr: baddr, NoDial: true}), ErrNoConnection)
			require.NoError(t, a.Send(invite("d-3"), Dest{Transport: TCP, Conn: ma, Addr: baddr}))
			require.Equal(t, "d-3", callID(t, b.next(t).Msg))
			require.Equal(t, uint64(2), stat(a.Transport, "tcp_connections_dialed"))
		})
	}
}

func TestTCPDialFailure(t *testing.T) {
	h := newHarness(t, Options{TCPDialTimeout: time.Second})
	// A port nobody listens on: refused at once.
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	require.NoError(t, err)
	dead := unmap(l.Addr().(*net.TCPAddr).AddrPort())
	l.Close()
	err = h.Send(invite("x"), Dest{Transport: TCP, Addr: dead})
	require.ErrorIs(t, err, syscall.ECONNREFUSED)
	require.Equal(t, uint64(1), stat(h.Transport, "tcp_dial_failures"))
	require.ErrorIs(t, h.Send(invite("x"), Dest{Transport: TCP}), ErrBadDest)
}

// An idle connection is closed after TCPLifetime; traffic, keep-alives
// included, keeps it open.
func TestTCPLifetime(t *testing.T) {
	h := newHarness(t, Options{TCPLifetime: 200 * time.Millisecond})
	addr, err := h.ListenTCP(any0(lo4))
	require.NoError(t, err)

	kept := tcpClient(t, addr)
	idle := tcpClient(t, addr)
	stop := make(chan struct{})
	pinged := make(chan struct{})
	go func() {
		defer close(pinged)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if _, err := kept.Write([]byte("\r\n")); err != nil {
					return
				}
			}
		}
	}()
	closedByPeer(t, idle)
	eventually(t, "counted", func() bool {
		return stat(h.Transport, "tcp_idle_closed") == 1 && stat(h.Transport, "tcp_connections_open") == 1
	})
	// The connection with traffic stays (two lone CRLFs in a row make a
	// ping, so it may hold pongs to read).
	close(stop)
	<-pinged
	closedByPeer(t, kept)
	eventually(t, "both closed", func() bool { return stat(h.Transport, "tcp_idle_closed") == 2 })
}

// A message dribbled a byte at a time is cut by TCPReadTimeout, counted
// from its first byte.
func TestTCPSlowWriterCutByReadTimeout(t *testing.T) {
	h := newHarness(t, Options{TCPReadTimeout: 300 * time.Millisecond})
	addr, err := h.ListenTCP(any0(lo4))
	require.NoError(t, err)
	c := tcpClient(t, addr)
	msg := invite("slow")
	done := make(chan int)
	go func() {
		sent := 0
		defer func() { done <- sent }()
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for range tick.C {
			if sent == len(msg) {
				return
			}
			if _, err := c.Write(msg[sent : sent+1]); err != nil {
				return
			}
			sent++
		}
	}()
	closedByPeer(t, c)
	sent := <-done
	require.Less(t, sent, len(msg))
	require.Equal(t, uint64(1), stat(h.Transport, "tcp_read_timeouts"))
	h.none(t)
}

func TestTCPMaxConnections(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    Options
		stat string
	}{
		{"beyond TCPMaxConns", Options{TCPMaxConns: 2}, "tcp_refused_max_connections"},
		{"beyond TCPMaxConnsPerIP", Options{TCPMaxConnsPerIP: 2}, "tcp_refused_max_per_ip"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.o)
			addr, err := h.ListenTCP(any0(lo4))
			require.NoError(t, err)
			c1, c2 := tcpClient(t, addr), tcpClient(t, addr)
			eventually(t, "two served", func() bool { return stat(h.Transport, "tcp_connections_open") == 2 })
			// Closed at once: the reset may even beat the end of connect.
			c3, err := net.DialTCP("tcp", nil, net.TCPAddrFromAddrPort(addr))
			if err != nil {
				require.ErrorIs(t, err, syscall.ECONNRESET)
			} else {
				closedByPeer(t, c3)
				c3.Close()
			}
			eventually(t, "refusal counted", func() bool { return stat(h.Transport, tc.stat) == 1 })
			require.Equal(t, uint64(1), stat(h.Transport, tc.stat))
			// The two served still work.
			for i, c := range []*net.TCPConn{c1, c2} {
				_, err := c.Write(request("OPTIONS", "mc-"+string(rune('a'+i)), "", ""))
				require.NoError(t, err)
				require.NoError(t, h.next(t).Err)
			}
			// Once one closes, a new one is served.
			c1.Close()
			eventually(t, "one left", func() bool { return stat(h.Transport, "tcp_connections_open") == 1 })
			c4 := tcpClient(t, addr)
			_, err = c4.Write(request("OPTIONS", "mc-d", "", ""))
			require.NoError(t, err)
			require.Equal(t, "mc-d", callID(t, h.next(t).Msg))
		})
	}
}

// flakyListener fails Accept with err a number of times, then works.
type flakyListener struct {
	net.Listener
	fails atomic.Int32
	err   error
}

func (l *flakyListener) Accept() (net.Conn, error) {
	if l.fails.Add(-1) >= 0 {
		return nil, l.err
	}
	return l.Listener.Accept()
}

type tempErr struct{}

func (tempErr) Error() string   { return "accept: too many open files" }
func (tempErr) Timeout() bool   { return false }
func (tempErr) Temporary() bool { return true }

// Temporary accept errors are retried with a backoff, not the end of the
// listener.
func TestTCPAcceptBacksOff(t *testing.T) {
	for _, err := range []error{tempErr{}, &net.OpError{Op: "accept", Net: "tcp", Err: syscall.EMFILE}} {
		h := newHarness(t, Options{})
		ln, lerr := net.Listen("tcp4", "127.0.0.1:0")
		require.NoError(t, lerr)
		fl := &flakyListener{Listener: ln, err: err}
		fl.fails.Store(4)
		addr, lerr := h.AddTCPListener(fl)
		require.NoError(t, lerr)
		c := tcpClient(t, addr)
		_, werr := c.Write(request("OPTIONS", "bo", "", ""))
		require.NoError(t, werr)
		require.Equal(t, "bo", callID(t, h.next(t).Msg))
		require.Equal(t, uint64(4), stat(h.Transport, "tcp_accept_errors"))
		require.NoError(t, h.Err())
	}
}

// A listener that stops for good is reported.
func TestTCPListenerDownReported(t *testing.T) {
	type down struct {
		transport string
		addr      netip.AddrPort
		err       error
	}
	reported := make(chan down, 1)
	h := newHarness(t, Options{OnListenerDown: func(tp string, a netip.AddrPort, err error) { reported <- down{tp, a, err} }})
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	require.NoError(t, err)
	fatal := errors.New("listener broken")
	fl := &flakyListener{Listener: ln, err: fatal}
	fl.fails.Store(1)
	addr, err := h.AddTCPListener(fl)
	require.NoError(t, err)
	select {
	case d := <-reported:
		require.Equal(t, TCP, d.transport)
		require.Equal(t, addr, d.addr)
		require.ErrorIs(t, d.err, fatal)
	case <-time.After(waitFor):
		t.Fatal("not reported")
	}
	require.ErrorIs(t, h.Err(), fatal)
	require.Equal(t, uint64(1), stat(h.Transport, "listeners_down"))
}

// A peer that never reads cannot block the sender: writes return at once,
// what the socket does not take is queued, and the connection is closed
// when the queue overflows or the peer takes nothing for TCPWriteTimeout.
func TestTCPPeerThatNeverReads(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    Options
		stat string
	}{
		{"write queue overflow", Options{TCPWriteQueue: 64 << 10, TCPWriteTimeout: time.Minute}, "tcp_write_queue_overflows"},
		{"write timeout", Options{TCPWriteQueue: -1, TCPWriteTimeout: 200 * time.Millisecond}, "tcp_write_timeouts"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.o)
			addr, err := h.ListenTCP(any0(lo4))
			require.NoError(t, err)
			c := tcpClient(t, addr)
			c.SetReadBuffer(64 << 10)
			_, err = c.Write(request("OPTIONS", "nr", "", ""))
			require.NoError(t, err)
			conn := h.next(t).Conn
			msg := request("MESSAGE", "nr", "", strings.Repeat("z", 4000))
			sent := make(chan error, 1)
			go func() {
				// Until the connection is closed (overflow), or the writes
				// queue (timeout): every Send returns without waiting.
				for i := 0; i < 1<<16; i++ {
					if err := h.Send(msg, Dest{Transport: TCP, Conn: conn}); err != nil {
						sent <- err
						return
					}
					conn.wmu.Lock()
					queued := conn.flushing
					conn.wmu.Unlock()
					if queued && tc.o.TCPWriteQueue < 0 {
						sent <- nil
						return
					}
				}
				sent <- errors.New("never queued")
			}()
			select {
			case err := <-sent:
				if tc.o.TCPWriteQueue > 0 {
					require.ErrorIs(t, err, ErrWriteQueueFull)
				} else {
					require.NoError(t, err)
				}
			case <-time.After(waitFor):
				t.Fatal("Send blocked on a peer that does not read")
			}
			eventually(t, "closed", func() bool { return conn.Closed() })
			eventually(t, "counted", func() bool { return stat(h.Transport, tc.stat) == 1 })
			require.ErrorIs(t, h.Send(msg, Dest{Transport: TCP, Conn: conn}), ErrConnClosed)
		})
	}
}

// Close stops listeners, connections and sockets and waits for their
// goroutines; a handler that is running is waited for.
func TestCloseStopsEverything(t *testing.T) {
	entered := make(chan struct{})
	release := make(chan struct{})
	var returned atomic.Bool
	h := newHarness(t, Options{Handler: func(m Message) {
		close(entered)
		<-release
		returned.Store(true)
	}})
	uaddr, err := h.ListenUDP(any0(lo4))
	require.NoError(t, err)
	taddr, err := h.ListenTCP(any0(lo4))
	require.NoError(t, err)
	c := tcpClient(t, taddr)
	_, err = c.Write(request("OPTIONS", "cl", "", ""))
	require.NoError(t, err)
	<-entered
	closed := make(chan struct{})
	go func() {
		h.Close()
		close(closed)
	}()
	select {
	case <-closed:
		t.Fatal("Close returned while a handler ran")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	select {
	case <-closed:
	case <-time.After(waitFor):
		t.Fatal("Close did not return")
	}
	require.True(t, returned.Load())
	closedByPeer(t, c)
	_, err = net.DialTCP("tcp", nil, net.TCPAddrFromAddrPort(taddr))
	require.Error(t, err, "listener closed")
	require.ErrorIs(t, h.Send([]byte("x"), Dest{Transport: UDP, Addr: uaddr}), ErrClosed)
	require.NoError(t, h.Err(), "closing is not a listener failure")
	require.NoError(t, h.Close())
}

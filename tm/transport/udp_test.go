package transport

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/emiago/sipgo/sip"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestUDPRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		ip   netip.Addr
	}{{"IPv4", lo4}, {"IPv6", lo6}} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.ip.Is6() {
				have6(t)
			}
			h := newHarness(t, Options{})
			addr, err := h.ListenUDP(any0(tc.ip))
			require.NoError(t, err)
			require.NotZero(t, addr.Port())
			c := udpClient(t, tc.ip)
			from := unmap(c.LocalAddr().(*net.UDPAddr).AddrPort())

			_, err = c.WriteToUDPAddrPort(invite("rt-1"), addr)
			require.NoError(t, err)
			m := h.next(t)
			require.NoError(t, m.Err)
			require.Equal(t, string(invite("rt-1")), string(m.Raw), "Raw is always the datagram as read")
			require.Equal(t, UDP, m.Transport)
			require.Equal(t, addr, m.Local)
			require.Equal(t, from, m.Remote)
			require.Nil(t, m.Conn)
			require.Equal(t, "rt-1", callID(t, m.Msg))
			require.Equal(t, "UDP", m.Msg.Transport())
			require.Equal(t, from.String(), m.Msg.Source())
			req := m.Msg.(*sip.Request)
			require.Equal(t, sip.INVITE, req.Method)
			require.Contains(t, string(req.Body()), "m=audio 4000")

			// The answer goes to the source, from the socket it came to.
			require.NoError(t, h.Send(response(200, "rt-1"), Dest{Transport: "udp", Addr: m.Remote, Local: m.Local}))
			data, src := readUDP(t, c)
			require.Equal(t, addr, src)
			require.Equal(t, string(response(200, "rt-1")), string(data))
			eventually(t, "counted", func() bool { return stat(h.Transport, "udp_messages_out") == 1 })
			require.Equal(t, uint64(1), stat(h.Transport, "udp_messages_in"))
		})
	}
}

// A datagram between 32 KiB (sipgo's read buffer) and max_message_size is
// read whole.
func TestUDPLargeDatagramParsedWhole(t *testing.T) {
	h := newHarness(t, Options{})
	addr, err := h.ListenUDP(any0(lo4))
	require.NoError(t, err)
	c := udpClient(t, lo4)
	c.SetWriteBuffer(1 << 20)
	body := strings.Repeat("a=x-padding:0123456789abcdef0123456789abcdef\r\n", 60<<10/46)
	msg := request("MESSAGE", "big-1", "", body)
	require.Greater(t, len(msg), 60<<10)
	_, err = c.WriteToUDPAddrPort(msg, addr)
	require.NoError(t, err)
	m := h.next(t)
	require.NoError(t, m.Err)
	require.Equal(t, body, string(m.Msg.Body()))
}

// A datagram longer than MaxMessageSize comes up with an error wrapping
// sip.ErrMessageTooLarge and its beginning, for a 513.
func TestUDPDatagramTooLarge(t *testing.T) {
	h := newHarness(t, Options{MaxMessageSize: 2048})
	addr, err := h.ListenUDP(any0(lo4))
	require.NoError(t, err)
	c := udpClient(t, lo4)
	msg := request("MESSAGE", "big-2", "", strings.Repeat("x", 4000))
	_, err = c.WriteToUDPAddrPort(msg, addr)
	require.NoError(t, err)
	m := h.next(t)
	require.ErrorIs(t, m.Err, sip.ErrMessageTooLarge)
	require.Nil(t, m.Msg)
	require.Len(t, m.Raw, 2049)
	require.Equal(t, string(msg[:2049]), string(m.Raw))
}

func TestUDPUnparsableHandedUpAndLogRateLimited(t *testing.T) {
	logs := &logCounter{}
	h := newHarness(t, Options{Logger: slog.New(logs)})
	addr, err := h.ListenUDP(any0(lo4))
	require.NoError(t, err)
	c := udpClient(t, lo4)
	bad := []byte(strings.Replace(string(invite("bad-1")), "CSeq: 1 INVITE", "CSeq: one INVITE", 1))
	const flood = 500
	for i := 0; i < flood; i++ {
		_, err = c.WriteToUDPAddrPort(bad, addr)
		require.NoError(t, err)
	}
	for i := 0; i < flood; i++ {
		m := h.next(t)
		require.Error(t, m.Err)
		require.Nil(t, m.Msg)
		require.Equal(t, string(bad), string(m.Raw))
	}
	require.Equal(t, uint64(flood), stat(h.Transport, "udp_parse_failures"))
	// One line for the first, then at most one a second.
	require.LessOrEqual(t, logs.count("unparsable message handed up"), 3)
	require.GreaterOrEqual(t, logs.count("unparsable message handed up"), 1)

	// Keep-alives are dropped, not handed up.
	_, err = c.WriteToUDPAddrPort([]byte("\r\n\r\n"), addr)
	require.NoError(t, err)
	eventually(t, "keep-alive counted", func() bool { return stat(h.Transport, "udp_keepalives") == 1 })
	h.none(t)
}

// Datagrams that arrive while the handler is busy wait in the kernel and
// are then read many per recvmmsg; every one is delivered.
func TestUDPBatchAllDelivered(t *testing.T) {
	release := make(chan struct{})
	var h *harness
	var started atomic.Bool
	// Every reader waits for the release: the datagrams pile up in the
	// kernel meanwhile.
	h = newHarness(t, Options{Handler: func(m Message) {
		if !started.Load() {
			<-release
		}
		h.in <- got{m}
	}})
	addr, err := h.ListenUDP(any0(lo4))
	require.NoError(t, err)
	c := udpClient(t, lo4)
	c.SetReadBuffer(4 << 20)
	const n = 2000
	for i := 0; i < n; i++ {
		_, err := c.WriteToUDPAddrPort(request("OPTIONS", "batch-"+strconv.Itoa(i), "", ""), addr)
		require.NoError(t, err)
	}
	started.Store(true)
	close(release)
	seen := make(map[string]bool, n)
	for i := 0; i < n; i++ {
		seen[callID(t, h.next(t).Msg)] = true
	}
	require.Len(t, seen, n)
	require.Equal(t, uint64(n), stat(h.Transport, "udp_messages_in"))
	var big uint64
	for _, le := range []string{"8", "16", "32"} {
		big += stat(h.Transport, "udp_read_batch_le_"+le)
	}
	require.NotZero(t, big, "no batch of more than 4 datagrams: %v", h.Stats().Snapshot())
	require.Less(t, stat(h.Transport, "udp_read_batches"), uint64(n))

	// And the writer batches what is queued while it writes.
	for i := 0; i < n; i++ {
		require.NoError(t, h.Send(response(200, "w-"+strconv.Itoa(i)), Dest{Transport: UDP, Addr: unmap(c.LocalAddr().(*net.UDPAddr).AddrPort())}))
	}
	for i := 0; i < n; i++ {
		readUDP(t, c)
	}
	require.Equal(t, uint64(n), stat(h.Transport, "udp_messages_out"))
}

// Replies leave from the local socket named in Dest.Local.
func TestUDPSendFromChosenSocket(t *testing.T) {
	h := newHarness(t, Options{})
	a, err := h.ListenUDP(any0(lo4))
	require.NoError(t, err)
	b, err := h.ListenUDP(any0(lo4))
	require.NoError(t, err)
	c := udpClient(t, lo4)
	peer := unmap(c.LocalAddr().(*net.UDPAddr).AddrPort())
	for _, local := range []netip.AddrPort{b, a, b} {
		require.NoError(t, h.Send(response(200, "from"), Dest{Transport: UDP, Addr: peer, Local: local}))
		_, src := readUDP(t, c)
		require.Equal(t, local, src)
	}
	err = h.Send(response(200, "from"), Dest{Transport: UDP, Addr: peer, Local: netip.AddrPortFrom(lo4, 1)})
	require.ErrorIs(t, err, ErrNoSocket)
	err = h.Send(response(200, "from"), Dest{Transport: UDP, Addr: netip.AddrPortFrom(lo6, 5060)})
	require.ErrorIs(t, err, ErrNoSocket, "no IPv6 socket")
	err = h.Send(make([]byte, maxDatagram4+1), Dest{Transport: UDP, Addr: peer})
	require.ErrorIs(t, err, ErrTooLarge)
	err = h.Send(nil, Dest{Transport: "SCTP", Addr: peer})
	require.ErrorIs(t, err, ErrBadDest)
}

// On a wildcard socket the address the peer talked to is read from the
// datagram, and the reply leaves from it.
func TestUDPWildcardLocalAddress(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("IP_PKTINFO test on Linux")
	}
	for _, tc := range []struct {
		wild, lo netip.Addr
		raw      bool // UDPRawIO: the control messages go through our own recvmmsg and sendmsg
		rawOut   bool // UDPRawWrites: the reply's (IP_PKTINFO) through our own sendmsg
		rawIn    bool // UDPRawReads: the request's (IP_PKTINFO) read by a raw recvmmsg
	}{
		{netip.IPv4Unspecified(), lo4, false, false, false},
		{netip.IPv6Unspecified(), lo6, false, false, false},
		{netip.IPv4Unspecified(), lo4, true, false, false},
		{netip.IPv6Unspecified(), lo6, true, false, false},
		{netip.IPv4Unspecified(), lo4, false, true, false},
		{netip.IPv6Unspecified(), lo6, false, true, false},
		{netip.IPv4Unspecified(), lo4, false, true, true},
		{netip.IPv6Unspecified(), lo6, false, true, true},
	} {
		t.Run(fmt.Sprint(tc.lo, "/raw=", tc.raw, "/raw_writes=", tc.rawOut, "/raw_reads=", tc.rawIn), func(t *testing.T) {
			if tc.lo.Is6() {
				have6(t)
			}
			h := newHarness(t, Options{UDPRawIO: tc.raw, UDPBlockingReads: tc.raw, UDPRawWrites: tc.rawOut, UDPRawReads: tc.rawIn})
			w, err := h.ListenUDP(any0(tc.wild))
			require.NoError(t, err)
			require.Equal(t, tc.wild, w.Addr())
			c := udpClient(t, tc.lo)
			to := netip.AddrPortFrom(tc.lo, w.Port())
			_, err = c.WriteToUDPAddrPort(request("OPTIONS", "wild", "", ""), to)
			require.NoError(t, err)
			m := h.next(t)
			require.Equal(t, to, m.Local)
			require.NoError(t, h.Send(response(200, "wild"), Dest{Transport: UDP, Addr: m.Remote, Local: m.Local}))
			_, src := readUDP(t, c)
			require.Equal(t, to, src)
		})
	}
}

// With SO_REUSEPORT, several sockets serve one address and the kernel
// spreads the peers over them: every socket receives.
func TestUDPReusePortAllSocketsReceive(t *testing.T) {
	if !reusePortSupported {
		t.Skip("SO_REUSEPORT spreading is Linux only")
	}
	const socks = 4
	h := newHarness(t, Options{UDPSockets: socks})
	addr, err := h.ListenUDP(any0(lo4))
	require.NoError(t, err)
	g := (*h.udp.Load())[0]
	require.Len(t, g.socks, socks)

	const peers = 128
	for i := 0; i < peers; i++ {
		c := udpClient(t, lo4)
		_, err := c.WriteToUDPAddrPort(request("OPTIONS", "rp-"+strconv.Itoa(i), "", ""), addr)
		require.NoError(t, err)
		m := h.next(t)
		require.Equal(t, addr, m.Local)
		// Each reply leaves from the address the peer talked to, whichever
		// socket sends it.
		require.NoError(t, h.Send(response(200, "rp"), Dest{Transport: UDP, Addr: m.Remote, Local: m.Local}))
		_, src := readUDP(t, c)
		require.Equal(t, addr, src)
	}
	for i, s := range g.socks {
		require.NotZero(t, s.received.Load(), "socket %d received nothing", i)
	}
}

func TestUDPListenErrors(t *testing.T) {
	h := newHarness(t, Options{})
	_, err := h.ListenUDP(netip.AddrPort{})
	require.Error(t, err)
	addr, err := h.ListenUDP(any0(lo4))
	require.NoError(t, err)
	_, err = h.ListenUDP(addr)
	require.Error(t, err, "address in use")
	require.NoError(t, h.Close())
	_, err = h.ListenUDP(any0(lo4))
	require.True(t, errors.Is(err, ErrClosed))
	require.ErrorIs(t, h.Send([]byte("x"), Dest{Transport: UDP, Addr: addr}), ErrClosed)
}

// log.sip_trace: Options.Trace sees each message read, before parsing,
// and each message sent, with both addresses.
func TestTraceSeesRecvAndSend(t *testing.T) {
	type rec struct {
		dir, tp       string
		local, remote netip.AddrPort
		data          string
	}
	recs := make(chan rec, 4)
	h := newHarness(t, Options{Trace: func(dir, tp string, local, remote netip.AddrPort, data []byte) {
		recs <- rec{dir, tp, local, remote, string(data)}
	}})
	addr, err := h.ListenUDP(any0(lo4))
	require.NoError(t, err)
	c := udpClient(t, lo4)
	from := unmap(c.LocalAddr().(*net.UDPAddr).AddrPort())
	msg := request("OPTIONS", "traced", "", "")
	_, err = c.WriteToUDPAddrPort(msg, addr)
	require.NoError(t, err)
	r := <-recs
	assert.Equal(t, rec{"recv", UDP, addr, from, string(msg)}, r)
	h.next(t)
	require.NoError(t, h.Send([]byte("SIP/2.0 200 OK\r\n\r\n"), Dest{Transport: UDP, Addr: from}))
	r = <-recs
	assert.Equal(t, "send", r.dir)
	assert.Equal(t, from, r.remote)
	assert.Equal(t, "SIP/2.0 200 OK\r\n\r\n", r.data)
}

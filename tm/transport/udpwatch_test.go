package transport

import (
	"net"
	"net/netip"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// The watchdog kicks a socket only after a whole tick without a read, and
// only when a datagram waits; a kick nobody read is repeated.
func TestReadWatch_Next(t *testing.T) {
	type tick struct {
		received uint64
		pending  bool
		kick     bool
	}
	for _, tc := range []struct {
		name  string
		ticks []tick
	}{
		{"first tick has nothing to compare with", []tick{{0, true, false}}},
		{"no read over a tick, a datagram waiting", []tick{{5, true, false}, {5, true, true}}},
		{"no read over a tick, queue empty: idle", []tick{{5, false, false}, {5, false, false}, {5, false, false}}},
		{"reads every tick", []tick{{1, true, false}, {2, true, false}, {3, true, false}}},
		{"the kick was read", []tick{{7, true, false}, {7, true, true}, {9, false, false}, {9, false, false}}},
		{"the kick was not read: again, whatever SIOCINQ says", []tick{{7, true, false}, {7, true, true}, {7, false, true}, {7, false, true}, {8, false, false}, {8, false, false}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var w readWatch
			for i, k := range tc.ticks {
				asked := false
				got := w.next(k.received, func() bool { asked = true; return k.pending })
				require.Equal(t, k.kick, got, "tick %d (received %d)", i, k.received)
				if i > 0 && k.received != tc.ticks[i-1].received {
					require.False(t, asked, "tick %d: SIOCINQ asked although the readers read", i)
				}
			}
		})
	}
}

// A socket whose readers take nothing while a datagram waits is kicked;
// the kick is an empty datagram, which the readers drop: the handler sees
// exactly the datagrams the peer sent.
func TestUDPReadWatchdogKicksReadersThatTakeNothing(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("SIOCINQ is asked on Linux only")
	}
	release := make(chan struct{})
	var once sync.Once
	free := func() { once.Do(func() { close(release) }) }
	seen := make(chan string, 8)
	h := newHarness(t, Options{UDPReaders: 1, UDPBlockingReads: true, UDPReadWatchdog: time.Millisecond, Handler: func(m Message) {
		seen <- string(m.Raw)
		<-release // the one reader is stuck here: the next datagram waits in the kernel
	}})
	t.Cleanup(free) // before the harness's Close, which waits for the reader
	addr, err := h.ListenUDP(any0(lo4))
	require.NoError(t, err)
	c := udpClient(t, lo4)
	first, second := request("OPTIONS", "wd-1", "", ""), request("OPTIONS", "wd-2", "", "")
	_, err = c.WriteToUDPAddrPort(first, addr)
	require.NoError(t, err)
	require.Equal(t, string(first), <-seen)
	_, err = c.WriteToUDPAddrPort(second, addr)
	require.NoError(t, err)

	eventually(t, "a kick", func() bool { return stat(h.Transport, "udp_read_kicks") > 0 })
	free()
	select {
	case m := <-seen:
		require.Equal(t, string(second), m)
	case <-time.After(waitFor):
		t.Fatal("the second datagram was not handed up")
	}
	g := (*h.udp.Load())[0]
	eventually(t, "the kick read", func() bool { return g.socks[0].received.Load() >= 3 })
	require.Equal(t, uint64(2), stat(h.Transport, "udp_messages_in"), "the kick is no message")
	require.Zero(t, stat(h.Transport, "udp_keepalives"), "the kick is no keep-alive")
	require.Len(t, seen, 0)
}

// kick reaches the group's socket whatever it is bound to: a wildcard
// group through loopback, a group of several sockets through one of them.
func TestUDPKickReachesTheGroup(t *testing.T) {
	for _, tc := range []struct {
		name  string
		bind  netip.Addr
		socks int
	}{
		{"IPv4 loopback", lo4, 1},
		{"IPv4 wildcard", netip.IPv4Unspecified(), 1},
		{"IPv6 wildcard", netip.IPv6Unspecified(), 1},
		{"SO_REUSEPORT group", lo4, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.bind.Is6() {
				have6(t)
			}
			if tc.socks > 1 && !reusePortSupported {
				t.Skip("SO_REUSEPORT spreading is Linux only")
			}
			h := newHarness(t, Options{UDPSockets: tc.socks, UDPReadWatchdog: -1})
			_, err := h.ListenUDP(any0(tc.bind))
			require.NoError(t, err)
			g := (*h.udp.Load())[0]
			require.NoError(t, g.kick())
			want := uint64(1)
			if tc.socks > 1 {
				want = uint64(4 * tc.socks)
			}
			eventually(t, "every kick read", func() bool {
				var n uint64
				for _, s := range g.socks {
					n += s.received.Load()
				}
				return n == want
			})
			h.none(t)
			require.Zero(t, stat(h.Transport, "udp_messages_in"))
			require.Zero(t, stat(h.Transport, "udp_keepalives"))
		})
	}
}

// pendingDatagram sees a datagram nobody has read, and only then.
func TestPendingDatagram(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("SIOCINQ is asked on Linux only")
	}
	uc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	defer uc.Close()
	rc, err := uc.SyscallConn()
	require.NoError(t, err)
	n, err := pendingDatagram(rc)
	require.NoError(t, err)
	require.Zero(t, n)

	c := udpClient(t, lo4)
	_, err = c.WriteToUDPAddrPort([]byte("hello"), uc.LocalAddr().(*net.UDPAddr).AddrPort())
	require.NoError(t, err)
	eventually(t, "the datagram queued", func() bool { n, err = pendingDatagram(rc); return err == nil && n == 5 })
}

// Readers waiting in Go's netpoller (the default: Options.UDPBlockingReads
// false) read, answer
// and stop on Close as the blocking ones do.
func TestUDPNetpollReads(t *testing.T) {
	h := newHarness(t, Options{})
	addr, err := h.ListenUDP(any0(lo4))
	require.NoError(t, err)
	g := (*h.udp.Load())[0]
	require.False(t, g.socks[0].blocking)
	c := udpClient(t, lo4)
	_, err = c.WriteToUDPAddrPort(request("OPTIONS", "np-1", "", ""), addr)
	require.NoError(t, err)
	m := h.next(t)
	require.NoError(t, m.Err)
	require.NoError(t, h.Send(response(200, "np-1"), Dest{Transport: UDP, Addr: m.Remote, Local: m.Local}))
	data, _ := readUDP(t, c)
	require.Equal(t, string(response(200, "np-1")), string(data))
	require.NoError(t, h.Close())
}

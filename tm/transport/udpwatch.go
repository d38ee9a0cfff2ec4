package transport

import (
	"net"
	"net/netip"
	"time"
)

// DefaultUDPReadWatchdog is how often the read watchdog looks at the UDP
// sockets (Options.UDPReadWatchdog): a stalled read is woken 20-40 ms
// after it stalled, well inside T1, and an idle proxy pays one ioctl per
// socket and tick.
const DefaultUDPReadWatchdog = 20 * time.Millisecond

// A reader blocked in recvmmsg can sleep on while a datagram waits in its
// socket's queue: seen on Linux 6.18 once in 100-50 000 calls of
// BenchmarkRecordRoutedCall, depending on the day (rx_queue non-zero,
// InDatagrams equal to what was read, the reader asleep in the kernel).
// The next datagram wakes it, and it reads both: under load within
// microseconds, but a quiet socket's datagram waits for the UA's
// retransmission (T1, half a second). The watchdog shortens that to a tick
// or two: a socket whose readers took nothing over a whole tick while its
// queue holds a datagram gets an empty datagram of its own, which wakes
// them. A reader that was only busy (a handler that took longer than a
// tick) reads the empty datagram and drops it: a kick is never harmful,
// only counted.
//
// A timed read (SO_RCVTIMEO) would do the same from inside the reader, but
// cost retransmissions under load (DESIGN.md); the watchdog costs nothing
// while datagrams flow: one atomic load per socket and tick.

// readWatch is the watchdog's view of one socket between ticks.
type readWatch struct {
	last   uint64 // the socket's read count at the previous tick
	seen   bool   // last is set
	kicked bool   // the previous tick kicked, and nothing was read since
}

// next decides at a tick whether to kick the socket: received is its read
// count now; pending asks whether a datagram waits, and is asked only when
// nothing was read over the tick. A kick that was not read by the next
// tick is repeated without asking: the empty datagram at the head of the
// queue hides what waits behind it from SIOCINQ (it reports 0), and a kick
// can meet the lost wake-up too.
func (w *readWatch) next(received uint64, pending func() bool) bool {
	quiet := w.seen && received == w.last
	w.last, w.seen = received, true
	if !quiet {
		w.kicked = false
		return false
	}
	w.kicked = w.kicked || pending()
	return w.kicked
}

// watchUDP runs until Close, every d: it kicks the sockets whose readers
// sleep with a datagram queued.
func (t *Transport) watchUDP(d time.Duration) {
	defer t.wg.Done()
	tk := time.NewTicker(d)
	defer tk.Stop()
	for {
		select {
		case <-t.done:
			return
		case <-tk.C:
		}
		for _, g := range *t.udp.Load() {
			for _, s := range g.socks {
				if !s.watch.next(s.received.Load(), s.pending) {
					continue
				}
				t.stats.udpReadKicks.Add(1)
				if err := g.kick(); err != nil {
					if sup, ok := t.logRead.Allow(); ok {
						t.log.Warn("UDP read watchdog could not wake a reader", "addr", g.addr, "error", err, "suppressed", sup)
					}
				}
			}
		}
	}
}

// pending reports whether a datagram waits in the socket's queue.
func (s *udpSock) pending() bool {
	if s.rc == nil {
		return false
	}
	n, err := pendingDatagram(s.rc)
	return err == nil && n > 0
}

// kick sends empty datagrams to the group's address from a socket of its
// own. With SO_REUSEPORT the kernel picks the receiving socket by a hash of
// the source, which the watchdog cannot choose: it sends from fresh ports,
// four per socket of the group, so that the sleeping one is hit with a
// probability of about 98 % (and on the next tick again if not).
func (g *udpGroup) kick() error {
	dst := g.addr
	network, from := "udp4", netip.AddrFrom4([4]byte{})
	if g.v6 {
		network, from = "udp6", netip.IPv6Unspecified()
	}
	if g.wildcard {
		from = netip.AddrFrom4([4]byte{127, 0, 0, 1})
		if g.v6 {
			from = netip.IPv6Loopback()
		}
		dst = netip.AddrPortFrom(from, g.addr.Port())
	}
	tries := 1
	if len(g.socks) > 1 {
		tries = 4 * len(g.socks)
	}
	for range tries {
		c, err := net.ListenUDP(network, net.UDPAddrFromAddrPort(netip.AddrPortFrom(from, 0)))
		if err != nil {
			return err
		}
		_, err = c.WriteToUDPAddrPort(nil, dst)
		c.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

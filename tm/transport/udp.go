package transport

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/emiago/sipgo/sip"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

// Largest UDP payloads: 65535 less the IP header (IPv4 only) and the UDP
// header.
const (
	maxDatagram4 = 65535 - 20 - 8
	maxDatagram6 = 65535 - 8
)

// batchConn is what x/net's ipv4 and ipv6 PacketConn have in common:
// recvmmsg and sendmmsg on Linux, one message per call elsewhere.
type batchConn interface {
	ReadBatch(ms []ipv4.Message, flags int) (int, error)
	WriteBatch(ms []ipv4.Message, flags int) (int, error)
}

// udpGroup is one UDP address served by one socket, or several bound with
// SO_REUSEPORT.
type udpGroup struct {
	addr     netip.AddrPort
	v6       bool
	wildcard bool
	socks    []*udpSock
	// oobLen, when the sockets are bound to a wildcard address, is the size
	// of the control message giving a datagram's destination address
	// (IP_PKTINFO / IPV6_RECVPKTINFO); 0 when not asked for or not
	// supported.
	oobLen int
	// srcOOB caches, by local address, the control message that makes a
	// datagram leave a wildcard socket from that address.
	srcOOB sync.Map
}

type udpSock struct {
	t    *Transport
	g    *udpGroup
	uc   *net.UDPConn
	bc   batchConn
	q    chan udpOut
	quit chan struct{}
	// received counts the datagrams this socket read (SO_REUSEPORT spread).
	received atomic.Uint64
	// wmu is held while datagrams are written (a batch of the writer, or one
	// written at once by a sender); queued counts those handed to the
	// writer and not written yet. A sender writes at once, without waking
	// the writer, only when it holds wmu and nothing is queued: then no
	// datagram it sent before can still be waiting, and order holds.
	wmu    sync.Mutex
	queued atomic.Int64
	// blocking: the readers wait inside recvmmsg (blockingReads). raw:
	// they call it, and senders sendmsg, themselves (Options.UDPRawIO).
	blocking  bool
	raw       bool
	rawWrites bool // senders call sendmsg themselves (UDPRawWrites, UDPRawIO)
	rawReads  bool // non-blocking readers' recvmmsg is a raw system call (UDPRawReads)
	// watch is the read watchdog's state (its goroutine only); rc the
	// socket's raw descriptor, which the watchdog asks SIOCINQ on.
	watch readWatch
	rc    syscall.RawConn
}

// srcCache maps an address to its text, direct-mapped; one per reader,
// so no lock: a peer sends many messages per call, and each message needs
// its source as a string (sip.Message.Source).
type srcCache [64]struct {
	ap netip.AddrPort
	s  string
}

func (c *srcCache) get(ap netip.AddrPort) string {
	a16 := ap.Addr().As16()
	h := uint(ap.Port()) ^ uint(a16[15]) ^ uint(a16[14])<<3
	e := &c[h%uint(len(c))]
	if e.ap != ap || e.s == "" {
		e.ap, e.s = ap, ap.String()
	}
	return e.s
}

// udpOut is a datagram waiting for its socket's writer.
type udpOut struct {
	b   *[]byte // a pooled copy of the message
	dst netip.AddrPort
	oob []byte // chooses the source address on a wildcard socket; shared, read only
}

// ListenUDP serves UDP on addr (an IPv4 or IPv6 address, possibly the
// wildcard; port 0 picks one) with Options.UDPSockets sockets, and returns
// the address bound.
func (t *Transport) ListenUDP(addr netip.AddrPort) (netip.AddrPort, error) {
	addr = unmap(addr)
	if !addr.IsValid() {
		return netip.AddrPort{}, fmt.Errorf("transport: listen udp: invalid address %v", addr)
	}
	if t.closed.Load() {
		return netip.AddrPort{}, ErrClosed
	}
	g := &udpGroup{v6: addr.Addr().Is6(), wildcard: addr.Addr().IsUnspecified()}
	network := "udp4"
	if g.v6 {
		network = "udp6"
	}
	n := t.o.UDPSockets
	var lc net.ListenConfig
	if n > 1 {
		if reusePortSupported {
			lc.Control = reusePortControl
		} else {
			t.log.Warn("SO_REUSEPORT is not supported here: one socket serves the address", "addr", addr, "udp_sockets", n)
			n = 1
		}
	}
	bind := addr
	for i := 0; i < n; i++ {
		pc, err := lc.ListenPacket(t.ctx, network, bind.String())
		if err != nil {
			for _, s := range g.socks {
				s.uc.Close()
			}
			return netip.AddrPort{}, fmt.Errorf("transport: listen udp %s: %w", bind, err)
		}
		uc := pc.(*net.UDPConn)
		if i == 0 {
			// Port 0: the others bind where the first one landed.
			bind = unmap(uc.LocalAddr().(*net.UDPAddr).AddrPort())
			g.addr = bind
		}
		g.socks = append(g.socks, t.newUDPSock(g, uc, i == 0))
	}

	t.mu.Lock()
	if t.closed.Load() {
		t.mu.Unlock()
		for _, s := range g.socks {
			s.uc.Close()
		}
		return netip.AddrPort{}, ErrClosed
	}
	old := *t.udp.Load()
	next := append(append(make([]*udpGroup, 0, len(old)+1), old...), g)
	t.udp.Store(&next)
	if len(old) == 0 && t.o.UDPReadWatchdog > 0 && t.o.UDPBlockingReads && watchdogSupported {
		t.wg.Add(1)
		go t.watchUDP(t.o.UDPReadWatchdog)
	}
	for _, s := range g.socks {
		t.udpRead.Add(t.o.UDPReaders)
		t.udpWrite.Add(1)
		for range t.o.UDPReaders {
			go s.readLoop()
		}
		go s.writeLoop()
	}
	t.mu.Unlock()
	t.log.Debug("listening", "transport", UDP, "addr", g.addr, "sockets", len(g.socks))
	return g.addr, nil
}

func (t *Transport) newUDPSock(g *udpGroup, uc *net.UDPConn, first bool) *udpSock {
	s := &udpSock{t: t, g: g, uc: uc, q: make(chan udpOut, t.o.UDPWriteQueue), quit: make(chan struct{})}
	// The readers drain the socket; a burst must wait in the kernel
	// rather than be dropped.
	uc.SetReadBuffer(t.o.UDPReadBuffer)
	uc.SetWriteBuffer(t.o.UDPWriteBuffer)
	if rc, err := uc.SyscallConn(); err == nil {
		s.rc = rc
		s.blocking = t.o.UDPBlockingReads && blockingReads(rc)
		s.raw = s.blocking && rawSupported && t.o.UDPRawIO
		s.rawWrites = s.raw || (rawSupported && t.o.UDPRawWrites)
		s.rawReads = !s.blocking && rawSupported && t.o.UDPRawReads
		if first {
			if rcv, snd, err := socketBuffers(rc); err == nil && (rcv/2 < t.o.UDPReadBuffer || snd/2 < t.o.UDPWriteBuffer) {
				t.log.Warn("the kernel granted smaller UDP socket buffers than asked for (raise net.core.rmem_max / wmem_max)",
					"addr", g.addr, "rcvbuf", rcv/2, "sndbuf", snd/2, "asked_rcvbuf", t.o.UDPReadBuffer, "asked_sndbuf", t.o.UDPWriteBuffer)
			}
		}
	}
	if g.v6 {
		p := ipv6.NewPacketConn(uc)
		if g.wildcard && p.SetControlMessage(ipv6.FlagDst, true) == nil {
			g.oobLen = len(ipv6.NewControlMessage(ipv6.FlagDst))
		}
		s.bc = p
	} else {
		p := ipv4.NewPacketConn(uc)
		if g.wildcard && p.SetControlMessage(ipv4.FlagDst, true) == nil {
			g.oobLen = len(ipv4.NewControlMessage(ipv4.FlagDst))
		}
		s.bc = p
	}
	return s
}

// readLoop reads batches of datagrams into buffers of its own, reused for
// every batch, and hands each one up before the next batch is read.
func (s *udpSock) readLoop() {
	t := s.t
	defer t.udpRead.Done()
	batch, size, oobLen := t.o.UDPBatch, t.udpBufSize, s.g.oobLen
	backing := make([]byte, batch*size)
	oob := make([]byte, batch*oobLen)
	ms := make([]ipv4.Message, batch)
	bufs := make([][1][]byte, batch)
	for i := range ms {
		bufs[i][0] = backing[i*size : (i+1)*size : (i+1)*size]
		ms[i].Buffers = bufs[i][:]
		if oobLen > 0 {
			ms[i].OOB = oob[i*oobLen : (i+1)*oobLen : (i+1)*oobLen]
		}
	}
	var (
		backoff time.Duration
		cm4     ipv4.ControlMessage
		cm6     ipv6.ControlMessage
		srcs    srcCache
		raw     *rawReader
		from    []netip.AddrPort // the sources the raw reader read
	)
	flags := 0
	if s.blocking {
		flags = readFlags
	}
	if rawSupported && s.rc != nil {
		var oobs [][]byte
		if oobLen > 0 {
			oobs = make([][]byte, batch)
			for i := range ms {
				oobs[i] = ms[i].OOB
			}
		}
		raw = newRawReader(bufs, oobs, flags, s.raw, s.rawReads)
		from = make([]netip.AddrPort, batch)
	}
	for {
		var n int
		var err error
		if raw != nil {
			n, err = raw.read(s.rc, ms, from)
		} else {
			n, err = s.bc.ReadBatch(ms, flags)
		}
		if t.closed.Load() {
			return // what was read as Close began is dropped, as a datagram may be
		}
		if err != nil {
			if t.closed.Load() {
				return
			}
			if errors.Is(err, net.ErrClosed) {
				t.listenerDown(UDP, s.g.addr, err)
				return
			}
			// Not expected on an unconnected socket; never give up on it.
			t.stats.readErrors.Add(1)
			if sup, ok := t.logRead.Allow(); ok {
				t.log.Warn("UDP read error, retrying", "addr", s.g.addr, "error", err, "suppressed", sup)
			}
			backoff = nextBackoff(backoff)
			if !t.sleep(backoff) {
				return
			}
			continue
		}
		backoff = 0
		t.stats.readBatch.observe(n)
		s.received.Add(uint64(n))
		// A full batch may mean a queue behind it: how long is asked of
		// the kernel then, and the batch's requests say so (Congested).
		congested := n == batch && s.rc != nil && queueOverHalf(s.rc)
		if congested {
			t.stats.udpCongested.Add(1)
		}
		for i := 0; i < n; i++ {
			m := &ms[i]
			var remote netip.AddrPort
			if raw != nil {
				remote = from[i]
			} else if ua, _ := m.Addr.(*net.UDPAddr); ua != nil {
				remote = unmap(ua.AddrPort())
			}
			if !remote.IsValid() || m.N == 0 {
				continue // an empty datagram carries nothing (the watchdog's kick)
			}
			local := s.g.addr
			if oobLen > 0 && m.NN > 0 {
				local = s.g.dstOf(m.OOB[:m.NN], &cm4, &cm6)
			}
			t.datagram(bufs[i][0][:m.N], local, remote, srcs.get(remote), congested)
		}
	}
}

// dstOf reads the destination address of a datagram from its control
// message.
func (g *udpGroup) dstOf(oob []byte, cm4 *ipv4.ControlMessage, cm6 *ipv6.ControlMessage) netip.AddrPort {
	var ip net.IP
	if g.v6 {
		if cm6.Parse(oob) == nil {
			ip = cm6.Dst
		}
	} else if cm4.Parse(oob) == nil {
		ip = cm4.Dst
	}
	if a, ok := netip.AddrFromSlice(ip); ok && !a.IsUnspecified() {
		return netip.AddrPortFrom(a.Unmap(), g.addr.Port())
	}
	return g.addr
}

// srcOOBFor returns the control message that makes a datagram leave a
// wildcard socket from src.
func (g *udpGroup) srcOOBFor(src netip.Addr) []byte {
	if g.oobLen == 0 {
		return nil
	}
	if b, ok := g.srcOOB.Load(src); ok {
		return b.([]byte)
	}
	var b []byte
	if g.v6 {
		b = (&ipv6.ControlMessage{Src: src.AsSlice()}).Marshal()
	} else {
		b = (&ipv4.ControlMessage{Src: src.AsSlice()}).Marshal()
	}
	g.srcOOB.Store(src, b)
	return b
}

// datagram hands one datagram up.
func (t *Transport) datagram(data []byte, local, remote netip.AddrPort, src string, congested bool) {
	t.stats.udp.bytesIn.Add(uint64(len(data)))
	if isKeepalive(data) {
		t.stats.udp.keepalives.Add(1)
		return
	}
	if len(data) > t.o.MaxMessageSize {
		t.stats.udp.msgsIn.Add(1)
		t.stats.udp.parseFailures.Add(1)
		err := fmt.Errorf("%w: datagram longer than %d bytes", sip.ErrMessageTooLarge, t.o.MaxMessageSize)
		if n, ok := t.logParse.Allow(); ok {
			t.log.Info("datagram too large handed up", "remote", remote, "error", err, "suppressed", n)
		}
		t.deliver(Message{Raw: data, Err: err, Transport: UDP, Local: local, Remote: remote, Congested: congested})
		return
	}
	t.handle(data, UDP, local, remote, src, nil, congested)
}

// isKeepalive: a datagram of nothing but CR, LF, NUL and blanks is a NAT
// keep-alive (RFC 5626 §3.5.1's CRLFCRLF, or a bare NUL packet). It is not
// answered: over UDP RFC 5626 keeps alive with STUN.
func isKeepalive(data []byte) bool {
	for _, c := range data {
		switch c {
		case '\r', '\n', 0, ' ', '\t':
		default:
			return false
		}
	}
	return true
}

func (t *Transport) sendUDP(data []byte, dst Dest) error {
	raddr := unmap(dst.Addr)
	if !raddr.IsValid() || raddr.Port() == 0 {
		t.stats.udp.writeErrors.Add(1)
		return fmt.Errorf("%w: UDP to %v", ErrBadDest, dst.Addr)
	}
	v6 := raddr.Addr().Is6()
	limit := maxDatagram4
	if v6 {
		limit = maxDatagram6
	}
	if len(data) > limit {
		t.stats.udp.writeErrors.Add(1)
		return ErrTooLarge
	}
	g, oob, err := t.udpFrom(dst.Local, v6)
	if err != nil {
		t.stats.udp.writeErrors.Add(1)
		return err
	}
	s := g.socks[0]
	if len(g.socks) > 1 {
		s = g.socks[spread(raddr, len(g.socks))]
	}
	// An idle socket: write now, on the caller's goroutine. Waking the
	// writer for every datagram cost a context switch per message at
	// ordinary rates (issue 14); the queue and sendmmsg take over when
	// datagrams pile up. A raw socket's senders write side by side (no
	// lock: nothing queued means none of their earlier datagrams waits);
	// a full socket buffer sends the datagram to the queue.
	if s.rawWrites && s.queued.Load() == 0 {
		sent, err := sendRaw(s.rc, v6, data, raddr, oob)
		if sent {
			return s.sent(data, raddr, err)
		}
		if err != nil {
			t.stats.udp.writeErrors.Add(1)
			return err
		}
	} else if s.queued.Load() == 0 && s.wmu.TryLock() {
		if s.queued.Load() == 0 {
			err := s.writeOne(data, raddr, oob)
			s.wmu.Unlock()
			return err
		}
		s.wmu.Unlock()
	}
	b := getSendBuf(data)
	s.queued.Add(1)
	select {
	case s.q <- udpOut{b: b, dst: raddr, oob: oob}:
		t.stats.udpQueued.Add(1)
		return nil
	default:
		s.queued.Add(-1)
		putSendBuf(b)
		t.stats.udpQueueDrops.Add(1)
		t.stats.udp.writeErrors.Add(1)
		return ErrQueueFull
	}
}

// writeOne writes one datagram with s.wmu held (a full socket buffer makes
// it wait for room, as the writer's sendmmsg would; other senders queue
// meanwhile). A refused datagram is counted and logged like the writer's.
func (s *udpSock) writeOne(data []byte, dst netip.AddrPort, oob []byte) error {
	_, _, err := s.uc.WriteMsgUDPAddrPort(data, oob, dst)
	return s.sent(data, dst, err)
}

// sent counts a datagram written at once, or logs why it was not.
func (s *udpSock) sent(data []byte, dst netip.AddrPort, err error) error {
	t := s.t
	if err != nil {
		t.stats.udp.writeErrors.Add(1)
		if sup, ok := t.logWrite.Allow(); ok {
			t.log.Warn("UDP send failed", "local", s.g.addr, "remote", dst, "error", err, "suppressed", sup)
		}
		return err
	}
	t.stats.writeBatch.observe(1)
	t.stats.udp.msgsOut.Add(1)
	t.stats.udp.bytesOut.Add(uint64(len(data)))
	return nil
}

// udpFrom picks the socket group sending from local (zero: the first of the
// family) and, for a wildcard group, the control message choosing the
// source address.
func (t *Transport) udpFrom(local netip.AddrPort, v6 bool) (*udpGroup, []byte, error) {
	groups := *t.udp.Load()
	if !local.IsValid() {
		for _, g := range groups {
			if g.v6 == v6 {
				return g, nil, nil
			}
		}
		fam := "IPv4"
		if v6 {
			fam = "IPv6"
		}
		return nil, nil, fmt.Errorf("%w: no UDP socket for %s", ErrNoSocket, fam)
	}
	local = unmap(local)
	if local.Addr().Is6() == v6 {
		for _, g := range groups {
			if g.addr == local {
				return g, nil, nil
			}
		}
		for _, g := range groups {
			if g.wildcard && g.v6 == v6 && g.addr.Port() == local.Port() {
				return g, g.srcOOBFor(local.Addr()), nil
			}
		}
	}
	return nil, nil, fmt.Errorf("%w: UDP from %v", ErrNoSocket, local)
}

// spread picks one of n sockets by destination, so that the datagrams to
// one peer keep their order.
func spread(a netip.AddrPort, n int) int {
	b := a.Addr().As16()
	h := uint32(a.Port()) ^ binary.BigEndian.Uint32(b[12:]) ^ binary.BigEndian.Uint32(b[8:12])
	h *= 0x9e3779b1
	return int(h>>16) % n
}

// udpWriter is the state of a socket's writer: the batch being written,
// with addresses and iovecs that are reused, so a write allocates nothing.
type udpWriter struct {
	items []udpOut
	ms    []ipv4.Message
	addrs []net.UDPAddr
	ips   [][16]byte
	bufs  [][1][]byte
}

// writeLoop takes what is queued, up to a batch, and writes it with one
// sendmmsg. It blocks only while the queue is empty, so a datagram queued
// to an idle writer leaves at once, and under load the batches fill by
// themselves.
func (s *udpSock) writeLoop() {
	defer s.t.udpWrite.Done()
	n := s.t.o.UDPBatch
	w := &udpWriter{
		items: make([]udpOut, 0, n),
		ms:    make([]ipv4.Message, n),
		addrs: make([]net.UDPAddr, n),
		ips:   make([][16]byte, n),
		bufs:  make([][1][]byte, n),
	}
	for {
		select {
		case o := <-s.q:
			w.items = append(w.items[:0], o)
			s.fill(w)
			s.wmu.Lock()
			s.write(w)
			s.queued.Add(-int64(len(w.items)))
			s.wmu.Unlock()
		case <-s.quit:
			// Closing: flush what the handlers queued.
			for {
				w.items = w.items[:0]
				s.fill(w)
				if len(w.items) == 0 {
					return
				}
				s.wmu.Lock()
				s.write(w)
				s.queued.Add(-int64(len(w.items)))
				s.wmu.Unlock()
			}
		}
	}
}

func (s *udpSock) fill(w *udpWriter) {
	for len(w.items) < cap(w.items) {
		select {
		case o := <-s.q:
			w.items = append(w.items, o)
		default:
			return
		}
	}
}

func (s *udpSock) write(w *udpWriter) {
	t := s.t
	for i, it := range w.items {
		a := it.dst.Addr()
		if a.Is4() {
			ip := a.As4()
			copy(w.ips[i][:], ip[:])
			w.addrs[i] = net.UDPAddr{IP: w.ips[i][:4], Port: int(it.dst.Port())}
		} else {
			w.ips[i] = a.As16()
			w.addrs[i] = net.UDPAddr{IP: w.ips[i][:16], Port: int(it.dst.Port()), Zone: a.Zone()}
		}
		w.bufs[i][0] = *it.b
		w.ms[i] = ipv4.Message{Buffers: w.bufs[i][:], OOB: it.oob, Addr: &w.addrs[i]}
	}
	items := w.items
	for off := 0; off < len(items); {
		n, err := s.bc.WriteBatch(w.ms[off:len(items)], 0)
		n = max(n, 0)
		if n > 0 {
			t.stats.writeBatch.observe(n)
			t.stats.udp.msgsOut.Add(uint64(n))
			var bytes uint64
			for _, it := range items[off : off+n] {
				bytes += uint64(len(*it.b))
			}
			t.stats.udp.bytesOut.Add(bytes)
			off += n
			continue
		}
		if err != nil && errors.Is(err, net.ErrClosed) {
			t.stats.udp.writeErrors.Add(uint64(len(items) - off))
			break
		}
		// The datagram at off was refused (sendmmsg reports the error of
		// the first message it could not send): drop it, go on.
		t.stats.udp.writeErrors.Add(1)
		if sup, ok := t.logWrite.Allow(); ok {
			t.log.Warn("UDP send failed", "local", s.g.addr, "remote", items[off].dst, "error", err, "suppressed", sup)
		}
		off++
	}
	for i, it := range items {
		putSendBuf(it.b)
		w.items[i] = udpOut{}
		w.bufs[i][0] = nil
		w.ms[i] = ipv4.Message{}
	}
}

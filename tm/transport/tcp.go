package transport

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"
)

type tcpListener struct {
	ln   net.Listener
	addr netip.AddrPort
}

// ListenTCP serves TCP on addr (an IPv4 or IPv6 address, possibly the
// wildcard; port 0 picks one) and returns the address bound.
func (t *Transport) ListenTCP(addr netip.AddrPort) (netip.AddrPort, error) {
	addr = unmap(addr)
	if !addr.IsValid() {
		return netip.AddrPort{}, fmt.Errorf("transport: listen tcp: invalid address %v", addr)
	}
	network := "tcp4"
	if addr.Addr().Is6() {
		network = "tcp6"
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(t.ctx, network, addr.String())
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("transport: listen tcp %s: %w", addr, err)
	}
	return t.AddTCPListener(ln)
}

// AddTCPListener serves a listener made elsewhere (socket activation, a
// test's). The transport closes it on Close.
func (t *Transport) AddTCPListener(ln net.Listener) (netip.AddrPort, error) {
	l := &tcpListener{ln: ln, addr: addrPortOf(ln.Addr())}
	t.mu.Lock()
	if t.closed.Load() {
		t.mu.Unlock()
		ln.Close()
		return netip.AddrPort{}, ErrClosed
	}
	t.tcpLns = append(t.tcpLns, l)
	t.wg.Add(1)
	t.mu.Unlock()
	go t.acceptLoop(l)
	t.log.Debug("listening", "transport", TCP, "addr", l.addr)
	return l.addr, nil
}

// acceptLoop accepts until Close. A temporary error (too many open files,
// a connection aborted before it was accepted) is retried after a pause,
// 5ms doubling to 1s as net/http does, instead of ending the listener: a
// listener that stops is reported (OnListenerDown, Err).
func (t *Transport) acceptLoop(l *tcpListener) {
	defer t.wg.Done()
	var delay time.Duration
	for {
		nc, err := l.ln.Accept()
		if err != nil {
			if t.closed.Load() {
				return
			}
			if temporary(err) {
				t.stats.acceptErrors.Add(1)
				delay = nextBackoff(delay)
				if sup, ok := t.logAccept.Allow(); ok {
					t.log.Warn("TCP accept error, retrying", "addr", l.addr, "error", err, "retry_in", delay, "suppressed", sup)
				}
				if !t.sleep(delay) {
					return
				}
				continue
			}
			l.ln.Close()
			t.listenerDown(TCP, l.addr, err)
			return
		}
		delay = 0
		t.accepted(nc)
	}
}

// temporary tells an accept error worth retrying: what the net package
// calls temporary, and running out of descriptors or memory.
func temporary(err error) bool {
	if errors.Is(err, net.ErrClosed) {
		return false
	}
	var te interface{ Temporary() bool }
	if errors.As(err, &te) && te.Temporary() {
		return true
	}
	for _, e := range []error{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM,
		syscall.ECONNABORTED, syscall.ECONNRESET, syscall.EINTR, syscall.EAGAIN} {
		if errors.Is(err, e) {
			return true
		}
	}
	return errors.Is(err, os.ErrDeadlineExceeded)
}

func addrPortOf(a net.Addr) netip.AddrPort {
	switch a := a.(type) {
	case *net.TCPAddr:
		return unmap(a.AddrPort())
	case *net.UDPAddr:
		return unmap(a.AddrPort())
	}
	if a == nil {
		return netip.AddrPort{}
	}
	ap, _ := netip.ParseAddrPort(a.String())
	return unmap(ap)
}

// accepted serves a new connection, or closes it at once when it is beyond
// TCPMaxConns or TCPMaxConnsPerIP.
func (t *Transport) accepted(nc net.Conn) {
	local, remote := addrPortOf(nc.LocalAddr()), addrPortOf(nc.RemoteAddr())
	ip := remote.Addr()
	t.mu.Lock()
	if t.closed.Load() {
		t.mu.Unlock()
		nc.Close()
		return
	}
	var refused string
	switch {
	case t.o.TCPMaxConns > 0 && t.inbound >= t.o.TCPMaxConns:
		refused = "TCPMaxConns"
		t.stats.refusedMax.Add(1)
	case t.o.TCPMaxConnsPerIP > 0 && t.perIP[ip] >= t.o.TCPMaxConnsPerIP:
		refused = "TCPMaxConnsPerIP"
		t.stats.refusedPerIP.Add(1)
	}
	if refused != "" {
		t.mu.Unlock()
		if tc, ok := nc.(*net.TCPConn); ok {
			// Reset rather than linger: nothing is owed to this peer.
			tc.SetLinger(0)
		}
		nc.Close()
		if sup, ok := t.logRefused.Allow(); ok {
			t.log.Warn("TCP connection refused by limit", "remote", remote, "limit", refused, "suppressed", sup)
		}
		return
	}
	c := t.newConn(nc, local, remote, false)
	t.inbound++
	t.perIP[ip]++
	t.register(c)
	t.mu.Unlock()
	t.stats.connsAccepted.Add(1)
	go c.readLoop()
}

// register adds c to the tables and counts its reader; under mu, after
// checking closed.
func (t *Transport) register(c *Conn) {
	t.all[c] = struct{}{}
	t.conns[c.remote] = c
	t.stats.connsOpen.Add(1)
	t.wg.Add(1)
}

// dropConn removes a closed connection from the tables.
func (t *Transport) dropConn(c *Conn) {
	t.mu.Lock()
	if _, ok := t.all[c]; ok {
		delete(t.all, c)
		if t.conns[c.remote] == c {
			delete(t.conns, c.remote)
		}
		if !c.outbound {
			t.inbound--
			ip := c.remote.Addr()
			if t.perIP[ip]--; t.perIP[ip] <= 0 {
				delete(t.perIP, ip)
			}
		}
		t.stats.connsOpen.Add(-1)
	}
	t.mu.Unlock()
}

// LookupConn returns the open connection to remote, accepted or dialed;
// nil when there is none.
func (t *Transport) LookupConn(remote netip.AddrPort) *Conn {
	t.mu.RLock()
	c := t.conns[unmap(remote)]
	t.mu.RUnlock()
	if c == nil || c.closed.Load() {
		return nil
	}
	return c
}

func (t *Transport) sendTCP(data []byte, dst Dest) error {
	if c := dst.Conn; c != nil && c.t == t {
		err := c.write(data, true)
		if !errors.Is(err, ErrConnClosed) || !dst.Addr.IsValid() {
			return err
		}
	}
	// A connection found may close before the write: try once more.
	for attempt := 0; ; attempt++ {
		c, err := t.connTo(dst)
		if err != nil {
			t.stats.tcp.writeErrors.Add(1)
			return err
		}
		err = c.write(data, true)
		if !errors.Is(err, ErrConnClosed) || attempt == 1 {
			return err
		}
	}
}

// dialCall is a dial in progress, which later senders to the same
// destination wait for.
type dialCall struct {
	done chan struct{}
	c    *Conn
	err  error
}

// connTo returns the open connection to dst.Addr, dialing one when there
// is none (unless dst.NoDial).
func (t *Transport) connTo(dst Dest) (*Conn, error) {
	addr := unmap(dst.Addr)
	if !addr.IsValid() || addr.Port() == 0 {
		return nil, fmt.Errorf("%w: TCP to %v", ErrBadDest, dst.Addr)
	}
	t.mu.RLock()
	c, d := t.conns[addr], t.dialing[addr]
	t.mu.RUnlock()
	if c != nil && !c.closed.Load() {
		return c, nil
	}
	if d == nil {
		if dst.NoDial {
			return nil, ErrNoConnection
		}
		t.mu.Lock()
		if t.closed.Load() {
			t.mu.Unlock()
			return nil, ErrClosed
		}
		if c := t.conns[addr]; c != nil && !c.closed.Load() {
			t.mu.Unlock()
			return c, nil
		}
		if d = t.dialing[addr]; d == nil {
			d = &dialCall{done: make(chan struct{})}
			t.dialing[addr] = d
			t.mu.Unlock()
			t.dial(addr, dst.Local, d)
			return d.c, d.err
		}
		t.mu.Unlock()
	}
	<-d.done // bounded by TCPDialTimeout, and by Close
	return d.c, d.err
}

func (t *Transport) dial(addr, local netip.AddrPort, d *dialCall) {
	ctx := t.ctx
	if dt := t.o.TCPDialTimeout; dt > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, dt)
		defer cancel()
	}
	network := "tcp4"
	if addr.Addr().Is6() {
		network = "tcp6"
	}
	var dialer net.Dialer
	if l := unmap(local); l.IsValid() && !l.Addr().IsUnspecified() && l.Addr().Is6() == addr.Addr().Is6() {
		dialer.LocalAddr = &net.TCPAddr{IP: l.Addr().AsSlice(), Zone: l.Addr().Zone()}
	}
	nc, err := dialer.DialContext(ctx, network, addr.String())

	t.mu.Lock()
	delete(t.dialing, addr)
	if err == nil && t.closed.Load() {
		nc.Close()
		err = ErrClosed
	}
	var c *Conn
	if err == nil {
		c = t.newConn(nc, addrPortOf(nc.LocalAddr()), addr, true)
		t.register(c)
	}
	t.mu.Unlock()
	if err != nil {
		t.stats.dialFailures.Add(1)
		d.err = fmt.Errorf("transport: dial tcp %s: %w", addr, err)
	} else {
		t.stats.connsDialed.Add(1)
		d.c = c
		go c.readLoop()
	}
	close(d.done)
}

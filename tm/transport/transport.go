package transport

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/imsdlg/imsdlg/internal/ratelog"
)

// Transport owns the UDP sockets and TCP listeners and connections of a SIP
// node: it reads, frames and parses messages and hands them to the Handler,
// and sends what the owner gives it. All methods are safe for concurrent
// use.
type Transport struct {
	o      Options
	log    *slog.Logger
	parser MessageParser
	stats  Stats

	// ctx is cancelled by Close: it stops dials in flight.
	ctx    context.Context
	cancel context.CancelFunc
	// done is closed by Close: it stops backoff sleeps.
	done   chan struct{}
	closed atomic.Bool
	// udpRead counts UDP readers, udpWrite UDP writers (flushed after the
	// readers stop), wg every other goroutine.
	udpRead, udpWrite, wg sync.WaitGroup

	// udp is read on every UDP send: copy on write, under mu.
	udp atomic.Pointer[[]*udpGroup]

	mu      sync.RWMutex
	tcpLns  []*tcpListener
	conns   map[netip.AddrPort]*Conn // by remote address, the newest
	all     map[*Conn]struct{}
	perIP   map[netip.Addr]int // accepted connections by remote address
	inbound int                // accepted connections open
	dialing map[netip.AddrPort]*dialCall
	down    []error

	// TCP read buffers: the initial one of a connection, and one holding a
	// message of MaxMessageSize.
	readPool, bigPool *bufPool
	// udpBufSize is the read buffer of one datagram: one byte more than
	// MaxMessageSize, so a longer datagram is seen to be too long.
	udpBufSize int

	logParse, logFraming, logRefused, logAccept, logWrite, logRead, logPanic, logTimeout ratelog.Limiter
}

// New builds a transport. It serves nothing until ListenUDP or ListenTCP.
func New(o Options) (*Transport, error) {
	o, err := o.withDefaults()
	if err != nil {
		return nil, err
	}
	t := &Transport{
		o:       o,
		log:     o.Logger.With("component", "transport"),
		parser:  o.Parser,
		done:    make(chan struct{}),
		conns:   make(map[netip.AddrPort]*Conn),
		all:     make(map[*Conn]struct{}),
		perIP:   make(map[netip.Addr]int),
		dialing: make(map[netip.AddrPort]*dialCall),
	}
	t.ctx, t.cancel = context.WithCancel(context.Background())
	t.readPool = newBufPool(o.TCPReadBuffer)
	t.bigPool = newBufPool(max(o.MaxMessageSize+1, o.TCPReadBuffer))
	t.udpBufSize = min(o.MaxMessageSize+1, 1<<16)
	empty := []*udpGroup{}
	t.udp.Store(&empty)
	return t, nil
}

// Stats returns the live counters.
func (t *Transport) Stats() *Stats { return &t.stats }

// Send sends one message, a complete SIP message as bytes. data is copied
// or written before Send returns: the caller may reuse it.
//
// UDP: the datagram is queued for the sending socket's writer, which
// batches what is queued into one sendmmsg; it leaves at once when the
// writer is idle. A write error after queueing is counted and logged, not
// returned.
//
// TCP: the bytes go on Dest.Conn when it is open, else on an open
// connection to Dest.Addr, else on one dialed now (the caller waits for the
// dial, TCPDialTimeout at most; concurrent sends to one destination share
// one dial). They are written at once if the socket takes them, else
// queued for the peer (TCPWriteQueue bytes at most, TCPWriteTimeout): Send
// does not wait for a slow peer.
func (t *Transport) Send(data []byte, dst Dest) error {
	if t.closed.Load() {
		return ErrClosed
	}
	if t.o.Trace != nil {
		t.o.Trace("send", transportOf(dst.Transport), dst.Local, dst.Addr, data)
	}
	switch transportOf(dst.Transport) {
	case UDP:
		return t.sendUDP(data, dst)
	case TCP:
		return t.sendTCP(data, dst)
	}
	return fmt.Errorf("%w: transport %q", ErrBadDest, dst.Transport)
}

// Err reports the listeners that stopped other than by Close; nil while
// every listener serves. Meant for a readiness check.
func (t *Transport) Err() error {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return errors.Join(t.down...)
}

func (t *Transport) listenerDown(transport string, addr netip.AddrPort, err error) {
	if t.closed.Load() {
		return
	}
	t.stats.listenersDown.Add(1)
	t.mu.Lock()
	t.down = append(t.down, fmt.Errorf("%s listener %s stopped: %w", transport, addr, err))
	t.mu.Unlock()
	t.log.Error("listener stopped", "transport", transport, "addr", addr, "error", err)
	if t.o.OnListenerDown != nil {
		t.o.OnListenerDown(transport, addr, err)
	}
}

// Close stops every listener, socket and connection and waits for every
// goroutine the transport started, handlers included, so it must not be
// called from a Handler. Datagrams queued for sending are written first.
// Safe to call more than once.
func (t *Transport) Close() error {
	if t.closed.Swap(true) {
		t.wait()
		return nil
	}
	close(t.done)
	t.cancel()
	t.mu.Lock()
	lns := t.tcpLns
	conns := make([]*Conn, 0, len(t.all))
	for c := range t.all {
		conns = append(conns, c)
	}
	t.mu.Unlock()
	groups := *t.udp.Load()

	for _, l := range lns {
		l.ln.Close()
	}
	for _, c := range conns {
		c.closeWith(ErrClosed)
	}
	// Wake the UDP readers; they see closed and stop. Then the writers
	// flush what the handlers queued, and only then the sockets close.
	past := time.Unix(1, 0)
	for _, g := range groups {
		for _, s := range g.socks {
			s.uc.SetReadDeadline(past)
			if s.blocking {
				wakeReaders(s.rc)
			}
		}
	}
	t.udpRead.Wait()
	for _, g := range groups {
		for _, s := range g.socks {
			close(s.quit)
		}
	}
	t.udpWrite.Wait()
	for _, g := range groups {
		for _, s := range g.socks {
			s.uc.Close()
		}
	}
	t.wg.Wait()
	return nil
}

func (t *Transport) wait() {
	t.udpRead.Wait()
	t.udpWrite.Wait()
	t.wg.Wait()
}

// sleep waits d or until Close; false when closed.
func (t *Transport) sleep(d time.Duration) bool {
	tm := time.NewTimer(d)
	defer tm.Stop()
	select {
	case <-tm.C:
		return true
	case <-t.done:
		return false
	}
}

// nextBackoff is net/http's accept backoff: 5ms doubling to 1s.
func nextBackoff(d time.Duration) time.Duration {
	if d == 0 {
		return 5 * time.Millisecond
	}
	return min(2*d, time.Second)
}

// handle parses one framed message and hands it up.
func (t *Transport) handle(data []byte, transport string, local, remote netip.AddrPort, src string, c *Conn, congested bool) {
	ps := t.stats.proto(transport)
	ps.msgsIn.Add(1)
	if t.o.Trace != nil {
		t.o.Trace("recv", transport, local, remote, data)
	}
	m := Message{Raw: data, Transport: transport, Local: local, Remote: remote, Conn: c, Congested: congested}
	msg, err := t.parser.ParseSIP(data)
	if err != nil {
		ps.parseFailures.Add(1)
		m.Err = err
		if n, ok := t.logParse.Allow(); ok {
			t.log.Info("unparsable message handed up", "transport", transport, "remote", remote,
				"size", len(data), "error", err, "suppressed", n)
		}
	} else {
		msg.SetTransport(transport)
		msg.SetSource(src)
		m.Msg = msg
	}
	t.deliver(m)
}

// deliver calls the handler, recovering a panic so that one bad message
// does not take the socket (or the process) down.
func (t *Transport) deliver(m Message) {
	defer func() {
		if r := recover(); r != nil {
			t.stats.handlerPanics.Add(1)
			if n, ok := t.logPanic.Allow(); ok {
				t.log.Error("message handler panicked", "panic", r, "suppressed", n, "stack", string(debug.Stack()))
			}
		}
	}()
	t.o.Handler(m)
}

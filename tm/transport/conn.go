package transport

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Conn is one TCP connection, accepted or dialed. Its reader goroutine
// frames and parses what arrives and hands it to the Handler; anyone may
// send on it. It is closed when framing is lost, when it is idle for
// TCPLifetime, when a message takes longer than TCPReadTimeout, when its
// peer does not take what is written, by Close, or by the peer.
type Conn struct {
	t             *Transport
	nc            net.Conn
	local, remote netip.AddrPort
	remoteText    string // remote as text, once per connection
	outbound      bool
	closed        atomic.Bool
	// Unix nanoseconds of the last read and write: together they say
	// whether the connection is idle.
	lastRead, lastWrite atomic.Int64

	wmu sync.Mutex
	// wq is what waits for the peer, in order; flushing is set while a
	// goroutine writes it, and then every write queues behind it.
	wq       []*[]byte
	queued   int
	flushing bool
	// rc and the fields below do non-blocking writes (write_unix.go).
	rc       syscall.RawConn
	rawWrite func(fd uintptr) bool
	wp       []byte
	wn       int
	werr     error
}

// Local is the connection's local address.
func (c *Conn) Local() netip.AddrPort { return c.local }

// Remote is the peer's address.
func (c *Conn) Remote() netip.AddrPort { return c.remote }

// Outbound tells whether the transport dialed the connection (rather than
// accepted it).
func (c *Conn) Outbound() bool { return c.outbound }

// Closed tells whether the connection is closed.
func (c *Conn) Closed() bool { return c.closed.Load() }

// Close closes the connection.
func (c *Conn) Close() error {
	c.closeWith(nil)
	return nil
}

// Send writes one message on the connection (see Transport.Send).
func (c *Conn) Send(data []byte) error {
	return c.write(data, true)
}

func (c *Conn) String() string {
	dir := "in"
	if c.outbound {
		dir = "out"
	}
	return fmt.Sprintf("tcp(%s) %s<->%s", dir, c.local, c.remote)
}

func (t *Transport) newConn(nc net.Conn, local, remote netip.AddrPort, outbound bool) *Conn {
	c := &Conn{t: t, nc: nc, local: local, remote: remote, remoteText: remote.String(), outbound: outbound}
	c.initWriter()
	now := time.Now().UnixNano()
	c.lastRead.Store(now)
	c.lastWrite.Store(now)
	return c
}

var crlf = []byte("\r\n")

// write writes p at once as far as the socket takes it and queues the rest
// for a flushing goroutine: it never waits for the peer. msg says whether
// p is a message (for the counters) rather than a keep-alive pong.
func (c *Conn) write(p []byte, msg bool) error {
	t := c.t
	size := len(p)
	c.wmu.Lock()
	if c.closed.Load() {
		c.wmu.Unlock()
		return ErrConnClosed
	}
	c.lastWrite.Store(time.Now().UnixNano())
	if !c.flushing {
		n, err := c.tryWrite(p)
		if err != nil {
			c.wmu.Unlock()
			t.stats.tcp.writeErrors.Add(1)
			c.closeWith(fmt.Errorf("write: %w", err))
			return fmt.Errorf("transport: write to %s: %w", c.remote, err)
		}
		if n < len(p) {
			// The socket is full: the rest waits for the peer, and so does
			// every later write, in order.
			p = p[n:]
			c.flushing = true
			t.wg.Add(1)
			go c.flush()
		}
	} else if lim := t.o.TCPWriteQueue; lim > 0 && c.queued+len(p) > lim {
		c.wmu.Unlock()
		t.stats.queueOverflows.Add(1)
		t.stats.tcp.writeErrors.Add(1)
		c.closeWith(ErrWriteQueueFull)
		return ErrWriteQueueFull
	}
	if len(p) > 0 && c.flushing {
		c.wq = append(c.wq, getSendBuf(p))
		c.queued += len(p)
	}
	c.wmu.Unlock()
	if msg {
		t.stats.tcp.msgsOut.Add(1)
	}
	t.stats.tcp.bytesOut.Add(uint64(size))
	return nil
}

// flush writes the queue until it is empty, then leaves writing to write
// again. A peer that takes nothing for TCPWriteTimeout loses the
// connection.
func (c *Conn) flush() {
	t := c.t
	defer t.wg.Done()
	var (
		held []*[]byte
		bufs net.Buffers
	)
	for {
		c.wmu.Lock()
		if c.closed.Load() || len(c.wq) == 0 {
			c.flushing = false
			if !c.closed.Load() {
				// Clear the deadline: a non-blocking write fails on an
				// expired one.
				c.nc.SetWriteDeadline(time.Time{})
			}
			c.releaseQueue()
			c.wmu.Unlock()
			return
		}
		held = append(held[:0], c.wq...)
		clear(c.wq)
		c.wq = c.wq[:0]
		c.queued = 0
		c.wmu.Unlock()

		bufs = bufs[:0]
		for _, b := range held {
			bufs = append(bufs, *b)
		}
		if wt := t.o.TCPWriteTimeout; wt > 0 {
			c.nc.SetWriteDeadline(time.Now().Add(wt))
		} else {
			c.nc.SetWriteDeadline(time.Time{})
		}
		_, err := bufs.WriteTo(c.nc)
		for i, b := range held {
			putSendBuf(b)
			held[i] = nil
		}
		if err != nil {
			if errors.Is(err, os.ErrDeadlineExceeded) {
				t.stats.writeTimeouts.Add(1)
				err = fmt.Errorf("peer took nothing for %v: %w", t.o.TCPWriteTimeout, err)
			}
			t.stats.tcp.writeErrors.Add(1)
			if sup, ok := t.logWrite.Allow(); ok && !c.closed.Load() {
				t.log.Warn("TCP write failed, closing the connection", "conn", c.String(), "error", err, "suppressed", sup)
			}
			c.closeWith(err)
		}
	}
}

// releaseQueue drops what waits to be written; under wmu.
func (c *Conn) releaseQueue() {
	for i, b := range c.wq {
		putSendBuf(b)
		c.wq[i] = nil
	}
	c.wq = c.wq[:0]
	c.queued = 0
}

// closeWith closes the connection once; why is logged (nil: a normal
// close).
func (c *Conn) closeWith(why error) {
	c.wmu.Lock()
	if c.closed.Load() {
		c.wmu.Unlock()
		return
	}
	c.closed.Store(true)
	if !c.flushing {
		c.releaseQueue()
	}
	c.wmu.Unlock()
	c.nc.Close()
	c.t.dropConn(c)
	if why != nil && !errors.Is(why, ErrClosed) {
		c.t.log.Debug("connection closed", "conn", c.String(), "reason", why)
	}
}

// readLoop reads the connection until it closes. Messages are framed in the
// read buffer and handed up from there: no copy, one parse.
func (c *Conn) readLoop() {
	t := c.t
	defer t.wg.Done()
	st := newStream(t.o.MaxMessageSize, t.readPool, t.bigPool)
	var why error
	defer func() {
		st.release()
		c.closeWith(why)
	}()
	// msgStart is when the message under way began; zero between messages.
	var msgStart time.Time
	c.nc.SetReadDeadline(c.deadline(msgStart))
	for {
		buf := st.space()
		if len(buf) == 0 {
			// Cannot happen: the framer gives up before the buffer is full.
			why = errNoHeaderEnd
			return
		}
		n, err := c.nc.Read(buf)
		if n > 0 {
			now := time.Now()
			st.wrote(n)
			c.lastRead.Store(now.UnixNano())
			t.stats.tcp.bytesIn.Add(uint64(n))
			if why = c.frames(st); why != nil {
				return
			}
			// A message under way must complete within TCPReadTimeout of
			// its first byte; between messages TCPLifetime counts.
			if st.fr.inMessage() {
				if msgStart.IsZero() {
					msgStart = now
					c.nc.SetReadDeadline(c.deadline(msgStart))
				}
			} else if !msgStart.IsZero() {
				msgStart = time.Time{}
				c.nc.SetReadDeadline(c.deadline(msgStart))
			}
		}
		if err == nil {
			continue
		}
		if c.closed.Load() {
			return
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			if err != io.EOF {
				why = err
			}
			return
		}
		now := time.Now()
		if rto := t.o.TCPReadTimeout; !msgStart.IsZero() && rto > 0 && now.Sub(msgStart) >= rto {
			why = ErrReadTimeout
			t.stats.readTimeouts.Add(1)
			if sup, ok := t.logTimeout.Allow(); ok {
				t.log.Warn("TCP message not complete within the read timeout, closing the connection",
					"conn", c.String(), "timeout", rto, "buffered", st.buffered(), "suppressed", sup)
			}
			return
		}
		if life := t.o.TCPLifetime; life > 0 && now.UnixNano()-c.lastActive() >= int64(life) {
			why = ErrIdle
			t.stats.idleClosed.Add(1)
			return
		}
		// Activity since the deadline was set (a write, say): move it.
		c.nc.SetReadDeadline(c.deadline(msgStart))
	}
}

func (c *Conn) lastActive() int64 { return max(c.lastRead.Load(), c.lastWrite.Load()) }

// deadline is when the reader next looks at the timers: the end of the read
// timeout of the message under way, or the end of the lifetime.
func (c *Conn) deadline(msgStart time.Time) time.Time {
	o := &c.t.o
	if !msgStart.IsZero() && o.TCPReadTimeout > 0 {
		return msgStart.Add(o.TCPReadTimeout)
	}
	if o.TCPLifetime > 0 {
		return time.Unix(0, c.lastActive()).Add(o.TCPLifetime)
	}
	return time.Time{}
}

// frames hands up every message the buffer holds; a non-nil error closes
// the connection.
func (c *Conn) frames(st *stream) error {
	t := c.t
	for {
		kind, frame, pong, err := st.next()
		switch kind {
		case frameMore:
			return nil
		case frameSkip:
			if pong {
				// RFC 5626 §3.5.1: a CRLFCRLF ping gets a CRLF pong.
				t.stats.tcp.keepalives.Add(1)
				c.write(crlf, false)
			}
		case frameMessage:
			t.handle(frame, TCP, c.local, c.remote, c.remoteText, c, false)
		case frameBroken:
			t.stats.framingFailures.Add(1)
			if sup, ok := t.logFraming.Allow(); ok {
				t.log.Warn("TCP framing lost, closing the connection", "conn", c.String(), "error", err,
					"buffered", st.buffered(), "suppressed", sup)
			}
			return err
		}
	}
}

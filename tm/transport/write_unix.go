//go:build unix

package transport

import (
	"syscall"
)

// initWriter prepares non-blocking writes: one write(2) attempt through the
// connection's RawConn, which never waits for the socket to drain.
func (c *Conn) initWriter() {
	sc, ok := c.nc.(syscall.Conn)
	if !ok {
		return
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return
	}
	c.rc = rc
	c.rawWrite = c.writeOnce // bound once: no allocation per write
}

// tryWrite writes what the socket takes now of p; under wmu. A short count
// with a nil error means the socket is full.
func (c *Conn) tryWrite(p []byte) (int, error) {
	if c.rc == nil {
		return c.blockingWrite(p)
	}
	c.wp, c.wn, c.werr = p, 0, nil
	err := c.rc.Write(c.rawWrite)
	n, werr := c.wn, c.werr
	c.wp, c.werr = nil, nil
	if err != nil {
		return n, err
	}
	return n, werr
}

// writeOnce is the RawConn callback: it writes until the socket would
// block, and returns true so that RawConn.Write never waits.
func (c *Conn) writeOnce(fd uintptr) bool {
	for len(c.wp) > 0 {
		n, err := syscall.Write(int(fd), c.wp)
		if n > 0 {
			c.wn += n
			c.wp = c.wp[n:]
		}
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return true
		case err != nil:
			c.werr = err
			return true
		case n <= 0:
			return true
		}
	}
	return true
}

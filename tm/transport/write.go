package transport

import "time"

// blockingWrite writes p within TCPWriteTimeout; under wmu.
func (c *Conn) blockingWrite(p []byte) (int, error) {
	if wt := c.t.o.TCPWriteTimeout; wt > 0 {
		c.nc.SetWriteDeadline(time.Now().Add(wt))
	}
	return c.nc.Write(p)
}

//go:build !unix

package transport

// initWriter: without a non-blocking write(2), writes block for up to
// TCPWriteTimeout.
func (c *Conn) initWriter() {}

func (c *Conn) tryWrite(p []byte) (int, error) {
	return c.blockingWrite(p)
}

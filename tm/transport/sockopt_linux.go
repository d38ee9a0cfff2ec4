//go:build linux

package transport

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// reusePortSupported: SO_REUSEPORT spreads the datagrams of one address
// over several sockets by a hash of the source (Linux 3.9+).
const reusePortSupported = true

// reusePortControl sets SO_REUSEPORT before bind.
func reusePortControl(_, _ string, c syscall.RawConn) error {
	var serr error
	if err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	}); err != nil {
		return err
	}
	return serr
}

// socketBuffers reads back the socket buffers the kernel granted (Linux
// reports twice what was set, capped by net.core.rmem_max / wmem_max).
func socketBuffers(c syscall.RawConn) (rcv, snd int, err error) {
	var e1, e2 error
	if err := c.Control(func(fd uintptr) {
		rcv, e1 = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF)
		snd, e2 = unix.GetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUF)
	}); err != nil {
		return 0, 0, err
	}
	if e1 != nil {
		return 0, 0, e1
	}
	return rcv, snd, e2
}

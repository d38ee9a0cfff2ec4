//go:build linux

package transport

import (
	"syscall"
	"unsafe"

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

// blockingReads puts a UDP socket in blocking mode, so that its readers
// wait inside recvmmsg (with readFlags) rather than in Go's netpoller: one
// system call per batch instead of a read that fails with EAGAIN, an epoll
// wait and a wake-up per datagram at ordinary rates (the socket cost 10 %
// more CPU per call non-blocking, issue 14). Close wakes them with
// wakeReaders. Writes stay as they are: a UDP send does not block but on a
// full socket buffer, where waiting is what the writer would do.
func blockingReads(c syscall.RawConn) bool {
	var serr error
	if err := c.Control(func(fd uintptr) { serr = unix.SetNonblock(int(fd), false) }); err != nil || serr != nil {
		return false
	}
	return true
}

// readFlags makes a blocking recvmmsg return once one datagram is in,
// with what else is queued, instead of waiting for a full batch.
const readFlags = unix.MSG_WAITFORONE

// wakeReaders shuts the socket down for reading: Linux wakes every reader
// blocked in recvmmsg on it (even on an unconnected UDP socket, where
// shutdown itself reports ENOTCONN), and later reads return at once.
func wakeReaders(c syscall.RawConn) {
	c.Control(func(fd uintptr) { unix.Shutdown(int(fd), unix.SHUT_RD) })
}

// watchdogSupported: the read watchdog runs (SIOCINQ; the stall it
// covers is Linux's).
const watchdogSupported = true

// pendingDatagram is SIOCINQ: the length of the datagram at the head of the
// socket's receive queue, 0 when the queue is empty. It does not take the
// descriptor's read lock, so it answers while a reader is blocked.
func pendingDatagram(c syscall.RawConn) (int, error) {
	var n int
	var serr error
	if err := c.Control(func(fd uintptr) { n, serr = unix.IoctlGetInt(int(fd), unix.SIOCINQ) }); err != nil {
		return 0, err
	}
	return n, serr
}

// queueOverHalf reports whether a socket's receive queue holds more than
// half its buffer: SO_MEMINFO's first two values, the bytes queued as the
// kernel counts them against SO_RCVBUF, and that buffer. One getsockopt,
// asked only after a full batch, as a raw system call: it never blocks,
// and one through the scheduler's system-call state woke sysmon from its
// deep sleep and reset its polling to every 20 µs, a few hundred
// wake-ups a second of a thread that had nothing to do.
func queueOverHalf(c syscall.RawConn) bool {
	var mi [16]uint32 // SK_MEMINFO_VARS is 9 on Linux 6; room for more
	n := uint32(unsafe.Sizeof(mi))
	var errno syscall.Errno
	if err := c.Control(func(fd uintptr) {
		_, _, errno = unix.RawSyscall6(unix.SYS_GETSOCKOPT, fd, unix.SOL_SOCKET, unix.SO_MEMINFO,
			uintptr(unsafe.Pointer(&mi[0])), uintptr(unsafe.Pointer(&n)), 0)
	}); err != nil || errno != 0 || n < 8 {
		return false
	}
	return uint64(mi[0])*2 > uint64(mi[1])
}

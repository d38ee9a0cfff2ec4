//go:build linux

package transport

import (
	"encoding/binary"
	"net/netip"
	"strconv"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"
)

// rawSupported: a socket's readers call recvmmsg themselves, inside
// RawConn.Read (the descriptor's read lock held and, when it is not
// blocking, the netpoller waited on, as x/net's ReadBatch does, but
// without its net.UDPAddr per datagram: seven heap objects per call); with
// Options.UDPRawIO (blocking sockets) inside RawConn.Control, and senders
// call sendmsg themselves too.
//
// Why: x/net's ReadBatch goes through RawConn.Read, which holds the
// descriptor's read lock for the whole blocking recvmmsg, so a socket's
// readers take turns: one waits in the kernel, the others park on the
// lock, and every batch hands the lock on with a goroutine wake-up (in a
// scheduler-latency trace at 1000 calls/s, 62 % of all the time goroutines
// spent runnable and waiting for a CPU). Likewise a second sender found
// the socket taken and queued its datagram to the writer goroutine, which
// then had to be woken (27 % of that time). Control only holds a
// reference, which keeps the descriptor from closing under the call:
// senders write side by side, and raw readers wait in recvmmsg together
// (the kernel wakes one per datagram), as the threads of a C proxy do.
// Measured, it cost more than the wake-ups it saves (Options.UDPRawIO):
// with every reader's thread in the kernel the runtime moves its Ps
// between them, twice the context switches per call.
const rawSupported = true

// sockaddrLen is room for an IPv4 or IPv6 socket address.
const sockaddrLen = unix.SizeofSockaddrInet6

// rawReader is one reader's recvmmsg state, built once: the headers point
// at the reader's buffers, and recv is bound once, so a batch allocates
// nothing. shared readers wait in the kernel side by side (RawConn.Control,
// Options.UDPRawIO); the others take the descriptor's read lock in turn
// (RawConn.Read), and a non-blocking descriptor's EAGAIN waits in the
// netpoller.
type rawReader struct {
	hdrs   []unix.Mmsghdr
	iovs   []unix.Iovec
	names  []byte
	oobs   [][]byte
	flags  int
	shared bool
	// unwatched: recvmmsg is a raw system call the scheduler does not
	// watch (Options.UDPRawReads), for a descriptor that does not block.
	unwatched bool
	n         int
	err       syscall.Errno
	recv      func(fd uintptr)
	recvOK    func(fd uintptr) bool
}

func newRawReader(bufs [][1][]byte, oobs [][]byte, flags int, shared, unwatched bool) *rawReader {
	r := &rawReader{
		hdrs:   make([]unix.Mmsghdr, len(bufs)),
		iovs:   make([]unix.Iovec, len(bufs)),
		names:  make([]byte, len(bufs)*sockaddrLen),
		oobs:   oobs,
		flags:  flags,
		shared: shared,
		// The socket decided (udpSock.rawReads): only a non-blocking
		// descriptor's, as a blocking reader sleeps in the kernel and must
		// enter the scheduler's system-call state.
		unwatched: unwatched,
	}
	for i := range bufs {
		b := bufs[i][0]
		r.iovs[i].Base = &b[0]
		r.iovs[i].SetLen(len(b))
		h := &r.hdrs[i].Hdr
		h.Iov = &r.iovs[i]
		h.SetIovlen(1)
	}
	r.recv = r.recvmmsg
	r.recvOK = func(fd uintptr) bool {
		r.recvmmsg(fd)
		return r.err != syscall.EAGAIN
	}
	return r
}

func (r *rawReader) recvmmsg(fd uintptr) {
	for i := range r.hdrs {
		h := &r.hdrs[i].Hdr
		h.Name = &r.names[i*sockaddrLen]
		h.Namelen = sockaddrLen
		if len(r.oobs) > 0 && len(r.oobs[i]) > 0 {
			h.Control = &r.oobs[i][0]
			h.SetControllen(len(r.oobs[i]))
		}
		h.Flags = 0
		r.hdrs[i].Len = 0
	}
	for {
		var n uintptr
		var e syscall.Errno
		if r.unwatched {
			n, _, e = syscall.RawSyscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&r.hdrs[0])), uintptr(len(r.hdrs)),
				uintptr(r.flags|unix.MSG_DONTWAIT), 0, 0)
		} else {
			n, _, e = syscall.Syscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&r.hdrs[0])), uintptr(len(r.hdrs)),
				uintptr(r.flags), 0, 0)
		}
		if e == syscall.EINTR {
			continue
		}
		r.n, r.err = int(n), e
		if e != 0 {
			r.n = 0
		}
		return
	}
}

// read reads a batch into the buffers it was built on: each datagram's
// length and control length go to ms[i].N and NN as ReadBatch's do, its
// source to from[i].
func (r *rawReader) read(rc syscall.RawConn, ms []ipv4.Message, from []netip.AddrPort) (int, error) {
	var err error
	if r.shared {
		err = rc.Control(r.recv)
	} else {
		err = rc.Read(r.recvOK)
	}
	if err != nil {
		return 0, err
	}
	if r.err != 0 {
		return 0, r.err
	}
	for i := 0; i < r.n; i++ {
		ms[i].N, ms[i].NN = int(r.hdrs[i].Len), int(r.hdrs[i].Hdr.Controllen)
		from[i] = sockaddrAddrPort(r.names[i*sockaddrLen : (i+1)*sockaddrLen])
	}
	return r.n, nil
}

// sockaddrAddrPort reads a struct sockaddr_in or sockaddr_in6 (family in
// host order, port in network order); the zero AddrPort for anything else.
func sockaddrAddrPort(b []byte) netip.AddrPort {
	port := binary.BigEndian.Uint16(b[2:4])
	switch *(*uint16)(unsafe.Pointer(&b[0])) {
	case unix.AF_INET:
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[4:8])), port)
	case unix.AF_INET6:
		a := netip.AddrFrom16([16]byte(b[8:24]))
		if scope := *(*uint32)(unsafe.Pointer(&b[24])); scope != 0 {
			a = a.WithZone(strconv.FormatUint(uint64(scope), 10))
		}
		return netip.AddrPortFrom(a.Unmap(), port)
	}
	return netip.AddrPort{}
}

// rawSender is one sendmsg in flight; pooled, with send bound once.
type rawSender struct {
	msg  unix.Msghdr
	iov  unix.Iovec
	name [sockaddrLen]byte
	err  syscall.Errno
	send func(fd uintptr)
}

var rawSenders = sync.Pool{New: func() any {
	s := &rawSender{}
	s.send = s.sendmsg
	return s
}}

// sendmsg is a raw system call: a non-blocking send never waits, so the
// scheduler need not know of it (UDPRawWrites): entering its system-call
// state let sysmon hand the one Go processor to another thread mid-send.
func (s *rawSender) sendmsg(fd uintptr) {
	for {
		_, _, e := syscall.RawSyscall(unix.SYS_SENDMSG, fd, uintptr(unsafe.Pointer(&s.msg)), unix.MSG_DONTWAIT|unix.MSG_NOSIGNAL)
		if e == syscall.EINTR {
			continue
		}
		s.err = e
		return
	}
}

// sendRaw writes one datagram now, from the calling goroutine, without the
// descriptor's write lock. sent is false when the socket buffer is full
// (the writer's blocking sendmmsg then takes it) or when dst needs what
// only the net package writes (an IPv6 zone): the caller queues it.
func sendRaw(rc syscall.RawConn, v6 bool, data []byte, dst netip.AddrPort, oob []byte) (sent bool, err error) {
	if dst.Addr().Zone() != "" || len(data) == 0 {
		return false, nil
	}
	s := rawSenders.Get().(*rawSender)
	s.name = [sockaddrLen]byte{}
	binary.BigEndian.PutUint16(s.name[2:4], dst.Port())
	if v6 {
		*(*uint16)(unsafe.Pointer(&s.name[0])) = unix.AF_INET6
		a := dst.Addr().As16()
		copy(s.name[8:24], a[:])
		s.msg.Namelen = unix.SizeofSockaddrInet6
	} else {
		*(*uint16)(unsafe.Pointer(&s.name[0])) = unix.AF_INET
		a := dst.Addr().As4()
		copy(s.name[4:8], a[:])
		s.msg.Namelen = unix.SizeofSockaddrInet4
	}
	s.msg.Name = &s.name[0]
	s.iov.Base = &data[0]
	s.iov.SetLen(len(data))
	s.msg.Iov = &s.iov
	s.msg.SetIovlen(1)
	s.msg.Control = nil
	s.msg.SetControllen(0)
	if len(oob) > 0 {
		s.msg.Control = &oob[0]
		s.msg.SetControllen(len(oob))
	}
	s.err = 0
	cerr := rc.Control(s.send)
	e := s.err
	s.iov.Base, s.msg.Control = nil, nil // the pool keeps no message alive
	rawSenders.Put(s)
	switch {
	case cerr != nil:
		return false, cerr
	case e == syscall.EAGAIN:
		return false, nil
	case e != 0:
		return true, e
	}
	return true, nil
}

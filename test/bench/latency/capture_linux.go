//go:build linux

package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"syscall"
	"unsafe"
)

const (
	ethPIP           = 0x0800
	packetStatistics = 6 // PACKET_STATISTICS of <linux/if_packet.h>
	packetOutgoing   = 4 // PACKET_OUTGOING
)

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// capture reads the IPv4 UDP datagrams from or to port on interface ifname
// with an AF_PACKET socket until stop is closed, calling ready once it
// captures and fn with each datagram (from its IP header) and its kernel
// time stamp in ns.
//
// The socket is bound to ETH_P_IP, not ETH_P_ALL: it sees the loopback
// receive of each datagram only, not also its transmit, so every datagram
// once and every time stamp taken at the same point. A classic BPF filter
// keeps the port's datagrams only, in the kernel. The interface must have
// an Ethernet-sized link header (lo, Ethernet).
func capture(ifname string, port uint16, stop <-chan struct{}, ready func(), fn func(ts int64, ip []byte)) (captureStats, error) {
	st := captureStats{live: true}
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return st, err
	}
	// Protocol 0: nothing is queued before the filter is attached and the
	// socket bound (to ETH_P_IP on ifname).
	fd, err := syscall.Socket(syscall.AF_PACKET, syscall.SOCK_RAW, 0)
	if err != nil {
		return st, fmt.Errorf("AF_PACKET socket (needs root or CAP_NET_RAW): %w", err)
	}
	defer syscall.Close(fd)
	// Kernel filter: IPv4, UDP, not a fragment, source or destination port.
	p := int(port)
	filter := []syscall.SockFilter{
		*syscall.LsfStmt(syscall.BPF_LD|syscall.BPF_H|syscall.BPF_ABS, 12),             // 0: ethertype
		*syscall.LsfJump(syscall.BPF_JMP|syscall.BPF_JEQ|syscall.BPF_K, ethPIP, 0, 10), // 1: IPv4, else drop
		*syscall.LsfStmt(syscall.BPF_LD|syscall.BPF_B|syscall.BPF_ABS, 23),             // 2: IP protocol
		*syscall.LsfJump(syscall.BPF_JMP|syscall.BPF_JEQ|syscall.BPF_K, 17, 0, 8),      // 3: UDP, else drop
		*syscall.LsfStmt(syscall.BPF_LD|syscall.BPF_H|syscall.BPF_ABS, 20),             // 4: flags, fragment offset
		*syscall.LsfJump(syscall.BPF_JMP|syscall.BPF_JSET|syscall.BPF_K, 0x1fff, 6, 0), // 5: a later fragment: drop
		*syscall.LsfStmt(syscall.BPF_LDX|syscall.BPF_B|syscall.BPF_MSH, 14),            // 6: X = IP header length
		*syscall.LsfStmt(syscall.BPF_LD|syscall.BPF_H|syscall.BPF_IND, 14),             // 7: UDP source port
		*syscall.LsfJump(syscall.BPF_JMP|syscall.BPF_JEQ|syscall.BPF_K, p, 2, 0),       // 8: ours: accept
		*syscall.LsfStmt(syscall.BPF_LD|syscall.BPF_H|syscall.BPF_IND, 16),             // 9: UDP destination port
		*syscall.LsfJump(syscall.BPF_JMP|syscall.BPF_JEQ|syscall.BPF_K, p, 0, 1),       // 10: ours: accept, else drop
		*syscall.LsfStmt(syscall.BPF_RET|syscall.BPF_K, 262144),                        // 11: accept
		*syscall.LsfStmt(syscall.BPF_RET|syscall.BPF_K, 0),                             // 12: drop
	}
	if err := syscall.AttachLsf(fd, filter); err != nil { //nolint:staticcheck // syscall has no other way
		return st, fmt.Errorf("attach BPF filter: %w", err)
	}
	if err := syscall.Bind(fd, &syscall.SockaddrLinklayer{Protocol: htons(ethPIP), Ifindex: ifi.Index}); err != nil {
		return st, fmt.Errorf("bind to %s: %w", ifname, err)
	}
	// A large buffer (RCVBUFFORCE passes rmem_max as root), kernel time
	// stamps, and a receive timeout so that stop is noticed.
	if syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_RCVBUFFORCE, 64<<20) != nil {
		_ = syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_RCVBUF, 64<<20)
	}
	if err := syscall.SetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_TIMESTAMPNS, 1); err != nil {
		return st, fmt.Errorf("SO_TIMESTAMPNS: %w", err)
	}
	tv := syscall.Timeval{Usec: 100000}
	if err := syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv); err != nil {
		return st, fmt.Errorf("SO_RCVTIMEO: %w", err)
	}
	// What the kernel counted before the filter was attached is reset by
	// this first read of the statistics.
	_, _ = packetStats(fd)
	ready()
	buf := make([]byte, 65536)
	oob := make([]byte, 256)
	for {
		select {
		case <-stop:
			pk, dr := packetStats(fd)
			st.packets += pk
			st.dropped += dr
			return st, nil
		default:
		}
		n, oobn, _, from, err := syscall.Recvmsg(fd, buf, oob, 0)
		if err != nil {
			if errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EINTR) {
				continue
			}
			return st, fmt.Errorf("recvmsg: %w", err)
		}
		if ll, ok := from.(*syscall.SockaddrLinklayer); ok && ll.Pkttype == packetOutgoing {
			continue
		}
		ts, ok := timestamp(oob[:oobn])
		if !ok || n < 14 {
			continue
		}
		fn(ts, buf[14:n])
	}
}

// timestamp: the SCM_TIMESTAMPNS control message, in ns.
func timestamp(oob []byte) (int64, bool) {
	const hdr = 16 // struct cmsghdr on 64-bit Linux: len (8), level (4), type (4)
	for len(oob) >= hdr {
		l := int(binary.NativeEndian.Uint64(oob[0:8]))
		level := int32(binary.NativeEndian.Uint32(oob[8:12]))
		typ := int32(binary.NativeEndian.Uint32(oob[12:16]))
		if l < hdr || l > len(oob) {
			return 0, false
		}
		if level == syscall.SOL_SOCKET && typ == syscall.SCM_TIMESTAMPNS && l >= hdr+16 {
			sec := int64(binary.NativeEndian.Uint64(oob[hdr : hdr+8]))
			nsec := int64(binary.NativeEndian.Uint64(oob[hdr+8 : hdr+16]))
			return sec*1e9 + nsec, true
		}
		oob = oob[(l+7)&^7:]
	}
	return 0, false
}

// packetStats reads (and so resets) the socket's PACKET_STATISTICS: the
// packets that passed the filter and those dropped for want of buffer.
func packetStats(fd int) (packets, drops uint64) {
	var s struct{ packets, drops uint32 }
	l := uint32(unsafe.Sizeof(s))
	_, _, e := syscall.Syscall6(syscall.SYS_GETSOCKOPT, uintptr(fd), syscall.SOL_PACKET, packetStatistics,
		uintptr(unsafe.Pointer(&s)), uintptr(unsafe.Pointer(&l)), 0)
	if e != 0 {
		return 0, 0
	}
	return uint64(s.packets), uint64(s.drops)
}

package main

import (
	"fmt"
	"time"

	"github.com/imsdlg/imsdlg/tm/transport"
)

// UDPSection is the udp section: how the UDP listeners read and write
// (Kamailio's children and socket_workers, udp_rcvbuf, ...). The defaults
// suit a proxy that owns its machine.
type UDPSection struct {
	// Sockets is how many sockets serve each UDP address, bound with
	// SO_REUSEPORT (Linux; the kernel spreads peers over them by source
	// address), each with its own readers and writer.
	Sockets int `config:"sockets"`
	// Readers is how many goroutines read each socket, each handling what
	// it read (0: GOMAXPROCS, at most 8).
	Readers int `config:"readers"`
	// Batch is the most datagrams one recvmmsg or sendmmsg moves.
	Batch int `config:"batch"`
	// ReadBuffer and WriteBuffer are the socket buffers asked for
	// (SO_RCVBUF, SO_SNDBUF; the kernel caps them at net.core.rmem_max /
	// wmem_max and a warning says so): bytes, or with a unit; 4KiB..1GiB.
	ReadBuffer  string `config:"read_buffer"`
	WriteBuffer string `config:"write_buffer"`
	// WriteQueue is how many datagrams may wait for a socket's writer;
	// beyond it a send fails and is counted (the transactions retransmit).
	WriteQueue int `config:"write_queue"`
	// BlockingReads makes the readers wait inside recvmmsg (Linux) rather
	// than in Go's netpoller (the default, transport.Options.UDPBlockingReads):
	// with one Go processor per two CPUs the netpoller cost the same or
	// less CPU per call and had the lower p99 latency, and a blocked
	// recvmmsg on Linux 6.18 now and then sleeps on with a datagram queued
	// until the read watchdog wakes it.
	BlockingReads bool `config:"blocking_reads"`
	// RawIO (with BlockingReads, Linux) makes the readers of a socket wait
	// in recvmmsg side by side rather than take turns on the descriptor's
	// read lock, and its senders write side by side
	// (transport.Options.UDPRawIO). Off: it cost more CPU per call in the
	// side-by-side runs.
	RawIO bool `config:"raw_io"`
	// RawWrites (Linux) makes a sender write its datagram with its own raw
	// sendmsg when nothing waits in the socket's queue
	// (transport.Options.UDPRawWrites). On: 4-5 % less CPU per
	// record-routed call, the same per forked call.
	RawWrites bool `config:"raw_writes"`
	// RawReads (Linux, netpoller reads) makes a reader's recvmmsg a raw
	// system call the scheduler does not watch
	// (transport.Options.UDPRawReads). On: a fifth to a quarter of the
	// context switches per call, 3-7 % less CPU per call.
	RawReads bool `config:"raw_reads"`
	// ReadWatchdog is how often a watchdog checks that no socket's readers
	// sleep while a datagram waits, and wakes them (with BlockingReads);
	// 0: off.
	ReadWatchdog time.Duration `config:"read_watchdog" unit:"ms"`

	readBuffer, writeBuffer int64 // ReadBuffer, WriteBuffer parsed
}

func udpDefaults() map[string]any {
	return map[string]any{
		"udp.sockets":        1,
		"udp.readers":        0,
		"udp.batch":          transport.DefaultUDPBatch,
		"udp.read_buffer":    "4MiB",
		"udp.write_buffer":   "4MiB",
		"udp.write_queue":    transport.DefaultUDPWriteQueue,
		"udp.blocking_reads": false,
		"udp.raw_io":         false,
		"udp.raw_writes":     true,
		"udp.raw_reads":      true,
		"udp.read_watchdog":  transport.DefaultUDPReadWatchdog.String(),
	}
}

func (c *Config) validateUDP() []error {
	var errs []error
	s := &c.UDP
	within := func(key string, v, lo, hi int) {
		if v < lo || v > hi {
			errs = append(errs, fmt.Errorf("config: udp.%s = %d: must be within %d..%d", key, v, lo, hi))
		}
	}
	within("sockets", s.Sockets, 1, 256)
	within("readers", s.Readers, 0, 64)
	within("batch", s.Batch, 1, 1024)
	within("write_queue", s.WriteQueue, 1, 1<<20)
	size := func(key, v string, dst *int64) {
		n, err := parseByteSize(v)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("config: udp.%s = %q: %w", key, v, err))
		case n < 4<<10 || n > 1<<30:
			errs = append(errs, fmt.Errorf("config: udp.%s = %q: must be within 4KiB..1GiB", key, v))
		default:
			*dst = n
		}
	}
	size("read_buffer", s.ReadBuffer, &s.readBuffer)
	size("write_buffer", s.WriteBuffer, &s.writeBuffer)
	if s.ReadWatchdog < 0 {
		errs = append(errs, fmt.Errorf("config: udp.read_watchdog = %q: must not be negative (0 turns it off)", s.ReadWatchdog))
	} else if s.ReadWatchdog > 0 && s.ReadWatchdog < time.Millisecond {
		errs = append(errs, fmt.Errorf("config: udp.read_watchdog = %q: at least 1ms (0 turns it off)", s.ReadWatchdog))
	}
	return errs
}

// options fills the UDP settings of the transport.
func (s UDPSection) options(o *transport.Options) {
	o.UDPSockets, o.UDPReaders, o.UDPBatch, o.UDPWriteQueue = s.Sockets, s.Readers, s.Batch, s.WriteQueue
	o.UDPReadBuffer, o.UDPWriteBuffer = int(s.readBuffer), int(s.writeBuffer)
	o.UDPBlockingReads = s.BlockingReads
	o.UDPRawIO = s.RawIO
	o.UDPRawWrites = s.RawWrites
	o.UDPRawReads = s.RawReads
	o.UDPReadWatchdog = s.ReadWatchdog
	if s.ReadWatchdog == 0 {
		o.UDPReadWatchdog = -1
	}
}

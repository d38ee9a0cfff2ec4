package transport

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime"
	"time"

	"github.com/emiago/sipgo/sip"
)

// Defaults of Options. Each is used when the field is left at zero.
const (
	// DefaultMaxMessageSize is tm's max_message_size default: the largest
	// datagram IPv4 can carry, and what sipgo's parser accepts by default.
	DefaultMaxMessageSize = 65535
	// DefaultUDPBatch is how many datagrams one recvmmsg or sendmmsg call
	// moves at most. 32 amortises the system call well past the point where
	// the parse dominates, and keeps a reader's buffers at 2 MiB (32 times
	// max_message_size).
	DefaultUDPBatch = 32
	// DefaultSocketBuffer is asked for as SO_RCVBUF and SO_SNDBUF of UDP
	// sockets, as tm did before: a burst waits in the kernel instead of
	// being dropped while the reader parses. The kernel caps it at
	// net.core.rmem_max / wmem_max (a warning is logged when it does).
	DefaultSocketBuffer = 4 << 20
	// DefaultUDPWriteQueue is how many datagrams may wait for a socket's
	// writer. At a sendmmsg of 32 per wake-up a full queue drains in tens of
	// microseconds; a queue that stays full means the kernel refuses to
	// send, and dropping (UDP semantics; the transaction layer retransmits)
	// beats blocking the goroutine that handles incoming messages.
	DefaultUDPWriteQueue = 2048
	// DefaultTCPLifetime closes a connection after this long without a byte
	// read or written (Kamailio's tcp_connection_lifetime). Kamailio uses
	// 120s, which races with an RFC 5626 §4.4.1 client that sends its CRLF
	// keep-alive every 95-120s; 300s tolerates one lost keep-alive and still
	// reclaims a dead peer's connection within minutes.
	DefaultTCPLifetime = 300 * time.Second
	// DefaultTCPReadTimeout bounds the time from the first byte of a
	// message to its last (Kamailio's tcp_msg_read_timeout is 20s). It is
	// not renewed by progress, so a peer dribbling one byte a second cannot
	// hold a connection and its buffer. A legitimate sender writes a whole
	// message in one or a few segments: 10s is orders of magnitude of slack.
	DefaultTCPReadTimeout = 10 * time.Second
	// DefaultTCPWriteTimeout bounds how long queued bytes may wait for a
	// peer that does not read before its connection is closed (Kamailio's
	// tcp_send_timeout, 10s). Writes never block the caller on a platform
	// with non-blocking writes (all Unix systems): the timeout only limits
	// how long the queue is kept.
	DefaultTCPWriteTimeout = 10 * time.Second
	// DefaultTCPDialTimeout bounds connection set-up. Linux retransmits a SYN
	// after 1s and 3s: 3s leaves room for the answer to one retransmission,
	// and the caller (possibly a reader goroutine) is blocked while it
	// dials, so it must not be long.
	DefaultTCPDialTimeout = 3 * time.Second
	// DefaultTCPMaxConns caps accepted connections (Kamailio's
	// tcp_max_connections is 2048; an IMS P-CSCF serves more clients).
	DefaultTCPMaxConns = 4096
	// DefaultTCPMaxConnsPerIP caps accepted connections from one address: a
	// SBC or a large NAT may put many clients behind one address, a single
	// host needs a handful.
	DefaultTCPMaxConnsPerIP = 256
	// DefaultTCPReadBuffer is the read buffer a connection starts with; it
	// grows to max_message_size while a larger message is read and shrinks
	// back when the connection is between messages. 8 KiB holds a typical
	// INVITE with its SDP, or several smaller messages, per read.
	DefaultTCPReadBuffer = 8 << 10
	// DefaultTCPWriteQueue caps the bytes waiting for one connection whose
	// peer does not read fast enough (Kamailio's tcp_conn_wq_max, which is
	// 32 KiB); beyond it the connection is closed. 256 KiB is some hundred
	// SIP messages on top of what the kernel buffers.
	DefaultTCPWriteQueue = 256 << 10
)

// Options configure a Transport. Zero values take the defaults above; a
// negative limit or timeout disables it.
type Options struct {
	// Handler receives every message read. Required.
	Handler Handler
	// Parser parses every message, once (tm's *tm.Parser: sipgo's with a
	// fast path and tm's header parsers). Its limit should not be below
	// MaxMessageSize. Default: sip.NewParser() with MaxMessageLength =
	// MaxMessageSize.
	Parser MessageParser
	Logger *slog.Logger
	// MaxMessageSize (max_message_size) is the largest message read: UDP
	// read buffers hold it whole, and a stream message beyond it loses its
	// framing.
	MaxMessageSize int

	// UDPBatch is the largest number of datagrams read (recvmmsg) or
	// written (sendmmsg) in one call.
	UDPBatch int
	// UDPSockets is how many sockets serve one UDP address, each with its
	// own reader and writer goroutine, bound with SO_REUSEPORT so that the
	// kernel spreads datagrams over them by source address (Linux only;
	// elsewhere one socket is used and a warning logged). Default 1, no
	// SO_REUSEPORT.
	UDPSockets int
	// UDPReaders is how many goroutines read each UDP socket, each taking
	// its own batches and running the Handler on them: a socket served by
	// one reader uses one CPU however many the machine has (Kamailio's
	// children). Messages of one peer may then be handled out of order
	// (a 180 after its 200), which SIP over UDP allows anyway. Default:
	// GOMAXPROCS, at most 8.
	UDPReaders int
	// UDPBlockingReads (Linux) makes the readers wait inside a blocking
	// recvmmsg instead of in Go's netpoller (a non-blocking recvmmsg that
	// fails with EAGAIN, then epoll), which is what they do by default. With
	// one Go processor per two CPUs (the daemon's default) the netpoller
	// cost the same or less CPU per call, half the context switches and a
	// lower p99 latency; and on Linux 6.18 a blocked recvmmsg now and then
	// sleeps on with a datagram queued until the read watchdog wakes it
	// (UDPReadWatchdog), which the netpoller was never seen to do.
	UDPBlockingReads bool
	// UDPRawIO (Linux, blocking reads) makes the readers call recvmmsg and
	// the senders sendmsg on the descriptor themselves, inside
	// RawConn.Control, instead of through x/net and the net package, whose
	// locks let one reader into the kernel at a time (the others park on
	// the read lock, and each batch hands it on with a goroutine wake-up)
	// and send a busy socket's datagrams through the writer goroutine. Off
	// by default: in the side-by-side runs it cost more CPU per call (raw
	// reads 8-25 %, with twice the context switches: every reader's thread
	// waits in the kernel; raw sends 2-4 % while they were still watched
	// system calls, which UDPRawWrites' are not); see docs/DESIGN.md §9.
	UDPRawIO bool
	// UDPRawWrites (Linux) makes a sender write its datagram itself, with
	// a raw sendmsg (MSG_DONTWAIT) that does not enter the scheduler's
	// system-call state, instead of through the net package, whenever
	// nothing waits in the socket's queue; a full socket buffer still
	// queues it to the writer goroutine. Through the net package each send
	// was a system call the runtime watches: with one Go processor, sysmon
	// took the processor away from a send that lasted a tick and kept
	// polling every 20 µs (its sleeps were a tenth of the proxy's samples
	// in perf). Measured: 4-5 % less CPU per record-routed call, the same
	// per forked call. UDPRawIO implies it.
	UDPRawWrites bool
	// UDPRawReads (Linux, netpoller reads) makes a reader's recvmmsg, which
	// cannot block on the netpoller's non-blocking descriptor, a raw
	// system call (MSG_DONTWAIT) that does not enter the scheduler's
	// system-call state, as UDPRawWrites' sends. Entering it for every
	// batch cost context switches: measured side by side (rr 2000, fork
	// 1500), 2.0 -> 0.4 and 3.4 -> 0.9 per call, and 3-7 % of the CPU per
	// call. Blocking readers (UDPBlockingReads) always enter it: they
	// sleep in the kernel.
	UDPRawReads bool
	// UDPReadWatchdog is how often a watchdog checks that no UDP socket's
	// readers sleep while a datagram waits (udpwatch.go), with
	// UDPBlockingReads only; negative: never.
	UDPReadWatchdog time.Duration
	// UDPReadBuffer and UDPWriteBuffer are the socket buffers asked for.
	UDPReadBuffer  int
	UDPWriteBuffer int
	// UDPWriteQueue is how many datagrams may wait for a socket's writer;
	// beyond it Send fails with ErrQueueFull.
	UDPWriteQueue int

	// TCPLifetime closes a connection idle (nothing read or written) for
	// that long.
	TCPLifetime time.Duration
	// TCPReadTimeout closes a connection whose message has started but is
	// not complete that long after its first byte.
	TCPReadTimeout time.Duration
	// TCPWriteTimeout closes a connection that has had bytes waiting to be
	// written for that long without the peer taking them.
	TCPWriteTimeout time.Duration
	// TCPDialTimeout bounds connecting to a destination.
	TCPDialTimeout time.Duration
	// TCPMaxConns caps the accepted connections; TCPMaxConnsPerIP the
	// accepted connections from one remote address. A connection beyond
	// either is closed at once and counted. Connections the transport dials
	// are not limited: the owner chooses where to send.
	TCPMaxConns      int
	TCPMaxConnsPerIP int
	// TCPReadBuffer is the initial read buffer of a connection.
	TCPReadBuffer int
	// TCPWriteQueue caps the bytes waiting to be written on a connection;
	// beyond it the connection is closed (the peer does not keep up).
	TCPWriteQueue int

	// OnListenerDown is called, once per listener, when a listener stops
	// for good other than by Close (a TCP accept error that is not
	// temporary, a socket closed under it), so that the owner can fail its
	// readiness check. It runs on the listener's goroutine. Err reports the
	// same.
	OnListenerDown func(transport string, addr netip.AddrPort, err error)
	// Trace, when set, sees every message read ("recv", before it is
	// parsed) and every message handed to Send ("send"), as bytes, on the
	// goroutine that reads or sends it (log.sip_trace). data must not be
	// kept.
	Trace func(dir, transport string, local, remote netip.AddrPort, data []byte)
}

func (o Options) withDefaults() (Options, error) {
	if o.Handler == nil {
		return o, errors.New("transport: Options.Handler is required")
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	def(&o.MaxMessageSize, DefaultMaxMessageSize)
	def(&o.UDPBatch, DefaultUDPBatch)
	def(&o.UDPSockets, 1)
	def(&o.UDPReaders, min(runtime.GOMAXPROCS(0), 8))
	def(&o.UDPReadBuffer, DefaultSocketBuffer)
	def(&o.UDPWriteBuffer, DefaultSocketBuffer)
	def(&o.UDPWriteQueue, DefaultUDPWriteQueue)
	defDur(&o.UDPReadWatchdog, DefaultUDPReadWatchdog)
	defDur(&o.TCPLifetime, DefaultTCPLifetime)
	defDur(&o.TCPReadTimeout, DefaultTCPReadTimeout)
	defDur(&o.TCPWriteTimeout, DefaultTCPWriteTimeout)
	defDur(&o.TCPDialTimeout, DefaultTCPDialTimeout)
	def(&o.TCPMaxConns, DefaultTCPMaxConns)
	def(&o.TCPMaxConnsPerIP, DefaultTCPMaxConnsPerIP)
	def(&o.TCPReadBuffer, DefaultTCPReadBuffer)
	def(&o.TCPWriteQueue, DefaultTCPWriteQueue)

	var errs []error
	bad := func(name string, v any, why string) {
		errs = append(errs, fmt.Errorf("transport: %s = %v: %s", name, v, why))
	}
	if o.MaxMessageSize < 256 || o.MaxMessageSize > 1<<20 {
		bad("MaxMessageSize", o.MaxMessageSize, "must be within 256..1048576")
	}
	if o.UDPBatch < 1 || o.UDPBatch > 1024 {
		bad("UDPBatch", o.UDPBatch, "must be within 1..1024")
	}
	if o.UDPReaders < 1 || o.UDPReaders > 64 {
		bad("UDPReaders", o.UDPReaders, "must be within 1..64")
	}
	if o.UDPSockets < 1 || o.UDPSockets > 256 {
		bad("UDPSockets", o.UDPSockets, "must be within 1..256")
	}
	if o.UDPReadBuffer < 0 || o.UDPWriteBuffer < 0 {
		bad("UDPReadBuffer/UDPWriteBuffer", [2]int{o.UDPReadBuffer, o.UDPWriteBuffer}, "must not be negative")
	}
	if o.UDPWriteQueue < 1 {
		bad("UDPWriteQueue", o.UDPWriteQueue, "must be positive")
	}
	if o.TCPReadBuffer < 512 {
		bad("TCPReadBuffer", o.TCPReadBuffer, "must be at least 512")
	}
	if o.Parser == nil {
		sp := sip.NewParser()
		sp.MaxMessageLength = o.MaxMessageSize
		o.Parser = sp
	}
	return o, errors.Join(errs...)
}

// MessageParser parses one whole SIP message; *sip.Parser is one.
type MessageParser interface {
	ParseSIP(data []byte) (sip.Message, error)
}

package transport

import (
	"errors"
	"net/netip"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// Transport names, as in Via and in sip.Message.Transport.
const (
	UDP = "UDP"
	TCP = "TCP"
)

// Message is one message read, handed to the Handler.
type Message struct {
	// Msg is the parsed message; nil when Err is set. It shares no memory
	// with the read buffers: the owner may keep it. Its Transport() and
	// Source() are set ("UDP", "192.0.2.1:5060").
	Msg sip.Message
	// Raw is the message as read, always set: the owner answers an
	// unparsable one from it (tm.RawReply, tm.DiagnoseParseFailure) and
	// checks a parsed one for what the parser forgives (bare LF, control
	// bytes, the case of the method). It lives
	// in a pooled read buffer: the owner must not keep it, or any slice of
	// it, after the Handler returns.
	Raw []byte
	// Err is the parse error (from the sip.Parser, as is, so that
	// errors.Is(Err, sip.ErrMessageTooLarge) and the like work). Over UDP, a
	// datagram longer than MaxMessageSize comes with an error wrapping
	// sip.ErrMessageTooLarge and its first MaxMessageSize+1 bytes as Raw.
	Err error
	// Transport is UDP or TCP.
	Transport string
	// Local is the address the message arrived at: the socket's address,
	// or for a socket bound to a wildcard address the destination address
	// of the datagram (IP_PKTINFO, Linux and BSDs) with the socket's port.
	// Remote is where it came from (for UDP the source address: RFC 3581
	// received/rport). IPv4-mapped IPv6 addresses are unmapped.
	Local, Remote netip.AddrPort
	// Congested is set on the datagrams of a full read batch taken while
	// the socket's queue held more than half its buffer (Linux): the
	// owner is behind its offered load and may refuse new work
	// (tm.Config.ShedInvites).
	Congested bool
	// Conn is the TCP connection the message came on; nil for UDP. Answers
	// to a request go back on it (RFC 3261 §18.2.2): Dest{Conn: m.Conn}.
	Conn *Conn
}

// Handler is called with every message read, on the goroutine that read
// it: a UDP socket's reader or a TCP connection's reader. No goroutine is
// started per message. While it runs, that socket or connection is not
// read, so it must not block for long: a handler that has slow work to do
// hands it to a goroutine of its own. It may call Send. A panic in it is
// recovered and logged, and the reader goes on.
type Handler func(m Message)

// Dest says where Send sends.
type Dest struct {
	// Transport is UDP or TCP (any case).
	Transport string
	// Addr is the remote address. The transport never resolves names: the
	// owner decides the address (a response to a request without a usable
	// connection goes to the request's source, received/rport, never to a
	// host read from a Via).
	Addr netip.AddrPort
	// Conn, for TCP, is the connection to send on when it is still open: the
	// one a request came on, for its responses (RFC 3261 §18.2.2).
	// Otherwise the message goes over an open connection to Addr, accepted
	// or dialed, and failing that over a new one dialed to Addr.
	Conn *Conn
	// Local, for UDP, is the local address to send from: the Local of the
	// request being answered, so the reply leaves from the address the
	// peer talked to. Zero: the first UDP socket of Addr's family. For TCP,
	// when set to a specific IP, a new connection is dialed from that IP
	// (any port).
	Local netip.AddrPort
	// NoDial, for TCP, fails the send with ErrNoConnection instead of
	// dialing when no connection is open.
	NoDial bool
}

var (
	// ErrClosed: the transport is closed.
	ErrClosed = errors.New("transport: closed")
	// ErrConnClosed: the connection is closed.
	ErrConnClosed = errors.New("transport: connection closed")
	// ErrNoConnection: Dest.NoDial was set and no connection was open.
	ErrNoConnection = errors.New("transport: no connection to destination")
	// ErrNoSocket: no UDP socket can send to the destination from the
	// requested local address (or of the destination's address family).
	ErrNoSocket = errors.New("transport: no socket to send from")
	// ErrQueueFull: the UDP socket's write queue is full; the datagram is
	// dropped.
	ErrQueueFull = errors.New("transport: write queue full")
	// ErrTooLarge: the message does not fit a datagram.
	ErrTooLarge = errors.New("transport: message too large for UDP")
	// ErrBadDest: Dest names no transport this package serves, or no
	// address.
	ErrBadDest = errors.New("transport: bad destination")
	// ErrReadTimeout: a TCP message did not complete within TCPReadTimeout.
	ErrReadTimeout = errors.New("transport: message not complete within read timeout")
	// ErrIdle: a TCP connection was idle for TCPLifetime.
	ErrIdle = errors.New("transport: connection idle for its lifetime")
	// ErrWriteQueueFull: a TCP connection had more than TCPWriteQueue bytes
	// waiting for its peer.
	ErrWriteQueueFull = errors.New("transport: connection write queue full")
)

// unmap strips the IPv4-in-IPv6 form, so that one peer has one key.
func unmap(ap netip.AddrPort) netip.AddrPort {
	if ap.Addr().Is4In6() {
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	return ap
}

// transportOf reads Dest.Transport.
func transportOf(s string) string {
	switch {
	case s == UDP || strings.EqualFold(s, UDP):
		return UDP
	case s == TCP || strings.EqualFold(s, TCP):
		return TCP
	}
	return ""
}

// Package transport is tm's own SIP transport layer (RFC 3261 §18) for UDP
// and TCP, replacing sipgo's general-purpose one: sipgo stays the message
// model and parser.
//
// # What it costs
//
// Per message: one read system call shared by a batch (UDP, recvmmsg
// through golang.org/x/net), one parse with the owner's *sip.Parser, one
// call of the Handler on the reading goroutine, one write system call shared
// by a batch (UDP, sendmmsg). No goroutine is started per message, the read
// buffers are reused (UDP: per socket; TCP: pooled per connection, grown to
// MaxMessageSize only while a large message is read), and nothing is copied
// between the read and the parse.
//
// # Goroutines
//
// A UDP socket has one reader and one writer goroutine (Options.UDPSockets
// sockets per address with SO_REUSEPORT on Linux, each with its pair). A
// TCP listener has an accept goroutine; a TCP connection a reader, and a
// flushing goroutine only while its peer is slower than what is written to
// it. Close stops them all and waits for them.
//
// # Receiving
//
// The Handler runs inline, on the goroutine that read the message: while it
// runs, that socket or connection is not read (see Handler). It gets a
// Message: the parsed sip.Message, or, when the bytes were framed but did
// not parse, the parse error and the raw bytes, so that the owner can answer
// 400 (tm.RawReply, tm.DiagnoseParseFailure) on the same connection. Raw
// lives in a reused buffer and must not be kept after the Handler returns.
//
// UDP read buffers hold MaxMessageSize+1 bytes: a datagram up to
// MaxMessageSize is read whole, a longer one is handed up with an error
// wrapping sip.ErrMessageTooLarge (answer 513). Datagrams of only CR, LF or
// NUL are keep-alives and dropped. On a socket bound to a wildcard address
// the destination address of each datagram is read (IP_PKTINFO), so
// Message.Local is the address the peer talked to, and a reply sent with
// Dest.Local set to it leaves from that address.
//
// TCP is framed per RFC 3261 §18.3: start line and headers up to the empty
// line, then exactly Content-Length bytes (any case, compact form l, folded,
// with spaces). CRLFs between messages are skipped (§7.5); a CRLFCRLF ping
// is answered with a CRLF pong (RFC 5626 §3.5.1). A message whose framing is
// intact but whose content does not parse is handed up with its error and
// the connection stays open: the other calls multiplexed on it go on. Only
// lost framing closes the connection: no end of headers within
// MaxMessageSize, a missing, malformed or conflicting Content-Length, or a
// message longer than MaxMessageSize.
//
// # TCP limits and timers
//
// A connection is closed when nothing was read or written on it for
// TCPLifetime, when a message takes longer than TCPReadTimeout from its
// first byte to its last (a peer sending a byte a second cannot hold a
// connection), and when its peer leaves more than TCPWriteQueue bytes
// unread or takes nothing for TCPWriteTimeout. Accepted connections beyond
// TCPMaxConns, or beyond TCPMaxConnsPerIP from one address, are closed at
// once and counted. Temporary accept errors (EMFILE, ...) are retried with a
// backoff of 5ms doubling to 1s; a listener that stops for good is reported
// through Options.OnListenerDown and Err, so that readiness can fail.
//
// # Sending
//
// Send takes the bytes of a message and a Dest: transport, remote IP
// address and port, and for a response the Conn of its request (TCP) or
// the Local address it arrived at (UDP). The package never resolves names.
// UDP datagrams are queued to the socket's writer, which sends what is
// queued in one sendmmsg and does not wait when idle. TCP bytes go on the
// given connection while it is open (§18.2.2), else on any open connection
// to the address, accepted or dialed (§18.1), else on a new one dialed with
// TCPDialTimeout; they are written without blocking and queued for a slow
// peer, so a peer that never reads never blocks the sender.
//
// # Observing
//
// Stats counts messages and bytes per transport, parse and framing
// failures, keep-alives, connections open, accepted, dialed and refused,
// accept errors, and the sizes of the read and write batches. Per-message
// problems a peer can cause at will are logged at most once a second per
// kind, with the count of those not logged.
package transport

package transport

import (
	"bytes"
	"errors"
	"fmt"
)

// Framing of SIP over a stream (RFC 3261 §18.3): a message is its start line
// and header lines up to the empty line, then exactly Content-Length bytes
// of body. Content-Length must be present (§18.3, §20.14); between messages
// a peer may send CRLFs, a CRLFCRLF being a keep-alive ping that wants a
// CRLF pong (RFC 5626 §3.5.1), and CRLFs before a start line are ignored
// (§7.5).
//
// The framer only finds message boundaries; the parse of the message is
// separate, so a message whose framing is intact but whose content is not
// valid SIP does not cost the connection its other messages.

// ErrFraming is wrapped by every error that means the boundary of the next
// message cannot be found: the connection is closed.
var ErrFraming = errors.New("stream framing lost")

var (
	errNoHeaderEnd      = fmt.Errorf("%w: no end of headers within max_message_size", ErrFraming)
	errNoContentLength  = fmt.Errorf("%w: no Content-Length (RFC 3261 §18.3)", ErrFraming)
	errBadContentLength = fmt.Errorf("%w: malformed Content-Length", ErrFraming)
	errTwoLengths       = fmt.Errorf("%w: conflicting Content-Length values", ErrFraming)
	errTooLarge         = fmt.Errorf("%w: message larger than max_message_size", ErrFraming)
)

type frameKind uint8

const (
	// frameMore: the bytes given are the beginning of a message (or
	// nothing); read more.
	frameMore frameKind = iota
	// frameSkip: n bytes of CR and LF between messages are consumed; pong
	// is set when they completed a CRLFCRLF ping.
	frameSkip
	// frameMessage: the first n bytes are one message.
	frameMessage
	// frameBroken: the framing is lost (err); nothing more can be read.
	frameBroken
)

// framer finds message boundaries in a stream. next is given the bytes of
// the stream from the current position: the framer remembers how far it got
// into the current message, so a message arriving a byte at a time costs
// linear, not quadratic, time.
type framer struct {
	max int
	// started: the current message has begun (a byte other than CR or LF
	// was seen since the last message).
	started bool
	// scanned: how far the search for the end of the headers has looked,
	// from the message's first byte.
	scanned int
	// total: the length of the message once its headers are complete.
	total int
	// ka: how much of a CRLFCRLF ping has been seen between messages.
	ka uint8
	// err is set for good once the framing is lost.
	err error
}

func (f *framer) inMessage() bool { return f.started }

// next frames data, the unconsumed bytes of the stream: after frameSkip
// and frameMessage the caller drops the first n bytes and calls again.
func (f *framer) next(data []byte) (kind frameKind, n int, pong bool, err error) {
	if f.err != nil {
		return frameBroken, 0, false, f.err
	}
	if !f.started {
		i := 0
		for ; i < len(data); i++ {
			c := data[i]
			if c != '\r' && c != '\n' {
				break
			}
			// Match CR LF CR LF; a byte that breaks the pattern starts it
			// again.
			switch {
			case c == '\r' && (f.ka == 0 || f.ka == 2):
				f.ka++
			case c == '\n' && (f.ka == 1 || f.ka == 3):
				f.ka++
			case c == '\r':
				f.ka = 1
			default:
				f.ka = 0
			}
			if f.ka == 4 {
				f.ka = 0
				return frameSkip, i + 1, true, nil
			}
		}
		if i > 0 {
			return frameSkip, i, false, nil
		}
		if len(data) == 0 {
			return frameMore, 0, false, nil
		}
		f.started, f.ka = true, 0
	}
	if f.total == 0 {
		end := f.headerEnd(data)
		if end < 0 {
			if len(data) > f.max {
				return f.fail(errNoHeaderEnd)
			}
			return frameMore, 0, false, nil
		}
		if end > f.max {
			return f.fail(errNoHeaderEnd)
		}
		cl, err := contentLength(data[:end], f.max)
		if err != nil {
			return f.fail(err)
		}
		if cl > f.max-end {
			return f.fail(errTooLarge)
		}
		f.total = end + cl
	}
	if len(data) < f.total {
		return frameMore, 0, false, nil
	}
	n = f.total
	f.started, f.scanned, f.total = false, 0, 0
	return frameMessage, n, false, nil
}

func (f *framer) fail(err error) (frameKind, int, bool, error) {
	f.err = err
	return frameBroken, 0, false, err
}

// headerEnd returns the length of the start line and headers including the
// empty line that ends them, or -1 when that line has not arrived. A line
// ends at LF, with or without CR before it: a message with bare LFs keeps
// its framing, and its parse fails on its own (sipgo wants CRLF), to be
// answered with 400 like any other bad message.
func (f *framer) headerEnd(data []byte) int {
	i := f.scanned
	for {
		j := bytes.IndexByte(data[i:], '\n')
		if j < 0 {
			f.scanned = len(data)
			return -1
		}
		p := i + j
		if p+1 >= len(data) {
			f.scanned = p
			return -1
		}
		switch data[p+1] {
		case '\n':
			return p + 2
		case '\r':
			if p+2 >= len(data) {
				f.scanned = p
				return -1
			}
			if data[p+2] == '\n' {
				return p + 3
			}
		}
		i = p + 1
	}
}

// contentLength reads Content-Length (or its compact form l, any case) from
// the start line and headers in head, with folded values. Every occurrence
// must carry the same value. A value above max is reported as max+1.
func contentLength(head []byte, max int) (int, error) {
	// Skip the start line.
	nl := bytes.IndexByte(head, '\n')
	if nl < 0 {
		return 0, errNoContentLength
	}
	p := head[nl+1:]
	found, value := false, 0
	for len(p) > 0 {
		var line []byte
		line, p = cutLine(p)
		if len(line) == 0 {
			break
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || line[0] == ' ' || line[0] == '\t' {
			continue // a continuation of another header, or not a header
		}
		name := trimLWS(line[:colon])
		if !isContentLength(name) {
			continue
		}
		// The value, and the continuation lines of a folded one.
		var ls lengthScan
		ok := ls.feed(line[colon+1:], max)
		for ok && len(p) > 0 && (p[0] == ' ' || p[0] == '\t') {
			var cont []byte
			cont, p = cutLine(p)
			ok = ls.feed(cont, max)
		}
		if !ok || ls.state == 0 {
			return 0, errBadContentLength
		}
		n := min(ls.n, max+1)
		if found && n != value {
			return 0, errTwoLengths
		}
		found, value = true, n
	}
	if !found {
		return 0, errNoContentLength
	}
	return value, nil
}

// cutLine splits off a line ending in LF, dropping the LF and a CR before it.
func cutLine(p []byte) (line, rest []byte) {
	i := bytes.IndexByte(p, '\n')
	if i < 0 {
		line, rest = p, nil
	} else {
		line, rest = p[:i], p[i+1:]
	}
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	return line, rest
}

func trimLWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

func isContentLength(name []byte) bool {
	if len(name) == 1 {
		return name[0]|0x20 == 'l'
	}
	return len(name) == len("content-length") && bytes.EqualFold(name, []byte("content-length"))
}

// lengthScan reads 1*DIGIT (§20.14) with LWS around it, possibly over
// several folded lines, saturating above max.
type lengthScan struct {
	state uint8 // 0 before the digits, 1 in them, 2 after them
	n     int
}

func (l *lengthScan) feed(v []byte, max int) bool {
	for _, c := range v {
		switch {
		case c == ' ' || c == '\t':
			if l.state == 1 {
				l.state = 2
			}
		case c >= '0' && c <= '9':
			if l.state == 2 {
				return false
			}
			l.state = 1
			if l.n <= max {
				l.n = l.n*10 + int(c-'0')
			}
		default:
			return false
		}
	}
	return true
}

// stream is the read side of a connection: its buffer and framer. The
// connection reads into space() and reports with wrote; next hands out
// what the framer finds, as slices of the buffer that stay valid until the
// next call to space.
type stream struct {
	fr    framer
	buf   *[]byte
	r, w  int
	small *bufPool
	big   *bufPool
}

func newStream(max int, small, big *bufPool) *stream {
	return &stream{fr: framer{max: max}, buf: small.get(), small: small, big: big}
}

// space returns where the next read goes: the free end of the buffer,
// after moving the unconsumed bytes to its front or growing it to hold a
// whole message.
func (s *stream) space() []byte {
	if s.r == s.w && len(*s.buf) > s.small.size {
		// Between messages: give the large buffer back. Not earlier: the
		// last frame handed out lives in it until now.
		s.big.put(s.buf)
		s.buf = s.small.get()
		s.r, s.w = 0, 0
	}
	b := *s.buf
	if s.r > 0 && (s.w == len(b) || len(b)-s.w < 512) {
		copy(b, b[s.r:s.w])
		s.w -= s.r
		s.r = 0
	}
	if s.w == len(b) && len(b) < s.big.size {
		nb := s.big.get()
		copy(*nb, b[:s.w])
		s.small.put(s.buf)
		s.buf = nb
		b = *nb
	}
	return b[s.w:]
}

func (s *stream) wrote(n int) { s.w += n }

// next returns the next event of the framer on the buffered bytes.
func (s *stream) next() (kind frameKind, frame []byte, pong bool, err error) {
	kind, n, pong, err := s.fr.next((*s.buf)[s.r:s.w])
	switch kind {
	case frameSkip:
		s.r += n
	case frameMessage:
		frame = (*s.buf)[s.r : s.r+n : s.r+n]
		s.r += n
	}
	if s.r == s.w {
		s.r, s.w = 0, 0
	}
	return kind, frame, pong, err
}

// buffered is how many bytes are read but not consumed.
func (s *stream) buffered() int { return s.w - s.r }

func (s *stream) release() {
	if s.buf == nil {
		return
	}
	if len(*s.buf) > s.small.size {
		s.big.put(s.buf)
	} else {
		s.small.put(s.buf)
	}
	s.buf = nil
}

package tm

import (
	"bytes"
	"strconv"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// Parser parses the messages the transports read: sipgo's parser, with a
// fast path for the plain messages real traffic is made of. sipgo turns
// the value of every header into a string of its own (a third of the
// allocations of a relayed call, issue 14); the fast path turns the whole
// header block into one string and hands each header parser a slice of it.
// The header parsers, the message values built and every error are
// sipgo's: anything the fast path does not take as plain (folded lines, a
// comma list in a header sipgo splits, a start line or Content-Length out
// of the ordinary) goes to sipgo's parser whole, and a test checks that
// both give the same message wherever the fast path answers.
type Parser struct {
	sip     *sip.Parser
	headers map[string]sip.HeaderParser
	max     int // sipgo's limit; longer messages are its to refuse
}

// NewParser returns tm's parser: sipgo's, with tm's header parsers (see
// headerParsers) and the fast path, for messages of at most maxLength
// bytes (0: sipgo's default). It is safe for concurrent use.
func NewParser(maxLength int) *Parser {
	m := headerParsers()
	sp := sip.NewParser(sip.WithHeadersParsers(m))
	if maxLength > 0 {
		sp.MaxMessageLength = maxLength
	}
	return &Parser{sip: sp, headers: m, max: sp.MaxMessageLength}
}

// ParseSIP parses one whole message (a datagram, or a frame cut from a
// stream by its Content-Length).
func (p *Parser) ParseSIP(data []byte) (sip.Message, error) {
	if msg := p.fast(data); msg != nil {
		return msg, nil
	}
	return p.sip.ParseSIP(data)
}

// fast parses a plain message, or returns nil for sipgo to do it.
func (p *Parser) fast(data []byte) sip.Message {
	if len(data) > p.max {
		return nil // sipgo's ErrMessageTooLarge
	}
	end := plainHead(data)
	if end < 0 {
		return nil
	}
	hs := string(data[:end+2]) // the one copy: headers keep slices of it
	nl := strings.Index(hs, "\r\n")
	msg := startLine(hs[:nl])
	if msg == nil {
		return nil
	}
	var buf [32]byte
	length := -1
	for rest := hs[nl+2:]; rest != ""; {
		nl := strings.Index(rest, "\r\n")
		line := rest[:nl]
		rest = rest[nl+2:]
		colon := strings.IndexByte(line, ':')
		if colon < 0 {
			return nil
		}
		name := strings.TrimSpace(line[:colon])
		value := strings.TrimSpace(line[colon+1:])
		lower, ok := lowerName(buf[:0], name)
		parse, known := p.headers[string(lower)]
		if !ok || !known {
			msg.AppendHeader(sip.NewHeader(name, value))
			continue
		}
		h, err := parse(lower, value)
		if err != nil {
			return nil // a comma list, or sipgo's error to give
		}
		if cl, ok := h.(*sip.ContentLengthHeader); ok {
			length = int(*cl)
		}
		msg.AppendHeader(h)
	}
	body := data[end+4:]
	switch {
	case length < 0:
		length = len(body) // as sipgo: the rest of a datagram
	case length != len(body):
		return nil // sipgo says what is wrong, or keeps what it keeps
	}
	if length > 0 {
		msg.SetBody(bytes.Clone(body))
	}
	return msg
}

// plainHead returns where the empty line that ends the headers starts, or
// -1 when the head is not plain: a CR or LF alone, or a folded line
// (sipgo's errors, and its unfolding, are its own). One pass.
func plainHead(data []byte) int {
	for i := 0; i < len(data); i++ {
		switch data[i] {
		case '\n':
			return -1 // not after a CR
		case '\r':
			if i+1 >= len(data) || data[i+1] != '\n' {
				return -1
			}
			if i+2 < len(data) {
				switch data[i+2] {
				case ' ', '\t':
					return -1
				case '\r':
					if i+3 < len(data) && data[i+3] == '\n' && i > 0 {
						return i
					}
				}
			}
			i++
		}
	}
	return -1
}

// startLine builds the message of a plain start line: "METHOD URI
// SIP/2.0" or "SIP/2.0 CODE reason"; nil for anything else.
func startLine(s string) sip.Message {
	a, rest, ok := strings.Cut(s, " ")
	if !ok {
		return nil
	}
	b, c, ok := strings.Cut(rest, " ")
	if !ok {
		return nil
	}
	if a == "SIP/2.0" {
		if len(b) != 3 || (len(c) >= 3 && strings.IndexByte(c, ' ') < 0 && sip.UriIsSIP(c[:3])) {
			return nil // sipgo takes a one-word reason like "sip..." for a request line
		}
		code, err := strconv.Atoi(b)
		if err != nil || code < 100 || code > 699 {
			return nil
		}
		res := sip.NewResponse(code, c)
		res.SipVersion = a
		return res
	}
	if c != "SIP/2.0" || a == "" || strings.IndexByte(b, ' ') >= 0 {
		return nil
	}
	for i := 0; i < len(a); i++ {
		if a[i] < 'A' || a[i] > 'Z' {
			return nil // sipgo upper-cases methods; a plain one already is
		}
	}
	var u sip.Uri
	if err := sip.ParseUri(b, &u); err != nil || u.Wildcard {
		return nil
	}
	req := sip.NewRequest(sip.RequestMethod(a), u)
	req.SipVersion = c
	return req
}

// compactNames are the compact header names sipgo's parser looks up by
// their long names.
var compactNames = [256]string{'t': "to", 'f': "from", 'v': "via", 'i': "call-id", 'l': "content-length",
	'c': "content-type", 'm': "contact"}

// lowerName writes the name a header parser is looked up by into buf: the
// long name of a compact form, else the name in ASCII lower case. false
// when it does not fit buf (no parser has so long a name).
func lowerName(buf []byte, name string) ([]byte, bool) {
	if len(name) == 1 {
		c := name[0] | 0x20
		if long := compactNames[c]; long != "" {
			return append(buf, long...), true
		}
	}
	if len(name) > cap(buf) {
		return nil, false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf = append(buf, c)
	}
	return buf, true
}

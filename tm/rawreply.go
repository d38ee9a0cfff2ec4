package tm

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// sipgo drops a datagram it cannot parse. These functions let the transport
// read filter, which sees the raw bytes first, answer such a request with a
// 400 (or 513 when too large) as RFC 3261 §16.3 step 1 and §18.3 ask,
// working only from the raw text.

// rawMaxReason bounds the reason phrase: it may carry text derived from the
// sender's bytes and must not turn our answer into an amplifier.
const rawMaxReason = 100

const (
	rawVia = iota
	rawFrom
	rawTo
	rawCallID
	rawCSeq
	rawKinds
	rawNone = rawKinds
)

var rawHeaderNames = [rawKinds]string{"Via", "From", "To", "Call-ID", "CSeq"}

// rawHeaders is what the answer needs from the raw header section: every
// Via value in order, and the first From, To, Call-ID and CSeq value.
type rawHeaders struct {
	vias   [][]byte
	single [rawKinds][]byte
	seen   [rawKinds]bool
}

// rawNextLine splits off one line. CRLF, a lone LF and a lone CR all end a
// line, so that no CR or LF can get from a copied value into our answer.
func rawNextLine(p []byte) (line, rest []byte) {
	i := bytes.IndexAny(p, "\r\n")
	if i < 0 {
		return p, nil
	}
	if p[i] == '\r' && i+1 < len(p) && p[i+1] == '\n' {
		return p[:i], p[i+2:]
	}
	return p[:i], p[i+1:]
}

func rawTrim(b []byte) []byte {
	return bytes.Trim(b, " \t")
}

func rawKindOf(name []byte) int {
	switch {
	case len(name) == 1:
		switch name[0] | 0x20 {
		case 'v':
			return rawVia
		case 'f':
			return rawFrom
		case 't':
			return rawTo
		case 'i':
			return rawCallID
		}
	case bytes.EqualFold(name, []byte("Via")):
		return rawVia
	case bytes.EqualFold(name, []byte("From")):
		return rawFrom
	case bytes.EqualFold(name, []byte("To")):
		return rawTo
	case bytes.EqualFold(name, []byte("Call-ID")):
		return rawCallID
	case bytes.EqualFold(name, []byte("CSeq")):
		return rawCSeq
	}
	return rawNone
}

// rawTokenChar is RFC 3261 §25.1 token.
func rawTokenChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("-.!%*_+`'~", c) >= 0
}

// rawRequestLine reports whether line starts like a request: a method token
// followed by a space. A status line starts with "SIP/", which is not a
// token, so responses never qualify and are never answered (§8.2).
func rawRequestLine(line []byte) (method []byte, ok bool) {
	sp := bytes.IndexByte(line, ' ')
	if sp <= 0 {
		return nil, false
	}
	for _, c := range line[:sp] {
		if !rawTokenChar(c) {
			return nil, false
		}
	}
	return line[:sp], true
}

// rawScan reads the start line and header section of data. ok is false when
// data does not start like a request.
func rawScan(data []byte) (hs rawHeaders, method []byte, ok bool) {
	p := data
	// Stream transports may put CRLFs before the start line (§7.5).
	for len(p) > 0 && (p[0] == '\r' || p[0] == '\n') {
		p = p[1:]
	}
	line, p := rawNextLine(p)
	if method, ok = rawRequestLine(line); !ok {
		return hs, nil, false
	}
	// current is the value a folded continuation line extends; -1 when the
	// previous line was not one of ours.
	current := -1
	for first := true; len(p) > 0; first = false {
		line, p = rawNextLine(p)
		if len(line) == 0 {
			break
		}
		// Like sipgo, read an indented first header line as a header: it
		// has nothing to continue.
		if !first && (line[0] == ' ' || line[0] == '\t') {
			if current >= 0 {
				if cont := rawTrim(line); len(cont) > 0 {
					dst := hs.valueRef(current)
					if len(*dst) > 0 {
						*dst = append(*dst, ' ')
					}
					*dst = append(*dst, cont...)
				}
			}
			continue
		}
		current = -1
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			continue
		}
		// Names are trimmed as sipgo trims them, so that whatever it
		// accepted as a Via we find too.
		kind := rawKindOf(bytes.TrimSpace(line[:colon]))
		if kind == rawNone {
			continue
		}
		// Copies, so that folding can append without touching data.
		value := append([]byte(nil), rawTrim(line[colon+1:])...)
		if kind == rawVia {
			hs.vias = append(hs.vias, value)
			current = rawVia
			continue
		}
		if hs.seen[kind] {
			continue
		}
		hs.seen[kind] = true
		hs.single[kind] = value
		current = kind
	}
	return hs, method, true
}

func (hs *rawHeaders) valueRef(kind int) *[]byte {
	if kind == rawVia {
		return &hs.vias[len(hs.vias)-1]
	}
	return &hs.single[kind]
}

// rawCSeqMethod returns the method of a CSeq value, its last word.
func rawCSeqMethod(cseq []byte) []byte {
	fields := bytes.Fields(cseq)
	if len(fields) == 0 {
		return nil
	}
	return fields[len(fields)-1]
}

// rawSanitize keeps printable ASCII only, at most rawMaxReason bytes.
func rawSanitize(s string) string {
	var b strings.Builder
	for i := 0; i < len(s) && b.Len() < rawMaxReason; i++ {
		if c := s[i]; c >= 0x20 && c < 0x7f {
			b.WriteByte(c)
		}
	}
	return strings.TrimSpace(b.String())
}

func rawDefaultReason(code int) string {
	switch code {
	case sip.StatusBadRequest:
		return "Bad Request"
	case sip.StatusRequestEntityTooLarge:
		return "Request Entity Too Large"
	case sip.StatusMessageTooLarge:
		return "Message Too Large"
	case sip.StatusServiceUnavailable:
		return "Service Unavailable"
	case sip.StatusInternalServerError:
		return "Server Internal Error"
	}
	return "Error"
}

// RawReply builds, from the raw bytes of a request that sipgo could not
// parse (or that is too large), the text of a response with the given code
// and reason: status line, then the Via (all, in order), From, To, Call-ID
// and CSeq values copied from the raw text under their full names, then
// Content-Length: 0.
//
// Header names match case-insensitively and in compact form; folded lines
// are unfolded; a CR, LF or CRLF ends a line, so LF-only messages are read
// too. No To tag is added: the raw To value may be too broken to extend.
//
// It returns nil when it cannot or must not answer (§8.2): data is not a
// request (a response, or garbage), it is an ACK (§17: never answered), it
// lacks one of Via, From, To, Call-ID and CSeq, or code is not 100..699.
// The caller then drops the message. It never panics.
func RawReply(data []byte, code int, reason string) []byte {
	if code < 100 || code > 699 {
		return nil
	}
	hs, method, ok := rawScan(data)
	if !ok || strings.EqualFold(string(method), "ACK") {
		return nil
	}
	if len(hs.vias) == 0 {
		return nil
	}
	for kind := rawFrom; kind < rawKinds; kind++ {
		if len(hs.single[kind]) == 0 {
			return nil
		}
	}
	if strings.EqualFold(string(rawCSeqMethod(hs.single[rawCSeq])), "ACK") {
		return nil
	}
	if reason = rawSanitize(reason); reason == "" {
		reason = rawDefaultReason(code)
	}

	size := len("SIP/2.0 000 \r\nContent-Length: 0\r\n\r\n") + len(reason)
	for _, v := range hs.vias {
		size += len("Via: \r\n") + len(v)
	}
	for kind := rawFrom; kind < rawKinds; kind++ {
		size += len(rawHeaderNames[kind]) + len(": \r\n") + len(hs.single[kind])
	}
	out := make([]byte, 0, size)
	out = append(out, "SIP/2.0 "...)
	out = strconv.AppendInt(out, int64(code), 10)
	out = append(out, ' ')
	out = append(out, reason...)
	out = append(out, "\r\n"...)
	for _, v := range hs.vias {
		out = append(out, "Via: "...)
		out = append(out, v...)
		out = append(out, "\r\n"...)
	}
	for kind := rawFrom; kind < rawKinds; kind++ {
		out = append(out, rawHeaderNames[kind]...)
		out = append(out, ": "...)
		out = append(out, hs.single[kind]...)
		out = append(out, "\r\n"...)
	}
	out = append(out, "Content-Length: 0\r\n\r\n"...)
	return out
}

// rawVia is the part of the top Via that says where answers go.
type rawViaHop struct {
	transport string
	host      string
	port      int // 0 when absent
	rport     bool
}

// rawParseVia reads the first value of a Via header:
// SIP / 2.0 / transport SP host [":" port] *(";" param). LWS around the
// slashes is allowed (§25.1).
func rawParseVia(value []byte) (hop rawViaHop, ok bool) {
	if comma := bytes.IndexByte(value, ','); comma >= 0 {
		value = value[:comma]
	}
	sentBy, params, _ := bytes.Cut(value, []byte(";"))
	slash := bytes.LastIndexByte(sentBy, '/')
	if slash < 0 {
		return hop, false
	}
	fields := bytes.Fields(sentBy[slash+1:])
	if len(fields) != 2 {
		return hop, false
	}
	hop.transport = string(fields[0])
	hostPort := string(fields[1])
	var portText string
	var hasPort bool
	if strings.HasPrefix(hostPort, "[") {
		end := strings.IndexByte(hostPort, ']')
		if end < 0 {
			return hop, false
		}
		hop.host = hostPort[1:end]
		if rest := hostPort[end+1:]; rest != "" {
			if rest[0] != ':' {
				return hop, false
			}
			portText, hasPort = rest[1:], true
		}
	} else {
		hop.host, portText, hasPort = strings.Cut(hostPort, ":")
	}
	if hop.host == "" {
		return hop, false
	}
	if hasPort {
		port, err := strconv.Atoi(portText)
		if err != nil || port < 1 || port > 65535 {
			return hop, false
		}
		hop.port = port
	}
	for len(params) > 0 {
		var param []byte
		param, params, _ = bytes.Cut(params, []byte(";"))
		name, _, _ := bytes.Cut(param, []byte("="))
		if bytes.EqualFold(rawTrim(name), []byte("rport")) {
			hop.rport = true
		}
	}
	return hop, true
}

// rawReplyDestination returns where the answer to the raw request in data,
// received from src (host:port), goes (RFC 3261 §18.2.2, RFC 3581).
//
// Over UDP it is src when the top Via has rport or names a host other than
// src's address, and the Via sent-by (port 5060 when absent) otherwise. A
// differing host gets src's port too, not the sent-by port §18.2.2 names:
// behind a NAT only the source port reaches the sender. Over other
// transports, and whenever the Via cannot be read, it is src: answering
// where the bytes came from is always safe, which matters as these bytes are
// unvalidated. maddr is ignored for the same reason.
func rawReplyDestination(data []byte, src string) string {
	hs, _, ok := rawScan(data)
	if !ok || len(hs.vias) == 0 {
		return src
	}
	hop, ok := rawParseVia(hs.vias[0])
	if !ok || !strings.EqualFold(hop.transport, "UDP") || hop.rport {
		return src
	}
	srcHost, _, err := net.SplitHostPort(src)
	if err != nil {
		return src
	}
	viaAddr, err1 := netip.ParseAddr(hop.host)
	srcAddr, err2 := netip.ParseAddr(srcHost)
	if err1 != nil || err2 != nil || viaAddr.Unmap() != srcAddr.Unmap() {
		return src
	}
	port := hop.port
	if port == 0 {
		port = sip.DefaultUdpPort
	}
	return net.JoinHostPort(srcHost, strconv.Itoa(port))
}

// parseFailureReason turns an error of sip.ParseMessage into a reason phrase
// for the answer, e.g. "Bad Request - malformed Via header": printable ASCII,
// no CR or LF, at most 100 bytes. DiagnoseParseFailure is more precise when
// the raw bytes are at hand.
func parseFailureReason(err error) string {
	var numErr *strconv.NumError
	switch {
	case err == nil:
		return "Bad Request"
	case errors.Is(err, sip.ErrMessageTooLarge):
		return "Message Too Large"
	case errors.Is(err, sip.ErrParseReadBodyIncomplete):
		return "Bad Request - body shorter than Content-Length"
	case errors.Is(err, sip.ErrParseLineNoCRLF), errors.Is(err, sip.ErrParseEOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "Bad Request - truncated message or line not ending in CRLF"
	case errors.As(err, &numErr):
		// sipgo returns strconv's error as is for Max-Forwards,
		// Content-Length and the CSeq number, without naming the header.
		return "Bad Request - malformed number in header"
	}
	msg := err.Error()
	switch {
	case strings.Contains(msg, "is not a SIP message"), strings.Contains(msg, "wildcard URI '*' not permitted in request line"):
		return "Bad Request - malformed Request-Line"
	case strings.Contains(msg, "Via header"):
		return "Bad Request - malformed Via header"
	case strings.Contains(msg, "CSeq"):
		return "Bad Request - malformed CSeq header"
	case strings.Contains(msg, "Call-ID"):
		return "Bad Request - malformed Call-ID header"
	case strings.Contains(msg, "field name with no value"):
		return "Bad Request - header line without colon"
	}
	return rawSanitize("Bad Request - " + msg)
}

// DiagnoseParseFailure returns the code and reason phrase for answering the
// raw bytes data that sip.ParseMessage refused with err: 513 for a message
// too large, else 400 with a reason naming the start line or the first
// header that sipgo's default header parsers reject. It only runs on the
// failure path, so it can afford to re-parse.
func DiagnoseParseFailure(data []byte, err error) (code int, reason string) {
	if errors.Is(err, sip.ErrMessageTooLarge) {
		return sip.StatusMessageTooLarge, "Message Too Large"
	}
	reason = parseFailureReason(err)
	if rawUnsupportedScheme(data) {
		// RFC 3261 §8.2.2.1 / §16.3 step 2: a Request-URI we cannot
		// handle is 416, not a malformed request.
		return 416, "Unsupported URI Scheme"
	}
	if errors.Is(err, sip.ErrParseReadBodyIncomplete) {
		return sip.StatusBadRequest, reason
	}
	if bytes.IndexByte(data, '\n') >= 0 && !bytes.Contains(data, []byte("\r\n")) {
		return sip.StatusBadRequest, "Bad Request - lines must end with CRLF"
	}
	if name := rawFailingPart(data); name != "" {
		return sip.StatusBadRequest, rawSanitize("Bad Request - malformed " + name)
	}
	return sip.StatusBadRequest, reason
}

// rawUnsupportedScheme reports a request line whose Request-URI has a
// well-formed scheme (RFC 3986 §3.1) other than sip, sips or tel.
func rawUnsupportedScheme(data []byte) bool {
	line, _ := rawNextLine(data)
	method, rest, ok := bytes.Cut(line, []byte(" "))
	if !ok || len(method) == 0 || bytes.HasPrefix(method, sipVersionPrefix) {
		return false
	}
	uri, _, ok := bytes.Cut(bytes.TrimLeft(rest, " "), []byte(" "))
	if !ok {
		return false
	}
	scheme, _, ok := bytes.Cut(uri, []byte(":"))
	if !ok || len(scheme) == 0 || !isAlpha(scheme[0]) {
		return false
	}
	for _, c := range scheme {
		if !isAlpha(c) && !(c >= '0' && c <= '9') && c != '+' && c != '-' && c != '.' {
			return false
		}
	}
	switch strings.ToLower(string(scheme)) {
	case "sip", "sips", "tel":
		return false
	}
	return true
}

func isAlpha(c byte) bool { return c|0x20 >= 'a' && c|0x20 <= 'z' }

// rawFailingPart finds what sipgo's parser chokes on by feeding it the
// start line alone and then each (unfolded) header line alone, splitting
// lines the way sipgo does: at CRLF only.
func rawFailingPart(data []byte) string {
	p := data
	for len(p) >= 2 && p[0] == '\r' && p[1] == '\n' {
		p = p[2:]
	}
	start, p, found := bytes.Cut(p, []byte("\r\n"))
	if !found {
		return ""
	}
	probe := make([]byte, 0, len(start)+4)
	probe = append(append(probe, start...), "\r\n\r\n"...)
	if _, err := sip.ParseMessage(probe); err != nil {
		return "Request-Line"
	}
	parser := sip.HeadersParser(sip.DefaultHeadersParser())
	var out []sip.Header
	for len(p) > 0 {
		var line []byte
		line, p, _ = bytes.Cut(p, []byte("\r\n"))
		if len(line) == 0 {
			break
		}
		for len(p) > 0 && (p[0] == ' ' || p[0] == '\t') {
			var cont []byte
			cont, p, _ = bytes.Cut(p, []byte("\r\n"))
			// A fresh slice: appending to line would overwrite data.
			line = append(append(append([]byte(nil), bytes.TrimRight(line, " \t")...), ' '), rawTrim(cont)...)
		}
		var err error
		if out, err = parser.ParseHeader(out[:0], line); err != nil {
			name, _, hasColon := bytes.Cut(line, []byte(":"))
			if !hasColon {
				return "header line"
			}
			if kind := rawKindOf(rawTrim(name)); kind != rawNone {
				return rawHeaderNames[kind] + " header"
			}
			if bytes.EqualFold(rawTrim(name), []byte("l")) {
				return "Content-Length header"
			}
			return string(rawTrim(name)) + " header"
		}
	}
	return ""
}

// rawHeaderProblem scans the header section of a message as received (up
// to the empty line) for what a relayed header must never carry (issue 15
// §10, header smuggling): a control byte other than HT, CR and LF; a line
// ending in a bare LF or CR; a header name that is not a token. It returns
// a reason phrase for the 400, "" when the section is clean. Folded lines
// (starting with a space or tab, RFC 3261 §7.3.1) are allowed. It does not
// allocate.
func rawHeaderProblem(data []byte) string {
	// The start line is checked by the parser; the headers start after it.
	i := bytes.Index(data, []byte("\r\n"))
	if i < 0 {
		return ""
	}
	p := data[i+2:]
	for len(p) > 0 {
		if p[0] == '\r' && len(p) > 1 && p[1] == '\n' {
			return "" // the empty line: the body is not ours to judge
		}
		end := bytes.IndexByte(p, '\n')
		if end < 0 {
			end = len(p)
		}
		line := p[:end]
		if end == len(p) || end == 0 || line[end-1] != '\r' {
			if end == len(p) {
				return "" // truncated: the parser decides
			}
			return "Bad Request - line ends with a bare LF"
		}
		line = line[:end-1]
		for _, c := range line {
			if c == '\r' {
				return "Bad Request - bare CR in a header"
			}
			if (c < 0x20 && c != '\t') || c == 0x7f {
				return "Bad Request - control byte in a header"
			}
		}
		if line[0] != ' ' && line[0] != '\t' {
			colon := bytes.IndexByte(line, ':')
			if colon < 0 {
				return "Bad Request - header line without a colon"
			}
			name := bytes.TrimRight(line[:colon], " \t")
			if len(name) == 0 {
				return "Bad Request - empty header name"
			}
			for _, c := range name {
				if !tokenChar(c) {
					return "Bad Request - header name is not a token"
				}
			}
		}
		p = p[end+1:]
	}
	return ""
}

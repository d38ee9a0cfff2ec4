package tm

import (
	"bytes"
	"strconv"
	"strings"
	"unsafe"

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
	headers map[string]headerParser
	max     int // sipgo's limit; longer messages are its to refuse
	// reuseText: the header text goes into a pooled buffer of the block
	// (Config.ReuseMessageText), not a string of its own.
	reuseText bool
	// canon holds the parsers of the names in canonNames, found without
	// lower-casing and hashing the name (a map lookup per header line was
	// 1.5 % of the proxy's CPU); ok false for a name without a parser.
	canon [len(canonNames)]struct {
		hp headerParser
		ok bool
	}
}

// canonNames are header names as nearly every UA writes them.
var canonNames = [...]string{"Via", "From", "To", "Call-ID", "CSeq", "Contact", "Max-Forwards",
	"Content-Length", "Route", "Record-Route", "Content-Type"}

// canonSlots holds, at canonSlot of each of canonNames, one more than its
// index (0: none); built from the list, which must give distinct slots.
var canonSlots = func() (t [64]uint8) {
	for i, n := range canonNames {
		if t[canonSlot(n)] != 0 {
			panic("tm: canonNames " + n + " shares a slot: change canonSlot")
		}
		t[canonSlot(n)] = uint8(i + 1)
	}
	return t
}()

// canonSlot is where a name (not empty) may stand in canonSlots.
func canonSlot(name string) int {
	return (len(name) + int(name[0]) + 3*int(name[len(name)-1])) & 63
}

// canonIndex is the index in canonNames of name, written exactly so; -1
// for any other name (the map, by the lower-cased name, decides).
func canonIndex(name string) int {
	if name == "" {
		return -1
	}
	i := int(canonSlots[canonSlot(name)]) - 1
	if i < 0 || canonNames[i] != name {
		return -1
	}
	return i
}

// parserOf returns the parser of a header name, if it has one.
func (p *Parser) parserOf(buf []byte, name string) (headerParser, bool) {
	if i := canonIndex(name); i >= 0 {
		return p.canon[i].hp, p.canon[i].ok
	}
	lower, ok := lowerName(buf, name)
	if !ok {
		return headerParser{}, false
	}
	hp, known := p.headers[string(lower)]
	return hp, known
}

// headerParser is a header parser with the name it is looked up by, kept
// so that the parser is handed that (static) name and not the buffer the
// message's name was lower-cased into, which then escaped to the heap once
// per message (issue 14).
type headerParser struct {
	name  []byte
	parse sip.HeaderParser
	kind  blockKind // its place in the message block, if it has one
}

// blockKind names the headers the message block (msgHdrs) has room for.
type blockKind uint8

const (
	inNoBlock blockKind = iota
	inVia
	inFrom
	inTo
	inContact
	inCSeq
	inCallID
	inContentLength
	inMaxForwards
	inRoute
	inRecordRoute
)

var blockKinds = map[string]blockKind{"via": inVia, "from": inFrom, "to": inTo, "contact": inContact,
	"cseq": inCSeq, "call-id": inCallID, "content-length": inContentLength, "max-forwards": inMaxForwards,
	"route": inRoute, "record-route": inRecordRoute}

// msgHdrs holds, with the message struct (reqBlock, resBlock), the first
// of each header nearly every message carries, in the one allocation of
// the message: a header each was eight allocations of every message, a
// quarter of the proxy's per call (issue 14). Headers past the first of a
// name (a response's second Via), or not plain, are allocated by their
// parsers as before. tried marks the slots used (or spoiled by a parse
// that gave up), by blockKind bit.
type msgHdrs struct {
	tried   uint16
	via     viaBlock
	via2    *viaBlock // a response's second Via (resBlock's), else nil
	from    fromBlock
	to      toBlock
	contact contactBlock
	cseq    sip.CSeqHeader
	callID  sip.CallIDHeader
	length  sip.ContentLengthHeader
	maxFwd  sip.MaxForwardsHeader
	// The first Route (an in-dialog request's: ours) and Record-Route (a
	// response's or an INVITE's); a further one of each is allocated.
	route routeBlock
	rr    recordRouteBlock
	// text is the pooled buffer the message's header text is in, when the
	// parser reuses text (Config.ReuseMessageText); it goes back with the
	// block (releaseText).
	text *[]byte
}

type reqBlock struct {
	req   sip.Request
	hdrs  msgHdrs
	order [blockHeaders]sip.Header // the header list (initMessageData)
	// via is our Via when the request is relayed statelessly (an ACK).
	via ourViaBlock
	// route is what the router is handed for a stateless ACK (routeReq).
	route Request
	ref   blockRef // pooling (msgblock.go)
}

type resBlock struct {
	res  sip.Response
	hdrs msgHdrs
	// via2 is the upstream Via every response a proxy relays carries
	// under its own.
	via2  viaBlock
	order [blockHeaders]sip.Header
	ref   blockRef // pooling (msgblock.go)
}

// blockHeaders is the room for the header list in a message block: both
// blocks in the 1792-byte size class, where the block (1536) and sipgo's
// list of ten (160, 320 more when it grew past ten as a relayed 200's
// often does) were two to three objects.
const blockHeaders = 16

// via2Bit marks msgHdrs.via2 used in tried (above every blockKind bit).
const via2Bit = 1 << 15

// newMessageData is what sip.NewRequest sets up (version, a header list
// with room for ten), for a Request inside a block. sip.NewRequest is not
// inlined, so its Request is a heap allocation of its own; sip.NewResponse
// is, and the MessageData of a response is the same type.
func newMessageData() sip.MessageData { return sip.NewResponse(0, "").MessageData }

// parse parses value into the block's slot for kind; nil when the slot is
// taken or the value is not plain (the header's parser then has it).
func (b *msgHdrs) parse(kind blockKind, value string) sip.Header {
	bit := uint16(1) << kind
	if kind == inVia && b.tried&bit != 0 && b.via2 != nil && b.tried&via2Bit == 0 {
		b.tried |= via2Bit
		if parseVia(b.via2, value) {
			return &b.via2.h
		}
		return nil
	}
	if kind == inNoBlock || b.tried&bit != 0 {
		return nil
	}
	b.tried |= bit
	switch kind {
	case inVia:
		if parseVia(&b.via, value) {
			return &b.via.h
		}
	case inFrom:
		if parseFrom(&b.from, value) {
			return &b.from.h
		}
	case inTo:
		if parseTo(&b.to, value) {
			return &b.to.h
		}
	case inContact:
		if parseContact(&b.contact, value) {
			return &b.contact.h
		}
	case inCSeq:
		if parseCSeq(&b.cseq, value) {
			return &b.cseq
		}
	case inCallID:
		if value != "" { // trimmed already: sipgo's check
			b.callID = sip.CallIDHeader(value)
			return &b.callID
		}
	case inRoute:
		if parseRoute(&b.route, value) {
			return &b.route.h
		}
	case inRecordRoute:
		if parseRecordRoute(&b.rr, value) {
			return &b.rr.h
		}
	case inContentLength, inMaxForwards:
		// sipgo's parsers: a 32-bit decimal, nothing else.
		n, err := strconv.ParseUint(value, 10, 32)
		switch {
		case err != nil:
		case kind == inContentLength:
			b.length = sip.ContentLengthHeader(n)
			return &b.length
		default:
			b.maxFwd = sip.MaxForwardsHeader(n)
			return &b.maxFwd
		}
	}
	return nil
}

// parseCSeq takes "number METHOD" with one space, a number sipgo takes
// (at most 2**31-1) and a method without white space: there sipgo's
// parser gives the same value; anything else is left to it.
func parseCSeq(h *sip.CSeqHeader, v string) bool {
	sp := strings.IndexByte(v, ' ')
	if sp < 1 || sp == len(v)-1 || !spaceTab.clean(v[sp+1:]) || strings.IndexByte(v[:sp], '\t') >= 0 {
		return false
	}
	n, err := strconv.ParseUint(v[:sp], 10, 32)
	if err != nil || n > 1<<31-1 {
		return false
	}
	h.SeqNo, h.MethodName = uint32(n), method(v[sp+1:])
	return true
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
	hp := make(map[string]headerParser, len(m))
	for name, parse := range m {
		hp[name] = headerParser{name: []byte(name), parse: parse, kind: blockKinds[name]}
	}
	p := &Parser{sip: sp, headers: hp, max: sp.MaxMessageLength}
	var buf [32]byte
	for i, name := range canonNames {
		key, _ := lowerName(buf[:0], name)
		p.canon[i].hp, p.canon[i].ok = hp[string(key)]
	}
	return p
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
	// The one copy: headers keep slices of it.
	var hs string
	var text *[]byte
	if p.reuseText {
		text = textBufs.Get().(*[]byte)
		*text = append((*text)[:0], data[:end+2]...)
		hs = unsafe.String(unsafe.SliceData(*text), end+2)
	} else {
		hs = string(data[:end+2])
	}
	// plainHead saw every LF of hs end a CRLF: a line ends one byte
	// before its LF.
	nl := strings.IndexByte(hs, '\n') - 1
	msg, blk := startLine(hs[:nl])
	if msg == nil {
		putText(text) // a block startLine gave back read none of it
		return nil
	}
	blk.text = text
	if !p.rest(msg, blk, data, hs[nl+2:], end) {
		// Left to sipgo: nobody else saw the block.
		switch m := msg.(type) {
		case *sip.Response:
			releaseRes(m)
		case *sip.Request:
			releaseReq(m)
		}
		return nil
	}
	return msg
}

// rest parses the headers (hs, after the start line) and the body of a
// plain message into msg; false leaves the message to sipgo.
func (p *Parser) rest(msg sip.Message, blk *msgHdrs, data []byte, hs string, end int) bool {
	var buf [32]byte
	length := -1
	for rest := hs; rest != ""; {
		nl := strings.IndexByte(rest, '\n')
		line := rest[:nl-1]
		rest = rest[nl+1:]
		colon := strings.IndexByte(line, ':')
		if colon < 0 {
			return false
		}
		name := strings.TrimSpace(line[:colon])
		value := strings.TrimSpace(line[colon+1:])
		hp, known := p.parserOf(buf[:0], name)
		if !known {
			msg.AppendHeader(sip.NewHeader(name, value))
			continue
		}
		if hp.kind == inVia && strings.IndexByte(value, ',') >= 0 {
			if !viaList(msg, blk, hp, value) {
				return false
			}
			continue
		}
		h, ok := hp.header(blk, value)
		if !ok {
			return false // a comma list, or sipgo's error to give
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
		return false // sipgo says what is wrong, or keeps what it keeps
	}
	if length > 0 {
		msg.SetBody(bytes.Clone(body))
	}
	return true
}

// header parses one value: into the message block's slot for it when the
// slot is free and the value plain, else by its parser; false on the
// parser's error.
func (hp headerParser) header(blk *msgHdrs, value string) (sip.Header, bool) {
	if h := blk.parse(hp.kind, value); h != nil {
		return h, true
	}
	h, err := hp.parse(hp.name, value)
	return h, err == nil
}

// viaList appends the Vias of a comma list, a header per value as sipgo's
// parser does. UAs put the Vias of a response on one line (sipp's
// [last_Via:] does); left to sipgo, such a response cost the whole
// message's parse a second time (issue 14). Only lists sipgo reads the
// same way are taken: every value before a comma plain (one that is not
// sipgo may read differently inside a list than alone), with
// parameters (sipgo looks for the comma among them; one in the host part
// it reads as part of the host), and not ending in white space or a bare
// ';'. false leaves the message to sipgo.
func viaList(msg sip.Message, blk *msgHdrs, hp headerParser, value string) bool {
	for {
		item, rest, more := strings.Cut(value, ",")
		if !more {
			h, ok := hp.header(blk, item)
			if ok {
				msg.AppendHeader(h)
			}
			return ok
		}
		if item == "" || strings.IndexByte(item, ';') < 0 || isBlank(item[len(item)-1]) || item[len(item)-1] == ';' {
			return false
		}
		h := blk.parse(inVia, item)
		if h == nil {
			if h = fastVia(item); h == nil {
				return false
			}
		}
		msg.AppendHeader(h)
		if value = strings.TrimLeft(rest, " \t"); value == "" {
			return false // a trailing comma: sipgo's to judge
		}
	}
}

func isBlank(c byte) bool { return c == ' ' || c == '\t' }

// plainHead returns where the empty line that ends the headers starts, or
// -1 when the head is not plain: a CR or LF alone, or a folded line
// (sipgo's errors, and its unfolding, are its own). It hops from LF to LF
// and counts CRs with the runtime's vector search: a loop over every byte
// was 2 % of the proxy's CPU (issue 14).
func plainHead(data []byte) int {
	end := bytes.Index(data, crlfcrlf)
	if end <= 0 {
		return -1
	}
	head := data[:end+2]
	lfs := 0
	for i := 0; ; {
		j := bytes.IndexByte(head[i:], '\n')
		if j < 0 {
			break
		}
		i += j
		if i == 0 || head[i-1] != '\r' {
			return -1
		}
		if i+1 < len(head) && (head[i+1] == ' ' || head[i+1] == '\t') {
			return -1
		}
		lfs++
		i++
	}
	if bytes.Count(head, cr) != lfs {
		return -1 // a CR alone
	}
	return end
}

var (
	crlfcrlf = []byte("\r\n\r\n")
	cr       = []byte("\r")
)

// startLine builds the message of a plain start line: "METHOD URI
// SIP/2.0" or "SIP/2.0 CODE reason", in a block with room for its usual
// headers; nil for anything else.
func startLine(s string) (sip.Message, *msgHdrs) {
	a, rest, ok := strings.Cut(s, " ")
	if !ok {
		return nil, nil
	}
	b, c, ok := strings.Cut(rest, " ")
	if !ok {
		return nil, nil
	}
	if a == "SIP/2.0" {
		if len(b) != 3 || (len(c) >= 3 && strings.IndexByte(c, ' ') < 0 && sip.UriIsSIP(c[:3])) {
			return nil, nil // sipgo takes a one-word reason like "sip..." for a request line
		}
		code, err := strconv.Atoi(b)
		if err != nil || code < 100 || code > 699 {
			return nil, nil
		}
		blk := resBlocks.Get().(*resBlock)
		initMessageData(&blk.res.MessageData, blk.order[:])
		blk.ref.tagOf(&blk.res.MessageData)
		blk.res.StatusCode, blk.res.Reason, blk.res.SipVersion = code, c, "SIP/2.0"
		blk.hdrs.via2 = &blk.via2
		return &blk.res, &blk.hdrs
	}
	if c != "SIP/2.0" || a == "" || strings.IndexByte(b, ' ') >= 0 {
		return nil, nil
	}
	for i := 0; i < len(a); i++ {
		if a[i] < 'A' || a[i] > 'Z' {
			return nil, nil // sipgo upper-cases methods; a plain one already is
		}
	}
	// The URI is parsed in place: a sip.Uri of its own escaped to the heap.
	blk := reqBlocks.Get().(*reqBlock)
	req := &blk.req
	initMessageData(&req.MessageData, blk.order[:])
	blk.ref.tagOf(&req.MessageData)
	req.Method = method(a)
	if err := sip.ParseUri(b, &req.Recipient); err != nil || req.Recipient.Wildcard {
		releaseReq(req)
		return nil, nil
	}
	req.SipVersion = "SIP/2.0"
	return req, &blk.hdrs
}

// method is m as one of sipgo's constants when it is one: a method kept
// (a dialog's, a statistic's) then never points into the message's text,
// which may be reused (Config.ReuseMessageText).
func method(m string) sip.RequestMethod {
	switch sip.RequestMethod(m) {
	case sip.INVITE:
		return sip.INVITE
	case sip.ACK:
		return sip.ACK
	case sip.BYE:
		return sip.BYE
	case sip.CANCEL:
		return sip.CANCEL
	case sip.OPTIONS:
		return sip.OPTIONS
	case sip.REGISTER:
		return sip.REGISTER
	case sip.PRACK:
		return sip.PRACK
	case sip.UPDATE:
		return sip.UPDATE
	case sip.SUBSCRIBE:
		return sip.SUBSCRIBE
	case sip.NOTIFY:
		return sip.NOTIFY
	case sip.PUBLISH:
		return sip.PUBLISH
	case sip.INFO:
		return sip.INFO
	case sip.REFER:
		return sip.REFER
	case sip.MESSAGE:
		return sip.MESSAGE
	}
	return sip.RequestMethod(m)
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

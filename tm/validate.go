package tm

import (
	"strconv"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// Rejection says how a request that failed validation is answered.
type Rejection struct {
	// Code is the status code of the answer: 400, 416, 420, 483, 505, 513.
	Code int
	// Reason is the reason phrase; it names the problem so the sender's
	// operator can find it without our logs.
	Reason string
	// Unsupported lists, for 420, the option tags for the Unsupported
	// header (RFC 3261 §16.3 step 5).
	Unsupported []string
	// Headers go into the answer as they are (a 503's Retry-After).
	Headers []sip.Header
}

func (r *Rejection) Error() string {
	return strconv.Itoa(r.Code) + " " + r.Reason
}

// defaultMaxForwards is what RFC 3261 §16.6 step 3 says a proxy SHOULD put
// into a request that arrived without Max-Forwards.
const defaultMaxForwards = 70

// Indexes of the headers ValidateRequest counts in its single pass.
const (
	valVia = iota
	valFrom
	valTo
	valCallID
	valCSeq
	valMaxFwd
	valContentLen
	valProxyRequire
	valKinds
	valOther = valKinds
)

var valHeaderNames = [valKinds]string{
	valVia:          "Via",
	valFrom:         "From",
	valTo:           "To",
	valCallID:       "Call-ID",
	valCSeq:         "CSeq",
	valMaxFwd:       "Max-Forwards",
	valContentLen:   "Content-Length",
	valProxyRequire: "Proxy-Require",
}

// valKindOf classifies a header. sipgo's default parser turns the headers we
// care about into typed values; a custom parser (sip.WithHeadersParsers) may
// leave them generic, so names are matched as well, compact forms included.
// Names are compared with EqualFold because sip.HeaderToLower allocates for
// every mixed-case name it does not know.
func valKindOf(h sip.Header) int {
	switch h.(type) {
	case *sip.ViaHeader:
		return valVia
	case *sip.FromHeader:
		return valFrom
	case *sip.ToHeader:
		return valTo
	case *sip.CallIDHeader:
		return valCallID
	case *sip.CSeqHeader:
		return valCSeq
	case *sip.MaxForwardsHeader:
		return valMaxFwd
	case *sip.ContentLengthHeader:
		return valContentLen
	}
	name := h.Name()
	switch len(name) {
	case 1:
		switch name[0] | 0x20 {
		case 'v':
			return valVia
		case 'f':
			return valFrom
		case 't':
			return valTo
		case 'i':
			return valCallID
		case 'l':
			return valContentLen
		}
	case 2:
		if strings.EqualFold(name, "To") {
			return valTo
		}
	case 3:
		if strings.EqualFold(name, "Via") {
			return valVia
		}
	case 4:
		if strings.EqualFold(name, "From") {
			return valFrom
		}
		if strings.EqualFold(name, "CSeq") {
			return valCSeq
		}
	case 7:
		if strings.EqualFold(name, "Call-ID") {
			return valCallID
		}
	case 12:
		if strings.EqualFold(name, "Max-Forwards") {
			return valMaxFwd
		}
	case 13:
		if strings.EqualFold(name, "Proxy-Require") {
			return valProxyRequire
		}
	case 14:
		if strings.EqualFold(name, "Content-Length") {
			return valContentLen
		}
	}
	return valOther
}

func valBad(problem string) *Rejection {
	return &Rejection{Code: sip.StatusBadRequest, Reason: "Bad Request - " + problem}
}

func valMissing(kind int) *Rejection {
	return valBad("missing " + valHeaderNames[kind] + " header")
}

func valMalformed(kind int) *Rejection {
	return valBad("malformed " + valHeaderNames[kind] + " header")
}

// valPresence rejects a header that must appear exactly once. RFC 4475
// §3.1.2.19 expects 400 for repeated single-valued headers: sipgo keeps the
// last copy while another element may use the first, so forwarding such a
// request lets two hops disagree about the transaction it belongs to.
func valPresence(counts *[valKinds + 1]int, kind int) *Rejection {
	switch counts[kind] {
	case 0:
		return valMissing(kind)
	case 1:
		return nil
	}
	return valBad("multiple " + valHeaderNames[kind] + " headers")
}

// valParam looks a header parameter up by name ignoring case, as RFC 3261
// §7.3.1 makes parameter names case-insensitive and sipgo keeps them as sent.
func valParam(params sip.HeaderParams, name string) (string, bool) {
	for _, kv := range params {
		if strings.EqualFold(strings.TrimSpace(kv.K), name) {
			return strings.TrimSpace(kv.V), true
		}
	}
	return "", false
}

// ValidateRequest checks a parsed request the proxy is about to handle
// (RFC 3261 §16.3 steps 1, 2, 3 and 5; loop detection, step 4, is isLoop).
// supported is the set of option tags we support for Proxy-Require. It
// returns nil when the request may be proxied.
//
// Max-Forwards 0 gets 483 for every method, OPTIONS included: §16.3 step 3
// lets a proxy answer such an OPTIONS itself, but answering for the target
// would hide it. An ACK cannot be answered (§17): a Rejection for an ACK
// means drop it.
//
// On the success path it does not allocate.
func ValidateRequest(req *sip.Request, supported []string) *Rejection {
	if req == nil {
		return valBad("no request")
	}
	// The version is case-insensitive (§7.1); anything but 2.0 would make
	// every other check guesswork (RFC 4475 §3.3.14 expects 505).
	if !strings.EqualFold(req.SipVersion, "SIP/2.0") {
		return &Rejection{Code: sip.StatusVersionNotSupported, Reason: "Version Not Supported"}
	}

	// One pass counts the headers, so that neither duplicates nor the absence
	// of optional headers cost a lazy sipgo lookup (those scan and allocate).
	var counts [valKinds + 1]int
	for _, h := range req.Headers() {
		counts[valKindOf(h)]++
	}

	// §16.3 step 1: everything the transaction layer and §16.6 rely on must
	// be well-formed.
	if counts[valVia] == 0 {
		return valMissing(valVia)
	}
	via := req.Via()
	if via == nil || via.Host == "" || via.Transport == "" || via.Port < 0 || via.Port > 65535 ||
		!strings.EqualFold(via.ProtocolName, "SIP") || via.ProtocolVersion != "2.0" {
		return valMalformed(valVia)
	}

	if r := valPresence(&counts, valFrom); r != nil {
		return r
	}
	from := req.From()
	if from == nil {
		return valMalformed(valFrom)
	}
	// §8.1.1.3 makes the From tag mandatory, but RFC 2543 UAs send none and
	// RFC 4475 §3.4.1 asks a proxy to accept them: a dialog of theirs is
	// named by Call-ID and tags, the From tag then being empty.

	if r := valPresence(&counts, valTo); r != nil {
		return r
	}
	if req.To() == nil {
		return valMalformed(valTo)
	}

	if r := valPresence(&counts, valCallID); r != nil {
		return r
	}
	callID := req.CallID()
	if callID == nil {
		return valMalformed(valCallID)
	}
	if strings.TrimSpace(string(*callID)) == "" {
		return valBad("empty Call-ID header")
	}

	if r := valPresence(&counts, valCSeq); r != nil {
		return r
	}
	cseq := req.CSeq()
	if cseq == nil {
		return valMalformed(valCSeq)
	}
	// The CSeq method is case-sensitive (§20.16) and must be the request's
	// own, which for ACK and CANCEL is ACK and CANCEL (§17.1.1.3, §9.1).
	// sipgo upper-cases the request-line method but not the CSeq one, so a
	// lower-case method fails here too; that is wanted: we could not
	// forward it unchanged.
	if strings.TrimSpace(string(cseq.MethodName)) != string(req.Method) {
		return valBad("CSeq method does not match request method")
	}

	// An absent Max-Forwards passes (§16.3 step 3); the forwarded copy gets
	// 70. A present one must be a number: sipgo's own parser rejects the
	// message outright for "-1" or "abc", a custom parser leaves the text for
	// the lazy parse below, which fails the same way.
	var maxFwd *sip.MaxForwardsHeader
	switch counts[valMaxFwd] {
	case 0:
	case 1:
		if maxFwd = req.MaxForwards(); maxFwd == nil {
			return valMalformed(valMaxFwd)
		}
	default:
		return valBad("multiple Max-Forwards headers")
	}

	// §16.3 step 2. sipgo lower-cases the scheme when parsing and treats an
	// empty one as sip when writing.
	ruri := &req.Recipient
	switch {
	case ruri.Scheme == "" || strings.EqualFold(ruri.Scheme, "sip") || strings.EqualFold(ruri.Scheme, "sips"):
		if ruri.Host == "" || ruri.Wildcard {
			return valBad("malformed Request-URI")
		}
	case strings.EqualFold(ruri.Scheme, "tel"):
		if ruri.Raw() == "" {
			return valBad("malformed Request-URI")
		}
	default:
		// sipgo names 416 after HTTP's Range error; in SIP it is this.
		return &Rejection{Code: 416, Reason: "Unsupported URI Scheme"}
	}

	// §16.3 step 3.
	if maxFwd != nil && *maxFwd == 0 {
		return &Rejection{Code: sip.StatusTooManyHops, Reason: "Too Many Hops"}
	}

	// §16.3 step 5.
	if counts[valProxyRequire] > 0 {
		if unsupported := valUnsupported(req, supported); len(unsupported) > 0 {
			return &Rejection{Code: sip.StatusBadExtension, Reason: "Bad Extension", Unsupported: unsupported}
		}
	}

	// sipgo already cuts a datagram's body to Content-Length and refuses a
	// shorter one (§18.3), so this only catches requests built or altered in
	// process, which would otherwise go out with a lying Content-Length.
	switch counts[valContentLen] {
	case 0:
	case 1:
		cl := req.ContentLength()
		if cl == nil {
			return valMalformed(valContentLen)
		}
		if uint64(*cl) != uint64(len(req.Body())) {
			return valBad("Content-Length mismatch")
		}
	default:
		return valBad("multiple Content-Length headers")
	}
	return nil
}

// valUnsupported lists the Proxy-Require option tags not in supported, each
// once. Option tags are tokens, so they compare case-insensitively (§7.3.1).
func valUnsupported(req *sip.Request, supported []string) []string {
	var out []string
	for _, h := range req.Headers() {
		if valKindOf(h) != valProxyRequire {
			continue
		}
		for value := h.Value(); value != ""; {
			var tag string
			tag, value, _ = strings.Cut(value, ",")
			tag = strings.TrimSpace(tag)
			if tag == "" || valContainsFold(supported, tag) || valContainsFold(out, tag) {
				continue
			}
			out = append(out, tag)
		}
	}
	return out
}

func valContainsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

// nextMaxForwards returns the Max-Forwards value for forwarded copies of req:
// the received value minus one, or 70 when the request had none (§16.6 step
// 3). It never wraps below zero; callers only forward requests that passed
// ValidateRequest, so the received value is at least 1.
func nextMaxForwards(req *sip.Request) uint32 {
	for _, h := range req.Headers() {
		var v uint32
		switch mf := h.(type) {
		case *sip.MaxForwardsHeader:
			v = uint32(*mf)
		default:
			if valKindOf(h) != valMaxFwd {
				continue
			}
			// A generic header from a custom parser: sipgo's lazy parse.
			parsed := req.MaxForwards()
			if parsed == nil {
				return defaultMaxForwards
			}
			v = uint32(*parsed)
		}
		if v == 0 {
			return 0
		}
		return v - 1
	}
	return defaultMaxForwards
}

// setMaxForwards gives req a Max-Forwards header of its own holding v.
// sipgo's Request.Clone shares the *MaxForwardsHeader between clones (its
// headerClone returns the receiver) and MaxForwardsHeader.Dec wraps 0 to
// 2^32-1, so every forked branch needs a new header object; never use Dec.
func setMaxForwards(req *sip.Request, v uint32) {
	h := sip.MaxForwardsHeader(v)
	for _, x := range req.Headers() {
		if x.Name() == "Max-Forwards" {
			// ReplaceHeader also moves sipgo's cached pointer to h.
			req.ReplaceHeader(&h)
			return
		}
	}
	// Copies a custom parser left under another spelling would be a second
	// Max-Forwards next to ours.
	for {
		name := ""
		for _, x := range req.Headers() {
			if valKindOf(x) == valMaxFwd {
				name = x.Name()
				break
			}
		}
		if name == "" || !req.RemoveHeader(name) {
			break
		}
	}
	req.AppendHeader(&h)
}

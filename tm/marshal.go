package tm

import (
	"strconv"
	"strings"
	"sync"

	"github.com/emiago/sipgo/sip"
)

// marshal returns the wire form of m in one allocation of exactly its
// size. sipgo's String builds every message through a growing
// strings.Builder and a string per URI, port and parameter list (a third
// of the proxy's allocations per call, issue 14); this writes the headers
// the proxy sends on every message straight into a pooled buffer, and asks
// sipgo only for the rare ones.
//
// It differs from sipgo in one way on purpose: a parameter value that is
// already quoted is written as it is, never quoted again.
func marshal(m sip.Message) []byte {
	bp := wireBuf()
	return keepWire(bp, appendMessage((*bp)[:0], m))
}

// wireBuf takes a pooled buffer to write a message into; putWire or
// keepWire gives it back.
func wireBuf() *[]byte { return marshalPool.Get().(*[]byte) }

// putWire gives back the buffer bp with b, what was written into it (a
// grown b replaces the buffer).
func putWire(bp *[]byte, b []byte) {
	if cap(b) <= maxPooledMarshal {
		*bp = b
		marshalPool.Put(bp)
	}
}

// keepWire returns a copy of b for the caller to keep, and gives back bp.
func keepWire(bp *[]byte, b []byte) []byte {
	out := make([]byte, len(b))
	copy(out, b)
	putWire(bp, b)
	return out
}

// wire is a message's bytes in a pooled buffer (bp) that whoever holds
// it gives back with release; bp is nil for bytes of their own.
type wire struct {
	bp *[]byte
	b  []byte
}

// marshalWire is marshal into a pooled buffer, for bytes kept a while.
func marshalWire(m sip.Message) wire {
	bp := wireBuf()
	return wire{bp: bp, b: appendMessage((*bp)[:0], m)}
}

// release gives the buffer back; w reads empty afterwards.
func (w *wire) release() {
	if w.bp != nil {
		putWire(w.bp, w.b)
	}
	*w = wire{}
}

// maxPooledMarshal keeps a rare huge message (a big SDP or MESSAGE body)
// from pinning its buffer in the pool.
const maxPooledMarshal = 16 << 10

var marshalPool = sync.Pool{New: func() any {
	b := make([]byte, 0, 2048)
	return &b
}}

// marshalUp is the wire form of a response relayed upstream (§16.7 step
// 3): every header but the top Via (ours), then extra (the aggregated
// authentication challenges of §16.7 step 7). It builds no new message.
// cseq, when not 0, is the CSeq number of the request as the client sent
// it: a module that shifted the number of the request it forwarded (the
// dialog module, after requests of its own within the dialog) gets the
// reply back in the client's numbering.
//
// The bytes are written into a pooled buffer, bp, that the caller gives
// back (putWire) once they are sent: a relayed reply is sent at once, and
// what the server transaction keeps of it, it copies (respondBytes). A copy
// per relayed reply was an allocation of every 2xx, which nothing keeps.
func marshalUp(res *sip.Response, extra []sip.Header, cseq uint32) (bp *[]byte, b []byte) {
	bp = wireBuf()
	b = (*bp)[:0]
	b = append(b, res.SipVersion...)
	b = append(b, ' ')
	b = strconv.AppendInt(b, int64(res.StatusCode), 10)
	b = append(b, ' ')
	b = append(b, res.Reason...)
	b = append(b, "\r\n"...)
	skipped := false
	for _, h := range res.Headers() {
		switch h := h.(type) {
		case *sip.ViaHeader:
			if !skipped {
				skipped = true
				continue
			}
		case *sip.CSeqHeader:
			if cseq != 0 && h.SeqNo != cseq {
				b = appendHeader(b, &sip.CSeqHeader{SeqNo: cseq, MethodName: h.MethodName})
				b = append(b, "\r\n"...)
				continue
			}
		}
		b = appendHeader(b, h)
		b = append(b, "\r\n"...)
	}
	for _, h := range extra {
		b = appendHeader(b, h)
		b = append(b, "\r\n"...)
	}
	b = append(b, "\r\n"...)
	b = append(b, res.Body()...)
	return bp, b
}

// nextVia is the Via a relayed response goes to: the one below ours.
func nextVia(res *sip.Response) *sip.ViaHeader {
	seen := false
	for _, h := range res.Headers() {
		if v, ok := h.(*sip.ViaHeader); ok {
			if seen {
				return v
			}
			seen = true
		}
	}
	return nil
}

func appendMessage(b []byte, m sip.Message) []byte {
	switch m := m.(type) {
	case *sip.Request:
		b = append(b, m.Method...)
		b = append(b, ' ')
		b = appendURI(b, &m.Recipient)
		b = append(b, ' ')
		b = append(b, m.SipVersion...)
	case *sip.Response:
		b = append(b, m.SipVersion...)
		b = append(b, ' ')
		b = strconv.AppendInt(b, int64(m.StatusCode), 10)
		b = append(b, ' ')
		b = append(b, m.Reason...)
	}
	b = append(b, "\r\n"...)
	var hs []sip.Header
	switch m := m.(type) {
	case *sip.Request:
		hs = m.Headers()
	case *sip.Response:
		hs = m.Headers()
	}
	for _, h := range hs {
		b = appendHeader(b, h)
		b = append(b, "\r\n"...)
	}
	b = append(b, "\r\n"...)
	return append(b, m.Body()...)
}

func appendHeader(b []byte, h sip.Header) []byte {
	switch h := h.(type) {
	case *sip.ViaHeader:
		b = append(b, "Via: "...)
		b = append(b, h.ProtocolName...)
		b = append(b, '/')
		b = append(b, h.ProtocolVersion...)
		b = append(b, '/')
		b = append(b, h.Transport...)
		b = append(b, ' ')
		b = appendHost(b, h.Host)
		if h.Port > 0 {
			b = append(b, ':')
			b = strconv.AppendInt(b, int64(h.Port), 10)
		}
		return appendParams(b, ';', ';', h.Params)
	case *sip.FromHeader:
		b = append(b, "From: "...)
		return appendNameAddr(b, h.DisplayName, &h.Address, h.Params)
	case *sip.ToHeader:
		b = append(b, "To: "...)
		return appendNameAddr(b, h.DisplayName, &h.Address, h.Params)
	case *sip.ContactHeader:
		b = append(b, "Contact: "...)
		if h.Address.Wildcard {
			return append(b, '*')
		}
		return appendNameAddr(b, h.DisplayName, &h.Address, h.Params)
	case *sip.CallIDHeader:
		b = append(b, "Call-ID: "...)
		return append(b, *h...)
	case *sip.CSeqHeader:
		b = append(b, "CSeq: "...)
		b = strconv.AppendUint(b, uint64(h.SeqNo), 10)
		b = append(b, ' ')
		return append(b, h.MethodName...)
	case *sip.MaxForwardsHeader:
		b = append(b, "Max-Forwards: "...)
		return strconv.AppendUint(b, uint64(*h), 10)
	case *sip.ContentLengthHeader:
		b = append(b, "Content-Length: "...)
		return strconv.AppendUint(b, uint64(*h), 10)
	case *sip.ContentTypeHeader:
		b = append(b, "Content-Type: "...)
		return append(b, *h...)
	case *sip.RouteHeader:
		b = append(b, "Route: <"...)
		b = appendURI(b, &h.Address)
		return append(b, '>')
	case *sip.RecordRouteHeader:
		b = append(b, "Record-Route: <"...)
		b = appendURI(b, &h.Address)
		return append(b, '>')
	}
	b = append(b, h.Name()...)
	b = append(b, ": "...)
	return append(b, h.Value()...)
}

func appendNameAddr(b []byte, display string, u *sip.Uri, params sip.HeaderParams) []byte {
	if display != "" {
		b = append(b, '"')
		b = append(b, display...)
		b = append(b, "\" "...)
	}
	b = append(b, '<')
	b = appendURI(b, u)
	b = append(b, '>')
	return appendParams(b, ';', ';', params)
}

func appendURI(b []byte, u *sip.Uri) []byte {
	if u.Scheme == "" {
		b = append(b, "sip"...)
	} else {
		b = append(b, u.Scheme...)
	}
	b = append(b, ':')
	if raw := u.Raw(); raw != "" {
		return append(b, raw...)
	}
	if u.HierarhicalSlashes {
		b = append(b, "//"...)
	}
	if u.User != "" {
		b = append(b, u.User...)
		if u.Password != "" {
			b = append(b, ':')
			b = append(b, u.Password...)
		}
		b = append(b, '@')
	}
	b = appendHost(b, u.Host)
	if u.Port > 0 {
		b = append(b, ':')
		b = strconv.AppendInt(b, int64(u.Port), 10)
	}
	b = appendParams(b, ';', ';', u.UriParams)
	return appendParams(b, '?', '&', u.Headers)
}

// appendHost brackets an IPv6 address, as sipgo keeps it bare.
func appendHost(b []byte, host string) []byte {
	if strings.IndexByte(host, ':') >= 0 && (len(host) == 0 || host[0] != '[') {
		b = append(b, '[')
		b = append(b, host...)
		return append(b, ']')
	}
	return append(b, host...)
}

// appendParams writes lead then the parameters separated by sep. White
// space around a name or a value (RFC 3261 §25.1: SWS around "=" and ";")
// is dropped: sipgo keeps it, and quoting " 98asjd8" as sipgo does would
// change a tag (RFC 4475 §3.1.1.1). A value with white space inside that
// is not quoted yet is quoted (what sipgo does); one quoted already stays
// as it is.
func appendParams(b []byte, lead, sep byte, params sip.HeaderParams) []byte {
	for i, kv := range params {
		if i == 0 {
			b = append(b, lead)
		} else {
			b = append(b, sep)
		}
		b = append(b, trimSWS(kv.K)...)
		v := trimSWS(kv.V)
		if v == "" {
			continue
		}
		b = append(b, '=')
		if v[0] != '"' && !spaceTab.clean(v) {
			b = append(b, '"')
			b = append(b, v...)
			b = append(b, '"')
			continue
		}
		b = append(b, v...)
	}
	return b
}

// trimSWS drops spaces and tabs at both ends, without a call when there
// are none (the usual case).
func trimSWS(s string) string {
	if s == "" || (s[0] != ' ' && s[0] != '\t' && s[len(s)-1] != ' ' && s[len(s)-1] != '\t') {
		return s
	}
	return strings.Trim(s, " \t")
}

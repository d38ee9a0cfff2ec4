package tm

import (
	"strings"

	"github.com/emiago/sipgo/sip"
)

// derived is a request tm builds out of a branch's request: its CANCEL
// (§9.1) and the ACK of a non-2xx final (§17.1.1.3). The headers it takes
// over are the branch's own values, shared as shallowClone shares them
// (nobody changes a header value in place; these requests are only put on
// the wire), and the ones it makes live in its block: one allocation
// where sip.NewRequest and a deep clone of each header were ten to
// fifteen, on every forked call's CANCEL and its 487's ACK (issue 14).
//
// It shares the branch request's headers and Request-URI parameters, so
// it holds a reference on that request (msgblock.go) while it is held
// itself: its builder holds the first, its client transaction one more;
// the last one gives it back to derivedBlocks.
type derived struct {
	req   sip.Request
	cseq  sip.CSeqHeader
	mf    sip.MaxForwardsHeader
	cl    sip.ContentLengthHeader
	order [derivedHeaders]sip.Header
	from  *sip.Request
	ref   blockRef
}

// derivedHeaders: Via, a few Routes, Max-Forwards, From, To, Call-ID,
// CSeq, Reason, Content-Length and room to spare.
const derivedHeaders = 14

// newDerived starts a method request to from's Request-URI (its parameter
// lists shared, read only).
func newDerived(method sip.RequestMethod, from *sip.Request) *derived {
	d := derivedBlocks.Get().(*derived)
	d.from = from
	initMessageData(&d.req.MessageData, d.order[:])
	d.ref.tagOf(&d.req.MessageData)
	retainReq(from)
	d.req.Method = method
	d.req.Recipient = from.Recipient
	d.req.SipVersion = from.SipVersion
	return d
}

// routes appends from's Route headers, in order.
func (d *derived) routes(from *sip.Request) {
	for _, h := range from.Headers() {
		if strings.EqualFold(h.Name(), "route") {
			d.req.AppendHeader(h)
		}
	}
}

// maxForwards appends Max-Forwards: 70 (§8.1.1.6).
func (d *derived) maxForwards() {
	d.mf = 70
	d.req.AppendHeader(&d.mf)
}

// cseqOf appends from's CSeq number with d's method.
func (d *derived) cseqOf(from *sip.Request) {
	if cs := from.CSeq(); cs != nil {
		d.cseq = sip.CSeqHeader{SeqNo: cs.SeqNo, MethodName: d.req.Method}
		d.req.AppendHeader(&d.cseq)
	}
}

// end closes the header list with Content-Length: 0 and no body, as
// sip's SetBody(nil) does (without its ContentLength lookup, which
// allocates when there is none).
func (d *derived) end() *sip.Request {
	for i, h := range d.req.Headers() {
		if n := h.Name(); strings.EqualFold(n, "content-length") || n == "l" {
			if h.Value() != "0" {
				d.req.Headers()[i] = &d.cl
			}
			return &d.req
		}
	}
	d.req.AppendHeader(&d.cl)
	return &d.req
}

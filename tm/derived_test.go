package tm

import (
	"testing"

	"github.com/emiago/sipgo/sip"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// refHopACK and refCancel are the ACK and CANCEL as sipgo's constructors
// and deep clones built them before the derived block: the references
// the block must match byte for byte.
func refHopACK(req *sip.Request, res *sip.Response) *sip.Request {
	ack := sip.NewRequest(sip.ACK, *req.Recipient.Clone())
	ack.SipVersion = req.SipVersion
	if v := req.Via(); v != nil {
		ack.AppendHeader(v.Clone())
	}
	for _, h := range req.GetHeaders("Route") {
		ack.AppendHeader(sip.HeaderClone(h))
	}
	if f := req.From(); f != nil {
		ack.AppendHeader(sip.HeaderClone(f))
	}
	if to := res.To(); to != nil {
		ack.AppendHeader(sip.HeaderClone(to))
	}
	if cid := req.CallID(); cid != nil {
		ack.AppendHeader(sip.HeaderClone(cid))
	}
	if cs := req.CSeq(); cs != nil {
		ack.AppendHeader(&sip.CSeqHeader{SeqNo: cs.SeqNo, MethodName: sip.ACK})
	}
	mf := sip.MaxForwardsHeader(70)
	ack.AppendHeader(&mf)
	ack.SetBody(nil)
	return ack
}

func refCancel(inv *sip.Request, reason string, extra []sip.Header) *sip.Request {
	c := sip.NewRequest(sip.CANCEL, *inv.Recipient.Clone())
	c.SipVersion = inv.SipVersion
	c.AppendHeader(inv.Via().Clone())
	for _, h := range inv.GetHeaders("Route") {
		c.AppendHeader(sip.HeaderClone(h))
	}
	mf := sip.MaxForwardsHeader(70)
	c.AppendHeader(&mf)
	for _, name := range []string{"From", "To", "Call-ID"} {
		if h := inv.GetHeader(name); h != nil {
			c.AppendHeader(sip.HeaderClone(h))
		}
	}
	if cs := inv.CSeq(); cs != nil {
		c.AppendHeader(&sip.CSeqHeader{SeqNo: cs.SeqNo, MethodName: sip.CANCEL})
	}
	if reason != "" {
		c.AppendHeader(sip.NewHeader("Reason", reason))
	}
	for _, h := range extra {
		c.AppendHeader(h)
	}
	c.SetBody(nil)
	return c
}

// branchInvites are branch INVITEs as the proxy sends them: our Via on
// top, with and without Record-Route, with a Route set, with URI
// parameters.
func branchInvites(t *testing.T) []*sip.Request {
	p := NewParser(0)
	var out []*sip.Request
	for _, raw := range []string{
		vtInvite,
		"INVITE sip:bob@10.0.0.2:5070;transport=udp;lr SIP/2.0\r\n" +
			"Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKup;rport\r\n" +
			"Route: <sip:p1.example.com;lr>\r\n" +
			"Route: <sip:p2.example.com;lr;ftag=x>, <sip:p3.example.com;lr>\r\n" +
			"Max-Forwards: 69\r\n" +
			"From: \"Alice\" <sip:alice@a.example.com>;tag=9fxced76sl\r\n" +
			"To: <sip:bob@b.example.com>\r\n" +
			"Call-ID: 3848276298220188511@a.example.com\r\n" +
			"CSeq: 7 INVITE\r\n" +
			"Contact: <sip:alice@10.0.0.9>\r\n" +
			"Content-Length: 0\r\n\r\n",
	} {
		msg, err := p.ParseSIP([]byte(raw))
		require.NoError(t, err)
		for n := 0; n <= 2; n++ {
			tmpl := msg.(*sip.Request)
			cb := shallowCloneTo(tmpl, &tmpl.Recipient)
			hs := branchHeaders(n)
			if !prependInRoom(&cb.req.MessageData, cb.order[:], hs) {
				cb.req.PrependHeader(hs...)
			}
			out = append(out, &cb.req)
		}
	}
	return out
}

// RFC 3261 §17.1.1.3: the ACK of a non-2xx final has the request's
// Request-URI, top Via, Route set, From, Call-ID and CSeq number, and the
// response's To; the derived block builds the message sipgo's deep clones
// built, byte for byte.
func TestRFC3261_17_1_1_3_HopACKAsBefore(t *testing.T) {
	for _, inv := range branchInvites(t) {
		res := sip.NewResponseFromRequest(inv, 487, "Request Terminated", nil)
		res.To().Params.Add("tag", "callee-tag")
		assert.Equal(t, string(marshal(refHopACK(inv, res))), string(marshal(hopACK(inv, res))))
		assert.Equal(t, 1.0, testing.AllocsPerRun(200, func() { hopACK(inv, res) }), "allocations of an ACK")
	}
}

// RFC 3261 §9.1: a CANCEL has the INVITE's Request-URI, top Via, Route
// set, From, To, Call-ID and CSeq number (method CANCEL); with a Reason
// and extra headers as configured (cancel_hdrs) and given (t_reply).
func TestRFC3261_9_1_CancelAsBefore(t *testing.T) {
	extra := []sip.Header{sip.NewHeader("X-Why", "operator")}
	p := &Proxy{cancelHdrs: []sip.Header{sip.NewHeader("X-Site", "a")}}
	for _, inv := range branchInvites(t) {
		for _, reason := range []string{"", `SIP ;cause=487 ;text="terminated"`} {
			want := refCancel(inv, reason, append(append([]sip.Header{}, p.cancelHdrs...), extra...))
			got := p.cancelRequest(inv, reason, extra)
			assert.Equal(t, string(marshal(want)), string(marshal(got)))
		}
		assert.Equal(t, 1.0, testing.AllocsPerRun(200, func() { p.cancelRequest(inv, "", extra) }),
			"allocations of a CANCEL without a Reason")
		// A Content-Length among the given headers says 0 as SetBody makes it.
		cl := []sip.Header{sip.NewHeader("Content-Length", "5")}
		assert.Equal(t, string(marshal(refCancel(inv, "", append(append([]sip.Header{}, p.cancelHdrs...), cl...)))),
			string(marshal(p.cancelRequest(inv, "", cl))))
	}
}

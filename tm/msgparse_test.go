package tm

import (
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// mpSeeds are the torture messages of the validation fuzz, and the plain
// shapes of a call (a response, compact forms, a body, odd case).
func mpSeeds(tb testing.TB) []string {
	resp := "SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-1;received=127.0.0.1;rport=5062\r\n" +
		"From: <sip:a@x>;tag=1\r\nTo: <sip:b@y>;tag=2\r\nCall-ID: c@h\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
	return append(ftSeeds(tb),
		resp,
		strings.Replace(resp, "180 Ringing", "200 OK", 1),
		strings.Replace(resp, "180 Ringing", "200 ", 1),
		strings.Replace(resp, "180 Ringing", "99 Low", 1),
		strings.Replace(resp, "Content-Length: 0\r\n\r\n", "Content-Type: application/sdp\r\nContent-Length: 5\r\n\r\nv=0\r\n", 1),
		strings.Replace(resp, "Content-Length: 0\r\n\r\n", "\r\nv=0\r\n", 1),
		strings.Replace(resp, "Via:", "VIA:", 1),
		strings.Replace(resp, "Call-ID:", "i:", 1),
		strings.Replace(resp, "To:", "To : ", 1),
		strings.Replace(resp, "Call-ID: c@h", "X-Very-Long-Header-Name-Beyond-Thirty-Two-Bytes: 1\r\nCall-ID: c@h", 1),
		strings.Replace(resp, "CSeq:", "Contact: <sip:a@1.2.3.4>, <sip:b@1.2.3.4>\r\nCSeq:", 1),
		strings.Replace(vtInvite, "INVITE sip:", "invite sip:", 1),
		strings.Replace(vtInvite, "INVITE sip:bob@biloxi.example.com", "INVITE *", 1),
		// The headers the message block holds, in forms it takes and
		// forms it leaves to the header parsers (second of a name,
		// spacing, bounds).
		strings.Replace(resp, "CSeq: 1 INVITE", "CSeq: 1\tINVITE", 1),
		strings.Replace(resp, "CSeq: 1 INVITE", "CSeq: 1  INVITE", 1),
		strings.Replace(resp, "CSeq: 1 INVITE", "CSeq: 2147483648 INVITE", 1),
		strings.Replace(resp, "CSeq: 1 INVITE", "CSeq: 2147483647 INVITE", 1),
		strings.Replace(resp, "CSeq: 1 INVITE", "CSeq: +1 INVITE", 1),
		strings.Replace(resp, "CSeq: 1 INVITE", "CSeq: 1 ", 1),
		strings.Replace(resp, "CSeq: 1 INVITE", "CSeq: 1 INVITE\r\nCSeq: 2 BYE", 1),
		strings.Replace(resp, "Call-ID: c@h", "Call-ID: c@h\r\nCall-ID: d@h", 1),
		strings.Replace(resp, "Call-ID: c@h", "Call-ID:", 1),
		strings.Replace(resp, "Content-Length: 0", "Content-Length: 00", 1),
		strings.Replace(resp, "Content-Length: 0", "Content-Length: x", 1),
		strings.Replace(resp, "Via:", "Via: SIP/2.0/TCP [::1]:5070;branch=z9hG4bK-2\r\nVia:", 1),
		strings.Replace(resp, "Via:", "Via: SIP/2.0/UDP a b\r\nVia:", 1),
		strings.Replace(resp, "From: <sip:a@x>;tag=1", "From: <tel:+1>;tag=1", 1),
		strings.Replace(resp, "To:", "Contact: <sip:c@h>\r\nm: <sip:d@h>;expires=5\r\nTo:", 1),
		strings.Replace(vtInvite, "Max-Forwards: 70", "Max-Forwards: 4294967296", 1),
		strings.Replace(vtInvite, "Max-Forwards: 70", "Max-Forwards: 0\r\nMax-Forwards: 9", 1),
	)
}

// mpSame fails unless the fast path built what sipgo builds.
func mpSame(t *testing.T, p *Parser, data []byte) (fast bool) {
	t.Helper()
	got := p.fast(data)
	if got == nil {
		return false
	}
	want, err := p.sip.ParseSIP(data)
	require.NoError(t, err, "the fast path took what sipgo refuses: %q", data)
	require.Equal(t, want.String(), got.String(), "%q", data)
	require.Equal(t, want.Body(), got.Body())
	require.Equal(t, len(want.(interface{ Headers() []sip.Header }).Headers()), len(got.(interface{ Headers() []sip.Header }).Headers()))
	for i, h := range want.(interface{ Headers() []sip.Header }).Headers() {
		g := got.(interface{ Headers() []sip.Header }).Headers()[i]
		require.Equal(t, h.Name(), g.Name())
		require.Equal(t, h.Value(), g.Value())
	}
	// The typed values the proxy reads, block-held or not.
	type typed interface {
		CSeq() *sip.CSeqHeader
		CallID() *sip.CallIDHeader
		ContentLength() *sip.ContentLengthHeader
		Via() *sip.ViaHeader
		From() *sip.FromHeader
		To() *sip.ToHeader
		Contact() *sip.ContactHeader
	}
	w, g := want.(typed), got.(typed)
	assert.Equal(t, w.CSeq(), g.CSeq())
	assert.Equal(t, w.CallID(), g.CallID())
	assert.Equal(t, w.ContentLength(), g.ContentLength())
	assert.Equal(t, w.Via(), g.Via())
	assert.Equal(t, w.From(), g.From())
	assert.Equal(t, w.To(), g.To())
	assert.Equal(t, w.Contact(), g.Contact())
	switch w := want.(type) {
	case *sip.Request:
		assert.Equal(t, w.MaxForwards(), got.(*sip.Request).MaxForwards())
		g := got.(*sip.Request)
		assert.Equal(t, w.Method, g.Method)
		assert.Equal(t, w.Recipient.String(), g.Recipient.String())
		assert.Equal(t, w.SipVersion, g.SipVersion)
	case *sip.Response:
		g := got.(*sip.Response)
		assert.Equal(t, w.StatusCode, g.StatusCode)
		assert.Equal(t, w.Reason, g.Reason)
	}
	return true
}

// Issue 14: the fast path of tm's parser builds the same message as
// sipgo's parser (with the same header parsers) wherever it answers, and
// leaves to sipgo what it does not take as plain.
func TestIssue14_FastParseAsSipgo(t *testing.T) {
	p := NewParser(0)
	took := 0
	for _, s := range mpSeeds(t) {
		if mpSame(t, p, []byte(s)) {
			took++
		}
	}
	assert.Greater(t, took, 15, "the plain messages take the fast path")
	for _, s := range []string{
		strings.ReplaceAll(vtInvite, "\r\n", "\n"),
		"SIP/2.0 200 OK\r\nVia: a\r\n b\r\n\r\n",
		strings.Replace(vtInvite, "INVITE sip:", "invite sip:", 1),
	} {
		assert.Nil(t, p.fast([]byte(s)), "not plain: sipgo's: %q", s)
	}
	msg, err := p.ParseSIP([]byte(strings.ReplaceAll(vtInvite, "\r\n", "\n")))
	assert.Error(t, err, "sipgo's error for bare LF")
	assert.Nil(t, msg)
}

func FuzzFastParse(f *testing.F) {
	for _, s := range mpSeeds(f) {
		f.Add([]byte(s))
	}
	p := NewParser(0)
	f.Fuzz(func(t *testing.T, data []byte) {
		mpSame(t, p, data)
	})
}

// Issue 14: a plain request without a body is parsed in three
// allocations: the header block's string, the message block (the request
// with its Via, From, To, Contact, CSeq, Call-ID, Max-Forwards and
// Content-Length) and sipgo's header list. A header per allocation, as
// before the block, was eleven. With an SDP body, its copy and the
// Content-Type (which has no room in the block) add three.
func TestIssue14_PlainRequestParsesInThreeAllocations(t *testing.T) {
	p := NewParser(0)
	noBody := strings.Replace(strings.Replace(vtInvite, "Content-Type: application/sdp\r\n", "", 1),
		"Content-Length: 4\r\n\r\nv=0\n", "Content-Length: 0\r\n\r\n", 1)
	for _, c := range []struct {
		msg  string
		most float64
	}{{noBody, 3}, {vtInvite, 6}} {
		data := []byte(c.msg)
		require.NotNil(t, p.fast(data), "the plain INVITE takes the fast path")
		n := testing.AllocsPerRun(50, func() { p.fast(data) })
		assert.LessOrEqual(t, n, c.most, "allocations per parse of %q", c.msg)
	}
}

package tm

import (
	"bytes"
	"strings"
	"testing"
	"unsafe"

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
		// Comma lists of Vias (sipp's [last_Via:]): taken where sipgo
		// reads them the same way, in every shape around the comma.
		sippResp,
		sippAnswer,
		strings.Replace(sippResp, "rport=5062, SIP", "rport=5062,SIP", 1),
		strings.Replace(sippResp, "rport=5062, SIP", "rport=5062 , SIP", 1),
		strings.Replace(sippResp, "rport=5062, SIP", "rport=5062;, SIP", 1),
		strings.Replace(sippResp, "rport=5062, SIP", "rport=5062,\tSIP", 1),
		strings.Replace(sippResp, "rport=5062, SIP", "rport=5062,, SIP", 1),
		strings.Replace(sippResp, ";branch=z9hG4bK-9\r\n", ";branch=z9hG4bK-9,\r\n", 1),
		strings.Replace(sippResp, ";branch=z9hG4bK-9\r\n", ", SIP/2.0/TCP [::1]:5070;branch=z9hG4bK-3\r\n", 1),
		strings.Replace(sippResp, ";branch=z9hG4bK-9\r\n", ", SIP/2.0/UDP c\r\n", 1),
		strings.Replace(sippResp, ";branch=z9hG4bK-9\r\n", ", SIP/2.0/UDP c d;x\r\n", 1),
		strings.Replace(sippResp, "127.0.0.1:5060;branch=z9hG4bK-1;received=127.0.0.1;rport=5062,", "a:1,", 1),
		strings.Replace(sippResp, "127.0.0.1:5060;branch", "[::1]:5060;branch", 1),
		strings.Replace(sippResp, "branch=z9hG4bK-1", `branch="z9,x"`, 1),
		strings.Replace(sippResp, "Via:", "Via: SIP/2.0/UDP 10.0.0.1;branch=z9hG4bK-0, SIP/2.0/UDP 10.0.0.2;branch=z9hG4bK-00\r\nVia:", 1),
		strings.Replace(resp, "From: <sip:a@x>;tag=1", "From: <tel:+1>;tag=1", 1),
		strings.Replace(resp, "To:", "Contact: <sip:c@h>\r\nm: <sip:d@h>;expires=5\r\nTo:", 1),
		strings.Replace(vtInvite, "Max-Forwards: 70", "Max-Forwards: 4294967296", 1),
		strings.Replace(vtInvite, "Max-Forwards: 70", "Max-Forwards: 0\r\nMax-Forwards: 9", 1),
	)
}

// sippResp is a response as sipp's UAS sends it through a proxy: the
// Vias on one line, comma separated ([last_Via:]).
const sippResp = "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-1;received=127.0.0.1;rport=5062, " +
	"SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bK-9\r\nRecord-Route: <sip:127.0.0.1:5060;lr>\r\n" +
	"From: <sip:a@x>;tag=1\r\nTo: <sip:b@y>;tag=2\r\nCall-ID: c@h\r\nCSeq: 1 INVITE\r\n" +
	"Contact: <sip:uas@127.0.0.1:5070;transport=UDP>\r\nContent-Length: 0\r\n\r\n"

// sippAnswer is sipp's (3.6.1, test/sipp/uas.xml) 200 OK to an INVITE
// relayed by imsproxy, as sipp sent it back.
const sippAnswer = "SIP/2.0 200 OK\r\n" +
	"Via: SIP/2.0/UDP 127.0.0.1:25060;branch=z9hG4bK-b8d44e65edc217c5-1.f2f1ca2193e58042;rport, SIP/2.0/UDP 127.0.0.1:25080;branch=z9hG4bK-3668-1-0\r\n" +
	"Record-Route: <sip:127.0.0.1:25060;lr;did=a71.5e2d5d95>\r\n" +
	"From: \"sipp\" <sip:alice@127.0.0.1:25080>;tag=3668SIPpTag001\r\n" +
	"To: <sip:bob@127.0.0.1:25060>;tag=3666SIPpTag011\r\n" +
	"Call-ID: 1-3668@127.0.0.1\r\nCSeq: 1 INVITE\r\n" +
	"Contact: <sip:uas@127.0.0.1:25070;transport=UDP>\r\n" +
	"Content-Type: application/sdp\r\nContent-Length:   128\r\n\r\n" +
	"v=0\r\no=uas 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" +
	"m=audio 49172 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"

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

	// RFC 3261 §7.3.1: a comma list is the same as the headers on lines
	// of their own; the proxy reads the two Vias of sipp's responses
	// without sipgo's second parse.
	require.True(t, mpSame(t, p, []byte(sippResp)), "a comma list of plain Vias takes the fast path")
	require.True(t, mpSame(t, p, []byte(sippAnswer)), "sipp's 200 as sipp sent it through imsproxy takes the fast path")
	var hosts []string
	for _, h := range p.fast([]byte(sippResp)).(*sip.Response).GetHeaders("Via") {
		hosts = append(hosts, h.(*sip.ViaHeader).Host+":"+h.(*sip.ViaHeader).Params.GetOr("branch", ""))
	}
	assert.Equal(t, []string{"127.0.0.1:z9hG4bK-1", "127.0.0.1:z9hG4bK-9"}, hosts)
	for _, s := range []string{
		strings.Replace(sippResp, "127.0.0.1:5060;branch=z9hG4bK-1;received=127.0.0.1;rport=5062,", "a:1,", 1),
		strings.Replace(sippResp, "rport=5062, SIP", "rport=5062 , SIP", 1),
		strings.Replace(sippResp, ";branch=z9hG4bK-9\r\n", ";branch=z9hG4bK-9,\r\n", 1),
	} {
		assert.Nil(t, p.fast([]byte(s)), "a list sipgo reads otherwise is sipgo's: %q", s)
	}
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
	// With the text pooled (Config.ReuseMessageText): the same message,
	// and none of a message given back reads into the next one's.
	reuse := NewParser(0)
	reuse.reuseText = true
	f.Fuzz(func(t *testing.T, data []byte) {
		mpSame(t, p, data)
		if mpSame(t, reuse, data) {
			m, _ := reuse.ParseSIP(data)
			switch m := m.(type) {
			case *sip.Response:
				releaseRes(m)
			case *sip.Request:
				releaseReq(m)
			}
			mpSame(t, reuse, data)
		}
	})
}

// Issue 14: a plain request without a body is parsed in two allocations:
// the header block's string and the message block (the request with its
// Via, From, To, Contact, CSeq, Call-ID, Max-Forwards, Content-Length and
// the header list). A header per allocation, as before the block, was
// eleven; sipgo's header list apart, three. With an SDP body, its copy and
// the Content-Type (which has no room in the block) add three.
func TestIssue14_PlainRequestParsesInTwoAllocations(t *testing.T) {
	p := NewParser(0)
	noBody := strings.Replace(strings.Replace(vtInvite, "Content-Type: application/sdp\r\n", "", 1),
		"Content-Length: 4\r\n\r\nv=0\n", "Content-Length: 0\r\n\r\n", 1)
	for _, c := range []struct {
		msg  string
		most float64
	}{{noBody, 2}, {vtInvite, 5}} {
		data := []byte(c.msg)
		require.NotNil(t, p.fast(data), "the plain INVITE takes the fast path")
		n := testing.AllocsPerRun(50, func() { p.fast(data) })
		assert.LessOrEqual(t, n, c.most, "allocations per parse of %q", c.msg)
	}
}

// Issue 14: a relayed response's two Vias (the proxy's and the caller's,
// on two lines or on one) and its Record-Route go into the message's
// block: a 180 parses in two allocations at most (its text; the block
// when the pool has none), and the blocks stay in their size classes
// with their header lists.
func TestIssue14_RelayedResponseParsesInTwoAllocations(t *testing.T) {
	p := NewParser(0)
	twoLines := strings.Replace(sippResp, "rport=5062, SIP", "rport=5062\r\nVia: SIP", 1)
	for _, c := range []struct {
		name, msg string
		most      float64
	}{{"two lines", twoLines, 2}, {"one line", sippResp, 2}} {
		data := []byte(c.msg)
		require.NotNil(t, p.fast(data), c.name)
		n := testing.AllocsPerRun(50, func() { p.fast(data) })
		assert.LessOrEqual(t, n, c.most, "allocations per parse, %s", c.name)
	}
	// Pooled (msgblock.go), no longer one per message: their size is what
	// is cleared per message, and what the pool holds.
	assert.LessOrEqual(t, unsafe.Sizeof(reqBlock{}), uintptr(2688), "request block size")
	assert.LessOrEqual(t, unsafe.Sizeof(resBlock{}), uintptr(2304), "response block size")
}

// plainHeadRef is plainHead as a loop over every byte, the reference of
// FuzzPlainHead. It returns where the empty line that ends the headers starts, or
// -1 when the head is not plain: a CR or LF alone, or a folded line
// (sipgo's errors, and its unfolding, are its own). One pass.
func plainHeadRef(data []byte) int {
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

// FuzzPlainHead: the vector search finds the end of the head where the
// loop over every byte does, and refuses what it refuses.
func FuzzPlainHead(f *testing.F) {
	for _, s := range append(mpSeeds(f), "\r\n\r\nA", "a\r\n\r\n", "a\r\r\n\r\n", "a\n\r\n\r\n", "a\r\n b\r\n\r\n",
		"a\r\n\r\r\n\r\n", "a\r\n\tb\r\n\r\n", "a\rb\r\n\r\n", "a\r\n\r\n\n\r", "\n", "\r\n\r\n") {
		f.Add([]byte(s))
	}
	p := NewParser(0)
	f.Fuzz(func(t *testing.T, data []byte) {
		if bytes.HasPrefix(data, crlfcrlf) {
			// No start line: the loop looked past it for a later
			// empty line, the vector search stops; startLine refuses
			// the message either way.
			require.Equal(t, -1, plainHead(data))
			require.Nil(t, p.fast(data))
			return
		}
		require.Equal(t, plainHeadRef(data), plainHead(data), "%q", data)
	})
}

// RFC 3261 §7.3.1 (header names are case-insensitive; §7.3.3 compact
// forms): the parser found for a name written as nearly every UA writes it
// (without the lookup by the lower-cased name) is the one that lookup
// finds, and any other spelling still finds it.
func TestRFC3261_7_3_1_HeaderNamesFindTheirParser(t *testing.T) {
	p := NewParser(0)
	for i, name := range canonNames {
		require.Equal(t, i, canonIndex(name), name)
		require.True(t, p.canon[i].ok, "%s has a parser", name)
	}
	for _, name := range []string{"Via", "VIA", "v", "From", "f", "To", "t", "Call-ID", "call-id", "i", "CSeq", "cseq",
		"Contact", "m", "Max-Forwards", "Content-Length", "l", "Route", "Record-Route", "Content-Type", "c",
		"X-Unknown", "Supported", "Allow", "User-Agent"} {
		var buf [32]byte
		lower, _ := lowerName(buf[:0], name)
		want, wantOK := p.headers[string(lower)]
		got, ok := p.parserOf(buf[:0], name)
		assert.Equal(t, wantOK, ok, name)
		assert.Equal(t, string(want.name), string(got.name), name)
		assert.Equal(t, want.kind, got.kind, name)
	}
	assert.Equal(t, -1, canonIndex("via"), "only the exact spelling: the rest goes by the map")
}

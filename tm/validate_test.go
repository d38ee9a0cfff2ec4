package tm

import (
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// vtInvite is the RFC 3261 §24.2 F1 INVITE with a 4-byte body.
const vtInvite = "INVITE sip:bob@biloxi.example.com SIP/2.0\r\n" +
	"Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n" +
	"Max-Forwards: 70\r\n" +
	"To: Bob <sip:bob@biloxi.example.com>\r\n" +
	"From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n" +
	"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n" +
	"CSeq: 314159 INVITE\r\n" +
	"Contact: <sip:alice@pc33.atlanta.example.com>\r\n" +
	"Content-Type: application/sdp\r\n" +
	"Content-Length: 4\r\n" +
	"\r\n" +
	"v=0\n"

// vtEdit applies textual edits to vtInvite: each pair replaces the first
// occurrence of its first string with the second.
func vtEdit(t testing.TB, pairs ...string) string {
	t.Helper()
	msg := vtInvite
	for i := 0; i+1 < len(pairs); i += 2 {
		require.Contains(t, msg, pairs[i], "edit target")
		msg = strings.Replace(msg, pairs[i], pairs[i+1], 1)
	}
	return msg
}

func vtParse(t testing.TB, text string) *sip.Request {
	t.Helper()
	msg, err := sip.ParseMessage([]byte(text))
	require.NoError(t, err, "parse:\n%s", text)
	req, ok := msg.(*sip.Request)
	require.True(t, ok, "not a request")
	return req
}

// vtReplaceGeneric swaps the typed header name for a generic one holding
// value, which is what a custom sipgo parser without that header's parser
// produces; sipgo's default parser refuses such values outright.
func vtReplaceGeneric(name, value string) func(*sip.Request) {
	return func(req *sip.Request) {
		for req.RemoveHeader(name) {
		}
		req.AppendHeader(sip.NewHeader(name, value))
	}
}

type vtCase struct {
	name       string
	text       string             // raw request; vtInvite when empty
	edit       func(*sip.Request) // applied after parsing
	supported  []string
	wantCode   int // 0: valid
	wantReason string
	wantUnsup  []string
}

func vtRun(t *testing.T, cases []vtCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			text := tc.text
			if text == "" {
				text = vtInvite
			}
			req := vtParse(t, text)
			if tc.edit != nil {
				tc.edit(req)
			}
			rej := ValidateRequest(req, tc.supported)
			if tc.wantCode == 0 {
				require.Nil(t, rej, "want valid")
				return
			}
			require.NotNil(t, rej, "want rejection %d", tc.wantCode)
			assert.Equal(t, tc.wantCode, rej.Code)
			assert.Equal(t, tc.wantReason, rej.Reason)
			assert.Equal(t, tc.wantUnsup, rej.Unsupported)
		})
	}
}

func TestRFC3261_16_3_1_ReasonableSyntax(t *testing.T) {
	vtRun(t, []vtCase{
		{name: "valid INVITE"},
		{name: "valid compact forms", text: vtEdit(t,
			"Via:", "v:", "To:", "t:", "From:", "f:", "Call-ID:", "i:", "Content-Length:", "l:")},
		{name: "valid without From display name", text: vtEdit(t,
			"From: Alice <sip:alice@atlanta.example.com>;tag=1928301774", "From: sip:alice@atlanta.example.com;tag=x")},
		{name: "version 7.0", text: vtEdit(t, "SIP/2.0\r\nVia", "SIP/7.0\r\nVia"),
			wantCode: 505, wantReason: "Version Not Supported"},
		{name: "version lower case is fine", text: vtEdit(t, "SIP/2.0\r\nVia", "sip/2.0\r\nVia")},

		{name: "missing Via", text: vtEdit(t, "Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n", ""),
			wantCode: 400, wantReason: "Bad Request - missing Via header"},
		{name: "malformed Via", edit: vtReplaceGeneric("Via", "garbage"),
			wantCode: 400, wantReason: "Bad Request - malformed Via header"},
		{name: "Via without host", text: vtEdit(t, "SIP/2.0/UDP pc33.atlanta.example.com;", "SIP/2.0/UDP ;"),
			wantCode: 400, wantReason: "Bad Request - malformed Via header"},
		{name: "Via with version 1.0", text: vtEdit(t, "Via: SIP/2.0/UDP", "Via: SIP/1.0/UDP"),
			wantCode: 400, wantReason: "Bad Request - malformed Via header"},

		{name: "missing From", text: vtEdit(t, "From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n", ""),
			wantCode: 400, wantReason: "Bad Request - missing From header"},
		{name: "malformed From", edit: vtReplaceGeneric("From", "<sip:alice@atlanta.example.com"),
			wantCode: 400, wantReason: "Bad Request - malformed From header"},
		// RFC 4475 §3.4.1: an RFC 2543 request (no From tag) is accepted.
		{name: "From without tag", text: vtEdit(t, ";tag=1928301774", "")},
		{name: "From with empty tag", text: vtEdit(t, ";tag=1928301774", ";tag=")},
		{name: "From tag parameter name in upper case", text: vtEdit(t, ";tag=1928301774", ";TAG=1928301774")},
		{name: "two From", text: vtEdit(t, "Call-ID:", "From: <sip:mallory@evil.example.com>;tag=2\r\nCall-ID:"),
			wantCode: 400, wantReason: "Bad Request - multiple From headers"},

		{name: "missing To", text: vtEdit(t, "To: Bob <sip:bob@biloxi.example.com>\r\n", ""),
			wantCode: 400, wantReason: "Bad Request - missing To header"},
		{name: "malformed To", edit: vtReplaceGeneric("To", ""),
			wantCode: 400, wantReason: "Bad Request - malformed To header"},
		{name: "two To", text: vtEdit(t, "Call-ID:", "t: <sip:carol@chicago.example.com>\r\nCall-ID:"),
			wantCode: 400, wantReason: "Bad Request - multiple To headers"},

		{name: "missing Call-ID", text: vtEdit(t, "Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n", ""),
			wantCode: 400, wantReason: "Bad Request - missing Call-ID header"},
		{name: "empty Call-ID", edit: func(r *sip.Request) {
			for r.RemoveHeader("Call-ID") {
			}
			empty := sip.CallIDHeader(" ")
			r.AppendHeader(&empty)
		}, wantCode: 400, wantReason: "Bad Request - empty Call-ID header"},
		{name: "two Call-ID", text: vtEdit(t, "CSeq:", "i: other@example.com\r\nCSeq:"),
			wantCode: 400, wantReason: "Bad Request - multiple Call-ID headers"},

		{name: "missing CSeq", text: vtEdit(t, "CSeq: 314159 INVITE\r\n", ""),
			wantCode: 400, wantReason: "Bad Request - missing CSeq header"},
		{name: "malformed CSeq", edit: vtReplaceGeneric("CSeq", "INVITE"),
			wantCode: 400, wantReason: "Bad Request - malformed CSeq header"},
		{name: "two CSeq", text: vtEdit(t, "Contact:", "CSeq: 314160 INVITE\r\nContact:"),
			wantCode: 400, wantReason: "Bad Request - multiple CSeq headers"},
		{name: "CSeq method of another request", text: vtEdit(t, "314159 INVITE", "314159 BYE"),
			wantCode: 400, wantReason: "Bad Request - CSeq method does not match request method"},
		{name: "CSeq method in lower case", text: vtEdit(t, "314159 INVITE", "314159 invite"),
			wantCode: 400, wantReason: "Bad Request - CSeq method does not match request method"},
		{name: "CSeq with extra whitespace", text: vtEdit(t, "314159 INVITE", "314159 \t INVITE")},
		{name: "ACK carries CSeq ACK", text: vtEdit(t, "INVITE sip:", "ACK sip:", "314159 INVITE", "314159 ACK")},
		{name: "ACK carrying CSeq INVITE", text: vtEdit(t, "INVITE sip:", "ACK sip:"),
			wantCode: 400, wantReason: "Bad Request - CSeq method does not match request method"},
		{name: "CANCEL carries CSeq CANCEL", text: vtEdit(t, "INVITE sip:", "CANCEL sip:", "314159 INVITE", "314159 CANCEL")},
		{name: "CANCEL carrying CSeq INVITE", text: vtEdit(t, "INVITE sip:", "CANCEL sip:"),
			wantCode: 400, wantReason: "Bad Request - CSeq method does not match request method"},
		{name: "unknown method is proxied", text: vtEdit(t, "INVITE sip:", "FOOBAR sip:", "314159 INVITE", "314159 FOOBAR")},
	})
}

func TestRFC3261_16_3_2_URIScheme(t *testing.T) {
	vtRun(t, []vtCase{
		{name: "sip"},
		{name: "sips", text: vtEdit(t, "INVITE sip:", "INVITE sips:")},
		{name: "SIP in upper case", text: vtEdit(t, "INVITE sip:", "INVITE SIP:")},
		{name: "tel", text: vtEdit(t, "INVITE sip:bob@biloxi.example.com", "INVITE tel:+15551234567")},
		{name: "programmatic URI without scheme", edit: func(r *sip.Request) { r.Recipient.Scheme = "" }},
		{name: "http", text: vtEdit(t, "INVITE sip:bob@biloxi.example.com", "INVITE http://biloxi.example.com/bob"),
			wantCode: 416, wantReason: "Unsupported URI Scheme"},
		{name: "urn", text: vtEdit(t, "INVITE sip:bob@biloxi.example.com", "INVITE urn:service:sos"),
			wantCode: 416, wantReason: "Unsupported URI Scheme"},
		{name: "sip without host", text: vtEdit(t, "INVITE sip:bob@biloxi.example.com", "INVITE sip:bob@"),
			wantCode: 400, wantReason: "Bad Request - malformed Request-URI"},
		{name: "tel without number", edit: func(r *sip.Request) { r.Recipient = sip.Uri{Scheme: "tel"} },
			wantCode: 400, wantReason: "Bad Request - malformed Request-URI"},
		{name: "scheme checked after headers", text: vtEdit(t, "INVITE sip:bob@biloxi.example.com", "INVITE http://x",
			"CSeq: 314159 INVITE\r\n", ""),
			wantCode: 400, wantReason: "Bad Request - missing CSeq header"},
	})
}

func TestRFC3261_16_3_3_MaxForwards(t *testing.T) {
	// Parsing with a parser that knows no Max-Forwards keeps the raw text,
	// as a custom sipgo parser configuration would.
	noMaxFwd := sip.DefaultHeadersParser()
	custom := make(map[string]sip.HeaderParser, len(noMaxFwd))
	for k, v := range noMaxFwd {
		if k != "max-forwards" {
			custom[k] = v
		}
	}
	customParser := sip.NewParser(sip.WithHeadersParsers(custom))
	rawMaxFwd := func(value string) func(*sip.Request) {
		return func(r *sip.Request) {
			msg, err := customParser.ParseSIP([]byte(vtEdit(t, "Max-Forwards: 70", "Max-Forwards: "+value)))
			require.NoError(t, err)
			*r = *msg.(*sip.Request)
			_, typed := r.GetHeader("Max-Forwards").(*sip.MaxForwardsHeader)
			require.False(t, typed, "custom parser should leave Max-Forwards generic")
		}
	}
	vtRun(t, []vtCase{
		{name: "70"},
		{name: "1", text: vtEdit(t, "Max-Forwards: 70", "Max-Forwards: 1")},
		{name: "above 255 accepted", text: vtEdit(t, "Max-Forwards: 70", "Max-Forwards: 300")},
		{name: "absent passes", text: vtEdit(t, "Max-Forwards: 70\r\n", "")},
		{name: "0", text: vtEdit(t, "Max-Forwards: 70", "Max-Forwards: 0"),
			wantCode: 483, wantReason: "Too Many Hops"},
		{name: "0 on OPTIONS too", text: vtEdit(t, "Max-Forwards: 70", "Max-Forwards: 0",
			"INVITE sip:", "OPTIONS sip:", "314159 INVITE", "314159 OPTIONS"),
			wantCode: 483, wantReason: "Too Many Hops"},
		{name: "two headers", text: vtEdit(t, "Max-Forwards: 70\r\n", "Max-Forwards: 70\r\nMax-Forwards: 0\r\n"),
			wantCode: 400, wantReason: "Bad Request - multiple Max-Forwards headers"},
		{name: "raw 7 via custom parser", edit: rawMaxFwd("7")},
		{name: "raw 0 via custom parser", edit: rawMaxFwd("0"),
			wantCode: 483, wantReason: "Too Many Hops"},
		{name: "raw -1", edit: rawMaxFwd("-1"),
			wantCode: 400, wantReason: "Bad Request - malformed Max-Forwards header"},
		{name: "raw abc", edit: rawMaxFwd("abc"),
			wantCode: 400, wantReason: "Bad Request - malformed Max-Forwards header"},
		{name: "raw beyond 32 bits", edit: rawMaxFwd("99999999999"),
			wantCode: 400, wantReason: "Bad Request - malformed Max-Forwards header"},
		{name: "0 checked after the URI scheme", text: vtEdit(t, "Max-Forwards: 70", "Max-Forwards: 0",
			"INVITE sip:bob@biloxi.example.com", "INVITE http://x"),
			wantCode: 416, wantReason: "Unsupported URI Scheme"},
	})
}

func TestRFC3261_16_3_5_ProxyRequire(t *testing.T) {
	withPR := func(values ...string) string {
		var b strings.Builder
		for _, v := range values {
			b.WriteString("Proxy-Require: " + v + "\r\n")
		}
		return vtEdit(t, "Contact:", b.String()+"Contact:")
	}
	vtRun(t, []vtCase{
		{name: "supported", text: withPR("sec-agree"), supported: []string{"sec-agree"}},
		{name: "supported, other case", text: withPR("Sec-Agree"), supported: []string{"sec-agree"}},
		{name: "empty value", text: withPR(" "), supported: nil},
		{name: "one unsupported", text: withPR("foo"),
			wantCode: 420, wantReason: "Bad Extension", wantUnsup: []string{"foo"}},
		{name: "list and several headers, each tag once", text: withPR("foo, sec-agree ,bar", "foo", "baz"),
			supported: []string{"sec-agree"},
			wantCode:  420, wantReason: "Bad Extension", wantUnsup: []string{"foo", "bar", "baz"}},
		{name: "checked after Max-Forwards", text: vtEdit(t, "Max-Forwards: 70", "Max-Forwards: 0",
			"Contact:", "Proxy-Require: foo\r\nContact:"),
			wantCode: 483, wantReason: "Too Many Hops"},
	})
}

func TestRFC3261_18_3_ContentLength(t *testing.T) {
	setCL := func(n uint32) func(*sip.Request) {
		return func(r *sip.Request) {
			cl := sip.ContentLengthHeader(n)
			r.ReplaceHeader(&cl)
		}
	}
	vtRun(t, []vtCase{
		{name: "matching"},
		{name: "absent, sipgo adds it from the datagram", text: vtEdit(t, "Content-Length: 4\r\n", "")},
		{name: "absent without body", text: vtEdit(t, "Content-Length: 4\r\n", "", "v=0\n", "")},
		{name: "body longer than the header says is cut by sipgo",
			text: vtEdit(t, "Content-Length: 4", "Content-Length: 2")},
		{name: "too small after in-process change", edit: setCL(3),
			wantCode: 400, wantReason: "Bad Request - Content-Length mismatch"},
		{name: "too big after in-process change", edit: setCL(5),
			wantCode: 400, wantReason: "Bad Request - Content-Length mismatch"},
		{name: "body dropped in process", edit: func(r *sip.Request) {
			r.SetBody(nil)
			setCL(4)(r)
		}, wantCode: 400, wantReason: "Bad Request - Content-Length mismatch"},
		{name: "two headers", edit: func(r *sip.Request) {
			cl := sip.ContentLengthHeader(4)
			r.AppendHeader(&cl)
		}, wantCode: 400, wantReason: "Bad Request - multiple Content-Length headers"},
		{name: "malformed", edit: vtReplaceGeneric("Content-Length", "four"),
			wantCode: 400, wantReason: "Bad Request - malformed Content-Length header"},
	})
}

func TestRFC3261_16_3_RejectionError(t *testing.T) {
	r := &Rejection{Code: 483, Reason: "Too Many Hops"}
	assert.Equal(t, "483 Too Many Hops", r.Error())
	var err error = r
	assert.EqualError(t, err, "483 Too Many Hops")
	assert.Equal(t, 400, ValidateRequest(nil, nil).Code)
}

func TestRFC3261_16_3_ValidateRequestDoesNotAllocate(t *testing.T) {
	req := vtParse(t, vtEdit(t, "Contact:", "Proxy-Require: sec-agree\r\nUser-Agent: X\r\nContact:"))
	supported := []string{"Sec-Agree"}
	// Without Max-Forwards and Content-Length the sipgo lazy lookups, which
	// allocate, would run if we used them.
	bare := vtParse(t, vtEdit(t, "Max-Forwards: 70\r\n", "", "Content-Length: 4\r\n", "", "v=0\n", ""))
	require.Nil(t, bare.ContentLength(), "sipgo adds Content-Length only when there is a body")
	require.Nil(t, ValidateRequest(req, supported))
	require.Nil(t, ValidateRequest(bare, nil))
	allocs := testing.AllocsPerRun(100, func() {
		if ValidateRequest(bare, nil) != nil {
			t.Fatal("rejected")
		}
	})
	assert.Zero(t, allocs, "ValidateRequest without optional headers")
	allocs = testing.AllocsPerRun(100, func() {
		if ValidateRequest(req, supported) != nil {
			t.Fatal("rejected")
		}
	})
	// Proxy-Require values are split with strings.Cut, which does not
	// allocate either.
	assert.Zero(t, allocs, "ValidateRequest with Proxy-Require")
}

func TestRFC3261_16_6_3_NextMaxForwards(t *testing.T) {
	for _, tc := range []struct {
		name string
		text string
		edit func(*sip.Request)
		want uint32
	}{
		{name: "decrement", text: vtInvite, want: 69},
		{name: "absent gives 70", text: vtEdit(t, "Max-Forwards: 70\r\n", ""), want: 70},
		{name: "1 gives 0", text: vtEdit(t, "Max-Forwards: 70", "Max-Forwards: 1"), want: 0},
		{name: "0 does not wrap", text: vtEdit(t, "Max-Forwards: 70", "Max-Forwards: 0"), want: 0},
		{name: "large", text: vtEdit(t, "Max-Forwards: 70", "Max-Forwards: 4294967295"), want: 4294967294},
		{name: "generic header", text: vtInvite, edit: vtReplaceGeneric("Max-Forwards", "12"), want: 11},
		{name: "generic garbage", text: vtInvite, edit: vtReplaceGeneric("Max-Forwards", "x"), want: 70},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := vtParse(t, tc.text)
			if tc.edit != nil {
				tc.edit(req)
			}
			assert.Equal(t, tc.want, nextMaxForwards(req))
		})
	}
	req := vtParse(t, vtInvite)
	assert.Zero(t, testing.AllocsPerRun(100, func() { nextMaxForwards(req) }))
}

func TestRFC3261_16_6_3_SetMaxForwardsOnClones(t *testing.T) {
	req := vtParse(t, vtInvite)
	a, b := req.Clone(), req.Clone()
	// The hazard setMaxForwards exists for: sipgo clones share the header.
	require.Same(t, a.MaxForwards(), b.MaxForwards(), "sipgo no longer shares Max-Forwards between clones; setMaxForwards may be simplified")

	setMaxForwards(a, nextMaxForwards(req))
	setMaxForwards(b, 5)
	assert.Equal(t, uint32(69), a.MaxForwards().Val())
	assert.Equal(t, uint32(5), b.MaxForwards().Val())
	assert.Equal(t, uint32(70), req.MaxForwards().Val(), "received request untouched")
	assert.NotSame(t, a.MaxForwards(), b.MaxForwards())
	assert.Contains(t, a.String(), "\r\nMax-Forwards: 69\r\n")
	assert.Contains(t, b.String(), "\r\nMax-Forwards: 5\r\n")
	assert.Equal(t, 1, strings.Count(a.String(), "Max-Forwards"), "replaced, not added")

	// Clones of a clone that got its own header again share it: the rule
	// is per forwarded copy, not per generation.
	c := a.Clone()
	setMaxForwards(c, 1)
	assert.Equal(t, uint32(69), a.MaxForwards().Val())

	t.Run("absent header is added", func(t *testing.T) {
		r := vtParse(t, vtEdit(t, "Max-Forwards: 70\r\n", ""))
		setMaxForwards(r, nextMaxForwards(r))
		assert.Equal(t, uint32(70), r.MaxForwards().Val())
		assert.Equal(t, 1, strings.Count(r.String(), "Max-Forwards: 70\r\n"))
	})
	t.Run("generic header of another spelling is replaced", func(t *testing.T) {
		r := vtParse(t, vtEdit(t, "Max-Forwards: 70\r\n", ""))
		r.AppendHeader(sip.NewHeader("max-forwards", "9"))
		setMaxForwards(r, 8)
		assert.Equal(t, uint32(8), r.MaxForwards().Val())
		assert.Equal(t, 1, strings.Count(strings.ToLower(r.String()), "max-forwards"))
	})
}

func BenchmarkValidateRequest(b *testing.B) {
	req := vtParse(b, vtInvite)
	b.ReportAllocs()
	for b.Loop() {
		if ValidateRequest(req, nil) != nil {
			b.Fatal("rejected")
		}
	}
}

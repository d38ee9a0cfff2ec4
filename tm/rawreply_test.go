package tm

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// rtAnswer is the reply RawReply makes to vtInvite.
const rtAnswer = "SIP/2.0 400 Bad Request - malformed Max-Forwards header\r\n" +
	"Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n" +
	"From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n" +
	"To: Bob <sip:bob@biloxi.example.com>\r\n" +
	"Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n" +
	"CSeq: 314159 INVITE\r\n" +
	"Content-Length: 0\r\n\r\n"

const rtReason = "Bad Request - malformed Max-Forwards header"

func TestRFC3261_8_2_RawReply(t *testing.T) {
	lf := strings.ReplaceAll(vtInvite, "\r\n", "\n")
	for _, tc := range []struct {
		name   string
		data   string
		code   int
		reason string
		want   string // "" = nil
	}{
		{name: "request", data: vtInvite, want: rtAnswer},
		{name: "LF-only line endings", data: lf, want: rtAnswer},
		{name: "CR-only line endings", data: strings.ReplaceAll(vtInvite, "\r\n", "\r"), want: rtAnswer},
		{name: "leading CRLF of a stream", data: "\r\n\r\n" + vtInvite, want: rtAnswer},
		{name: "compact forms and odd spelling", data: vtEdit(t,
			"Via:", "v :", "To:", "t:", "From:", "F:", "Call-ID:", "i:\t", "CSeq:", "cseq:"), want: rtAnswer},
		{name: "names in upper case", data: vtEdit(t, "Via:", "VIA:", "Call-ID:", "CALL-ID:", "CSeq:", "CSEQ:"), want: rtAnswer},
		{name: "all Vias in order, comma lists kept", data: vtEdit(t, "Max-Forwards:",
			"Via: SIP/2.0/TCP b.example.net;branch=z9hG4bK2, SIP/2.0/UDP c.example.net\r\nContact: <sip:x@y>\r\nv: SIP/2.0/UDP d.example.net\r\nMax-Forwards:"),
			want: strings.Replace(rtAnswer, "z9hG4bK776asdhds\r\n",
				"z9hG4bK776asdhds\r\nVia: SIP/2.0/TCP b.example.net;branch=z9hG4bK2, SIP/2.0/UDP c.example.net\r\nVia: SIP/2.0/UDP d.example.net\r\n", 1)},
		{name: "folded Via and From are unfolded", data: vtEdit(t,
			"Via: SIP/2.0/UDP pc33.atlanta.example.com;", "Via: SIP/2.0/UDP\r\n  pc33.atlanta.example.com;",
			"From: Alice", "From:\r\n\tAlice"),
			want: strings.Replace(rtAnswer, "Via: SIP/2.0/UDP pc33", "Via: SIP/2.0/UDP pc33", 1)},
		{name: "folded line after an ignored header is ignored", data: vtEdit(t, "Contact: <sip:alice@pc33.atlanta.example.com>",
			"Contact: <sip:alice@pc33.atlanta.example.com>\r\n ;expires=10"), want: rtAnswer},
		{name: "names trimmed as sipgo trims them", data: vtEdit(t, "Via:", "\vVia\f:", "CSeq:", "CSeq\u00a0:"), want: rtAnswer},
		{name: "indented first header line is a header, as for sipgo",
			data: vtEdit(t, "SIP/2.0\r\nVia:", "SIP/2.0\r\n  Via:"), want: rtAnswer},
		{name: "first of repeated From is used", data: vtEdit(t, "Contact:", "From: <sip:mallory@evil.example.com>;tag=2\r\nContact:"),
			want: rtAnswer},
		{name: "body is not read as headers", data: vtEdit(t, "Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n", "",
			"v=0\n", "Via: SIP/2.0/UDP body.example.com\r\n")},
		{name: "missing Via", data: vtEdit(t, "Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n", "")},
		{name: "missing From", data: vtEdit(t, "From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n", "")},
		{name: "missing To", data: vtEdit(t, "To: Bob <sip:bob@biloxi.example.com>\r\n", "")},
		{name: "missing Call-ID", data: vtEdit(t, "Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n", "")},
		{name: "missing CSeq", data: vtEdit(t, "CSeq: 314159 INVITE\r\n", "")},
		{name: "empty Call-ID", data: vtEdit(t, "Call-ID: a84b4c76e66710@pc33.atlanta.example.com", "Call-ID: ")},
		{name: "ACK is never answered", data: vtEdit(t, "INVITE sip:", "ACK sip:", "314159 INVITE", "314159 ACK")},
		{name: "CSeq ACK is never answered", data: vtEdit(t, "314159 INVITE", "314159 ACK")},
		{name: "response", data: "SIP/2.0 200 OK\r\n" + vtInvite[strings.Index(vtInvite, "\r\n")+2:]},
		{name: "response in lower case", data: "sip/2.0 200 OK\r\n" + vtInvite[strings.Index(vtInvite, "\r\n")+2:]},
		{name: "garbage start line", data: "\x00\x01\x02 x\r\n" + vtInvite[strings.Index(vtInvite, "\r\n")+2:]},
		{name: "start line without space", data: "INVITE\r\n" + vtInvite[strings.Index(vtInvite, "\r\n")+2:]},
		{name: "malformed request line is still answered",
			data: "INVITE  sip:bob@biloxi.example.com SIP/2.0\r\n" + vtInvite[strings.Index(vtInvite, "\r\n")+2:], want: rtAnswer},
		{name: "empty", data: ""},
		{name: "keep-alive", data: "\r\n\r\n"},
		{name: "code too low", data: vtInvite, code: 99},
		{name: "code too high", data: vtInvite, code: 700},
		{name: "513", data: vtInvite, code: 513, reason: "Message Too Large",
			want: strings.Replace(rtAnswer, "400 "+rtReason, "513 Message Too Large", 1)},
		{name: "empty reason gets the default", data: vtInvite, reason: "\r\n",
			want: strings.Replace(rtAnswer, rtReason, "Bad Request", 1)},
		{name: "reason cannot inject headers", data: vtInvite, reason: "Bad Request\r\nVia: SIP/2.0/UDP evil\x00",
			want: strings.Replace(rtAnswer, rtReason, "Bad RequestVia: SIP/2.0/UDP evil", 1)},
		{name: "long reason is cut", data: vtInvite, reason: strings.Repeat("x", 500),
			want: strings.Replace(rtAnswer, rtReason, strings.Repeat("x", 100), 1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, reason := tc.code, tc.reason
			if code == 0 {
				code = 400
			}
			if reason == "" {
				reason = rtReason
			}
			got := RawReply([]byte(tc.data), code, reason)
			if tc.want == "" {
				assert.Nil(t, got, "%q", got)
				return
			}
			assert.Equal(t, tc.want, string(got))
			rtCheckShape(t, got)
		})
	}
}

// rtCheckShape checks what any RawReply output must satisfy: a status line,
// header lines with names, CRLF only, one empty line at the very end.
func rtCheckShape(t testing.TB, out []byte) {
	t.Helper()
	s := string(out)
	require.True(t, strings.HasPrefix(s, "SIP/2.0 "), "status line: %q", s)
	require.True(t, strings.HasSuffix(s, "\r\n\r\n"), "end: %q", s)
	require.Equal(t, len(s)-4, strings.Index(s, "\r\n\r\n"), "empty line only at the end: %q", s)
	bare := strings.ReplaceAll(s, "\r\n", "")
	require.NotContains(t, bare, "\r", "bare CR: %q", s)
	require.NotContains(t, bare, "\n", "bare LF: %q", s)
	lines := strings.Split(strings.TrimSuffix(s, "\r\n\r\n"), "\r\n")
	code, err := strconv.Atoi(lines[0][len("SIP/2.0 "):][:3])
	require.NoError(t, err, "status code: %q", lines[0])
	require.True(t, code >= 100 && code <= 699, "status code %d", code)
	for _, l := range lines[1:] {
		name, _, ok := strings.Cut(l, ": ")
		require.True(t, ok, "header line %q", l)
		require.Contains(t, []string{"Via", "From", "To", "Call-ID", "CSeq", "Content-Length"}, name)
	}
	require.Equal(t, "Content-Length: 0", lines[len(lines)-1])
}

func TestRFC3261_8_2_RawReplyIsParseable(t *testing.T) {
	// When only something we do not copy is broken, the answer must be a
	// response sipgo (and so the sender) can match to its transaction.
	data := vtEdit(t, "Max-Forwards: 70", "Max-Forwards: -1", "Via:", "v :")
	_, err := sip.ParseMessage([]byte(data))
	require.Error(t, err)
	out := RawReply([]byte(data), 400, parseFailureReason(err))
	require.NotNil(t, out)
	msg, err := sip.ParseMessage(out)
	require.NoError(t, err, "%s", out)
	res, ok := msg.(*sip.Response)
	require.True(t, ok)
	assert.Equal(t, 400, res.StatusCode)
	assert.Equal(t, "z9hG4bK776asdhds", res.Via().Params.GetOr("branch", ""))
	assert.Equal(t, "314159 INVITE", res.CSeq().Value())
	assert.Equal(t, "a84b4c76e66710@pc33.atlanta.example.com", res.CallID().Value())
}

func TestRFC3261_18_2_2_RawReplyDestination(t *testing.T) {
	withVia := func(via string) string {
		return vtEdit(t, "Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds", via)
	}
	for _, tc := range []struct {
		name, data, src, want string
	}{
		{name: "sent-by is the source, with port",
			data: withVia("Via: SIP/2.0/UDP 192.0.2.10:5070;branch=z9hG4bK1"), src: "192.0.2.10:40000", want: "192.0.2.10:5070"},
		{name: "sent-by is the source, default port",
			data: withVia("Via: SIP/2.0/UDP 192.0.2.10;branch=z9hG4bK1"), src: "192.0.2.10:40000", want: "192.0.2.10:5060"},
		{name: "LWS around the slashes, compact name, LF only",
			data: strings.ReplaceAll(withVia("v: SIP / 2.0 / udp  192.0.2.10:5070 ; branch=z9hG4bK1"), "\r\n", "\n"), src: "192.0.2.10:40000", want: "192.0.2.10:5070"},
		{name: "rport",
			data: withVia("Via: SIP/2.0/UDP 192.0.2.10:5070;rport;branch=z9hG4bK1"), src: "192.0.2.10:40000", want: "192.0.2.10:40000"},
		{name: "rport with value and spaces",
			data: withVia("Via: SIP/2.0/UDP 192.0.2.10:5070;branch=z9hG4bK1; RPORT=1"), src: "192.0.2.10:40000", want: "192.0.2.10:40000"},
		{name: "differing host (NAT)",
			data: withVia("Via: SIP/2.0/UDP 10.0.0.5:5060;branch=z9hG4bK1"), src: "198.51.100.7:1024", want: "198.51.100.7:1024"},
		{name: "host name",
			data: withVia("Via: SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK1"), src: "192.0.2.10:40000", want: "192.0.2.10:40000"},
		{name: "maddr is ignored",
			data: withVia("Via: SIP/2.0/UDP 192.0.2.10;maddr=203.0.113.1;branch=z9hG4bK1"), src: "192.0.2.10:40000", want: "192.0.2.10:5060"},
		{name: "IPv6",
			data: withVia("Via: SIP/2.0/UDP [2001:db8::1]:5062;branch=z9hG4bK1"), src: "[2001:db8::1]:40000", want: "[2001:db8::1]:5062"},
		{name: "IPv6, other spelling of the same address",
			data: withVia("Via: SIP/2.0/UDP [2001:DB8:0::1];branch=z9hG4bK1"), src: "[2001:db8::1]:40000", want: "[2001:db8::1]:5060"},
		{name: "IPv4-mapped source",
			data: withVia("Via: SIP/2.0/UDP 192.0.2.10:5070;branch=z9hG4bK1"), src: "[::ffff:192.0.2.10]:40000", want: "[::ffff:192.0.2.10]:5070"},
		{name: "TCP answers on the connection",
			data: withVia("Via: SIP/2.0/TCP 192.0.2.10:5070;branch=z9hG4bK1"), src: "192.0.2.10:40000", want: "192.0.2.10:40000"},
		{name: "first Via of a comma list",
			data: withVia("Via: SIP/2.0/UDP 192.0.2.10:5070;branch=z9hG4bK1, SIP/2.0/UDP 192.0.2.99:5099"), src: "192.0.2.10:40000", want: "192.0.2.10:5070"},
		{name: "port 0", data: withVia("Via: SIP/2.0/UDP 192.0.2.10:0"), src: "192.0.2.10:40000", want: "192.0.2.10:40000"},
		{name: "port too big", data: withVia("Via: SIP/2.0/UDP 192.0.2.10:70000"), src: "192.0.2.10:40000", want: "192.0.2.10:40000"},
		{name: "empty port", data: withVia("Via: SIP/2.0/UDP 192.0.2.10:"), src: "192.0.2.10:40000", want: "192.0.2.10:40000"},
		{name: "no sent-by", data: withVia("Via: SIP/2.0/UDP"), src: "192.0.2.10:40000", want: "192.0.2.10:40000"},
		{name: "unclosed IPv6", data: withVia("Via: SIP/2.0/UDP [2001:db8::1:5060"), src: "[2001:db8::1]:1", want: "[2001:db8::1]:1"},
		{name: "no Via", data: vtEdit(t, "Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n", ""), src: "192.0.2.10:1", want: "192.0.2.10:1"},
		{name: "response", data: "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 192.0.2.10:5070\r\n\r\n", src: "192.0.2.10:1", want: "192.0.2.10:1"},
		{name: "garbage", data: "\x00\xff", src: "192.0.2.10:1", want: "192.0.2.10:1"},
		{name: "src without port", data: withVia("Via: SIP/2.0/UDP 192.0.2.10:5070"), src: "192.0.2.10", want: "192.0.2.10"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.want, rawReplyDestination([]byte(tc.data), tc.src))
		})
	}
}

func TestRFC3261_16_3_1_ParseFailureReason(t *testing.T) {
	_, numErr := strconv.ParseUint("abc", 10, 32)
	for _, tc := range []struct {
		err  error
		want string
	}{
		{nil, "Bad Request"},
		{sip.ErrMessageTooLarge, "Message Too Large"},
		{sip.ErrParseReadBodyIncomplete, "Bad Request - body shorter than Content-Length"},
		{sip.ErrParseEOF, "Bad Request - truncated message or line not ending in CRLF"},
		{fmt.Errorf("x: %w", sip.ErrParseLineNoCRLF), "Bad Request - truncated message or line not ending in CRLF"},
		{io.ErrUnexpectedEOF, "Bad Request - truncated message or line not ending in CRLF"},
		{numErr, "Bad Request - malformed number in header"},
		{errors.New("transmission beginning 'x' is not a SIP message"), "Bad Request - malformed Request-Line"},
		{errors.New("Malformed protocol name in Via header"), "Bad Request - malformed Via header"},
		{errors.New("CSeq field should have precisely one whitespace section: 'x'"), "Bad Request - malformed CSeq header"},
		{errors.New("empty Call-ID body"), "Bad Request - malformed Call-ID header"},
		{errors.New(`field name with no value in header: "x"`), "Bad Request - header line without colon"},
		{errors.New("invalid uri, missing end bracket"), "Bad Request - invalid uri, missing end bracket"},
		{errors.New("evil\r\nVia: x\x00\x7f\xff"), "Bad Request - evilVia: x"},
		{errors.New(strings.Repeat("y", 300)), "Bad Request - " + strings.Repeat("y", 100-len("Bad Request - "))},
	} {
		name := "nil"
		if tc.err != nil {
			name = tc.err.Error()
		}
		t.Run(name, func(t *testing.T) {
			assert.Equal(t, tc.want, parseFailureReason(tc.err))
		})
	}
}

func TestRFC3261_16_3_1_DiagnoseParseFailure(t *testing.T) {
	for _, tc := range []struct {
		name       string
		data       string
		wantCode   int
		wantReason string
	}{
		{"Max-Forwards -1", vtEdit(t, "Max-Forwards: 70", "Max-Forwards: -1"), 400, "Bad Request - malformed Max-Forwards header"},
		{"Max-Forwards abc", vtEdit(t, "Max-Forwards: 70", "Max-Forwards: abc"), 400, "Bad Request - malformed Max-Forwards header"},
		{"Max-Forwards beyond 32 bits", vtEdit(t, "Max-Forwards: 70", "Max-Forwards: 99999999999"), 400, "Bad Request - malformed Max-Forwards header"},
		{"CSeq number", vtEdit(t, "314159 INVITE", "abc INVITE"), 400, "Bad Request - malformed CSeq header"},
		{"CSeq beyond 2^31", vtEdit(t, "314159 INVITE", "2147483648 INVITE"), 400, "Bad Request - malformed CSeq header"},
		{"Via", vtEdit(t, "Via: SIP/2.0/UDP", "Via: SIP"), 400, "Bad Request - malformed Via header"},
		{"compact Via", vtEdit(t, "Via: SIP/2.0/UDP", "v: SIP"), 400, "Bad Request - malformed Via header"},
		{"From", vtEdit(t, "From: Alice <sip:alice@atlanta.example.com>", "From: Alice <sip:alice@atlanta.example.com"), 400, "Bad Request - malformed From header"},
		{"To", vtEdit(t, "To: Bob <sip:bob@biloxi.example.com>", "To: *"), 400, "Bad Request - malformed To header"},
		{"Content-Length", vtEdit(t, "Content-Length: 4", "Content-Length: four"), 400, "Bad Request - malformed Content-Length header"},
		{"compact Content-Length", vtEdit(t, "Content-Length: 4", "l: four"), 400, "Bad Request - malformed Content-Length header"},
		{"Contact", vtEdit(t, "Contact: <sip:alice@pc33.atlanta.example.com>", "Contact: <sip:alice@pc33"), 400, "Bad Request - malformed Contact header"},
		{"folded Max-Forwards", vtEdit(t, "Max-Forwards: 70", "Max-Forwards:\r\n 7 0"), 400, "Bad Request - malformed Max-Forwards header"},
		{"header without colon", vtEdit(t, "Contact:", "Garbage\r\nContact:"), 400, "Bad Request - malformed header line"},
		{"Request-URI", vtEdit(t, "INVITE sip:bob@biloxi.example.com", "INVITE sip:[::1"), 400, "Bad Request - malformed Request-Line"},
		{"start line", vtEdit(t, "INVITE sip:bob@biloxi.example.com SIP/2.0", "INVITE"), 400, "Bad Request - malformed Request-Line"},
		{"LF only", strings.ReplaceAll(vtInvite, "\r\n", "\n"), 400, "Bad Request - lines must end with CRLF"},
		{"body shorter than Content-Length", vtEdit(t, "Content-Length: 4", "Content-Length: 40"), 400, "Bad Request - body shorter than Content-Length"},
		{"too large", vtEdit(t, "Contact:", "X-Big: "+strings.Repeat("a", 70000)+"\r\nContact:"), 513, "Message Too Large"},
		{"Content-Length beyond the maximum", vtEdit(t, "Content-Length: 4", "Content-Length: 70000"), 513, "Message Too Large"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := sip.ParseMessage([]byte(tc.data))
			require.Error(t, err, "sipgo accepted it; the case tests nothing")
			code, reason := DiagnoseParseFailure([]byte(tc.data), err)
			assert.Equal(t, tc.wantCode, code)
			assert.Equal(t, tc.wantReason, reason, "sipgo said: %v", err)
			out := RawReply([]byte(tc.data), code, reason)
			if tc.name == "start line" {
				assert.Nil(t, out, "no space in the start line: not a request")
				return
			}
			require.NotNil(t, out)
			rtCheckShape(t, out)
			assert.True(t, strings.HasPrefix(string(out), "SIP/2.0 "+strconv.Itoa(code)+" "+reason+"\r\n"))
		})
	}
	t.Run("does not modify data", func(t *testing.T) {
		data := []byte(vtEdit(t, "Max-Forwards: 70", "Max-Forwards:\r\n 7 0"))
		before := string(data)
		_, err := sip.ParseMessage(data)
		require.Error(t, err)
		DiagnoseParseFailure(data, err)
		RawReply(data, 400, "x")
		rawReplyDestination(data, "192.0.2.1:5060")
		assert.Equal(t, before, string(data))
	})
}

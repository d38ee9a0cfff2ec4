package tm

import (
	"testing"

	"github.com/emiago/sipgo/sip"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// marshal writes what sipgo's String writes, byte for byte, for the
// headers the proxy handles every day and for the ones it does not know.
func TestMarshal_SameBytesAsSipgo(t *testing.T) {
	for _, raw := range []string{
		"INVITE sip:bob@example.com;transport=tcp?Subject=hi SIP/2.0\r\n" +
			"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-1;rport=5060;received=192.0.2.9\r\n" +
			"Via: SIP/2.0/TCP [2001:db8::1]:5070;branch=z9hG4bK-2\r\n" +
			"Max-Forwards: 69\r\n" +
			"Route: <sip:p1.example.com;lr>\r\n" +
			"Record-Route: <sip:127.0.0.1:5060;lr;did=abc>\r\n" +
			"From: \"Alice A\" <sip:alice:secret@example.com>;tag=1928301774\r\n" +
			"To: <sip:bob@example.com>\r\n" +
			"Call-ID: a84b4c76e66710@pc33.example.com\r\n" +
			"CSeq: 314159 INVITE\r\n" +
			"Contact: <sip:alice@[2001:db8::9]:5062>;expires=60;+sip.instance=\"<urn:uuid:1>\"\r\n" +
			"Content-Type: application/sdp\r\n" +
			"X-Custom: any value at all\r\n" +
			"P-Asserted-Identity: <tel:+15551234>\r\n" +
			"Content-Length: 4\r\n\r\nv=0\n",
		"SIP/2.0 180 Ringing\r\n" +
			"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK-1\r\n" +
			"From: <sip:alice@example.com>;tag=1\r\n" +
			"To: <sip:bob@example.com>;tag=2\r\n" +
			"Call-ID: c@h\r\nCSeq: 1 INVITE\r\nContact: *\r\nContent-Length: 0\r\n\r\n",
	} {
		m, err := sip.ParseMessage([]byte(raw))
		require.NoError(t, err)
		assert.Equal(t, m.String(), string(marshal(m)))
	}
}

// Issue 14: a parameter value that arrived quoted is sent as it arrived,
// never quoted a second time.
func TestMarshal_QuotedParamsStayAsTheyAre(t *testing.T) {
	to := &sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: "bob", Host: "example.com"},
		Params: sip.HeaderParams{{K: "tag", V: "1"}, {K: "x", V: "\"a b\""}, {K: "y", V: "c d"}}}
	got := string(appendHeader(nil, to))
	assert.Equal(t, `To: <sip:bob@example.com>;tag=1;x="a b";y="c d"`, got)
	// RFC 4475 §3.1.1.1: "; tag = 98asjd8" is tag 98asjd8, not " 98asjd8".
	to.Params = sip.HeaderParams{{K: " tag ", V: " 98asjd8"}}
	assert.Equal(t, `To: <sip:bob@example.com>;tag=98asjd8`, string(appendHeader(nil, to)))
}

func BenchmarkMarshal(b *testing.B) {
	m, err := sip.ParseMessage([]byte("SIP/2.0 200 OK\r\n" +
		"Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-1;rport=5060\r\n" +
		"Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK-2;rport=5062;received=127.0.0.1\r\n" +
		"Record-Route: <sip:127.0.0.1:5060;lr;did=abc>\r\n" +
		"From: <sip:alice@example.com>;tag=1\r\nTo: <sip:bob@example.com>;tag=2\r\n" +
		"Call-ID: c@h\r\nCSeq: 1 INVITE\r\nContact: <sip:bob@127.0.0.1:5064>\r\nContent-Length: 0\r\n\r\n"))
	require.NoError(b, err)
	b.Run("sipgo", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			_ = []byte(m.String())
		}
	})
	b.Run("marshal", func(b *testing.B) {
		b.ReportAllocs()
		for range b.N {
			_ = marshal(m)
		}
	})
}

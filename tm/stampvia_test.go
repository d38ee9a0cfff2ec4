package tm

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// RFC 3261 §18.2.1 and RFC 3581 §4: received when the sent-by host is a
// name or another address than the packet's source, rport filled with the
// source port when the client asked for it.
func TestRFC3261_18_2_1_ReceivedAndRport(t *testing.T) {
	for _, tc := range []struct {
		name, via, source, src string
		received, rport        string // "-": no such parameter
	}{
		{"same address", "SIP/2.0/UDP 127.0.0.1:5081;branch=z9hG4bK1", "127.0.0.1:5081", "127.0.0.1:5081", "-", "-"},
		{"rport filled", "SIP/2.0/UDP 127.0.0.1:5081;branch=z9hG4bK1;rport", "127.0.0.1:40000", "127.0.0.1:40000", "-", "40000"},
		{"other address", "SIP/2.0/UDP 127.0.0.2:5081;branch=z9hG4bK1;rport", "127.0.0.1:5081", "127.0.0.1:5081", "127.0.0.1", "5081"},
		{"host name", "SIP/2.0/UDP client.example.com;branch=z9hG4bK1", "127.0.0.1:5060", "127.0.0.1:5060", "127.0.0.1", "-"},
		{"IPv6 same address in another spelling", "SIP/2.0/UDP [0:0::1]:5081;branch=z9hG4bK1", "[::1]:5081", "[::1]:5081", "-", "-"},
		{"IPv6 other address", "SIP/2.0/UDP [::2]:5081;branch=z9hG4bK1;rport", "[::1]:7000", "[::1]:7000", "::1", "7000"},
		{"no source string", "SIP/2.0/UDP 127.0.0.2;branch=z9hG4bK1;rport", "", "127.0.0.1:6000", "127.0.0.1", "6000"},
		{"source string of another address", "SIP/2.0/UDP 127.0.0.2;branch=z9hG4bK1;rport", "127.0.0.9:1", "127.0.0.1:6000", "127.0.0.1", "6000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			msg, err := sip.ParseMessage([]byte("OPTIONS sip:a@127.0.0.1 SIP/2.0\r\nVia: " + tc.via +
				"\r\nFrom: <sip:b@x>;tag=1\r\nTo: <sip:a@x>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"))
			require.NoError(t, err)
			req := msg.(*sip.Request)
			req.SetSource(tc.source)
			stampVia(req, netip.MustParseAddrPort(tc.src))
			for _, p := range []struct{ name, want string }{{"received", tc.received}, {"rport", tc.rport}} {
				v, ok := Param(req.Via().Params, p.name)
				if p.want == "-" {
					assert.False(t, ok, "%s=%q", p.name, v)
				} else {
					assert.Equal(t, p.want, v, p.name)
				}
			}
		})
	}
}

// Issue 14: stamping a request from a known source allocates nothing (the
// address and port were formatted per request).
func TestStampViaAllocatesNothing(t *testing.T) {
	msg, err := sip.ParseMessage([]byte("OPTIONS sip:a@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5081;branch=z9hG4bK1;rport" +
		"\r\nFrom: <sip:b@x>;tag=1\r\nTo: <sip:a@x>\r\nCall-ID: c\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"))
	require.NoError(t, err)
	req := msg.(*sip.Request)
	req.SetSource("127.0.0.1:40000")
	src := netip.MustParseAddrPort("127.0.0.1:40000")
	assert.Zero(t, testing.AllocsPerRun(100, func() { stampVia(req, src) }))
}

// §16.2 / §8.2.6.1: the 100 (Trying) written straight from the request is
// byte for byte what sipgo's NewResponseFromRequest and marshal made (the
// Vias, From, To, Call-ID, CSeq, a Timestamp, no To tag), for every
// request of the parser's seeds, through both parsers.
func TestRFC3261_8_2_6_TryingAsSipgoBuildsIt(t *testing.T) {
	seeds := append(mpSeeds(t),
		strings.Replace(vtInvite, "Max-Forwards: 70", "Timestamp: 54 0.5\r\nMax-Forwards: 70", 1),
		strings.Replace(vtInvite, "Via:", "v: SIP/2.0/UDP [::1]:5070;branch=z9hG4bK-2;rport\r\nVia:", 1),
		"INVITE sip:b@y SIP/2.0\r\nv: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK-1, SIP/2.0/TCP h;branch=z9hG4bK-2\r\n"+
			"f: \"A b\" <sip:a@x>;tag=1\r\nt: b <sip:b@y>\r\ni: c@h\r\nCSeq: 7 INVITE\r\nl: 0\r\n\r\n")
	p := NewParser(0)
	n := 0
	for i, seed := range seeds {
		for _, parse := range []func([]byte) (sip.Message, error){p.ParseSIP, sip.NewParser().ParseSIP} {
			msg, err := parse([]byte(seed))
			req, ok := msg.(*sip.Request)
			if err != nil || !ok || req.Via() == nil {
				continue
			}
			req.SetSource("127.0.0.1:5999")
			stampVia(req, netip.MustParseAddrPort("127.0.0.1:5999"))
			want := marshal(sip.NewResponseFromRequest(req, 100, "Trying", nil))
			assert.Equal(t, string(want), string(appendTrying(nil, req)), "seed %d:\n%s", i, seed)
			n++
		}
	}
	assert.Greater(t, n, 20, "requests compared")
}

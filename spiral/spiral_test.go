package spiral

import (
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// We are the S-CSCF, listening on scscf.ims.example.net (5060 and 5061),
// 10.0.0.1:5060, [2001:db8::1]:5060 and tls.ims.example.net:5061, so that
// each default port is told apart.
const (
	us      = "scscf.ims.example.net"
	ueVia   = "Via: SIP/2.0/UDP 10.9.9.9:5060;branch=z9hG4bKue1"
	ourVia  = "Via: SIP/2.0/UDP " + us + ";branch=z9hG4bK-0123456789abcdef-1.0"
	asVia   = "Via: SIP/2.0/UDP as.ims.example.net;branch=z9hG4bKas1"
	ueVia2  = "Via: SIP/2.0/UDP 10.9.9.8:5060;branch=z9hG4bKue2"
	pcscfRR = "Record-Route: <sip:pcscf.ims.example.net;lr>"
)

func isOurs(host string, port int) bool {
	switch host {
	case us:
		return port == 5060 || port == 5061
	case "10.0.0.1", "2001:db8::1":
		return port == 5060
	case "tls.ims.example.net":
		return port == 5061
	}
	return false
}

// marker adapts a host:port table to the URI and Via predicates tm.Sender
// gives the dialog module: brackets off, default ports as RFC 3263 has them.
func marker(rrParam string, ours func(host string, port int) bool) Marker {
	port := func(p int, secure bool) int {
		switch {
		case p != 0:
			return p
		case secure:
			return 5061
		}
		return 5060
	}
	unbracket := func(h string) string { return strings.TrimSuffix(strings.TrimPrefix(h, "["), "]") }
	return Marker{
		RRParam: rrParam,
		IsOurURI: func(u *sip.Uri) bool {
			tp, _ := u.UriParams.Get("transport")
			return ours(unbracket(u.Host), port(u.Port, u.IsEncrypted() || strings.EqualFold(tp, "tls")))
		},
		IsOurVia: func(v *sip.ViaHeader) bool {
			return ours(unbracket(v.Host), port(v.Port, strings.EqualFold(v.Transport, "TLS")))
		},
	}
}

var mk = marker("", isOurs)

// req parses an INVITE with the given header lines (Via, Route,
// Record-Route ... in message order) and the usual mandatory ones.
func req(tb testing.TB, lines ...string) *sip.Request {
	tb.Helper()
	return reqTo(tb, "sip:bob@ims.example.net", lines...)
}

func reqTo(tb testing.TB, ruri string, lines ...string) *sip.Request {
	tb.Helper()
	text := "INVITE " + ruri + " SIP/2.0\r\n" + strings.Join(lines, "\r\n")
	if len(lines) > 0 {
		text += "\r\n"
	}
	text += "Max-Forwards: 68\r\n" +
		"From: <sip:alice@ims.example.net>;tag=ftag\r\n" +
		"To: <sip:bob@ims.example.net>\r\n" +
		"Call-ID: cid@10.9.9.9\r\n" +
		"CSeq: 1 INVITE\r\n" +
		"Content-Length: 0\r\n\r\n"
	msg, err := sip.ParseMessage([]byte(text))
	require.NoError(tb, err, "parse:\n%s", text)
	r, ok := msg.(*sip.Request)
	require.True(tb, ok)
	return r
}

func ourRR(did string) string  { return "Record-Route: <sip:" + us + ";lr;did=" + did + ">" }
func ourRte(did string) string { return "Route: <sip:" + us + ";lr;did=" + did + ">" }

type tcase struct {
	name  string
	req   *sip.Request
	known []Known
	m     Marker
	want  Verdict
	idx   int
}

func run(t *testing.T, cases []tcase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := tc.m
			if m.IsOurURI == nil {
				m = mk
			}
			v, i := Classify(tc.req, tc.known, m)
			assert.Equal(t, tc.want, v)
			assert.Equal(t, tc.idx, i)
		})
	}
}

// live is the dialog the UE's INVITE created on its first pass through us.
var live = Known{DID: "1f.2a", ViaBranch: "z9hG4bKue1"}

func TestVerdict_String(t *testing.T) {
	for v, want := range map[Verdict]string{New: "NEW", Spiral: "SPIRAL", Retransmission: "RETRANSMISSION", 7: "Verdict(7)"} {
		assert.Equal(t, want, v.String())
	}
}

func TestSeedImsDialog_DetectSpirals_NoKnownDialogIsNew(t *testing.T) {
	run(t, []tcase{
		{name: "no known dialog", req: req(t, asVia, ourVia, ueVia, ourRR("1f.2a")), known: nil, want: New, idx: -1},
		{name: "empty known", req: req(t, asVia, ourVia, ueVia, ourRR("1f.2a")), known: []Known{}, want: New, idx: -1},
	})
}

// Seed 002 §5.9: a message routed through the proxy again is mapped to the
// existing dialog. Here it comes back from an AS (S-CSCF → AS → S-CSCF).
func TestSeedImsDialog_DetectSpirals_SpiralMarkers(t *testing.T) {
	run(t, []tcase{
		{
			name: "our Via below the AS's",
			req:  req(t, asVia, ourVia, ueVia), known: []Known{live}, want: Spiral, idx: 0,
		},
		{
			name: "our Via, by IP and explicit port",
			req:  req(t, asVia, "Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-x", ueVia), known: []Known{live}, want: Spiral, idx: 0,
		},
		{
			name: "our Via over IPv6",
			req:  req(t, asVia, "Via: SIP/2.0/UDP [2001:db8::1];branch=z9hG4bK-x", ueVia), known: []Known{live}, want: Spiral, idx: 0,
		},
		{
			name: "our TLS Via on the default port 5061",
			req:  req(t, asVia, "Via: SIP/2.0/TLS tls.ims.example.net;branch=z9hG4bK-x", ueVia), known: []Known{live}, want: Spiral, idx: 0,
		},
		{
			name: "Route of ours with the did (AS pre-loaded route, ODI-like)",
			req:  req(t, asVia, ueVia2, ourRte("1f.2a")), known: []Known{live}, want: Spiral, idx: 0,
		},
		{
			name: "Route of ours with the did, sips on the default port 5061",
			req:  req(t, asVia, ueVia2, "Route: <sips:tls.ims.example.net;lr;did=1f.2a>"), known: []Known{live}, want: Spiral, idx: 0,
		},
		{
			name: "Record-Route of ours with the did, transport=tls on the default port 5061",
			req:  req(t, asVia, ueVia2, "Record-Route: <sip:tls.ims.example.net;transport=TLS;lr;did=1f.2a>"), known: []Known{live}, want: Spiral, idx: 0,
		},
		{
			name: "Route of ours with the did after another Route",
			req:  req(t, asVia, ueVia2, "Route: <sip:other.example.net;lr>", ourRte("1f.2a")), known: []Known{live}, want: Spiral, idx: 0,
		},
		{
			name: "Record-Route of ours with the did",
			req:  req(t, asVia, ueVia2, "Record-Route: <sip:as.ims.example.net;lr>", ourRR("1f.2a"), pcscfRR), known: []Known{live}, want: Spiral, idx: 0,
		},
		{
			name:  "Record-Route of ours, double record-routed, comma-separated",
			req:   req(t, asVia, ueVia2, "Record-Route: <sip:as.ims.example.net;lr>, <sip:"+us+";transport=tcp;lr;did=1f.2a>, <sip:"+us+";lr;did=1f.2a>"),
			known: []Known{live}, want: Spiral, idx: 0,
		},
		{
			name: "Request-URI of ours with the did (strict router before us)",
			req:  reqTo(t, "sip:"+us+";lr;did=1f.2a", asVia, ueVia2, "Route: <sip:bob@ims.example.net>"), known: []Known{live}, want: Spiral, idx: 0,
		},
		{
			name: "configured rr_param",
			req:  req(t, asVia, ueVia2, "Record-Route: <sip:"+us+";lr;xyz=1f.2a>"), known: []Known{live},
			m: marker("xyz", isOurs), want: Spiral, idx: 0,
		},
		{
			name: "parameter names are case-insensitive",
			req:  req(t, asVia, ueVia2, "Record-Route: <sip:"+us+";lr;DID=1f.2a>"), known: []Known{live}, want: Spiral, idx: 0,
		},
	})
}

func TestDesign4_Spirals_PickTheDialogAmongSeveral(t *testing.T) {
	// Two dialogs with the same Call-ID and From-tag: an upstream fork sent
	// two INVITEs through us, each made its own dialog.
	a := Known{DID: "a.1", ViaBranch: "z9hG4bKue1"}
	b := Known{DID: "b.2", ViaBranch: "z9hG4bKue2"}
	run(t, []tcase{
		{name: "Route did picks the second", req: req(t, asVia, ourRte("b.2")), known: []Known{a, b}, want: Spiral, idx: 1},
		{name: "Route did picks the first", req: req(t, asVia, ourRte("a.1")), known: []Known{a, b}, want: Spiral, idx: 0},
		{name: "Record-Route did picks the second", req: req(t, asVia, ourRR("b.2")), known: []Known{a, b}, want: Spiral, idx: 1},
		{name: "Via below ours picks the second", req: req(t, asVia, ourVia, ueVia2), known: []Known{a, b}, want: Spiral, idx: 1},
		{name: "Via below ours picks the first", req: req(t, asVia, ourVia, ueVia), known: []Known{a, b}, want: Spiral, idx: 0},
		{
			name:  "second spiral: the dialog was made on our second pass",
			req:   req(t, "Via: SIP/2.0/UDP as2.example.net;branch=z9hG4bKas2", ourVia, asVia, ourVia, ueVia),
			known: []Known{a, {DID: "c.3", ViaBranch: "z9hG4bKas1"}}, want: Spiral, idx: 1,
		},
		{
			name: "our Via but no branch below it is known: cannot tell which",
			req:  req(t, asVia, ourVia, "Via: SIP/2.0/UDP 10.9.9.7;branch=z9hG4bKother"), known: []Known{a, b}, want: New, idx: -1,
		},
		{
			name: "did of an unknown dialog is passed over for the Via",
			req:  req(t, asVia, ourVia, ueVia2, ourRte("zz.9")), known: []Known{a, b}, want: Spiral, idx: 1,
		},
	})
}

// The known Kamailio bug (DESIGN §4, §8): Call-ID + From-tag alone mistake
// these for spirals.
func TestDesign4_Spirals_NoMarkerIsANewDialog(t *testing.T) {
	run(t, []tcase{
		{
			name: "replayed INVITE (new branch, no marker)",
			req:  req(t, "Via: SIP/2.0/UDP 10.9.9.9:5060;branch=z9hG4bKreplay"), known: []Known{live}, want: New, idx: -1,
		},
		{
			name: "upstream fork: same Call-ID/From-tag, other branch of the forking proxy",
			req:  req(t, "Via: SIP/2.0/UDP pcscf.ims.example.net;branch=z9hG4bKfork.2", ueVia2, pcscfRR), known: []Known{live}, want: New, idx: -1,
		},
		{
			name: "UE reusing its Call-ID",
			req:  req(t, ueVia2), known: []Known{live}, want: New, idx: -1,
		},
		{
			name:  "Route and Record-Route with the did but not ours",
			req:   req(t, asVia, ueVia2, "Route: <sip:other.example.net;lr;did=1f.2a>", "Record-Route: <sip:other.example.net;lr;did=1f.2a>"),
			known: []Known{live}, want: New, idx: -1,
		},
		{
			name:  "our host on another port",
			req:   req(t, asVia, "Via: SIP/2.0/UDP "+us+":5070;branch=z9hG4bK-x", ueVia, "Route: <sip:"+us+":5070;lr;did=1f.2a>"),
			known: []Known{live}, want: New, idx: -1,
		},
		{
			name: "a sip URI without transport=tls defaults to 5060",
			req:  req(t, asVia, ueVia2, "Route: <sip:tls.ims.example.net;lr;did=1f.2a>"), known: []Known{live}, want: New, idx: -1,
		},
		{
			name: "TLS default port is not our UDP port on the IPv6 address",
			req:  req(t, asVia, "Via: SIP/2.0/TLS [2001:db8::1];branch=z9hG4bK-x", ueVia), known: []Known{live}, want: New, idx: -1,
		},
		{
			name: "our Via on top only is the previous hop's, not a marker",
			req:  req(t, ourVia, ueVia2), known: []Known{live}, want: New, idx: -1,
		},
		{
			name: "our entries without a did and no Via of ours",
			req:  req(t, asVia, ueVia2, "Route: <sip:"+us+";lr>", "Record-Route: <sip:"+us+";lr;did=>"), known: []Known{live}, want: New, idx: -1,
		},
		{
			name: "IsOurs that owns nothing",
			req:  req(t, asVia, ourVia, ueVia, ourRte("1f.2a"), ourRR("1f.2a")), known: []Known{live},
			m: marker("", func(string, int) bool { return false }), want: New, idx: -1,
		},
		{
			name: "wrong rr_param",
			req:  req(t, asVia, ueVia2, ourRR("1f.2a")), known: []Known{live},
			m: marker("xyz", isOurs), want: New, idx: -1,
		},
	})
}

func TestDesign4_Spirals_Retransmission(t *testing.T) {
	dead := live
	dead.Terminated = true
	run(t, []tcase{
		{name: "same top Via branch", req: req(t, ueVia), known: []Known{live}, want: Retransmission, idx: 0},
		{name: "same top Via branch, second dialog", req: req(t, ueVia2), known: []Known{live, {DID: "x", ViaBranch: "z9hG4bKue2"}}, want: Retransmission, idx: 1},
		{name: "of a terminated dialog: still nothing new", req: req(t, ueVia), known: []Known{dead}, want: Retransmission, idx: 0},
		{name: "beats a marker", req: req(t, ueVia, ourRR("1f.2a")), known: []Known{live}, want: Retransmission, idx: 0},
		{name: "branch below the top is no retransmission", req: req(t, asVia, ueVia), known: []Known{live}, want: New, idx: -1},
		{name: "empty branches never match", req: req(t, "Via: SIP/2.0/UDP 10.9.9.9:5060"), known: []Known{{DID: "1"}}, want: New, idx: -1},
	})
}

func TestDesign4_Spirals_TerminatedDialogNotJoined(t *testing.T) {
	dead := live
	dead.Terminated = true
	run(t, []tcase{
		{name: "by Route did", req: req(t, asVia, ueVia2, ourRte("1f.2a")), known: []Known{dead}, want: New, idx: -1},
		{name: "by Record-Route did", req: req(t, asVia, ueVia2, ourRR("1f.2a")), known: []Known{dead}, want: New, idx: -1},
		{name: "by Via below ours", req: req(t, asVia, ourVia, ueVia), known: []Known{dead}, want: New, idx: -1},
		{name: "by our Via alone", req: req(t, asVia, ourVia, ueVia2), known: []Known{dead}, want: New, idx: -1},
		{
			name: "a did shared with a terminated dialog joins the live one",
			req:  req(t, asVia, ueVia2, ourRte("1f.2a")), known: []Known{dead, {DID: "1f.2a", ViaBranch: "z9hG4bKzz"}}, want: Spiral, idx: 1,
		},
		{
			name: "a branch shared with a terminated dialog joins the live one",
			req:  req(t, asVia, ourVia, ueVia), known: []Known{dead, {DID: "2", ViaBranch: "z9hG4bKue1"}}, want: Spiral, idx: 1,
		},
		{
			name:  "our Via alone, the live one of two",
			req:   req(t, asVia, ourVia, "Via: SIP/2.0/UDP 10.9.9.7;branch=z9hG4bKother"),
			known: []Known{dead, {DID: "2", ViaBranch: "z9hG4bKzz"}}, want: Spiral, idx: 1,
		},
	})
}

// When markers disagree the did decides: it names the dialog, our Via only
// says the request passed through us.
func TestDesign4_Spirals_DIDBeatsVia(t *testing.T) {
	a := Known{DID: "a.1", ViaBranch: "z9hG4bKue1"}
	b := Known{DID: "b.2", ViaBranch: "z9hG4bKue2"}
	deadB := b
	deadB.Terminated = true
	run(t, []tcase{
		{name: "Route did against Via", req: req(t, asVia, ourVia, ueVia, ourRte("b.2")), known: []Known{a, b}, want: Spiral, idx: 1},
		{name: "Record-Route did against Via", req: req(t, asVia, ourVia, ueVia, ourRR("b.2")), known: []Known{a, b}, want: Spiral, idx: 1},
		{name: "Route did beats Record-Route did", req: req(t, asVia, ourRte("a.1"), ourRR("b.2")), known: []Known{a, b}, want: Spiral, idx: 0},
		{name: "Request-URI did beats Route did", req: reqTo(t, "sip:"+us+";lr;did=b.2", asVia, ourRte("a.1")), known: []Known{a, b}, want: Spiral, idx: 1},
		{name: "did of a terminated dialog against a live Via", req: req(t, asVia, ourVia, ueVia, ourRte("b.2")), known: []Known{a, deadB}, want: New, idx: -1},
	})
}

// IsOurs gets hosts without IPv6 brackets, whether the URI or Via was
// parsed (sipgo strips them) or built by code that kept them.
func TestSeedImsDialog_DetectSpirals_IPv6Brackets(t *testing.T) {
	bracketed := func(h sip.Header) *sip.Request {
		r := sip.NewRequest(sip.INVITE, sip.Uri{Scheme: "sip", Host: "bob.example.net"})
		r.AppendHeader(&sip.ViaHeader{Host: "as.example.net", Params: sip.HeaderParams{{K: "branch", V: "z9hG4bKas"}}})
		r.AppendHeader(h)
		r.AppendHeader(&sip.ViaHeader{Host: "10.9.9.9", Params: sip.HeaderParams{{K: "branch", V: "z9hG4bKue1"}}})
		return r
	}
	did := sip.HeaderParams{{K: "lr"}, {K: "did", V: "1f.2a"}}
	run(t, []tcase{
		{name: "Via", req: bracketed(&sip.ViaHeader{Host: "[2001:db8::1]", Transport: "UDP"}), known: []Known{live}, want: Spiral, idx: 0},
		{name: "Route", req: bracketed(&sip.RouteHeader{Address: sip.Uri{Scheme: "sip", Host: "[2001:db8::1]", UriParams: did}}), known: []Known{live}, want: Spiral, idx: 0},
		{name: "Record-Route", req: bracketed(&sip.RecordRouteHeader{Address: sip.Uri{Scheme: "sip", Host: "[2001:db8::1]", UriParams: did}}), known: []Known{live}, want: Spiral, idx: 0},
	})
}

func TestDesign4_Spirals_MalformedOrAbsentHeaders(t *testing.T) {
	bare := sip.NewRequest(sip.INVITE, sip.Uri{})
	noHost := sip.NewRequest(sip.INVITE, sip.Uri{Scheme: "sip", UriParams: sip.HeaderParams{{K: "did", V: "1f.2a"}}})
	noHost.AppendHeader(&sip.RouteHeader{})
	noHost.AppendHeader(&sip.RecordRouteHeader{})
	noHost.AppendHeader(&sip.ViaHeader{})
	noHost.AppendHeader(&sip.ViaHeader{Host: us})
	noHost.AppendHeader(&sip.ViaHeader{})
	generic := sip.NewRequest(sip.INVITE, sip.Uri{Scheme: "sip", Host: "x"})
	generic.AppendHeader(sip.NewHeader("Via", "SIP/2.0/UDP "+us+";branch=z9hG4bKue1"))
	generic.AppendHeader(sip.NewHeader("Route", "<sip:"+us+";lr;did=1f.2a>"))
	run(t, []tcase{
		{name: "nil request", req: nil, known: []Known{live}, want: New, idx: -1},
		{name: "no headers at all", req: bare, known: []Known{live}, want: New, idx: -1},
		{name: "empty Via and Route values", req: noHost, known: []Known{live}, want: Spiral, idx: 0},
		{name: "unparsed headers count as absent", req: generic, known: []Known{live}, want: New, idx: -1},
		{name: "no Via", req: req(t, ourRte("1f.2a")), known: []Known{live}, want: Spiral, idx: 0},
	})
	v, i := Classify(req(t, asVia, ourVia, ueVia), []Known{live}, Marker{})
	assert.Equal(t, New, v, "nil IsOurs")
	assert.Equal(t, -1, i)
}

func TestDIDOf(t *testing.T) {
	for _, tc := range []struct {
		uri, param, did string
		ok              bool
	}{
		{uri: "sip:" + us + ";lr;did=1f.2a", param: "", did: "1f.2a", ok: true},
		{uri: "sip:" + us + ";lr;did=1f.2a", param: "did", did: "1f.2a", ok: true},
		{uri: "sip:" + us + ";lr;Did=1f.2a", param: "dID", did: "1f.2a", ok: true},
		{uri: "sip:" + us + ";lr;xyz=abc;did=1f", param: "xyz", did: "abc", ok: true},
		{uri: "sip:" + us + ";lr;did", param: "", did: "", ok: false},
		{uri: "sip:" + us + ";lr;did=", param: "", did: "", ok: false},
		{uri: "sip:" + us + ";lr", param: "", did: "", ok: false},
		{uri: "sip:user@" + us + "?did=1f", param: "", did: "", ok: false},
	} {
		t.Run(tc.uri+"/"+tc.param, func(t *testing.T) {
			var u sip.Uri
			require.NoError(t, sip.ParseUri(tc.uri, &u))
			did, ok := DIDOf(u, tc.param)
			assert.Equal(t, tc.did, did)
			assert.Equal(t, tc.ok, ok)
		})
	}
}

func TestDesign4_Spirals_ClassifyDoesNotAllocate(t *testing.T) {
	r := req(t, asVia, ourVia, ueVia, "Route: <sip:other.example.net;lr>", ourRte("zz"), ourRR("b.2"), pcscfRR)
	known := []Known{live, {DID: "b.2", ViaBranch: "z9hG4bKue2"}}
	allocs := testing.AllocsPerRun(100, func() {
		if v, _ := Classify(r, known, mk); v != Spiral {
			t.Fatal(v)
		}
	})
	assert.Zero(t, allocs)
}

func BenchmarkClassify(b *testing.B) {
	r := req(b, asVia, ourVia, ueVia, "Route: <sip:other.example.net;lr>", ourRR("b.2"), pcscfRR)
	known := []Known{live, {DID: "b.2", ViaBranch: "z9hG4bKue2"}}
	b.ReportAllocs()
	for b.Loop() {
		Classify(r, known, mk)
	}
}

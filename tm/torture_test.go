package tm

import (
	"fmt"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imsdlg/imsdlg/internal/siptest"
)

// RFC 4475 §3.1.2.17 with RFC 3261 §8.2.2.1 / §16.3 step 2: a Request-URI
// with a scheme the proxy does not handle gets 416, not 400.
func TestRFC4475_3_1_2_17_UnknownSchemeIs416(t *testing.T) {
	uac := siptest.NewUA(t)
	p := startProxy(t, testCfg(), toUAs())
	uac.SendRaw(p.udp, "OPTIONS soap.beep://192.0.2.103:3002 SIP/2.0\r\n"+
		"Via: SIP/2.0/UDP "+uac.HostPort()+";branch=z9hG4bK-soap;rport\r\n"+
		"To: <sip:t@example.com>\r\nFrom: <sip:f@example.com>;tag=1\r\nCall-ID: soap-1@test\r\n"+
		"CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
	res := uac.Final()
	assert.Equal(t, 416, res.StatusCode)
	assert.Equal(t, "soap-1@test", res.CallID().Value())
}

// RFC 3261 §19.1.5: headers escaped in a Request-URI are for the UAC that
// builds a request from it; they never travel in a Request-URI the proxy
// sends on (issue 11 §5), neither to a target nor along the request's own
// URI.
func TestRFC3261_19_1_5_EscapedHeadersLeaveTheRequestURI(t *testing.T) {
	uac, uas := siptest.NewUA(t), siptest.NewUA(t)
	p := startProxy(t, testCfg(), RouterFunc(func(*Request) Decision { return RelayTo() }))
	ruri := fmt.Sprintf("sip:bob@127.0.0.1:%d?Route=%%3Csip:evil.example.com%%3E&Subject=x", uas.Addr.Port)
	uac.Send(p.udp, uac.NewRequest("MESSAGE", ruri, 1))
	got := uas.Request("MESSAGE")
	assert.Empty(t, got.Recipient.Headers)
	assert.NotContains(t, got.StartLine(), "?")
	assert.NotContains(t, got.StartLine(), "evil")
	uas.Reply(got, 200, "b")
	uac.Final()
}

// RFC 3261 §16.6 step 6 and §16.12: a pre-loaded Route to a strict router
// (no lr) puts that router's URI in the Request-URI, moves the
// Request-URI to the end of the route set, and the request goes to the
// strict router (issue 11 §6: it went to the Request-URI's host).
func TestRFC3261_16_6_6_StrictRouterGetsTheRequest(t *testing.T) {
	uac, strict, dest := siptest.NewUA(t), siptest.NewUA(t), siptest.NewUA(t)
	p := startProxy(t, testCfg(), RouterFunc(func(*Request) Decision { return RelayTo() }))
	ruri := fmt.Sprintf("sip:bob@127.0.0.1:%d", dest.Addr.Port)
	route := fmt.Sprintf("Route: <sip:127.0.0.1:%d>, <sip:next.example.com;lr>", strict.Addr.Port)
	uac.Send(p.udp, uac.NewRequest("MESSAGE", ruri, 1, route))
	got := strict.Request("MESSAGE")
	assert.Equal(t, fmt.Sprintf("sip:127.0.0.1:%d", strict.Addr.Port), got.Recipient.String())
	var routes []string
	for _, h := range got.GetHeaders("Route") {
		routes = append(routes, strings.Trim(h.Value(), "<>"))
	}
	assert.Equal(t, []string{"sip:next.example.com;lr", ruri}, routes, "the Request-URI goes last")
	dest.Quiet(30e6, "the request at the Request-URI's host", func(m sip.Message) bool { _, ok := m.(*sip.Request); return ok })
	strict.Reply(got, 200, "s")
	uac.Final()
}

// RFC 3261 §7.3.1 (issue 11 §8): tag parameter names are case-insensitive
// for tm too: a request whose To tag is written TAG= is within a dialog.
func TestRFC3261_7_3_1_UpperCaseToTagIsInDialog(t *testing.T) {
	uac, uas := siptest.NewUA(t), siptest.NewUA(t)
	initial := make(chan bool, 1)
	p := startProxy(t, testCfg(), RouterFunc(func(r *Request) Decision {
		initial <- r.Initial
		return RelayTo(Target{URI: sip.Uri{Scheme: "sip", User: "bob", Host: "127.0.0.1", Port: uas.Addr.Port}})
	}))
	req := uac.NewRequest("INFO", "sip:bob@"+p.udp, 2)
	req.To().Params.Add("TAG", "callee-1")
	uac.Send(p.udp, req)
	require.False(t, <-initial)
	uas.Reply(uas.Request("INFO"), 200, "")
	uac.Final()
}

// tm.follow_redirects over sockets: the 302's Contact gets the INVITE, the
// caller never sees the 302.
func TestRFC3261_16_7_FollowRedirectsOverSockets(t *testing.T) {
	uac, a, b := siptest.NewUA(t), siptest.NewUA(t), siptest.NewUA(t)
	cfg := testCfg()
	cfg.FollowRedirects = 1
	p := startProxy(t, cfg, toUAs(a))
	uac.Send(p.udp, uac.Invite("sip:bob@"+p.udp))
	a.Reply(a.Request(sip.INVITE), 302, "a", fmt.Sprintf("Contact: <sip:bob-moved@127.0.0.1:%d>", b.Addr.Port))
	ib := b.Request(sip.INVITE)
	assert.Equal(t, "bob-moved", ib.Recipient.User)
	b.Reply(ib, 486, "b")
	assert.Equal(t, 486, uac.Final().StatusCode, "the best of the new step; the 302 stays here")
}

// Issue 15 §10: a header value with a bare LF, a NUL or another control
// byte, or a header name with a space, is answered 400 and never relayed
// (header smuggling).
func TestIssue15_HeaderSmugglingIs400(t *testing.T) {
	uac, uas := siptest.NewUA(t), siptest.NewUA(t)
	p := startProxy(t, testCfg(), toUAs(uas))
	for _, tc := range []struct{ name, header, reason string }{
		{"bare LF in a value", "X-A: one\nVia: SIP/2.0/UDP 10.6.6.6;branch=z9hG4bKevil", "bare LF"},
		{"NUL in a value", "X-A: one\x00two", "control byte"},
		{"escape in a value", "Subject: \x1b[31mred", "control byte"},
		{"space in a name", "X Foo: bar", "not a token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := strings.ReplaceAll(tc.name, " ", "-")
			uac.SendRaw(p.udp, "INVITE sip:bob@"+p.udp+" SIP/2.0\r\n"+
				"Via: SIP/2.0/UDP "+uac.HostPort()+";branch=z9hG4bK-smuggle-"+n+";rport\r\n"+
				"From: <sip:alice@example.com>;tag=1\r\nTo: <sip:bob@example.com>\r\nCall-ID: smuggle-"+n+"@test\r\n"+
				"CSeq: 1 INVITE\r\nMax-Forwards: 70\r\n"+tc.header+"\r\nContent-Length: 0\r\n\r\n")
			res := uac.Final()
			assert.Equal(t, 400, res.StatusCode)
			assert.Contains(t, res.Reason, tc.reason)
		})
	}
	uas.Quiet(30e6, "a smuggled request relayed", func(m sip.Message) bool { _, ok := m.(*sip.Request); return ok })
	uac.SendRaw(p.udp, "OPTIONS sip:bob@"+p.udp+" SIP/2.0\r\n"+
		"Via: SIP/2.0/UDP "+uac.HostPort()+";branch=z9hG4bK-folded;rport\r\n"+
		"From: <sip:alice@example.com>;tag=1\r\nTo: <sip:bob@example.com>\r\nCall-ID: folded@test\r\n"+
		"CSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nSubject: a folded\r\n\tsubject\r\nContent-Length: 0\r\n\r\n")
	got := uas.Request(sip.OPTIONS)
	uas.Reply(got, 200, "b")
	assert.Equal(t, 200, uac.Final().StatusCode, "a folded header is fine (RFC 3261 §7.3.1)")
}

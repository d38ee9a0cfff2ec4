package tm

import (
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

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

// RFC 3261 §7.1, RFC 4475 §3.1.1.x (issue 11 item 4): methods are
// case-sensitive. An unknown method in mixed case keeps its case on the
// request line, so it still matches its CSeq, and is relayed as it came.
func TestRFC3261_7_1_MixedCaseMethodIsRelayed(t *testing.T) {
	uac := siptest.NewUA(t)
	// The callee reads bytes: a sipgo parser would upper-case the method.
	callee, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	defer callee.Close()
	port := callee.LocalAddr().(*net.UDPAddr).Port
	p := startProxy(t, testCfg(), RouterFunc(func(r *Request) Decision {
		return RelayTo(Target{URI: sip.Uri{Scheme: "sip", User: "bob", Host: "127.0.0.1", Port: port}})
	}))
	uac.SendRaw(p.udp, "NewMethod sip:bob@"+p.udp+" SIP/2.0\r\n"+
		"Via: SIP/2.0/UDP "+uac.HostPort()+";branch=z9hG4bK-mixed;rport\r\n"+
		"Max-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=1\r\nTo: <sip:bob@example.com>\r\n"+
		"Call-ID: mixed-case@test\r\nCSeq: 8 NewMethod\r\nContent-Length: 0\r\n\r\n")
	callee.SetReadDeadline(time.Now().Add(siptest.WaitFor))
	buf := make([]byte, 4096)
	n, from, err := callee.ReadFromUDP(buf)
	require.NoError(t, err, "the request is relayed, not refused")
	got := string(buf[:n])
	assert.True(t, strings.HasPrefix(got, "NewMethod sip:bob@"), "request line keeps the case: %q", got)
	assert.Contains(t, got, "CSeq: 8 NewMethod\r\n")
	// Answer 200 with the request's own header lines.
	var res strings.Builder
	res.WriteString("SIP/2.0 200 OK\r\n")
	for _, line := range strings.Split(got, "\r\n") {
		name, _, _ := strings.Cut(line, ":")
		switch name {
		case "Via", "From", "Call-ID", "CSeq":
			res.WriteString(line + "\r\n")
		case "To":
			res.WriteString(line + ";tag=b\r\n")
		}
	}
	res.WriteString("Content-Length: 0\r\n\r\n")
	_, err = callee.WriteToUDP([]byte(res.String()), from)
	require.NoError(t, err)
	assert.Equal(t, 200, uac.Final().StatusCode)
}

// RFC 4475 §3.4.1 (issue 11 item 4): an RFC 2543 request (no branch, no
// From tag, no Content-Length over UDP) is accepted and relayed; its
// responses go to the sent-by of its Via, and the ACK of the non-2xx
// final matches the transaction the RFC 2543 way (§17.2.3) and is
// absorbed.
func TestRFC4475_3_4_1_RFC2543RequestIsRelayed(t *testing.T) {
	uac, uas := siptest.NewUA(t), siptest.NewUA(t)
	p := startProxy(t, testCfg(), toUAs(uas))
	head := " sip:bob@" + p.udp + " SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP " + uac.HostPort() + "\r\n" +
		"From: <sip:alice@example.com>\r\nTo: <sip:bob@example.com>\r\n" +
		"Call-ID: rfc2543@test\r\n"
	uac.SendRaw(p.udp, "INVITE"+head+"CSeq: 1 INVITE\r\nContent-Type: application/sdp\r\n\r\n"+
		"v=0\r\no=alice 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 49170 RTP/AVP 0\r\n")
	inv := uas.Request(sip.INVITE)
	assert.Contains(t, string(inv.Body()), "m=audio 49170", "the body without Content-Length is the rest of the datagram")
	uas.Reply(inv, 486, "b")
	res := uac.Final()
	require.Equal(t, 486, res.StatusCode)
	// Before the ACK, Timer G retransmits the 486 (§17.2.1).
	p.clock.Advance(p.cfg.T1)
	assert.Equal(t, 486, uac.Final().StatusCode, "retransmitted until the ACK")
	hop := uas.Request(sip.ACK) // the proxy's own ACK of the 486 (§17.1.1.3)
	require.Len(t, hop.GetHeaders("Via"), 1)
	uac.SendRaw(p.udp, "ACK"+head+"CSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n")
	uas.Quiet(50*time.Millisecond, "the ACK of the 486 relayed", isReq(sip.ACK))
	// The ACK matched the transaction: no more retransmissions.
	siptest.Eventually(t, func() bool { return p.Stats().Snapshot()["retransmissions_sent"] >= 1 }, "one retransmission counted")
	p.clock.Advance(4 * p.cfg.T1)
	uac.Quiet(50*time.Millisecond, "the 486 retransmitted after its ACK", func(m sip.Message) bool {
		r, ok := m.(*sip.Response)
		return ok && r.StatusCode == 486
	})
}

// RFC 3261 §17.2.3 (issue 11 item 7): an ACK for a 2xx whose branch lacks
// the magic cookie (RFC 2543: the same Via as its INVITE) matches the
// INVITE's server transaction the old way, but an ACK of a 2xx is its own
// end-to-end request: it is relayed, never absorbed.
func TestRFC3261_17_2_3_RFC2543AckOf2xxIsRelayed(t *testing.T) {
	uac, uas := siptest.NewUA(t), siptest.NewUA(t)
	p := startProxy(t, testCfg(), toUAs(uas))
	head := " SIP/2.0\r\nVia: SIP/2.0/UDP " + uac.HostPort() + "\r\n" +
		"Max-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=a\r\n"
	uac.SendRaw(p.udp, "INVITE sip:bob@"+p.udp+head+"To: <sip:bob@example.com>\r\n"+
		"Call-ID: rfc2543-ack@test\r\nCSeq: 1 INVITE\r\nContact: <sip:alice@"+uac.HostPort()+">\r\nContent-Length: 0\r\n\r\n")
	inv := uas.Request(sip.INVITE)
	uas.Reply(inv, 200, "b", "Contact: <sip:bob@"+uas.HostPort()+">")
	require.Equal(t, 200, uac.Final().StatusCode)
	uac.SendRaw(p.udp, "ACK sip:bob@"+uas.HostPort()+head+"To: <sip:bob@example.com>;tag=b\r\n"+
		"Call-ID: rfc2543-ack@test\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n")
	ack := uas.Request(sip.ACK)
	assert.Len(t, ack.GetHeaders("Via"), 2, "relayed: the caller's Via under ours")
}

// Issue 11 item 9: a peer that sends garbage gets each message answered,
// but the log says so at warn at most once a second, with the count of the
// ones not logged, and never with the message's text.
func TestIssue11_ParseFailuresLoggedRateLimited(t *testing.T) {
	var buf syncLog
	log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	uac := siptest.NewUA(t)
	p := startProxy(t, testCfg(), toUAs(), func(o *Options) { o.Logger = log })
	bad := func(i int) string {
		return fmt.Sprintf("OPTIONS sip:bob@%s SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-g%d;rport\r\n"+
			"From: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>\r\nCall-ID: garbage-%d@test\r\n"+
			"CSeq: notanumber OPTIONS\r\nContent-Length: 0\r\n\r\n", p.udp, uac.HostPort(), i, i)
	}
	for i := range 20 {
		uac.SendRaw(p.udp, bad(i))
		<-uac.Raw // each one answered (a 400 echoing the bad CSeq)
	}
	p.clock.Advance(time.Second)
	uac.SendRaw(p.udp, bad(20))
	<-uac.Raw
	lines := buf.lines("messages that do not parse")
	require.Len(t, lines, 2, "%s", buf.String())
	for _, l := range lines {
		assert.Contains(t, l, "level=WARN")
		assert.NotContains(t, l, "garbage-", "the message's other headers are not logged")
		assert.Less(t, len(l), 500)
	}
	assert.Contains(t, lines[1], "not_logged_since_last=19")
}

type syncLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncLog) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncLog) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func (s *syncLog) lines(substr string) []string {
	var out []string
	for _, l := range strings.Split(s.String(), "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return out
}

// RFC 4475 §3.1.1.1 (issue 11 item 4): white space around a tag
// parameter's "=" is valid; the request is relayed, and its tags are read
// as tags (an in-dialog request is routed as one).
func TestRFC4475_3_1_1_1_SpacesAroundTagEquals(t *testing.T) {
	uac, uas := siptest.NewUA(t), siptest.NewUA(t)
	p := startProxy(t, testCfg(), toUAs(uas))
	uac.SendRaw(p.udp, "OPTIONS sip:bob@"+p.udp+" SIP/2.0\r\n"+
		"Via: SIP/2.0/UDP "+uac.HostPort()+";branch=z9hG4bK-ws;rport\r\n"+
		"Max-Forwards: 70\r\nFrom: \"J Rosenberg \\\\\\\"\" <sip:jdrosen@example.com> ; tag = 98asjd8\r\n"+
		"To: <sip:bob@example.com>\r\nCall-ID: ws-tag@test\r\nCSeq: 8 OPTIONS\r\nContent-Length: 0\r\n\r\n")
	got := uas.Request(sip.OPTIONS)
	assert.Equal(t, "98asjd8", Tag(got.From().Params))
	uas.Reply(got, 200, "b")
	assert.Equal(t, 200, uac.Final().StatusCode)
}

// Issue 15 §7: what one request may hold for its transaction's life is
// bounded (max_via_headers, max_headers: 400), and an overloaded proxy
// (max_transactions in progress) answers new requests 503 with
// Retry-After while requests within dialogs go on.
func TestIssue15_RequestSizeAndOverloadLimits(t *testing.T) {
	uac, uas := siptest.NewUA(t), siptest.NewUA(t)
	cfg := testCfg()
	cfg.MaxViaHeaders, cfg.MaxHeaders, cfg.MaxTransactions = 5, 30, 1
	p := startProxy(t, cfg, toUAs(uas))
	send := func(callID string, vias, extra int) {
		var b strings.Builder
		fmt.Fprintf(&b, "OPTIONS sip:bob@%s SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-%s;rport\r\n", p.udp, uac.HostPort(), callID)
		for i := 1; i < vias; i++ {
			fmt.Fprintf(&b, "Via: SIP/2.0/UDP 192.0.2.%d;branch=z9hG4bK-x%d\r\n", i, i)
		}
		for i := 0; i < extra; i++ {
			fmt.Fprintf(&b, "X-Filler-%d: x\r\n", i)
		}
		fmt.Fprintf(&b, "Max-Forwards: 70\r\nFrom: <sip:a@example.com>;tag=1\r\nTo: <sip:b@example.com>\r\nCall-ID: %s\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n", callID)
		uac.SendRaw(p.udp, b.String())
	}
	send("vias@test", 6, 0)
	res := uac.Final()
	assert.Equal(t, 400, res.StatusCode)
	assert.Contains(t, res.Reason, "more than 5 Via")
	send("headers@test", 1, 40)
	res = uac.Final()
	assert.Equal(t, 400, res.StatusCode)
	assert.Contains(t, res.Reason, "more than 30 headers")

	// One transaction in progress (the callee does not answer yet).
	send("first@test", 5, 0)
	held := uas.Request(sip.OPTIONS)
	send("second@test", 1, 0)
	res = uac.Final()
	assert.Equal(t, 503, res.StatusCode)
	require.NotNil(t, res.GetHeader("Retry-After"))
	assert.Equal(t, uint64(1), p.Stats().Snapshot()["overloaded_requests"])
	uas.Reply(held, 200, "b")
	assert.Equal(t, 200, uac.Final().StatusCode)
}

// Issue 15 §14, RFC 3261 §16.3 step 2: a tel: Request-URI (or any scheme
// without a host) that the router leaves to the Request-URI cannot be
// routed: 416, never a 5xx.
func TestIssue15_TelURIWithoutRouteIs416(t *testing.T) {
	uac := siptest.NewUA(t)
	p := startProxy(t, testCfg(), RouterFunc(func(r *Request) Decision { return RelayTo() }))
	uac.SendRaw(p.udp, "INVITE tel:+15551234567 SIP/2.0\r\nVia: SIP/2.0/UDP "+uac.HostPort()+";branch=z9hG4bK-tel;rport\r\n"+
		"Max-Forwards: 70\r\nFrom: <sip:a@example.com>;tag=1\r\nTo: <tel:+15551234567>\r\nCall-ID: tel@test\r\n"+
		"CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n")
	res := uac.Final()
	assert.Equal(t, 416, res.StatusCode)
	assert.Equal(t, "Unsupported URI Scheme", res.Reason)
}

// OpenSIPS tm ruri_matching and via1_matching (§1.3.7, §1.3.8): the
// Request-URI and the top Via of an RFC 2543 CANCEL must equal its
// INVITE's to find it (RFC 3261 §17.2.3, §9.2), unless the parameter is
// off for a device that changes them.
func TestSeedTm_1_3_7_RuriAndVia1Matching(t *testing.T) {
	for _, tc := range []struct {
		name        string
		ruri, via1  bool   // ruri_matching, via1_matching
		cancelRURI  string // "" for the INVITE's
		cancelVia   string // a parameter added to the CANCEL's top Via
		wantMatched bool
	}{
		{"same Request-URI and Via", true, true, "", "", true},
		{"another Request-URI", true, true, "sip:carol@example.com", "", false},
		{"another Request-URI, ruri_matching off", false, true, "sip:carol@example.com", "", true},
		{"another top Via", true, true, "", ";x=1", false},
		{"another top Via, via1_matching off", true, false, "", ";x=1", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			uac, uas := siptest.NewUA(t), siptest.NewUA(t)
			cfg := testCfg()
			cfg.RURIMatching, cfg.Via1Matching = tc.ruri, tc.via1
			p := startProxy(t, cfg, toUAs(uas))
			ruri := "sip:bob@" + p.udp
			tail := "From: <sip:alice@example.com>;tag=a\r\nTo: <sip:bob@example.com>\r\n" +
				"Call-ID: rfc2543-cancel@test\r\nMax-Forwards: 70\r\n"
			// A branch without the magic cookie: RFC 2543 (a CANCEL without
			// any branch is refused, 400).
			uac.SendRaw(p.udp, "INVITE "+ruri+" SIP/2.0\r\nVia: SIP/2.0/UDP "+uac.HostPort()+";branch=old-1\r\n"+tail+
				"CSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n")
			inv := uas.Request(sip.INVITE)
			uas.Reply(inv, 180, "b")
			uac.Response(180)
			cruri := ruri
			if tc.cancelRURI != "" {
				cruri = tc.cancelRURI
			}
			timers := p.clock.Pending()
			uac.SendRaw(p.udp, "CANCEL "+cruri+" SIP/2.0\r\nVia: SIP/2.0/UDP "+uac.HostPort()+";branch=old-1"+tc.cancelVia+"\r\n"+tail+
				"CSeq: 1 CANCEL\r\nContent-Length: 0\r\n\r\n")
			if !tc.wantMatched {
				// Held in case it overtook its INVITE, then answered 481.
				siptest.Eventually(t, func() bool { return p.clock.Pending() > timers }, "the CANCEL held")
				p.clock.Advance(p.cfg.CancelWait)
				uac.Response(481)
				uas.Quiet(50*time.Millisecond, "a CANCEL passed on", isReq(sip.CANCEL))
				return
			}
			uac.Response(200)
			uas.Reply(uas.Request(sip.CANCEL), 200, "")
			uas.Reply(inv, 487, "b")
			assert.Equal(t, 487, uac.Final().StatusCode)
		})
	}
}

package tm

import (
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imsdlg/imsdlg/internal/siptest"
)

func isReq(method sip.RequestMethod) func(sip.Message) bool {
	return func(m sip.Message) bool {
		r, ok := m.(*sip.Request)
		return ok && r.Method == method
	}
}

func ourVias(t *testing.T, p *testProxy, m sip.Message) int {
	n := 0
	for _, h := range m.GetHeaders("Via") {
		v := h.(*sip.ViaHeader)
		if p.IsOurVia(v) {
			n++
		}
	}
	return n
}

// A basic call through the proxy: INVITE forked to one UAS, 180/200 back,
// ACK and BYE along the Record-Route (RFC 3261 §16.6, §16.7, §16.12).
func TestRFC3261_16_RecordRoutedCall(t *testing.T) {
	uac, uas := siptest.NewUA(t), siptest.NewUA(t)
	p := startProxy(t, testCfg(), toUAs(uas))

	inv := uac.Invite("sip:bob@" + p.udp)
	uac.Send(p.udp, inv)
	uac.Response(100)

	got := uas.Request(sip.INVITE)
	assert.Equal(t, fmt.Sprintf("sip:bob@127.0.0.1:%d", uas.Addr.Port), got.Recipient.String())
	assert.Equal(t, uint32(69), got.MaxForwards().Val(), "§16.6 step 3")
	require.Len(t, got.GetHeaders("Via"), 2, "our Via on top of the caller's")
	assert.True(t, p.IsOurVia(got.Via()))
	rr := got.RecordRoute()
	require.NotNil(t, rr, "§16.6 step 4")
	assert.True(t, p.IsOurURI(&rr.Address))
	assert.True(t, rr.Address.UriParams.Has("lr"))

	uas.Reply(got, 180, "callee1")
	r180 := uac.Response(180)
	assert.Zero(t, ourVias(t, p, r180), "our Via is removed from responses (§16.7 step 3)")
	ok := uas.Reply(got, 200, "callee1")
	r200 := uac.Response(200)
	assert.Equal(t, ok.To().Value(), r200.To().Value())
	require.NotNil(t, r200.RecordRoute())

	uac.Send(p.udp, uac.AckFor(inv, r200))
	ack := uas.Request(sip.ACK)
	assert.Nil(t, ack.Route(), "our Route is consumed (§16.4)")
	assert.True(t, p.IsOurVia(ack.Via()), "stateless relay adds our Via (§16.11)")

	bye := uac.InDialog("BYE", inv, r200, 2)
	uac.Send(p.udp, bye)
	gotBye := uas.Request(sip.BYE)
	assert.Equal(t, fmt.Sprintf("sip:uas@%s", uas.HostPort()), gotBye.Recipient.String())
	uas.Reply(gotBye, 200, "")
	uac.Response(200)

	waitInuse(t, p, 0)
	snap := p.Stats().Snapshot()
	assert.GreaterOrEqual(t, snap["2xx_transactions"], uint64(2))
	assert.GreaterOrEqual(t, snap["stateless_forwarded"], uint64(1))
}

func TestRFC3261_16_3_Validation(t *testing.T) {
	uac, uas := siptest.NewUA(t), siptest.NewUA(t)
	p := startProxy(t, testCfg(), toUAs(uas))
	cases := []struct {
		name  string
		extra []string
		mf    string
		code  int
		check func(*testing.T, *sip.Response)
	}{
		{name: "Max-Forwards 0 is 483, never wrapped", mf: "0", code: 483},
		{name: "unsupported Proxy-Require is 420", extra: []string{"Proxy-Require: foo"}, code: 420,
			check: func(t *testing.T, r *sip.Response) {
				require.NotNil(t, r.GetHeader("Unsupported"))
				assert.Equal(t, "foo", r.GetHeader("Unsupported").Value())
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			inv := uac.Invite("sip:bob@"+p.udp, tc.extra...)
			if tc.mf != "" {
				setMaxForwards(inv, 0)
			}
			uac.Send(p.udp, inv)
			res := uac.Final()
			assert.Equal(t, tc.code, res.StatusCode)
			if tc.check != nil {
				tc.check(t, res)
			}
		})
	}
	uas.Quiet(100*time.Millisecond, "INVITE", isReq(sip.INVITE))
}

func TestRFC3261_16_3_MalformedAndOversize(t *testing.T) {
	uac, uas := siptest.NewUA(t), siptest.NewUA(t)
	cfg := testCfg()
	cfg.MaxMessageSize = 2000
	p := startProxy(t, cfg, toUAs(uas))

	raw := "INVITE sip:bob@" + p.udp + " SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP " + uac.HostPort() + ";branch=z9hG4bK-bad1\r\n" +
		"From: <sip:a@b>;tag=1\r\nTo: <sip:bob@b>\r\nCall-ID: bad1\r\n" +
		"CSeq: notanumber INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
	uac.SendRaw(p.udp, raw)
	select {
	case got := <-uac.Raw:
		status, _, _ := strings.Cut(got, "\r\n")
		assert.True(t, strings.HasPrefix(status, "SIP/2.0 400 "), status)
		assert.Contains(t, status, "CSeq", "the reason names the header")
		assert.Contains(t, got, "Call-ID: bad1\r\n")
	case <-time.After(waitFor):
		t.Fatal("no answer to a malformed request")
	}

	big := uac.Invite("sip:bob@"+p.udp, "body:"+strings.Repeat("v=0\r\n", 500))
	uac.Send(p.udp, big)
	res := uac.Final()
	assert.Equal(t, 513, res.StatusCode)
	uas.Quiet(100*time.Millisecond, "INVITE", isReq(sip.INVITE))
}

// Every branch gets its own Max-Forwards (sipgo's Clone shares the header).
func TestRFC3261_16_6_ParallelForkOwnMaxForwards(t *testing.T) {
	uac, a, b := siptest.NewUA(t), siptest.NewUA(t), siptest.NewUA(t)
	p := startProxy(t, testCfg(), toUAs(a, b))
	inv := uac.Invite("sip:bob@" + p.udp)
	uac.Send(p.udp, inv)
	ia, ib := a.Request(sip.INVITE), b.Request(sip.INVITE)
	assert.Equal(t, uint32(69), ia.MaxForwards().Val())
	assert.Equal(t, uint32(69), ib.MaxForwards().Val())
	ba, _ := ia.Via().Params.Get("branch")
	bb, _ := ib.Via().Params.Get("branch")
	assert.NotEqual(t, ba, bb, "one client transaction per branch")
	assert.Equal(t, branchLoopHash(ba), branchLoopHash(bb))

	// Both ring with their own tag: the caller sees both early dialogs.
	a.Reply(ia, 180, "tagA")
	b.Reply(ib, 183, "tagB")
	early := map[int]string{}
	for len(early) < 2 {
		m := uac.Next("18x", func(m sip.Message) bool {
			r, ok := m.(*sip.Response)
			return ok && r.StatusCode > 100 && r.StatusCode < 200
		})
		early[m.(*sip.Response).StatusCode] = m.(*sip.Response).To().Value()
	}
	assert.Contains(t, early[180], "tagA")
	assert.Contains(t, early[183], "tagB")

	// B answers: A gets a CANCEL saying why, the caller the 200.
	b.Reply(ib, 200, "tagB")
	assert.Equal(t, 200, uac.Response(200).StatusCode)
	c := a.Request(sip.CANCEL)
	require.NotNil(t, c.GetHeader("Reason"))
	assert.Equal(t, reasonCompletedElsewhere, c.GetHeader("Reason").Value())
	assert.Equal(t, ba, mustBranch(c), "CANCEL reuses the branch of the INVITE (§9.1)")
	a.Reply(c, 200, "")
	a.Reply(ia, 487, "tagA")
	a.Request(sip.ACK) // sipgo ACKs the 487 hop by hop
}

func mustBranch(r *sip.Request) string {
	b, _ := r.Via().Params.Get("branch")
	return b
}

func TestRFC3261_16_7_AllBranchesFailBestResponse(t *testing.T) {
	uac, a, b, c := siptest.NewUA(t), siptest.NewUA(t), siptest.NewUA(t), siptest.NewUA(t)
	p := startProxy(t, testCfg(), toUAs(a, b, c))
	inv := uac.Invite("sip:bob@" + p.udp)
	uac.Send(p.udp, inv)
	ia, ib, ic := a.Request(sip.INVITE), b.Request(sip.INVITE), c.Request(sip.INVITE)
	a.Reply(ia, 503, "a")
	b.Reply(ib, 486, "b")
	c.Reply(ic, 404, "c")
	res := uac.Final()
	assert.Equal(t, 404, res.StatusCode, "lowest 4xx wins over 486 and 503")
	assert.Zero(t, ourVias(t, p, res))
	// Each callee gets the ACK of its own final reply from the proxy's
	// client transaction (same branch as its INVITE, §17.1.1.3); the
	// caller's ACK is absorbed by the server transaction and never
	// relayed (it would carry another branch).
	invs := map[*siptest.UA]*sip.Request{a: ia, b: ib, c: ic}
	for u, inv := range invs {
		ack := u.Request(sip.ACK)
		assert.Equal(t, mustBranch(inv), mustBranch(ack))
	}
	uac.Send(p.udp, uac.AckNon2xx(inv, res))
	for u, inv := range invs {
		u.Quiet(50*time.Millisecond, "the caller's ACK relayed", func(m sip.Message) bool {
			r, ok := m.(*sip.Request)
			return ok && r.Method == sip.ACK && mustBranch(r) != mustBranch(inv)
		})
	}
}

// RFC 3261 §16.10 (issue 11 §1): the CANCEL gets 200 at once, the
// branches are cancelled, and the final reply to the INVITE comes from
// them (the branches' 487), not from an immediate local 487.
func TestRFC3261_16_10_CallerCancelDuringRinging(t *testing.T) {
	uac, a, b := siptest.NewUA(t), siptest.NewUA(t), siptest.NewUA(t)
	p := startProxy(t, testCfg(), toUAs(a, b))
	inv := uac.Invite("sip:bob@" + p.udp)
	uac.Send(p.udp, inv)
	ia, ib := a.Request(sip.INVITE), b.Request(sip.INVITE)
	a.Reply(ia, 180, "a")
	uac.Response(180)
	uac.Send(p.udp, uac.CancelFor(inv, `Reason: SIP ;cause=600 ;text="Busy Everywhere"`))
	okCancel := uac.Response(200)
	assert.Equal(t, sip.CANCEL, okCancel.CSeq().MethodName)
	uac.Quiet(50*time.Millisecond, "a 487 before the branches answered", func(m sip.Message) bool {
		r, ok := m.(*sip.Response)
		return ok && r.StatusCode == 487
	})

	ca := a.Request(sip.CANCEL)
	assert.Equal(t, `SIP ;cause=600 ;text="Busy Everywhere"`, ca.GetHeader("Reason").Value(),
		"the caller's Reason goes downstream")
	a.Reply(ca, 200, "")
	a.Reply(ia, 487, "a")

	// B never rang: it gets its CANCEL only once it sends a provisional (§9.1).
	b.Quiet(50*time.Millisecond, "CANCEL before 1xx", isReq(sip.CANCEL))
	b.Reply(ib, 180, "b")
	cb := b.Request(sip.CANCEL)
	b.Reply(cb, 200, "")
	b.Reply(ib, 487, "b")
	final := uac.Response(487)
	assert.Contains(t, final.To().Value(), "tag=", "the 487 of a branch, relayed")
	uac.Quiet(50*time.Millisecond, "180 after CANCEL", func(m sip.Message) bool {
		r, ok := m.(*sip.Response)
		return ok && r.StatusCode == 180 && strings.Contains(r.To().Value(), "tag=b")
	})
	waitInuse(t, p, 0)
	assert.Equal(t, uint64(2), p.Stats().Snapshot()["cancels_sent"])
}

func waitInuse(t *testing.T, p *testProxy, want int64) {
	t.Helper()
	siptest.Eventually(t, func() bool { return p.Stats().inuse.Load() == want }, "inuse_transactions != %d", want)
}

func TestRFC3261_9_2_CancelOvertakingInvite(t *testing.T) {
	uac, uas := siptest.NewUA(t), siptest.NewUA(t)
	p := startProxy(t, testCfg(), toUAs(uas))
	inv := uac.Invite("sip:bob@" + p.udp)
	uac.Send(p.udp, uac.CancelFor(inv))
	// The CANCEL is held, not answered 481, until its INVITE shows up.
	uac.Quiet(50*time.Millisecond, "481", func(m sip.Message) bool {
		r, ok := m.(*sip.Response)
		return ok && r.StatusCode == 481
	})
	uac.Send(p.udp, inv)
	uac.Response(200) // to the CANCEL
	res := uac.Response(487)
	assert.Equal(t, sip.INVITE, res.CSeq().MethodName)
	uas.Quiet(50*time.Millisecond, "INVITE", isReq(sip.INVITE))
}

func TestRFC3261_9_2_UnmatchedCancelIs481(t *testing.T) {
	uac, uas := siptest.NewUA(t), siptest.NewUA(t)
	p := startProxy(t, testCfg(), toUAs(uas))
	inv := uac.Invite("sip:bob@" + p.udp)
	uac.Send(p.udp, uac.CancelFor(inv))
	waitTimers(t, p, 1)
	p.clock.Advance(p.cfg.CancelWait)
	res := uac.Final()
	assert.Equal(t, 481, res.StatusCode)
	assert.Equal(t, sip.CANCEL, res.CSeq().MethodName)
}

// waitTimers waits until the proxy armed n timers on the fake clock (it
// does so on the goroutine that handles the message).
func waitTimers(t *testing.T, p *testProxy, n int) {
	t.Helper()
	siptest.Eventually(t, func() bool { return p.clock.Pending() >= n }, "fewer than %d timers armed", n)
}

func TestTM_FrInvTimeoutCancelsBranchAnd408(t *testing.T) {
	uac, uas := siptest.NewUA(t), siptest.NewUA(t)
	p := startProxy(t, testCfg(), toUAs(uas))
	inv := uac.Invite("sip:bob@" + p.udp)
	uac.Send(p.udp, inv)
	got := uas.Request(sip.INVITE)
	uas.Reply(got, 180, "x")
	uac.Response(180) // the fr_inv_timeout timer is armed before the relay
	p.clock.Advance(p.cfg.FrTimeout)
	uas.Quiet(30*time.Millisecond, "CANCEL at fr_timeout after a 1xx", isReq(sip.CANCEL))
	p.clock.Advance(p.cfg.FrInvTimeout)
	c := uas.Request(sip.CANCEL)
	assert.Equal(t, reasonRequestTimeout, c.GetHeader("Reason").Value())
	res := uac.Final()
	assert.Equal(t, 408, res.StatusCode)
	uas.Reply(c, 200, "")
	uas.Reply(got, 487, "x")
	waitInuse(t, p, 0)
	assert.Equal(t, uint64(1), p.Stats().Snapshot()["fr_inv_timeouts"])
	// Issue 11 §11: timeout_finalresponse counts what its name says.
	assert.Equal(t, uint64(1), p.Stats().Snapshot()["timeout_finalresponse"])
	assert.Zero(t, p.Stats().Snapshot()["fr_timeouts"])
}

func TestTM_FrTimeoutWithoutProvisional(t *testing.T) {
	uac, uas := siptest.NewUA(t), siptest.NewUA(t)
	p := startProxy(t, testCfg(), toUAs(uas))
	inv := uac.Invite("sip:bob@" + p.udp)
	uac.Send(p.udp, inv)
	got := uas.Request(sip.INVITE)
	p.clock.Advance(p.cfg.FrTimeout)
	assert.Equal(t, 408, uac.Final().StatusCode)
	// A 180 arriving now gets the CANCEL we owed it.
	uas.Reply(got, 180, "late")
	c := uas.Request(sip.CANCEL)
	assert.Equal(t, reasonRequestTimeout, c.GetHeader("Reason").Value())
	assert.Equal(t, uint64(1), p.Stats().Snapshot()["fr_timeouts"])
	assert.Zero(t, p.Stats().Snapshot()["timeout_finalresponse"], "no final response was awaited yet: no provisional came")
}

// tcpCallee is a callee that listens on TCP only, and its port.
func tcpCallee(t *testing.T) (net.Listener, int) {
	ln, err := siptest.ListenTCP()
	require.NoError(t, err)
	t.Cleanup(func() { ln.Close() })
	return ln, ln.Addr().(*net.TCPAddr).Port
}

func TestRFC3261_18_1_1_LargeRequestSwitchesToTCP(t *testing.T) {
	uac := siptest.NewUA(t)
	ln, port := tcpCallee(t)
	router := RouterFunc(func(r *Request) Decision {
		return RelayTo(Target{URI: sip.Uri{Scheme: "sip", User: "bob", Host: "127.0.0.1", Port: port}})
	})
	p := startProxy(t, testCfg(), router)
	inv := uac.Invite("sip:bob@"+p.udp, "Content-Type: application/sdp", "body:"+strings.Repeat("a=x-filler:0123456789\r\n", 70))
	require.Greater(t, len(marshal(inv)), p.cfg.UDPMaxSize)
	uac.Send(p.udp, inv)
	req := siptest.ReadTCPRequest(t, ln)
	assert.Equal(t, "TCP", req.Via().Transport)
	assert.Equal(t, sip.INVITE, req.Method)
	assert.Len(t, req.GetHeaders("Via"), 2, "the UDP Via made for the size check is gone")
	assert.Empty(t, req.GetHeaders("Record-Route"), "the router did not ask to record-route")
}

// RFC 5658 §3.4 (and §16.6 step 4): a request that enters over UDP and
// leaves over TCP carries two Record-Routes, each side's address as that
// side sees it: the outbound one (transport=tcp) on top, under our Via;
// also after the switch to TCP for size (§18.1.1).
func TestRFC5658_DoubleRecordRouteAcrossTransports(t *testing.T) {
	for _, big := range []bool{false, true} {
		t.Run(fmt.Sprintf("switched for size=%v", big), func(t *testing.T) {
			uac := siptest.NewUA(t)
			ln, port := tcpCallee(t)
			router := RouterFunc(func(r *Request) Decision {
				u := sip.Uri{Scheme: "sip", User: "bob", Host: "127.0.0.1", Port: port, UriParams: sip.NewParams()}
				if !big {
					u.UriParams.Add("transport", "tcp")
				}
				d := RelayTo(Target{URI: u})
				d.RecordRoute = true
				return d
			})
			p := startProxy(t, testCfg(), router)
			var extra []string
			if big {
				extra = []string{"Content-Type: application/sdp", "body:" + strings.Repeat("a=x-filler:0123456789\r\n", 70)}
			}
			uac.Send(p.udp, uac.Invite("sip:bob@"+p.udp, extra...))
			req := siptest.ReadTCPRequest(t, ln)
			hs := req.Headers()
			require.GreaterOrEqual(t, len(hs), 3)
			via, ok := hs[0].(*sip.ViaHeader)
			require.True(t, ok, "our Via first, got %s", hs[0].Name())
			assert.Equal(t, "TCP", via.Transport)
			assert.True(t, p.IsOurVia(via))
			rrs := req.GetHeaders("Record-Route")
			require.Len(t, rrs, 2)
			assert.Equal(t, "Record-Route", hs[1].Name(), "the Record-Routes follow our Via")
			assert.Equal(t, "Record-Route", hs[2].Name())
			out, in := rrs[0].(*sip.RecordRouteHeader).Address, rrs[1].(*sip.RecordRouteHeader).Address
			assert.Equal(t, "tcp", out.UriParams.GetOr("transport", ""), "the callee's side: %s", out.String())
			assert.False(t, in.UriParams.Has("transport"), "the caller's side is UDP: %s", in.String())
			for _, u := range []sip.Uri{out, in} {
				assert.True(t, p.IsOurURI(&u), u.String())
				assert.True(t, u.UriParams.Has("lr"))
			}
		})
	}
}

func TestRFC3261_16_6_SerialForkByQ(t *testing.T) {
	uac, a, b := siptest.NewUA(t), siptest.NewUA(t), siptest.NewUA(t)
	router := RouterFunc(func(r *Request) Decision {
		if !r.Initial {
			return RelayTo()
		}
		return RelayTo(
			Target{URI: sip.Uri{Scheme: "sip", User: "b", Host: "127.0.0.1", Port: b.Addr.Port}, Q: 0.5},
			Target{URI: sip.Uri{Scheme: "sip", User: "a", Host: "127.0.0.1", Port: a.Addr.Port}, Q: 1},
		)
	})
	p := startProxy(t, testCfg(), router)
	inv := uac.Invite("sip:bob@" + p.udp)
	uac.Send(p.udp, inv)
	ia := a.Request(sip.INVITE)
	b.Quiet(30*time.Millisecond, "INVITE before q=1 failed", isReq(sip.INVITE))
	a.Reply(ia, 486, "a")
	ib := b.Request(sip.INVITE)
	b.Reply(ib, 200, "b")
	assert.Equal(t, 200, uac.Final().StatusCode)
}

type failover struct {
	RouterFunc
	next  Target
	calls atomic.Int32
}

func (f *failover) OnFailure(t *Transaction, best *sip.Response) []Target {
	if f.calls.Add(1) == 1 && best.StatusCode == 486 {
		return []Target{f.next}
	}
	return nil
}

func TestTM_FailureHookAddsBranch(t *testing.T) {
	uac, a, b := siptest.NewUA(t), siptest.NewUA(t), siptest.NewUA(t)
	f := &failover{RouterFunc: toUAs(a), next: Target{URI: sip.Uri{Scheme: "sip", User: "vm", Host: "127.0.0.1", Port: b.Addr.Port}}}
	p := startProxy(t, testCfg(), f, withModules(Module{Name: "failover", Failure: f}))
	uac.Send(p.udp, uac.Invite("sip:bob@"+p.udp))
	a.Reply(a.Request(sip.INVITE), 486, "a")
	ib := b.Request(sip.INVITE)
	assert.Equal(t, "vm", ib.Recipient.User)
	b.Reply(ib, 480, "b")
	assert.Equal(t, 480, uac.Final().StatusCode)
	assert.Equal(t, int32(2), f.calls.Load())
}

type capture struct {
	RouterFunc
	tx chan *Transaction
}

func (c *capture) Route(r *Request) Decision {
	if r.Tx != nil && r.Method == sip.INVITE {
		c.tx <- r.Tx
	}
	return c.RouterFunc(r)
}

func TestTM_TReplyEndsEarlyCall(t *testing.T) {
	uac, uas := siptest.NewUA(t), siptest.NewUA(t)
	c := &capture{RouterFunc: toUAs(uas), tx: make(chan *Transaction, 1)}
	p := startProxy(t, testCfg(), c)
	uac.Send(p.udp, uac.Invite("sip:bob@"+p.udp))
	tx := <-c.tx
	got := uas.Request(sip.INVITE)
	uas.Reply(got, 180, "x")
	uac.Response(180)
	require.NoError(t, tx.Reply(487, "Request Terminated", sip.NewHeader("Reason", `SIP ;cause=487 ;text="terminated by operator"`)))
	res := uac.Response(487)
	assert.Equal(t, `SIP ;cause=487 ;text="terminated by operator"`, res.GetHeader("Reason").Value())
	cn := uas.Request(sip.CANCEL)
	assert.Equal(t, `SIP ;cause=487 ;text="terminated by operator"`, cn.GetHeader("Reason").Value())
	assert.ErrorIs(t, tx.Reply(500, "again"), ErrFinalSent)
	br := tx.Branches()
	require.Len(t, br, 1)
	assert.Equal(t, 180, br[0].LastCode)
	assert.False(t, br[0].Done, "cancelled, waiting for its 487")
	assert.Contains(t, br[0].URI, "sip:bob@127.0.0.1:")
	uas.Reply(cn, 200, "")
	uas.Reply(got, 487, "x")
	select {
	case <-tx.Done():
	case <-time.After(waitFor):
		t.Fatal("transaction not done")
	}
	assert.Empty(t, tx.Branches(), "a done transaction keeps no branch (issue 14)")
	waitInuse(t, p, 0)
}

func TestRFC3261_16_7_TwoBranchesAnswer(t *testing.T) {
	uac, a, b := siptest.NewUA(t), siptest.NewUA(t), siptest.NewUA(t)
	p := startProxy(t, testCfg(), toUAs(a, b))
	inv := uac.Invite("sip:bob@" + p.udp)
	uac.Send(p.udp, inv)
	ia, ib := a.Request(sip.INVITE), b.Request(sip.INVITE)
	a.Reply(ia, 180, "a")
	b.Reply(ib, 180, "b")
	a.Reply(ia, 200, "a")
	first := uac.Response(200)
	cb := b.Request(sip.CANCEL)
	b.Reply(ib, 200, "b") // crosses our CANCEL
	second := uac.Response(200)
	assert.NotEqual(t, first.To().Value(), second.To().Value(), "both 2xx reach the caller")
	b.Reply(cb, 200, "")
	// A retransmission of the second 2xx goes upstream too.
	b.Reply(ib, 200, "b")
	uac.Response(200)
}

func TestRFC3261_16_3_Step4_LoopIs482(t *testing.T) {
	uac := siptest.NewUA(t)
	var self atomic.Value
	router := RouterFunc(func(r *Request) Decision {
		// Send the request back to ourselves unchanged: a loop.
		return RelayTo(Target{URI: r.Recipient, Dst: "udp:" + self.Load().(string)})
	})
	p := startProxy(t, testCfg(), router)
	self.Store(p.udp)
	uac.Send(p.udp, uac.Invite("sip:bob@"+p.udp))
	res := uac.Final()
	assert.Equal(t, 482, res.StatusCode)
}

func TestTM_SendRequestLocal(t *testing.T) {
	uas := siptest.NewUA(t)
	p := startProxy(t, testCfg(), toUAs(uas))
	req := sip.NewRequest(sip.OPTIONS, sip.Uri{Scheme: "sip", Host: "127.0.0.1", Port: uas.Addr.Port})
	fromParams := sip.NewParams()
	fromParams.Add("tag", "p1")
	req.AppendHeader(&sip.FromHeader{Address: sip.Uri{Scheme: "sip", Host: "proxy"}, Params: fromParams})
	req.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: "sip", Host: "127.0.0.1"}, Params: sip.NewParams()})
	cid := sip.CallIDHeader("local-1")
	req.AppendHeader(&cid)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: 1, MethodName: sip.OPTIONS})
	done := make(chan *sip.Response, 1)
	go func() {
		res, err := p.SendRequest(context.Background(), req, "")
		assert.NoError(t, err)
		done <- res
	}()
	got := uas.Request(sip.OPTIONS)
	assert.True(t, p.IsOurVia(got.Via()))
	assert.Equal(t, uint32(70), got.MaxForwards().Val())
	uas.Reply(got, 200, "")
	select {
	case res := <-done:
		require.NotNil(t, res)
		assert.Equal(t, 200, res.StatusCode)
	case <-time.After(waitFor):
		t.Fatal("no answer")
	}
}

// RFC 3261 §9.1: a callee that never answers its INVITE after our CANCEL
// does not keep the transaction for ever.
func TestRFC3261_9_1_CancelledBranchWithoutFinalIsReleased(t *testing.T) {
	uac, uas := siptest.NewUA(t), siptest.NewUA(t)
	p := startProxy(t, testCfg(), toUAs(uas))
	ringingCancelled(t, p, uac, uas, "x")
	c := uas.Request(sip.CANCEL)
	uas.Reply(c, 200, "") // but no 487 for the INVITE, ever
	assert.Equal(t, int64(1), p.Stats().inuse.Load())
	p.clock.Advance(64 * p.cfg.T1)
	// §16.10: no branch answered in time: the 487 is ours.
	assert.Equal(t, 487, uac.Response(487).StatusCode)
	waitInuse(t, p, 0)
}

// RFC 3261 §16.4: the previous hop is a strict router and put our
// Record-Route URI into the Request-URI; the real one is the last Route.
func TestRFC3261_16_4_StrictRoutingPreviousHop(t *testing.T) {
	uac, uas := siptest.NewUA(t), siptest.NewUA(t)
	p := startProxy(t, testCfg(), toUAs(uas))
	raw := "BYE sip:" + p.udp + ";lr SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP " + uac.HostPort() + ";branch=z9hG4bK-strict1;rport\r\n" +
		"Max-Forwards: 70\r\nRoute: <sip:bob@" + uas.HostPort() + ">\r\n" +
		"From: <sip:alice@127.0.0.1>;tag=a1\r\nTo: <sip:bob@127.0.0.1>;tag=b1\r\n" +
		"Call-ID: strict-1@test\r\nCSeq: 2 BYE\r\nContent-Length: 0\r\n\r\n"
	uac.SendRaw(p.udp, raw)
	got := uas.Request(sip.BYE)
	assert.Equal(t, "sip:bob@"+uas.HostPort(), got.Recipient.String())
	assert.Nil(t, got.Route(), "the Route that held the Request-URI is consumed")
	uas.Reply(got, 200, "")
	assert.Equal(t, 200, uac.Final().StatusCode)
}

type hooked struct {
	RouterFunc
	dropBranch int
}

func (h *hooked) OnBranch(t *Transaction, b *Branch) bool {
	if b.Index == h.dropBranch {
		return false
	}
	b.Request.AppendHeader(sip.NewHeader("X-Branch", itoa(b.Index)))
	return true
}

func (h *hooked) OnReply(t *Transaction, branch int, res *sip.Response) bool {
	return res.StatusCode != 183 // keep early media to ourselves
}

// t_on_branch may change or drop a branch; t_on_reply may keep a
// provisional reply from the caller.
func TestTM_BranchAndReplyHooks(t *testing.T) {
	uac, a, b := siptest.NewUA(t), siptest.NewUA(t), siptest.NewUA(t)
	h := &hooked{RouterFunc: toUAs(a, b), dropBranch: 1}
	p := startProxy(t, testCfg(), h, withModules(Module{Name: "hooked", Branch: h, Reply: h}))
	uac.Send(p.udp, uac.Invite("sip:bob@"+p.udp))
	ia := a.Request(sip.INVITE)
	require.NotNil(t, ia.GetHeader("X-Branch"))
	assert.Equal(t, "0", ia.GetHeader("X-Branch").Value())
	b.Quiet(30*time.Millisecond, "INVITE on a dropped branch", isReq(sip.INVITE))
	a.Reply(ia, 183, "a")
	a.Reply(ia, 180, "a")
	r := uac.Next("provisional", func(m sip.Message) bool {
		r, ok := m.(*sip.Response)
		return ok && r.StatusCode > 100
	}).(*sip.Response)
	assert.Equal(t, 180, r.StatusCode, "the 183 was kept by the reply hook")
	a.Reply(ia, 486, "a")
	assert.Equal(t, 486, uac.Final().StatusCode)
}

// A call over IPv6 loopback: Via, Record-Route and Route use bracketed
// addresses.
func TestRFC3261_IPv6Call(t *testing.T) {
	ip6 := net.ParseIP("::1")
	uac, uas := siptest.NewUAOn(t, "udp6", ip6), siptest.NewUAOn(t, "udp6", ip6)
	router := RouterFunc(func(r *Request) Decision {
		if !r.Initial {
			return RelayTo()
		}
		d := RelayTo(Target{URI: sip.Uri{Scheme: "sip", User: "bob", Host: "::1", Port: uas.Addr.Port}})
		d.RecordRoute = true
		return d
	})
	p, err := New(Options{Config: testCfg(), Router: router, Clock: siptest.NewClock()})
	require.NoError(t, err)
	defer p.Close()
	a, err := p.Listen("udp", "[::1]:0", "")
	require.NoError(t, err)
	addr := a.String()
	inv := uac.Invite("sip:bob@" + addr)
	uac.Send(addr, inv)
	got := uas.Request(sip.INVITE)
	assert.Equal(t, "::1", got.Via().Host)
	require.NotNil(t, got.RecordRoute())
	assert.Contains(t, got.RecordRoute().Value(), "[::1]")
	uas.Reply(got, 200, "v6")
	r200 := uac.Response(200)
	uac.Send(addr, uac.AckFor(inv, r200))
	ack := uas.Request(sip.ACK)
	assert.Nil(t, ack.Route())
}

// tm minor_branch_flag: when every major branch failed the transaction
// does not wait for the minor one, which is cancelled.
func TestTM_MinorBranchOverSockets(t *testing.T) {
	uac, major, minor := siptest.NewUA(t), siptest.NewUA(t), siptest.NewUA(t)
	router := RouterFunc(func(r *Request) Decision {
		return RelayTo(
			Target{URI: sip.Uri{Scheme: "sip", User: "bob", Host: "127.0.0.1", Port: major.Addr.Port}},
			Target{URI: sip.Uri{Scheme: "sip", User: "media", Host: "127.0.0.1", Port: minor.Addr.Port}, Minor: true},
		)
	})
	p := startProxy(t, testCfg(), router)
	uac.Send(p.udp, uac.Invite("sip:bob@"+p.udp))
	im, in := major.Request(sip.INVITE), minor.Request(sip.INVITE)
	minor.Reply(in, 183, "media")
	uac.Response(183)
	major.Reply(im, 486, "bob")
	assert.Equal(t, 486, uac.Final().StatusCode, "no wait for the minor branch")
	c := minor.Request(sip.CANCEL)
	minor.Reply(c, 200, "")
	minor.Reply(in, 487, "media")
	waitInuse(t, p, 0)
}

// RFC 3261 §16.7 step 5 / tm disable_6xx_block=0: a 6xx ends the search;
// the lower-q serial step is never tried.
func TestRFC3261_16_7_6xxBlocksSerialForking(t *testing.T) {
	uac, first, second := siptest.NewUA(t), siptest.NewUA(t), siptest.NewUA(t)
	router := RouterFunc(func(r *Request) Decision {
		return RelayTo(
			Target{URI: sip.Uri{Scheme: "sip", User: "a", Host: "127.0.0.1", Port: first.Addr.Port}, Q: 1},
			Target{URI: sip.Uri{Scheme: "sip", User: "b", Host: "127.0.0.1", Port: second.Addr.Port}, Q: 0.5},
		)
	})
	p := startProxy(t, testCfg(), router)
	uac.Send(p.udp, uac.Invite("sip:bob@"+p.udp))
	first.Reply(first.Request(sip.INVITE), 603, "a")
	assert.Equal(t, 603, uac.Final().StatusCode)
	second.Quiet(50*time.Millisecond, "INVITE after a 6xx", isReq(sip.INVITE))
}

type waiter struct {
	first *siptest.UA
	tx    chan *Transaction
}

func (w *waiter) Route(r *Request) Decision {
	d := RelayTo(Target{URI: sip.Uri{Scheme: "sip", User: "a", Host: "127.0.0.1", Port: w.first.Addr.Port}})
	d.WaitForNewBranches = true
	w.tx <- r.Tx
	return d
}

// waitingCall sends an INVITE through a proxy that relays it to first
// and waits for new branches; late is a UA to inject.
func waitingCall(t *testing.T) (uac, first, late *siptest.UA, tx *Transaction) {
	uac, first, late = siptest.NewUA(t), siptest.NewUA(t), siptest.NewUA(t)
	w := &waiter{first: first, tx: make(chan *Transaction, 1)}
	p := startProxy(t, testCfg(), w)
	uac.Send(p.udp, uac.Invite("sip:bob@"+p.udp))
	return uac, first, late, <-w.tx
}

// t_wait_for_new_branches + t_inject_branches: the transaction stays open
// after its only branch failed until a new branch is injected.
func TestTM_InjectBranchesOverSockets(t *testing.T) {
	uac, first, late, tx := waitingCall(t)
	first.Reply(first.Request(sip.INVITE), 480, "a")
	uac.Quiet(30*time.Millisecond, "final reply while waiting for branches", func(m sip.Message) bool {
		r, ok := m.(*sip.Response)
		return ok && r.StatusCode >= 200
	})
	require.NoError(t, tx.InjectBranches(Target{URI: sip.Uri{Scheme: "sip", User: "late", Host: "127.0.0.1", Port: late.Addr.Port}}))
	il := late.Request(sip.INVITE)
	late.Reply(il, 200, "late")
	assert.Equal(t, 200, uac.Final().StatusCode)
	assert.ErrorIs(t, tx.InjectBranches(Target{}), ErrFinalSent)
}

// OpenSIPS tm manual 1.4.14 (t_inject_branches, flag c): the ringing
// branch is cancelled, with the Reason given, before the injected one goes
// out; the injected branch's answer is the caller's, not the cancelled
// branch's 487. Flag l ends the wait for more.
func TestSeedTm_1_4_14_InjectCancellingTheOngoingBranches(t *testing.T) {
	uac, first, late, tx := waitingCall(t)
	inv := first.Request(sip.INVITE)
	first.Reply(inv, 180, "a")
	uac.Response(180)
	reason := ReasonValue("SIP", 487, "moved to the mobile")
	require.NoError(t, tx.InjectBranchesWith(InjectOptions{CancelOngoing: true, Reason: reason, Last: true},
		Target{URI: sip.Uri{Scheme: "sip", User: "late", Host: "127.0.0.1", Port: late.Addr.Port}}))
	c := first.Request(sip.CANCEL)
	require.NotNil(t, c.GetHeader("Reason"))
	assert.Equal(t, reason, c.GetHeader("Reason").Value())
	first.Reply(c, 200, "")
	first.Reply(inv, 487, "a")
	il := late.Request(sip.INVITE)
	late.Reply(il, 486, "late")
	assert.Equal(t, 486, uac.Final().StatusCode, "the injected branch's reply, not the cancelled one's 487")
}

// The RFC 3261 §17 timers come from the config, not from constants:
// T1/T2/T4 and wt_timer, with Timer B/F above fr_timeout so that
// fr_timeout decides when a branch gives up.
func TestTM_TransactionTimersFromConfig(t *testing.T) {
	cfg := DefaultConfig()
	cfg.T1, cfg.T2, cfg.T4 = 250*time.Millisecond, 2*time.Second, 3*time.Second
	cfg.WtTimer = 7 * time.Second
	cfg.FrTimeout = 60 * time.Second
	p, err := New(Options{Config: cfg, Router: toUAs(), Clock: siptest.NewClock()})
	require.NoError(t, err)
	defer p.Close()
	assert.Equal(t, 250*time.Millisecond, p.timers.T1)
	assert.Equal(t, 2*time.Second, p.timers.T2)
	assert.Equal(t, 3*time.Second, p.timers.T4)
	assert.Equal(t, 7*time.Second, p.timers.TimerD, "wt_timer")
	assert.Equal(t, 60*time.Second+250*time.Millisecond, p.timers.TimerB, "fr_timeout decides, not Timer B")
}

// A stopping proxy refuses new calls with 503 (so the caller fails over)
// but still relays requests within dialogs.
func TestTM_ShutdownDrains(t *testing.T) {
	uac, uas := siptest.NewUA(t), siptest.NewUA(t)
	p := startProxy(t, testCfg(), toUAs(uas))
	require.NoError(t, p.Ready())
	inv := uac.Invite("sip:bob@" + p.udp)
	uac.Send(p.udp, inv)
	got := uas.Request(sip.INVITE)
	uas.Reply(got, 200, "b")
	r200 := uac.Response(200)
	waitInuse(t, p, 0)

	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	require.NoError(t, p.Shutdown(ctx))
	assert.Error(t, p.Ready())

	uac.Send(p.udp, uac.Invite("sip:bob@"+p.udp))
	res := uac.Final()
	assert.Equal(t, 503, res.StatusCode)
	uas.Quiet(30*time.Millisecond, "new INVITE while draining", isReq(sip.INVITE))

	uac.Send(p.udp, uac.InDialog("BYE", inv, r200, 2))
	bye := uas.Request(sip.BYE)
	uas.Reply(bye, 200, "")
	assert.Equal(t, 200, uac.Final().StatusCode)
}

// A router that panics costs one request (500), not the process.
func TestTM_RouterPanicIs500(t *testing.T) {
	uac := siptest.NewUA(t)
	p := startProxy(t, testCfg(), RouterFunc(func(r *Request) Decision { panic("router bug") }))
	uac.Send(p.udp, uac.Invite("sip:bob@"+p.udp))
	assert.Equal(t, 500, uac.Final().StatusCode)
	waitInuse(t, p, 0)
}

type panicky struct{ RouterFunc }

func (panicky) OnReply(t *Transaction, branch int, res *sip.Response) bool { panic("reply hook bug") }

func panickyModule() Module {
	return Module{Name: "panicky", Reply: panicky{}, Observer: ObserverFuncs{
		Reply:   func(*Transaction, int, *sip.Response) { panic("reply observer bug") },
		Outcome: func(*Transaction, Outcome) { panic("outcome observer bug") },
		Done:    func(*Transaction) { panic("done observer bug") },
	}}
}

// Panicking hooks are contained: the reply is relayed as if the hook said
// yes, the transaction completes.
func TestTM_HookPanicsAreContained(t *testing.T) {
	uac, uas := siptest.NewUA(t), siptest.NewUA(t)
	p := startProxy(t, testCfg(), toUAs(uas), withModules(panickyModule()))
	uac.Send(p.udp, uac.Invite("sip:bob@"+p.udp))
	got := uas.Request(sip.INVITE)
	uas.Reply(got, 180, "x")
	uac.Response(180)
	uas.Reply(got, 486, "x")
	assert.Equal(t, 486, uac.Final().StatusCode)
	waitInuse(t, p, 0)
}

// OpenSIPS tm manual 1.5.3/1.5.4 ($T_fr_timeout, $T_fr_inv_timeout, R/W):
// a reply hook that sets fr_inv_timeout on the 180 (as an onreply_route
// may) re-arms that branch's timer with it: the branch times out after the
// new value, not the configured one, also with restart_fr_on_each_reply
// off. Zero restores the configured values.
func TestSeedTm_1_5_4_FrInvTimeoutSetOnAReply(t *testing.T) {
	uac, uas := siptest.NewUA(t), siptest.NewUA(t)
	short := 2 * time.Second
	hooked := make(chan struct{}, 1)
	hook := replyFunc(func(tx *Transaction, _ int, res *sip.Response) bool {
		if res.StatusCode == 180 {
			defer func() { hooked <- struct{}{} }()
			assert.Equal(t, 60*time.Second, tx.FrInvTimeout(), "the configured value until written")
			tx.SetFrInvTimeout(short)
			assert.Equal(t, short, tx.FrInvTimeout())
			tx.SetFrTimeout(0)
			assert.Equal(t, 3*time.Second, tx.FrTimeout(), "zero: the configured fr_timeout")
		}
		return true
	})
	cfg := testCfg()
	cfg.RestartFrOnEachReply = false // else every provisional re-arms anyway
	p := startProxy(t, cfg, toUAs(uas), withModules(Module{Name: "timers", Reply: hook}))
	require.Equal(t, 60*time.Second, p.cfg.FrInvTimeout)
	uac.Send(p.udp, uac.Invite("sip:bob@"+p.udp))
	got := uas.Request(sip.INVITE)
	uas.Reply(got, 100, "")
	uas.Reply(got, 180, "x")
	uac.Response(180)
	<-hooked
	p.clock.Advance(short - time.Millisecond)
	uas.Quiet(30*time.Millisecond, "CANCEL before the new fr_inv_timeout", isReq(sip.CANCEL))
	p.clock.Advance(time.Millisecond)
	c := uas.Request(sip.CANCEL)
	assert.Equal(t, reasonRequestTimeout, c.GetHeader("Reason").Value())
	assert.Equal(t, 408, uac.Final().StatusCode)
	uas.Reply(c, 200, "")
	uas.Reply(got, 487, "x")
	waitInuse(t, p, 0)
}

// replyFunc is a ReplyHook made of a function.
type replyFunc func(*Transaction, int, *sip.Response) bool

func (f replyFunc) OnReply(t *Transaction, i int, res *sip.Response) bool { return f(t, i, res) }

// RFC 3261 §16.10 and §9.1: the caller's CANCEL reaches a branch that
// rang even when the goroutine that sent the branch has not run again
// since (preempted under load): the branch's transaction is known before
// the request leaves. It was stored after the send, and a CANCEL handled
// on another reader in between found none and was never sent.
func TestRFC3261_16_10_CancelReachesABranchWhoseSenderIsHeldUp(t *testing.T) {
	uac, uas := siptest.NewUA(t), siptest.NewUA(t)
	txs := make(chan *Transaction, 1)
	held, release := make(chan struct{}), make(chan struct{})
	// Set before the proxy's goroutines start, cleared after they stopped.
	testHookBranchSent = func() {
		close(held)
		<-release
	}
	t.Cleanup(func() { testHookBranchSent = nil })
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	p := startProxy(t, testCfg(), RouterFunc(func(r *Request) Decision {
		txs <- r.Tx
		return Decision{Kind: Defer}
	}))
	t.Cleanup(unblock)

	inv := uac.Invite("sip:bob@" + p.udp)
	uac.Send(p.udp, inv)
	tx := <-txs
	decided := make(chan struct{})
	go func() { // the goroutine that sends the branch, held up after the send
		defer close(decided)
		tx.Decide(RelayTo(Target{URI: sip.Uri{Scheme: "sip", User: "bob", Host: "127.0.0.1", Port: uas.Addr.Port}}))
	}()
	got := uas.Request(sip.INVITE)
	<-held
	uas.Reply(got, 180, "b")
	uac.Response(180)
	uac.Send(p.udp, uac.CancelFor(inv))
	uac.Response(200) // the CANCEL's
	c := uas.Request(sip.CANCEL)
	unblock()
	<-decided
	uas.Reply(c, 200, "")
	uas.Reply(got, 487, "b")
	assert.Equal(t, 487, uac.Final().StatusCode)
}

// RFC 3261 §9.1 and §16.10: the INVITE's wait for a final reply after its
// CANCEL (64*T1) is armed before the CANCEL leaves. Armed after, a callee
// that answers the CANCEL and a clock that moves on before the sending
// goroutine runs again left the branch waiting for ever (seen under load
// in TestRFC3261_9_1_CancelledBranchWithoutFinalIsReleased).
func TestRFC3261_9_1_CancelledBranchWaitIsArmedBeforeTheCancelLeaves(t *testing.T) {
	uac, uas := siptest.NewUA(t), siptest.NewUA(t)
	held, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	// Set before the proxy's readers start (and cleared after they
	// stopped: this cleanup runs after the proxy's).
	testHookCancelSent = func() {
		close(held)
		<-release
	}
	t.Cleanup(func() { testHookCancelSent = nil })
	p := startProxy(t, testCfg(), toUAs(uas))
	t.Cleanup(unblock)

	ringingCancelled(t, p, uac, uas, "x")
	uas.Request(sip.CANCEL)
	<-held // the goroutine that sent the CANCEL is held up after the send
	p.clock.Advance(64 * p.cfg.T1)
	assert.Equal(t, 487, uac.Response(487).StatusCode, "no 487 from the callee: ours after 64*T1")
	unblock()
	waitInuse(t, p, 0)
}

// Decision.Dst (OpenSIPS' $du for the default branch, without a target
// list): the INVITE's one branch and the stateless ACK go to the outbound
// proxy whatever host their Request-URI names (one no resolver knows).
func TestTM_DecisionDstIsTheDefaultBranchsOutboundProxy(t *testing.T) {
	uac, uas := siptest.NewUA(t), siptest.NewUA(t)
	p := startProxy(t, testCfg(), RouterFunc(func(r *Request) Decision {
		return Decision{Kind: Relay, Dst: "udp:" + uas.HostPort()}
	}))
	inv := uac.Invite("sip:bob@unresolvable.invalid")
	uac.Send(p.udp, inv)
	got := uas.Request(sip.INVITE)
	assert.Equal(t, "sip:bob@unresolvable.invalid", got.Recipient.String(), "the Request-URI kept")
	uas.Reply(got, 200, "b")
	r200 := uac.Response(200)
	ack := uac.AckFor(inv, r200)
	ack.Recipient = sip.Uri{Scheme: "sip", User: "uas", Host: "unresolvable.invalid"}
	uac.Send(p.udp, ack)
	gotAck := uas.Request(sip.ACK)
	assert.Equal(t, "sip:uas@unresolvable.invalid", gotAck.Recipient.String())
	waitInuse(t, p, 0)
}

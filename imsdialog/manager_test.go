package imsdialog_test

import (
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	. "github.com/imsdlg/imsdlg/imsdialog"
	"github.com/imsdlg/imsdlg/internal/dlgtest"
	"github.com/imsdlg/imsdlg/internal/siptest"
	"github.com/imsdlg/imsdlg/tm"
)

// newEnv routes every initial INVITE with route and everything else along
// its route set.
func newEnv(t *testing.T, cfg Config, route func(r *tm.Request) tm.Decision) *dlgtest.Env {
	t.Helper()
	return dlgtest.New(t, dlgtest.Options{Config: &cfg}, dlgtest.Route(route))
}

var target = dlgtest.Target

func legsOf(in Info) map[string]string {
	out := map[string]string{}
	for _, l := range in.DlgOuts {
		out[l.ToTag] = l.State
	}
	return out
}

// Issue 4: a forked call with two early branches; after the 200 only the
// answering leg stays; BYE ends the dialog; the counters return to 0.
func TestSeedImsDialog_ForkedCallTwoEarlyLegs(t *testing.T) {
	uac, a, b := siptest.NewUA(t), siptest.NewUA(t), siptest.NewUA(t)
	e := newEnv(t, DefaultConfig(), func(r *tm.Request) tm.Decision {
		return tm.RelayTo(target(a, "bob"), target(b, "bob"))
	})
	inv := uac.Invite("sip:bob@" + e.Addr)
	uac.Send(e.Addr, inv)
	ia, ib := a.Request(sip.INVITE), b.Request(sip.INVITE)
	d := e.Only(t)
	rr := ia.RecordRoute()
	require.NotNil(t, rr, "the dialog record-routes")
	did, _ := rr.Address.UriParams.Get("did")
	assert.Equal(t, d.DID(), did)

	a.Reply(ia, 180, "legA")
	b.Reply(ib, 183, "legB")
	for range 2 {
		uac.Next("18x", func(m sip.Message) bool { r, ok := m.(*sip.Response); return ok && r.StatusCode > 100 })
	}
	siptest.Eventually(t, func() bool { return len(d.Info(false).DlgOuts) == 2 }, "two dlg_out")
	in := d.Info(false)
	assert.Equal(t, Early, in.State)
	assert.Equal(t, map[string]string{"legA": "EARLY", "legB": "EARLY"}, legsOf(in))
	assert.Equal(t, int64(1), e.M.Stats().Snapshot()["early_dialogs"])

	b.Reply(ib, 200, "legB")
	r200 := uac.Response(200)
	ca := a.Request(sip.CANCEL)
	a.Reply(ca, 200, "")
	a.Reply(ia, 487, "legA")
	e.WaitState(t, d, ConfirmedNA)
	uac.Send(e.Addr, uac.AckFor(inv, r200))
	b.Request(sip.ACK)
	e.WaitState(t, d, Confirmed)
	siptest.Eventually(t, func() bool { return len(d.Info(false).DlgOuts) == 1 }, "only the answering leg stays")
	in = d.Info(false)
	assert.Equal(t, "legB", in.ToTag)
	assert.Equal(t, "legB", in.DlgOuts[0].ToTag)
	assert.Equal(t, int64(1), e.M.Stats().Snapshot()["active_dialogs"])
	assert.Equal(t, int64(0), e.M.Stats().Snapshot()["early_dialogs"])

	uac.Send(e.Addr, uac.InDialog("BYE", inv, r200, 2))
	bye := b.Request(sip.BYE)
	assert.Nil(t, bye.Route())
	b.Reply(bye, 200, "")
	uac.Response(200)
	e.WaitGone(t)
	snap := e.M.Stats().Snapshot()
	assert.Equal(t, int64(0), snap["active_dialogs"])
	assert.Equal(t, int64(1), snap["processed_dialogs"])
	assert.Equal(t, "CREATED,EARLY,EARLY,CONFIRMED_NA,CONFIRMED,REQ_WITHIN,TERMINATED,RPL_WITHIN,TERMINATED_CONFIRMED,DESTROY", e.Callbacks())
	assert.Equal(t, 4, e.Forwarded(), "180, 183, 200 and the 487 of the cancelled leg")
}

// dlg_terminate on an early dialog: the callees that rang get CANCEL with
// a Reason, the caller the final reply with the Reason.
func TestSeedImsDialog_TerminateEarlyCall(t *testing.T) {
	uac, a := siptest.NewUA(t), siptest.NewUA(t)
	e := newEnv(t, DefaultConfig(), func(r *tm.Request) tm.Decision { return tm.RelayTo(target(a, "bob")) })
	inv := uac.Invite("sip:bob@" + e.Addr)
	uac.Send(e.Addr, inv)
	ia := a.Request(sip.INVITE)
	a.Reply(ia, 180, "legA")
	uac.Response(180)
	d := e.Only(t)
	e.WaitState(t, d, Early)

	require.NoError(t, e.M.TerminateDlg(d.CallID, d.FromTag, "", SideBoth, "operator"))
	res := uac.Response(487)
	require.NotNil(t, res.GetHeader("Reason"))
	assert.Contains(t, res.GetHeader("Reason").Value(), `cause=487`)
	assert.Contains(t, res.GetHeader("Reason").Value(), `operator`)
	c := a.Request(sip.CANCEL)
	require.NotNil(t, c.GetHeader("Reason"))
	assert.Contains(t, c.GetHeader("Reason").Value(), "operator")
	a.Reply(c, 200, "")
	a.Reply(ia, 487, "legA")
	e.WaitGone(t)
	assert.Equal(t, int64(1), e.M.Stats().Snapshot()["failed_dialogs"])
	assert.ErrorIs(t, e.M.TerminateDlg(d.CallID, d.FromTag, "", SideBoth, ""), ErrNotFound)
	assert.ErrorIs(t, e.M.LookupTerminateDlg(d.HEntry, d.HID+100, SideBoth, ""), ErrNotFound)
}

// dlg_terminate on a confirmed call: BYE to the caller and to the callee
// leg that answered, each with its route set, target and a CSeq above what
// its direction used (also after a re-INVITE raised it).
func TestSeedImsDialog_TerminateConfirmedCall(t *testing.T) {
	uac, a, b := siptest.NewUA(t), siptest.NewUA(t), siptest.NewUA(t)
	e := newEnv(t, DefaultConfig(), func(r *tm.Request) tm.Decision {
		return tm.RelayTo(target(a, "bob"), target(b, "bob"))
	})
	inv := uac.Invite("sip:bob@" + e.Addr)
	uac.Send(e.Addr, inv)
	ia, ib := a.Request(sip.INVITE), b.Request(sip.INVITE)
	a.Reply(ia, 180, "legA") // the first leg rings; the second answers
	b.Reply(ib, 200, "legB")
	r200 := uac.Response(200)
	ca := a.Request(sip.CANCEL)
	a.Reply(ca, 200, "")
	a.Reply(ia, 487, "legA")
	uac.Send(e.Addr, uac.AckFor(inv, r200))
	b.Request(sip.ACK)
	d := e.Only(t)
	e.WaitState(t, d, Confirmed)

	// A re-INVITE from the caller raises its CSeq to 5.
	re := uac.InDialog("INVITE", inv, r200, 5)
	uac.Send(e.Addr, re)
	gre := b.Request(sip.INVITE)
	b.Reply(gre, 200, "legB")
	r2 := uac.Response(200)
	uac.Send(e.Addr, uac.AckFor(re, r2))
	b.Request(sip.ACK)

	require.NoError(t, e.M.LookupTerminateDlg(d.HEntry, d.HID, SideBoth, "operator", "X-Charging: stop"))
	toCallee := b.Request(sip.BYE)
	require.NotNil(t, toCallee.GetHeader("X-Charging"))
	assert.Equal(t, "stop", toCallee.GetHeader("X-Charging").Value())
	assert.Equal(t, "legB", tm.Tag(toCallee.To().Params), "the leg that answered, not the first one")
	assert.Equal(t, uint32(6), toCallee.CSeq().SeqNo, "above the caller's re-INVITE")
	assert.Contains(t, toCallee.GetHeader("Reason").Value(), "operator")
	a.Quiet(30*time.Millisecond, "BYE to the leg that only rang", func(m sip.Message) bool {
		r, ok := m.(*sip.Request)
		return ok && r.Method == sip.BYE
	})
	toCaller := uac.Request(sip.BYE)
	assert.Equal(t, tm.Tag(inv.From().Params), tm.Tag(toCaller.To().Params))
	assert.Equal(t, "legB", tm.Tag(toCaller.From().Params))
	assert.Equal(t, fmt.Sprintf("sip:alice@%s", uac.HostPort()), toCaller.Recipient.String())
	b.Reply(toCallee, 200, "")
	uac.Reply(toCaller, 200, "")
	e.WaitGone(t)
	assert.Contains(t, e.Callbacks(), "TERMINATED,TERMINATED_CONFIRMED,DESTROY")
}

// default_timeout: the confirmed call is ended with BYE both ways.
func TestSeedImsDialog_DefaultTimeoutEndsCall(t *testing.T) {
	uac, a := siptest.NewUA(t), siptest.NewUA(t)
	cfg := DefaultConfig()
	cfg.DefaultTimeout = 90 * time.Second
	e := newEnv(t, cfg, func(r *tm.Request) tm.Decision { return tm.RelayTo(target(a, "bob")) })
	e.ConfirmedCall(t, uac, a)
	e.M.RegisterCallback(CbExpired, func(*Dialog, Callback, CallbackParams) { panic("callback bug") })
	e.Clock.Advance(90 * time.Second) // the callback panics on the timer's goroutine
	byeA := a.Request(sip.BYE)
	byeU := uac.Request(sip.BYE)
	a.Reply(byeA, 200, "")
	uac.Reply(byeU, 200, "")
	e.WaitGone(t)
	assert.Equal(t, int64(1), e.M.Stats().Snapshot()["expired_dialogs"])
	assert.Contains(t, e.Callbacks(), "EXPIRED")
}

// RFC 3261 §16.7 step 5 with RFC 5407 §3.1.2 (issue 11 §1): a second 2xx
// from another branch is relayed to the caller and never also ended by the
// proxy; the dialog keeps that leg until the caller's BYE on it, and the
// call goes on with the first.
func TestRFC5407_SecondAnswerIsRelayedNotEnded(t *testing.T) {
	uac, a, b := siptest.NewUA(t), siptest.NewUA(t), siptest.NewUA(t)
	e := newEnv(t, DefaultConfig(), func(r *tm.Request) tm.Decision {
		return tm.RelayTo(target(a, "bob"), target(b, "bob"))
	})
	inv := uac.Invite("sip:bob@" + e.Addr)
	uac.Send(e.Addr, inv)
	ia, ib := a.Request(sip.INVITE), b.Request(sip.INVITE)
	a.Reply(ia, 180, "legA")
	b.Reply(ib, 180, "legB")
	a.Reply(ia, 200, "legA")
	r200a := uac.Response(200)
	d := e.Only(t)
	e.WaitState(t, d, ConfirmedNA)
	cb := b.Request(sip.CANCEL)
	b.Reply(ib, 200, "legB", "Contact: <sip:bob@"+b.HostPort()+">") // crosses the CANCEL
	b.Reply(cb, 200, "")
	r200b := uac.Next("the second 200", func(m sip.Message) bool {
		r, ok := m.(*sip.Response)
		return ok && r.StatusCode == 200 && tm.Tag(r.To().Params) == "legB"
	}).(*sip.Response)
	siptest.Eventually(t, func() bool { return len(d.Info(false).DlgOuts) == 2 }, "both answered legs in dlg.list")

	// The caller ACKs both 200s and hangs up the one it does not keep.
	uac.Send(e.Addr, uac.AckFor(inv, r200a))
	a.Request(sip.ACK)
	uac.Send(e.Addr, uac.AckFor(inv, r200b))
	ackB := b.Request(sip.ACK)
	assert.Equal(t, "legB", tm.Tag(ackB.To().Params))
	e.WaitState(t, d, Confirmed)
	byeB := uac.InDialog("BYE", inv, r200b, 2)
	uac.Send(e.Addr, byeB)
	gotBye := b.Request(sip.BYE)
	assert.Len(t, gotBye.GetHeaders("Via"), 2, "the caller's BYE relayed, not one of the proxy's")
	assert.Equal(t, uint32(2), gotBye.CSeq().SeqNo)
	b.Reply(gotBye, 200, "legB")
	uac.Response(200)
	siptest.Eventually(t, func() bool { return len(d.Info(false).DlgOuts) == 1 }, "the ended leg leaves dlg.list")
	in := d.Info(false)
	assert.Equal(t, Confirmed, in.State, "the call goes on with the first answer")
	assert.Equal(t, "legA", in.ToTag)
	assert.Equal(t, int64(1), e.M.Stats().Snapshot()["active_dialogs"], "counted once")

	uac.Send(e.Addr, uac.InDialog("BYE", inv, r200a, 3))
	a.Reply(a.Request(sip.BYE), 200, "legA")
	uac.Response(200)
	e.WaitGone(t)
}

// dialog.second_2xx absorb (issue 11 §1, the option): the second answer is
// kept from the caller and ended by the proxy, ACK then BYE. Never both.
func TestRFC5407_SecondAnswerAbsorbed(t *testing.T) {
	uac, a, b := siptest.NewUA(t), siptest.NewUA(t), siptest.NewUA(t)
	cfg := DefaultConfig()
	cfg.Second2xx = Second2xxAbsorb
	e := newEnv(t, cfg, func(r *tm.Request) tm.Decision {
		return tm.RelayTo(target(a, "bob"), target(b, "bob"))
	})
	inv := uac.Invite("sip:bob@" + e.Addr)
	uac.Send(e.Addr, inv)
	ia, ib := a.Request(sip.INVITE), b.Request(sip.INVITE)
	a.Reply(ia, 180, "legA")
	b.Reply(ib, 180, "legB")
	a.Reply(ia, 200, "legA")
	r200 := uac.Response(200)
	d := e.Only(t)
	e.WaitState(t, d, ConfirmedNA)
	cb := b.Request(sip.CANCEL)
	b.Reply(ib, 200, "legB", "Contact: <sip:bob@"+b.HostPort()+">") // crosses the CANCEL
	b.Reply(cb, 200, "")
	ack := b.Next("the proxy's ACK of the absorbed 2xx", func(m sip.Message) bool {
		r, ok := m.(*sip.Request)
		return ok && r.Method == sip.ACK
	}).(*sip.Request)
	assert.Equal(t, "legB", tm.Tag(ack.To().Params))
	bye := b.Request(sip.BYE)
	assert.Equal(t, "legB", tm.Tag(bye.To().Params))
	assert.Contains(t, bye.GetHeader("Reason").Value(), "call completed elsewhere")
	b.Reply(bye, 200, "legB")
	uac.Quiet(50*time.Millisecond, "the absorbed 200", func(m sip.Message) bool {
		r, ok := m.(*sip.Response)
		return ok && r.StatusCode == 200 && tm.Tag(r.To().Params) == "legB"
	})
	in := d.Info(false)
	assert.Equal(t, "legA", in.ToTag)
	assert.Len(t, in.DlgOuts, 1)
	uac.Send(e.Addr, uac.AckFor(inv, r200))
	a.Request(sip.ACK)
	e.WaitState(t, d, Confirmed)
}

// Issue 11 §2: a UA that ignores Record-Route sends its ACK and BYE to the
// AOR without Route: they go to the leg that answered, never forked again.
func TestIssue11_InDialogRequestWithoutRouteGoesToItsLeg(t *testing.T) {
	uac, a, b := siptest.NewUA(t), siptest.NewUA(t), siptest.NewUA(t)
	e := newEnv(t, DefaultConfig(), func(r *tm.Request) tm.Decision {
		return tm.RelayTo(target(a, "bob"), target(b, "bob"))
	})
	inv := uac.Invite("sip:bob@" + e.Addr)
	uac.Send(e.Addr, inv)
	ia, ib := a.Request(sip.INVITE), b.Request(sip.INVITE)
	a.Reply(ia, 486, "legA")
	b.Reply(ib, 200, "legB", "Contact: <sip:bob-b@"+b.HostPort()+">")
	r200 := uac.Response(200)
	d := e.Only(t)
	e.WaitState(t, d, ConfirmedNA)
	toAOR := func(method string, cseq int) *sip.Request {
		req := uac.InDialog(method, inv, r200, cseq)
		req.RemoveHeader("Route")
		req.Recipient = *inv.Recipient.Clone()
		return req
	}
	uac.Send(e.Addr, toAOR("ACK", 1))
	ack := b.Request(sip.ACK)
	assert.Equal(t, "bob-b", ack.Recipient.User, "the answering leg's Contact")
	e.WaitState(t, d, Confirmed)
	uac.Send(e.Addr, toAOR("BYE", 2))
	bye := b.Request(sip.BYE)
	assert.Equal(t, "bob-b", bye.Recipient.User)
	inviteBranch, _ := ia.Via().Params.Get("branch")
	a.Quiet(50*time.Millisecond, "the caller's requests at the leg that said 486", func(m sip.Message) bool {
		// The proxy's ACK of the 486 is hop by hop: it has the INVITE's branch.
		r, ok := m.(*sip.Request)
		if !ok {
			return false
		}
		branch, _ := r.Via().Params.Get("branch")
		return !(r.Method == sip.ACK && branch == inviteBranch)
	})
	b.Reply(bye, 200, "legB")
	uac.Response(200)
	e.WaitGone(t)
}

// detect_spirals: the INVITE comes back from an AS with our route (and
// did): SPIRALED fires and no second dialog appears. The same Call-ID and
// From tag without any marker of ours is a separate dialog.
func TestSeedImsDialog_DetectSpirals(t *testing.T) {
	uac, as, callee := siptest.NewUA(t), siptest.NewUA(t), siptest.NewUA(t)
	e := newEnv(t, DefaultConfig(), func(r *tm.Request) tm.Decision {
		if r.RouteConsumed || r.Recipient.User == "bob-after-as" {
			return tm.RelayTo(target(callee, "bob"))
		}
		return tm.RelayTo(target(as, "as"))
	})
	inv := uac.Invite("sip:bob@" + e.Addr)
	uac.Send(e.Addr, inv)
	atAS := as.Request(sip.INVITE)
	rr := atAS.RecordRoute()
	require.NotNil(t, rr)
	// The AS sends it back with our Record-Route as its Route (an ODI).
	back := atAS.Clone()
	back.Recipient = sip.Uri{Scheme: "sip", User: "bob-after-as", Host: "127.0.0.1"}
	back.PrependHeader(&sip.RouteHeader{Address: *rr.Address.Clone()})
	back.PrependHeader(&sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: "UDP",
		Host: "127.0.0.1", Port: as.Addr.Port, Params: branchParams("z9hG4bK-as-1")})
	as.Send(e.Addr, back)
	got := callee.Request(sip.INVITE)
	assert.Equal(t, "bob", got.Recipient.User)
	d := e.Only(t)
	assert.Contains(t, e.Callbacks(), "SPIRALED")
	assert.Equal(t, int64(1), e.M.Stats().Snapshot()["spiraled_requests"])
	assert.Len(t, e.M.Dialogs(), 1, "a spiral joins its dialog")
	_ = d

	// A replay with the same Call-ID and From tag but no marker of ours.
	replay := inv.Clone()
	replay.RemoveHeader("Via")
	replay.PrependHeader(&sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: "UDP",
		Host: "127.0.0.1", Port: uac.Addr.Port, Params: branchParams("z9hG4bK-other-fork")})
	uac.Send(e.Addr, replay)
	as.Request(sip.INVITE)
	siptest.Eventually(t, func() bool { return len(e.M.Dialogs()) == 2 }, "an upstream fork is a dialog of its own")
}

func TestManager_ConfigErrorsNameTheParameter(t *testing.T) {
	cfg := DefaultConfig()
	cfg.HashSize = 1000
	cfg.RRParam = "d id"
	cfg.MatchMode = 7
	_, err := New(Options{Config: cfg})
	require.Error(t, err)
	for _, want := range []string{"hash_size", "rr_param", "dlg_match_mode"} {
		assert.Contains(t, err.Error(), want)
	}
}

func branchParams(b string) sip.HeaderParams {
	p := sip.NewParams()
	p.Add("branch", b)
	return p
}

func TestManager_SetTimeoutAndIsKnown(t *testing.T) {
	uac, a := siptest.NewUA(t), siptest.NewUA(t)
	e := newEnv(t, DefaultConfig(), func(r *tm.Request) tm.Decision { return tm.RelayTo(target(a, "bob")) })
	d := e.ConfirmedCall(t, uac, a)
	require.NoError(t, e.M.SetTimeout(d, 10*time.Second))
	assert.Error(t, e.M.SetTimeout(d, 0))
	e.Clock.Advance(10 * time.Second)
	bye := a.Request(sip.BYE)
	a.Reply(bye, 200, "")
	uac.Reply(uac.Request(sip.BYE), 200, "")
	e.WaitGone(t)
	assert.ErrorIs(t, e.M.SetTimeout(d, time.Second), ErrNotFound)

	d.SetVar("charging", "on")
	v, ok := d.Var("charging")
	assert.True(t, ok)
	assert.Equal(t, "on", v)
	d.SetFlag(3)
	assert.True(t, d.IsFlagSet(3))
	d.ResetFlag(3)
	assert.False(t, d.IsFlagSet(3))
	e.M.RegisterCallback(CbMIContext, func(d *Dialog, _ Callback, _ CallbackParams) { d.SetVar("ctx", "seen") })
	assert.Equal(t, "seen", e.M.InfoCtx(d).Vars["ctx"])
}

// RFC 3261 §12.2.1.1 with RFC 3311: an UPDATE to an early leg raises the
// caller's CSeq on that leg; the BYE we send later goes above it.
func TestRFC3261_12_2_1_1_UpdateOnEarlyLegRaisesCSeq(t *testing.T) {
	uac, a := siptest.NewUA(t), siptest.NewUA(t)
	e := newEnv(t, DefaultConfig(), func(r *tm.Request) tm.Decision { return tm.RelayTo(target(a, "bob")) })
	inv := uac.Invite("sip:bob@" + e.Addr)
	uac.Send(e.Addr, inv)
	ia := a.Request(sip.INVITE)
	a.Reply(ia, 183, "legA", "Contact: <sip:uas@"+a.HostPort()+">")
	r183 := uac.Response(183)
	upd := uac.InDialog("UPDATE", inv, r183, 7)
	uac.Send(e.Addr, upd)
	gu := a.Request(sip.UPDATE)
	a.Reply(gu, 200, "legA")
	uac.Response(200)
	a.Reply(ia, 200, "legA")
	r200 := uac.Next("200 to the INVITE", func(m sip.Message) bool {
		r, ok := m.(*sip.Response)
		return ok && r.StatusCode == 200 && r.CSeq().MethodName == sip.INVITE
	}).(*sip.Response)
	uac.Send(e.Addr, uac.AckFor(inv, r200))
	a.Request(sip.ACK)
	d := e.Only(t)
	e.WaitState(t, d, Confirmed)
	require.NoError(t, e.M.Terminate(d, SideCallee, 0, "operator"))
	bye := a.Request(sip.BYE)
	assert.Equal(t, uint32(8), bye.CSeq().SeqNo)
	a.Reply(bye, 200, "")
	e.WaitGone(t)
}

// dlg_flag / create_dialog: with dialog.enable off only the INVITEs the
// router asks for get a dialog.
func TestSeedImsDialog_CreateDialogPerRequest(t *testing.T) {
	uac, a := siptest.NewUA(t), siptest.NewUA(t)
	cfg := DefaultConfig()
	cfg.Enable = false
	e := newEnv(t, cfg, func(r *tm.Request) tm.Decision {
		if r.GetHeader("X-Track") != nil {
			CreateDialog(r)
		}
		return tm.RelayTo(target(a, "bob"))
	})
	uac.Send(e.Addr, uac.Invite("sip:bob@"+e.Addr))
	a.Reply(a.Request(sip.INVITE), 486, "legA")
	uac.Final()
	assert.Empty(t, e.M.Dialogs())
	assert.Zero(t, e.M.Stats().Snapshot()["created_dialogs"])

	uac.Send(e.Addr, uac.Invite("sip:bob@"+e.Addr, "X-Track: yes"))
	ia := a.Request(sip.INVITE)
	require.NotNil(t, ia.RecordRoute(), "a tracked dialog record-routes")
	assert.Equal(t, int64(1), e.M.Stats().Snapshot()["created_dialogs"])
	a.Reply(ia, 486, "legA")
	uac.Final()
	e.WaitGone(t)
}

// get_current_dialog / is_known_dlg from a router, and a callback
// registered on one dialog only.
func TestSeedImsDialog_CurrentKnownAndDialogCallbacks(t *testing.T) {
	uac, a := siptest.NewUA(t), siptest.NewUA(t)
	type seen struct {
		method string
		known  bool
	}
	got := make(chan seen, 8)
	e := routedToA(t, dlgtest.Options{}, a, func(m *Manager, r *tm.Request) { got <- seen{string(r.Method), m.IsKnown(r)} })
	inv := uac.Invite("sip:bob@" + e.Addr)
	uac.Send(e.Addr, inv)
	ia := a.Request(sip.INVITE)
	assert.Equal(t, seen{"INVITE", false}, <-got, "the dialog is created after the router ran")
	d := e.Only(t)
	var mine []string
	var mu sync.Mutex
	d.RegisterCallback(CbConfirmed|CbTerminated, func(_ *Dialog, typ Callback, _ CallbackParams) {
		mu.Lock()
		mine = append(mine, typ.String())
		mu.Unlock()
	})
	a.Reply(ia, 200, "legA")
	r200 := uac.Response(200)
	uac.Send(e.Addr, uac.AckFor(inv, r200))
	a.Request(sip.ACK)
	assert.Equal(t, seen{"ACK", true}, <-got)
	e.WaitState(t, d, Confirmed)
	uac.Send(e.Addr, uac.InDialog("BYE", inv, r200, 2))
	assert.Equal(t, seen{"BYE", true}, <-got)
	bye := a.Request(sip.BYE)
	a.Reply(bye, 200, "")
	uac.Response(200)
	e.WaitGone(t)
	mu.Lock()
	assert.Equal(t, []string{"CONFIRMED", "TERMINATED"}, mine)
	mu.Unlock()

	// A BYE for a dialog that is gone is not known.
	uac.Send(e.Addr, uac.InDialog("BYE", inv, r200, 3))
	assert.Equal(t, seen{"BYE", false}, <-got)
}

// The INVITE that created a dialog, seen again after its transaction
// ended (a late retransmission), creates no second dialog and no call.
func TestDesign4_LateInviteRetransmissionIsDropped(t *testing.T) {
	uac, a := siptest.NewUA(t), siptest.NewUA(t)
	e := newEnv(t, DefaultConfig(), func(r *tm.Request) tm.Decision { return tm.RelayTo(target(a, "bob")) })
	inv := uac.Invite("sip:bob@" + e.Addr)
	uac.Send(e.Addr, inv)
	a.Reply(a.Request(sip.INVITE), 200, "legA")
	r200 := uac.Response(200)
	d := e.Only(t)
	e.WaitState(t, d, ConfirmedNA)
	// The 2xx ended the server transaction (RFC 3261 §17.2.1): the same
	// INVITE again reaches the dialog module.
	uac.Send(e.Addr, inv)
	a.Quiet(50*time.Millisecond, "a second INVITE", func(m sip.Message) bool {
		r, ok := m.(*sip.Request)
		return ok && r.Method == sip.INVITE
	})
	assert.Len(t, e.M.Dialogs(), 1)
	uac.Send(e.Addr, uac.AckFor(inv, r200))
	a.Request(sip.ACK)
}

// dlg_match_mode (ims_dialog §5.8): 0 matches requests within a dialog by
// the did cookie of our Route only; 2 by Call-ID and tags only, and then
// our Record-Route carries no cookie (issue 11 §11).
func TestSeedImsDialog_DlgMatchMode(t *testing.T) {
	for _, tc := range []struct {
		name       string
		mode       int
		didInRR    bool
		withoutDID bool // a BYE whose Route lost the cookie still ends the dialog
	}{
		{"0: did only", MatchDIDOnly, true, false},
		{"1: did, else Call-ID and tags", MatchDIDFallback, true, true},
		{"2: Call-ID and tags only", MatchDIDNone, false, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			uac, a := siptest.NewUA(t), siptest.NewUA(t)
			cfg := DefaultConfig()
			cfg.MatchMode = tc.mode
			e := newEnv(t, cfg, func(r *tm.Request) tm.Decision { return tm.RelayTo(target(a, "bob")) })
			inv := uac.Invite("sip:bob@" + e.Addr)
			uac.Send(e.Addr, inv)
			ia := a.Request(sip.INVITE)
			_, hasDID := ia.RecordRoute().Address.UriParams.Get("did")
			assert.Equal(t, tc.didInRR, hasDID, "did in our Record-Route: %s", ia.RecordRoute().Value())
			a.Reply(ia, 200, "legA")
			r200 := uac.Response(200)
			uac.Send(e.Addr, uac.AckFor(inv, r200))
			a.Request(sip.ACK)
			d := e.Only(t)
			e.WaitState(t, d, Confirmed)

			bye := uac.InDialog("BYE", inv, r200, 2)
			if r := bye.Route(); r != nil {
				r.Address.UriParams.Remove("did") // a Route that lost the cookie
			}
			uac.Send(e.Addr, bye)
			a.Reply(a.Request(sip.BYE), 200, "legA")
			uac.Response(200)
			if tc.withoutDID {
				e.WaitGone(t)
				return
			}
			assert.Equal(t, Confirmed, d.State(), "without its cookie the BYE is not the dialog's")
			// With the cookie it is.
			uac.Send(e.Addr, uac.InDialog("BYE", inv, r200, 3))
			a.Reply(a.Request(sip.BYE), 200, "legA")
			uac.Response(200)
			e.WaitGone(t)
		})
	}
}

// RFC 3261 §13.3.1.4 (issue 15 §0): the caller's ACK passed the proxy but
// never reached the callee, which repeats its 2xx; the caller is gone and
// never ACKs again. The repeated 2xx arms ack_timeout, at whose end the
// dialog ends with BYE both ways (end reason no_ack). A caller that does
// ACK the repeat keeps its call.
func TestRFC3261_13_3_1_4_CalleeRepeatsItsAnswer(t *testing.T) {
	for _, reACK := range []bool{false, true} {
		uac, a := siptest.NewUA(t), siptest.NewUA(t)
		e := newEnv(t, DefaultConfig(), func(r *tm.Request) tm.Decision { return tm.RelayTo(target(a, "bob")) })
		inv := uac.Invite("sip:bob@" + e.Addr)
		uac.Send(e.Addr, inv)
		ia := a.Request(sip.INVITE)
		ok := a.Reply(ia, 200, "b", "Contact: <sip:bob@"+a.HostPort()+">")
		r200 := uac.Response(200)
		uac.Send(e.Addr, uac.AckFor(inv, r200))
		a.Request(sip.ACK)
		d := e.Only(t)
		e.WaitState(t, d, Confirmed)
		before := e.Clock.Pending()
		a.SendRaw(e.Addr, ok.String()) // the ACK got lost on the way to the callee
		uac.Response(200)
		siptest.Eventually(t, func() bool { return e.Clock.Pending() == before+1 }, "the repeat arms ack_timeout")
		if reACK {
			uac.Send(e.Addr, uac.AckFor(inv, r200))
			a.Request(sip.ACK)
			siptest.Eventually(t, func() bool { return e.Clock.Pending() == before }, "the ACK stops it")
		}
		// The callee goes on repeating (no ACK reaches it). By now the
		// INVITE's transactions are gone (tm's wt_timer, 5 s): the repeat is
		// a stray 2xx, which the dialog hears of all the same.
		e.Clock.Advance(DefaultConfig().AckTimeout - 4*time.Second)
		a.SendRaw(e.Addr, ok.String())
		uac.Response(200)
		e.Clock.Advance(4 * time.Second)
		if reACK {
			a.Quiet(50*time.Millisecond, "a BYE for a call that was ACKed", isBye)
			assert.Equal(t, Confirmed, d.State())
			continue
		}
		assert.NotNil(t, a.Request(sip.BYE))
		assert.NotNil(t, uac.Request(sip.BYE))
		assert.Equal(t, EndNoACK, d.Info(false).EndReason)
	}
}

func isBye(m sip.Message) bool {
	r, ok := m.(*sip.Request)
	return ok && r.Method == sip.BYE
}

// Issue 15 §15 (found by the soak): the callee dies right after its 2xx,
// and the 2xx never reaches the caller, so no ACK comes and nobody repeats
// the answer. At the end of ack_timeout both parties get an OPTIONS; the
// dead callee does not answer, and the call ends with BYE both ways (end
// reason no_ack) instead of holding its counts for default_timeout.
func TestIssue15_AnsweredThenTheCalleeDied(t *testing.T) {
	uac, a := siptest.NewUA(t), siptest.NewUA(t)
	e := newEnv(t, DefaultConfig(), func(r *tm.Request) tm.Decision { return tm.RelayTo(target(a, "bob")) })
	inv := uac.Invite("sip:bob@" + e.Addr)
	uac.Send(e.Addr, inv)
	a.Reply(a.Request(sip.INVITE), 200, "b", "Contact: <sip:bob@"+a.HostPort()+">")
	uac.Response(200) // lost, as far as the caller knows: it never ACKs
	d := e.Only(t)
	e.WaitState(t, d, ConfirmedNA)
	e.Clock.Advance(DefaultConfig().AckTimeout)
	optCallee := a.Request(sip.OPTIONS) // the callee is dead: no answer
	optCaller := uac.Request(sip.OPTIONS)
	assert.Equal(t, "b", tm.Tag(optCallee.To().Params))
	assert.Equal(t, "b", tm.Tag(optCaller.From().Params))
	uac.Reply(optCaller, 200, "") // the caller is there, the callee is not
	a.Quiet(50*time.Millisecond, "a BYE before the callee's OPTIONS timed out", isBye)
	e.Clock.Advance(time.Minute) // the OPTIONS transaction times out
	a.Request(sip.BYE)
	uac.Reply(uac.Request(sip.BYE), 200, "")
	assert.Equal(t, EndNoACK, d.Info(false).EndReason)
}

// Found by the e2e suite under load: the caller's CANCEL is answered (and
// its INVITE gets 487) while the route of the INVITE still runs; the
// route then decides to relay. No dialog may be left behind for a call
// that ended before it started.
func TestRFC3261_9_2_CancelWhileTheRouteRuns(t *testing.T) {
	uac, a := siptest.NewUA(t), siptest.NewUA(t)
	routing, release := make(chan struct{}), make(chan struct{})
	e := newEnv(t, DefaultConfig(), func(r *tm.Request) tm.Decision {
		close(routing)
		<-release
		return tm.RelayTo(target(a, "bob"))
	})
	inv := uac.Invite("sip:bob@" + e.Addr)
	uac.Send(e.Addr, inv)
	<-routing
	uac.Send(e.Addr, uac.CancelFor(inv))
	for _, code := range []int{200, 487} { // the CANCEL's 200, the INVITE's 487
		res := uac.Next(fmt.Sprintf("the %d", code), func(m sip.Message) bool {
			r, ok := m.(*sip.Response)
			return ok && r.StatusCode == code
		})
		require.NotNil(t, res)
	}
	close(release)
	a.Quiet(100*time.Millisecond, "an INVITE the caller cancelled", func(m sip.Message) bool {
		r, ok := m.(*sip.Request)
		return ok && r.Method == sip.INVITE
	})
	siptest.Eventually(t, func() bool { return len(e.M.Dialogs()) == 0 }, "no dialog left: %v", e.M.Dialogs())
	st := e.M.Stats().Snapshot()
	assert.Equal(t, int64(0), st["active_dialogs"]+st["early_dialogs"])
	assert.Equal(t, st["created_dialogs"], st["processed_dialogs"], "every dialog created also ended")
}

// OpenSIPS dialog test_and_set_dlg_flag: under the dialog's lock, one of
// many racing callers wins (the flag had the value and flips), the others
// see false; a flag without the value is left alone.
func TestSeedDialog_TestAndSetDlgFlag(t *testing.T) {
	uac, a := siptest.NewUA(t), siptest.NewUA(t)
	e := newEnv(t, DefaultConfig(), func(r *tm.Request) tm.Decision { return tm.RelayTo(target(a, "bob")) })
	d := e.ConfirmedCall(t, uac, a)
	var wins atomic.Int32
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if d.TestAndSetFlag(5, false) {
				wins.Add(1)
			}
		}()
	}
	wg.Wait()
	assert.Equal(t, int32(1), wins.Load(), "one winner")
	assert.True(t, d.IsFlagSet(5))
	assert.False(t, d.TestAndSetFlag(5, false), "not 0 any more")
	assert.True(t, d.TestAndSetFlag(5, true))
	assert.False(t, d.IsFlagSet(5))
}

// routedToA is an env whose router tells record of every request it
// routes, then sends an initial one to a and the others along their Route.
func routedToA(t *testing.T, o dlgtest.Options, a *siptest.UA, record func(m *Manager, r *tm.Request)) *dlgtest.Env {
	var mp atomic.Pointer[Manager] // set before the first request: the router reads it
	e := dlgtest.New(t, o, tm.RouterFunc(func(r *tm.Request) tm.Decision {
		record(mp.Load(), r)
		if r.Initial {
			return tm.RelayTo(target(a, "bob"))
		}
		return tm.RelayTo()
	}))
	mp.Store(e.M)
	return e
}

// dirHook records the direction of each branch's request.
type dirHook chan string

func (h dirHook) OnBranch(t *tm.Transaction, b *tm.Branch) bool {
	h <- "branch " + string(b.Request.Method) + " " + DirectionOf(t)
	return true
}

// OpenSIPS dialog $DLG_dir (§1.10.5): which party sent a request within
// the dialog, downstream from the caller and upstream from the callee, for
// the router (Direction) and for the hooks (DirectionOf); nothing for the
// initial INVITE or a request of no dialog.
func TestSeedDialog_1_10_5_Direction(t *testing.T) {
	uac, a := siptest.NewUA(t), siptest.NewUA(t)
	dirs := make(chan string, 16)
	cfg := DefaultConfig()
	e := routedToA(t, dlgtest.Options{Config: &cfg, Modules: []tm.Module{{Name: "dir", Branch: dirHook(dirs)}}}, a,
		func(m *Manager, r *tm.Request) { dirs <- "router " + string(r.Method) + " " + m.Direction(r) })
	inv := uac.Invite("sip:bob@" + e.Addr)
	_, r200 := e.Answer(t, uac, a, inv)

	// The callee's OPTIONS along the route set, to the caller's Contact.
	rr := r200.RecordRoute()
	require.NotNil(t, rr)
	a.SendRaw(e.Addr, "OPTIONS sip:alice@"+uac.HostPort()+" SIP/2.0\r\n"+
		"Via: SIP/2.0/UDP "+a.HostPort()+";branch=z9hG4bK-dir-1;rport\r\nMax-Forwards: 70\r\n"+
		"Route: <"+rr.Address.String()+">\r\n"+
		"From: "+r200.To().Value()+"\r\nTo: "+inv.From().Value()+"\r\n"+
		"Call-ID: "+inv.CallID().Value()+"\r\nCSeq: 9 OPTIONS\r\nContent-Length: 0\r\n\r\n")
	uac.Reply(uac.Request(sip.OPTIONS), 200, "")
	a.Response(200)

	// An ACK has no transaction: the router's Direction matches it.
	assert.Equal(t, DirDownstream, e.M.Direction(&tm.Request{Request: uac.AckFor(inv, r200)}))

	uac.Send(e.Addr, uac.InDialog("BYE", inv, r200, 2))
	a.Reply(a.Request(sip.BYE), 200, "legA")
	uac.Response(200)
	e.WaitGone(t)
	assert.Empty(t, e.M.Direction(&tm.Request{Request: uac.AckFor(inv, r200)}), "an ACK of no dialog")
	// Within no dialog any more: routed by its Route set, no direction.
	uac.Send(e.Addr, uac.InDialog("INFO", inv, r200, 3))
	a.Reply(a.Request(sip.INFO), 481, "legA")
	uac.Response(481)

	var got []string
	for len(dirs) > 0 {
		got = append(got, <-dirs)
	}
	// The caller's ACK and BYE follow the route set to the remote target:
	// the dialog passes them on to the router too.
	assert.Equal(t, []string{"router INVITE ", "branch INVITE ", "router ACK downstream", "router OPTIONS upstream",
		"branch OPTIONS upstream", "router BYE downstream", "branch BYE downstream", "router INFO ", "branch INFO "}, got)
}

// OpenSIPS dialog match_dialog(dlg_match_mode) (§1.7.2): a router matches
// a request within a dialog the way it says, whatever dlg_match_mode is:
// by the did cookie of our Route only, by the cookie else Call-ID and
// tags, or by Call-ID and tags only.
func TestSeedDialog_1_7_2_MatchDialogMode(t *testing.T) {
	uac, a := siptest.NewUA(t), siptest.NewUA(t)
	e := newEnv(t, DefaultConfig(), func(r *tm.Request) tm.Decision { return tm.RelayTo(target(a, "bob")) })
	inv := uac.Invite("sip:bob@" + e.Addr)
	d, r200 := e.Answer(t, uac, a, inv)
	rr := r200.RecordRoute()
	require.NotNil(t, rr)
	cookie := rr.Address.UriParams
	bye := uac.InDialog("BYE", inv, r200, 2)
	strangerTags := uac.InDialog("BYE", inv, r200, 2)
	strangerTags.To().Params.Remove("tag")
	strangerTags.To().Params.Add("tag", "not-the-callee")

	for _, tc := range []struct {
		name   string
		r      *tm.Request
		mode   int
		wantOK bool
	}{
		{"cookie, DID_ONLY", &tm.Request{Request: bye, RouteParams: cookie}, MatchDIDOnly, true},
		{"no cookie, DID_ONLY", &tm.Request{Request: bye}, MatchDIDOnly, false},
		{"no cookie, DID_FALLBACK", &tm.Request{Request: bye}, MatchDIDFallback, true},
		{"no cookie, DID_NONE", &tm.Request{Request: bye}, MatchDIDNone, true},
		{"cookie, tags of no leg, DID_FALLBACK", &tm.Request{Request: strangerTags, RouteParams: cookie}, MatchDIDFallback, true},
		{"cookie, tags of no leg, DID_NONE", &tm.Request{Request: strangerTags, RouteParams: cookie}, MatchDIDNone, false},
		{"not a mode", &tm.Request{Request: bye, RouteParams: cookie}, 7, false},
		{"an initial request", &tm.Request{Request: inv, Initial: true}, MatchDIDNone, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := e.M.MatchDialog(tc.r, tc.mode)
			if tc.wantOK {
				assert.Same(t, d, got)
			} else {
				assert.Nil(t, got)
			}
		})
	}
	require.NoError(t, e.M.Terminate(d, SideBoth, 0, ""))
	a.Reply(a.Request(sip.BYE), 200, "legA")
	uac.Reply(uac.Request(sip.BYE), 200, "")
	e.WaitGone(t)
}

// OpenSIPS dialog dlg_on_timeout (§1.7.23): the timeout hook runs when the
// lifetime ends, before the dialog ends; a duration it returns extends the
// call (no BYE), zero lets it end as without a hook; a panicking hook ends
// it too.
func TestSeedDialog_1_7_23_OnTimeout(t *testing.T) {
	for _, tc := range []struct {
		name    string
		extend  []time.Duration // what the hook returns, call by call
		panics  bool
		endsAt  time.Duration // after the 90 s lifetime
		wantRun int
	}{
		{"extended once, then let end", []time.Duration{30 * time.Second, 0}, false, 30 * time.Second, 2},
		{"let end at once", []time.Duration{0}, false, 0, 1},
		{"a hook that panics", nil, true, 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			uac, a := siptest.NewUA(t), siptest.NewUA(t)
			cfg := DefaultConfig()
			cfg.DefaultTimeout = 90 * time.Second
			e := newEnv(t, cfg, func(r *tm.Request) tm.Decision { return tm.RelayTo(target(a, "bob")) })
			var runs atomic.Int32
			e.M.OnTimeout(func(d *Dialog) time.Duration {
				n := int(runs.Add(1))
				if tc.panics {
					panic("timeout hook bug")
				}
				return tc.extend[n-1]
			})
			d := e.ConfirmedCall(t, uac, a)
			e.Clock.Advance(90 * time.Second)
			if tc.endsAt > 0 {
				siptest.Eventually(t, func() bool { return runs.Load() == 1 }, "the hook ran")
				a.Quiet(50*time.Millisecond, "a BYE of an extended call", isBye)
				assert.Equal(t, Confirmed, d.State(), "the call goes on")
				e.Clock.Advance(tc.endsAt - time.Millisecond)
				a.Quiet(20*time.Millisecond, "a BYE before the extension ran out", isBye)
				e.Clock.Advance(time.Millisecond)
			}
			a.Reply(a.Request(sip.BYE), 200, "")
			uac.Reply(uac.Request(sip.BYE), 200, "")
			e.WaitGone(t)
			assert.Equal(t, tc.wantRun, int(runs.Load()))
			assert.Equal(t, int64(1), e.M.Stats().Snapshot()["expired_dialogs"])
		})
	}
}

// OpenSIPS dialog 1.6.40 (race_condition_timeout) with create_dialog's E
// for every dialog (dialog.end_races), through tm: the callee answers as
// the caller's CANCEL crosses its 2xx; the 2xx reaches the caller (§16.10),
// which ACKs it and then never sends the BYE a real UA might forget.
// race_condition_timeout after the answer both get the proxy's BYE (end
// reason race_condition). The flag is set for every dialog, or per call by
// the router (Manager.SetEndRaces). Without it the call stays up.
func TestSeedDialog_1_6_40_RaceEndsACallAnsweredAcrossCancel(t *testing.T) {
	for _, tc := range []struct {
		name                     string
		endRaces, perCall, early bool
	}{
		{"dialog.end_races", true, false, false},
		{"EndRaces from the router", false, true, false},
		{"SetEndRaces on the early dialog", false, false, true},
		{"no flag E", false, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			endRaces := tc.endRaces || tc.perCall || tc.early
			cfg := DefaultConfig()
			cfg.EndRaces = tc.endRaces
			uac, a := siptest.NewUA(t), siptest.NewUA(t)
			e := newEnv(t, cfg, func(r *tm.Request) tm.Decision {
				if tc.perCall && r.Initial {
					EndRaces(r)
				}
				return tm.RelayTo(target(a, "bob"))
			})
			inv := uac.Invite("sip:bob@" + e.Addr)
			uac.Send(e.Addr, inv)
			ia := a.Request(sip.INVITE)
			if tc.early {
				require.NoError(t, e.M.SetEndRaces(e.Only(t), true))
			}
			a.Reply(ia, 180, "b", "Contact: <sip:bob@"+a.HostPort()+">")
			uac.Response(180)
			uac.Send(e.Addr, uac.CancelFor(inv))
			uac.Response(200) // the CANCEL's
			ca := a.Request(sip.CANCEL)
			a.Reply(ia, 200, "b", "Contact: <sip:bob@"+a.HostPort()+">") // sent before the CANCEL came
			a.Reply(ca, 200, "")
			r200 := uac.Final()
			require.Equal(t, 200, r200.StatusCode, "the 2xx that crossed the CANCEL goes up")
			uac.Send(e.Addr, uac.AckFor(inv, r200))
			a.Request(sip.ACK)
			d := e.Only(t)
			e.WaitState(t, d, Confirmed)
			if endRaces {
				// The race is armed when tm tells the outcome, which it
				// may do after the caller has the 2xx and has ACKed it.
				siptest.Eventually(t, func() bool { s, _ := d.Snapshot(); return s.Raced }, "the race armed")
			}
			e.Clock.Advance(cfg.RaceConditionTimeout)
			if !endRaces {
				a.Quiet(50*time.Millisecond, "a BYE without end_races", isBye)
				assert.Equal(t, Confirmed, d.State())
				return
			}
			a.Reply(a.Request(sip.BYE), 200, "")
			uac.Reply(uac.Request(sip.BYE), 200, "")
			e.WaitGone(t)
			assert.Equal(t, EndRace, d.Info(false).EndReason)
		})
	}
}

// Kamailio dialog $dlg_ctx(timeout) / OpenSIPS $DLG_timeout set while the
// INVITE is routed, before its dialog exists: the router's
// SetCreateTimeout is the lifetime of the dialog created, from its answer,
// in place of default_timeout; the call ends with BYE both ways then.
func TestSeedDialog_DlgCtxTimeoutFromTheRouter(t *testing.T) {
	uac, a := siptest.NewUA(t), siptest.NewUA(t)
	e := newEnv(t, DefaultConfig(), func(r *tm.Request) tm.Decision {
		if r.Initial {
			SetCreateTimeout(r, 10*time.Second)
		}
		return tm.RelayTo(target(a, "bob"))
	})
	d := e.ConfirmedCall(t, uac, a)
	assert.Equal(t, 10*time.Second, d.Info(false).Timeout)
	e.Clock.Advance(10*time.Second - time.Millisecond)
	a.Quiet(50*time.Millisecond, "a BYE before the lifetime", isBye)
	e.Clock.Advance(time.Millisecond)
	assert.NotNil(t, a.Request(sip.BYE))
	assert.NotNil(t, uac.Request(sip.BYE))
	assert.Equal(t, EndExpired, d.Info(false).EndReason)
}

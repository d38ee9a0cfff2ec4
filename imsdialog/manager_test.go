package imsdialog

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imsdlg/imsdlg/internal/siptest"
	"github.com/imsdlg/imsdlg/tm"
)

// env is a proxy with the dialog module on loopback, a fake clock for the
// dialog and transaction timers, and hand-written SIP peers.
type env struct {
	p     *tm.Proxy
	m     *Manager
	addr  string
	clock *siptest.Clock
	mu    sync.Mutex
	fired []string // callbacks seen, "TYPE" in order
}

func target(u *siptest.UA, user string) tm.Target {
	return tm.Target{URI: sip.Uri{Scheme: "sip", User: user, Host: "127.0.0.1", Port: u.Addr.Port}}
}

// newEnv routes every initial INVITE to the given callees (parallel fork)
// and everything else along its route set.
func newEnv(t *testing.T, cfg Config, route func(r *tm.Request) tm.Decision) *env {
	t.Helper()
	if route == nil {
		route = func(*tm.Request) tm.Decision { return tm.RelayTo() }
	}
	return newEnvInner(t, cfg, tm.RouterFunc(func(r *tm.Request) tm.Decision {
		if !r.Initial {
			return tm.RelayTo()
		}
		return route(r)
	}))
}

// newEnvInner is newEnv with the whole inner router given.
func newEnvInner(t *testing.T, cfg Config, inner tm.Router) *env {
	t.Helper()
	e := &env{clock: siptest.NewClock()}
	m, err := New(cfg, inner, nil, e.clock)
	require.NoError(t, err)
	tc := tm.DefaultConfig()
	p, err := tm.New(tm.Options{Config: tc, Router: m, Clock: e.clock})
	require.NoError(t, err)
	m.SetSender(p)
	a, err := p.Listen("udp", "127.0.0.1:0", "")
	require.NoError(t, err)
	t.Cleanup(func() { p.Close() })
	m.RegisterCallback(^Callback(0), func(d *Dialog, typ Callback, _ CallbackParams) {
		e.mu.Lock()
		e.fired = append(e.fired, typ.String())
		e.mu.Unlock()
	})
	e.p, e.m, e.addr = p, m, a.String()
	return e
}

// callbacks lists what fired, RESPONSE_FWDED aside (see forwarded): it
// interleaves with the rest in the order the branches' replies arrive.
func (e *env) callbacks() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, f := range e.fired {
		if f != "RESPONSE_FWDED" {
			out = append(out, f)
		}
	}
	return strings.Join(out, ",")
}

func (e *env) forwarded() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, f := range e.fired {
		if f == "RESPONSE_FWDED" {
			n++
		}
	}
	return n
}

func (e *env) only(t *testing.T) *Dialog {
	t.Helper()
	var ds []*Dialog
	siptest.Eventually(t, func() bool { ds = e.m.Dialogs(); return len(ds) == 1 }, "want one dialog, have %d", len(ds))
	return ds[0]
}

func (e *env) waitState(t *testing.T, d *Dialog, s State) {
	t.Helper()
	siptest.Eventually(t, func() bool { return d.State() == s }, "dialog state %s, want %s", d.State(), s)
}

func (e *env) waitGone(t *testing.T) {
	t.Helper()
	siptest.Eventually(t, func() bool { return len(e.m.Dialogs()) == 0 }, "dialogs left: %d", len(e.m.Dialogs()))
}

// confirmedCall sets up a call from uac to the callee a (To tag legA)
// and waits until its dialog is CONFIRMED.
func (e *env) confirmedCall(t *testing.T, uac, a *siptest.UA) *Dialog {
	t.Helper()
	inv := uac.Invite("sip:bob@" + e.addr)
	uac.Send(e.addr, inv)
	ia := a.Request(sip.INVITE)
	a.Reply(ia, 200, "legA")
	r200 := uac.Response(200)
	uac.Send(e.addr, uac.AckFor(inv, r200))
	a.Request(sip.ACK)
	d := e.only(t)
	e.waitState(t, d, Confirmed)
	return d
}

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
	inv := uac.Invite("sip:bob@" + e.addr)
	uac.Send(e.addr, inv)
	ia, ib := a.Request(sip.INVITE), b.Request(sip.INVITE)
	d := e.only(t)
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
	assert.Equal(t, "EARLY", in.State)
	assert.Equal(t, map[string]string{"legA": "EARLY", "legB": "EARLY"}, legsOf(in))
	assert.Equal(t, int64(1), e.m.Stats().Snapshot()["early_dialogs"])

	b.Reply(ib, 200, "legB")
	r200 := uac.Response(200)
	ca := a.Request(sip.CANCEL)
	a.Reply(ca, 200, "")
	a.Reply(ia, 487, "legA")
	e.waitState(t, d, ConfirmedNA)
	uac.Send(e.addr, uac.AckFor(inv, r200))
	b.Request(sip.ACK)
	e.waitState(t, d, Confirmed)
	siptest.Eventually(t, func() bool { return len(d.Info(false).DlgOuts) == 1 }, "only the answering leg stays")
	in = d.Info(false)
	assert.Equal(t, "legB", in.ToTag)
	assert.Equal(t, "legB", in.DlgOuts[0].ToTag)
	assert.Equal(t, int64(1), e.m.Stats().Snapshot()["active_dialogs"])
	assert.Equal(t, int64(0), e.m.Stats().Snapshot()["early_dialogs"])

	uac.Send(e.addr, uac.InDialog("BYE", inv, r200, 2))
	bye := b.Request(sip.BYE)
	assert.Nil(t, bye.Route())
	b.Reply(bye, 200, "")
	uac.Response(200)
	e.waitGone(t)
	snap := e.m.Stats().Snapshot()
	assert.Equal(t, int64(0), snap["active_dialogs"])
	assert.Equal(t, int64(1), snap["processed_dialogs"])
	assert.Equal(t, "CREATED,EARLY,EARLY,CONFIRMED_NA,CONFIRMED,REQ_WITHIN,TERMINATED,RPL_WITHIN,TERMINATED_CONFIRMED,DESTROY", e.callbacks())
	assert.Equal(t, 4, e.forwarded(), "180, 183, 200 and the 487 of the cancelled leg")
}

// dlg_terminate on an early dialog: the callees that rang get CANCEL with
// a Reason, the caller the final reply with the Reason.
func TestSeedImsDialog_TerminateEarlyCall(t *testing.T) {
	uac, a := siptest.NewUA(t), siptest.NewUA(t)
	e := newEnv(t, DefaultConfig(), func(r *tm.Request) tm.Decision { return tm.RelayTo(target(a, "bob")) })
	inv := uac.Invite("sip:bob@" + e.addr)
	uac.Send(e.addr, inv)
	ia := a.Request(sip.INVITE)
	a.Reply(ia, 180, "legA")
	uac.Response(180)
	d := e.only(t)
	e.waitState(t, d, Early)

	require.NoError(t, e.m.TerminateDlg(d.CallID, d.FromTag, "", SideBoth, "operator"))
	res := uac.Response(487)
	require.NotNil(t, res.GetHeader("Reason"))
	assert.Contains(t, res.GetHeader("Reason").Value(), `cause=487`)
	assert.Contains(t, res.GetHeader("Reason").Value(), `operator`)
	c := a.Request(sip.CANCEL)
	require.NotNil(t, c.GetHeader("Reason"))
	assert.Contains(t, c.GetHeader("Reason").Value(), "operator")
	a.Reply(c, 200, "")
	a.Reply(ia, 487, "legA")
	e.waitGone(t)
	assert.Equal(t, int64(1), e.m.Stats().Snapshot()["failed_dialogs"])
	assert.ErrorIs(t, e.m.TerminateDlg(d.CallID, d.FromTag, "", SideBoth, ""), ErrNotFound)
	assert.ErrorIs(t, e.m.LookupTerminateDlg(d.HEntry, d.HID+100, SideBoth, ""), ErrNotFound)
}

// dlg_terminate on a confirmed call: BYE to the caller and to the callee
// leg that answered, each with its route set, target and a CSeq above what
// its direction used (also after a re-INVITE raised it).
func TestSeedImsDialog_TerminateConfirmedCall(t *testing.T) {
	uac, a, b := siptest.NewUA(t), siptest.NewUA(t), siptest.NewUA(t)
	e := newEnv(t, DefaultConfig(), func(r *tm.Request) tm.Decision {
		return tm.RelayTo(target(a, "bob"), target(b, "bob"))
	})
	inv := uac.Invite("sip:bob@" + e.addr)
	uac.Send(e.addr, inv)
	ia, ib := a.Request(sip.INVITE), b.Request(sip.INVITE)
	a.Reply(ia, 180, "legA") // the first leg rings; the second answers
	b.Reply(ib, 200, "legB")
	r200 := uac.Response(200)
	ca := a.Request(sip.CANCEL)
	a.Reply(ca, 200, "")
	a.Reply(ia, 487, "legA")
	uac.Send(e.addr, uac.AckFor(inv, r200))
	b.Request(sip.ACK)
	d := e.only(t)
	e.waitState(t, d, Confirmed)

	// A re-INVITE from the caller raises its CSeq to 5.
	re := uac.InDialog("INVITE", inv, r200, 5)
	uac.Send(e.addr, re)
	gre := b.Request(sip.INVITE)
	b.Reply(gre, 200, "legB")
	r2 := uac.Response(200)
	uac.Send(e.addr, uac.AckFor(re, r2))
	b.Request(sip.ACK)

	require.NoError(t, e.m.LookupTerminateDlg(d.HEntry, d.HID, SideBoth, "operator", "X-Charging: stop"))
	toCallee := b.Request(sip.BYE)
	require.NotNil(t, toCallee.GetHeader("X-Charging"))
	assert.Equal(t, "stop", toCallee.GetHeader("X-Charging").Value())
	assert.Equal(t, "legB", tagOf(toCallee.To().Params), "the leg that answered, not the first one")
	assert.Equal(t, uint32(6), toCallee.CSeq().SeqNo, "above the caller's re-INVITE")
	assert.Contains(t, toCallee.GetHeader("Reason").Value(), "operator")
	a.Quiet(30*time.Millisecond, "BYE to the leg that only rang", func(m sip.Message) bool {
		r, ok := m.(*sip.Request)
		return ok && r.Method == sip.BYE
	})
	toCaller := uac.Request(sip.BYE)
	assert.Equal(t, tagOf(inv.From().Params), tagOf(toCaller.To().Params))
	assert.Equal(t, "legB", tagOf(toCaller.From().Params))
	assert.Equal(t, fmt.Sprintf("sip:alice@%s", uac.HostPort()), toCaller.Recipient.String())
	b.Reply(toCallee, 200, "")
	uac.Reply(toCaller, 200, "")
	e.waitGone(t)
	assert.Contains(t, e.callbacks(), "TERMINATED,TERMINATED_CONFIRMED,DESTROY")
}

// default_timeout: the confirmed call is ended with BYE both ways.
func TestSeedImsDialog_DefaultTimeoutEndsCall(t *testing.T) {
	uac, a := siptest.NewUA(t), siptest.NewUA(t)
	cfg := DefaultConfig()
	cfg.DefaultTimeout = 90 * time.Second
	e := newEnv(t, cfg, func(r *tm.Request) tm.Decision { return tm.RelayTo(target(a, "bob")) })
	e.confirmedCall(t, uac, a)
	e.m.RegisterCallback(CbExpired, func(*Dialog, Callback, CallbackParams) { panic("callback bug") })
	e.clock.Advance(90 * time.Second) // the callback panics on the timer's goroutine
	byeA := a.Request(sip.BYE)
	byeU := uac.Request(sip.BYE)
	a.Reply(byeA, 200, "")
	uac.Reply(byeU, 200, "")
	e.waitGone(t)
	assert.Equal(t, int64(1), e.m.Stats().Snapshot()["expired_dialogs"])
	assert.Contains(t, e.callbacks(), "EXPIRED")
}

// Issue 4: a second 2xx from another branch is ACKed and BYEd by the
// dialog module; the call goes on with the first.
func TestSeedImsDialog_SecondAnswerIsEnded(t *testing.T) {
	uac, a, b := siptest.NewUA(t), siptest.NewUA(t), siptest.NewUA(t)
	e := newEnv(t, DefaultConfig(), func(r *tm.Request) tm.Decision {
		return tm.RelayTo(target(a, "bob"), target(b, "bob"))
	})
	inv := uac.Invite("sip:bob@" + e.addr)
	uac.Send(e.addr, inv)
	ia, ib := a.Request(sip.INVITE), b.Request(sip.INVITE)
	a.Reply(ia, 180, "legA")
	b.Reply(ib, 180, "legB")
	a.Reply(ia, 200, "legA")
	uac.Response(200)
	d := e.only(t)
	e.waitState(t, d, ConfirmedNA)
	cb := b.Request(sip.CANCEL)
	b.Reply(ib, 200, "legB") // crosses the CANCEL
	b.Reply(cb, 200, "")
	ack := b.Next("ACK with two Vias or less", func(m sip.Message) bool {
		r, ok := m.(*sip.Request)
		return ok && r.Method == sip.ACK
	}).(*sip.Request)
	assert.Equal(t, "legB", tagOf(ack.To().Params))
	bye := b.Request(sip.BYE)
	assert.Equal(t, "legB", tagOf(bye.To().Params))
	b.Reply(bye, 200, "")
	in := d.Info(false)
	assert.Equal(t, "legA", in.ToTag, "the call stays with the first answer")
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
	inv := uac.Invite("sip:bob@" + e.addr)
	uac.Send(e.addr, inv)
	atAS := as.Request(sip.INVITE)
	rr := atAS.RecordRoute()
	require.NotNil(t, rr)
	// The AS sends it back with our Record-Route as its Route (an ODI).
	back := atAS.Clone()
	back.Recipient = sip.Uri{Scheme: "sip", User: "bob-after-as", Host: "127.0.0.1"}
	back.PrependHeader(&sip.RouteHeader{Address: *rr.Address.Clone()})
	back.PrependHeader(&sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: "UDP",
		Host: "127.0.0.1", Port: as.Addr.Port, Params: branchParams("z9hG4bK-as-1")})
	as.Send(e.addr, back)
	got := callee.Request(sip.INVITE)
	assert.Equal(t, "bob", got.Recipient.User)
	d := e.only(t)
	assert.Contains(t, e.callbacks(), "SPIRALED")
	assert.Equal(t, int64(1), e.m.Stats().Snapshot()["spiraled_requests"])
	assert.Len(t, e.m.Dialogs(), 1, "a spiral joins its dialog")
	_ = d

	// A replay with the same Call-ID and From tag but no marker of ours.
	replay := inv.Clone()
	replay.RemoveHeader("Via")
	replay.PrependHeader(&sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: "UDP",
		Host: "127.0.0.1", Port: uac.Addr.Port, Params: branchParams("z9hG4bK-other-fork")})
	uac.Send(e.addr, replay)
	as.Request(sip.INVITE)
	siptest.Eventually(t, func() bool { return len(e.m.Dialogs()) == 2 }, "an upstream fork is a dialog of its own")
}

func TestManager_ConfigErrorsNameTheParameter(t *testing.T) {
	cfg := DefaultConfig()
	cfg.HashSize = 1000
	cfg.RRParam = "d id"
	cfg.MatchMode = 7
	_, err := New(cfg, tm.RouterFunc(func(*tm.Request) tm.Decision { return tm.RelayTo() }), nil, nil)
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
	d := e.confirmedCall(t, uac, a)
	require.NoError(t, e.m.SetTimeout(d, 10*time.Second))
	assert.Error(t, e.m.SetTimeout(d, 0))
	e.clock.Advance(10 * time.Second)
	bye := a.Request(sip.BYE)
	a.Reply(bye, 200, "")
	uac.Reply(uac.Request(sip.BYE), 200, "")
	e.waitGone(t)
	assert.ErrorIs(t, e.m.SetTimeout(d, time.Second), ErrNotFound)

	d.SetVar("charging", "on")
	v, ok := d.Var("charging")
	assert.True(t, ok)
	assert.Equal(t, "on", v)
	d.SetFlag(3)
	assert.True(t, d.IsFlagSet(3))
	d.ResetFlag(3)
	assert.False(t, d.IsFlagSet(3))
	e.m.RegisterCallback(CbMIContext, func(d *Dialog, _ Callback, _ CallbackParams) { d.SetVar("ctx", "seen") })
	assert.Equal(t, "seen", e.m.InfoCtx(d).Vars["ctx"])
}

// RFC 3261 §12.2.1.1 with RFC 3311: an UPDATE to an early leg raises the
// caller's CSeq on that leg; the BYE we send later goes above it.
func TestRFC3261_12_2_1_1_UpdateOnEarlyLegRaisesCSeq(t *testing.T) {
	uac, a := siptest.NewUA(t), siptest.NewUA(t)
	e := newEnv(t, DefaultConfig(), func(r *tm.Request) tm.Decision { return tm.RelayTo(target(a, "bob")) })
	inv := uac.Invite("sip:bob@" + e.addr)
	uac.Send(e.addr, inv)
	ia := a.Request(sip.INVITE)
	a.Reply(ia, 183, "legA", "Contact: <sip:uas@"+a.HostPort()+">")
	r183 := uac.Response(183)
	upd := uac.InDialog("UPDATE", inv, r183, 7)
	uac.Send(e.addr, upd)
	gu := a.Request(sip.UPDATE)
	a.Reply(gu, 200, "legA")
	uac.Response(200)
	a.Reply(ia, 200, "legA")
	r200 := uac.Next("200 to the INVITE", func(m sip.Message) bool {
		r, ok := m.(*sip.Response)
		return ok && r.StatusCode == 200 && r.CSeq().MethodName == sip.INVITE
	}).(*sip.Response)
	uac.Send(e.addr, uac.AckFor(inv, r200))
	a.Request(sip.ACK)
	d := e.only(t)
	e.waitState(t, d, Confirmed)
	require.NoError(t, e.m.Terminate(d, SideCallee, 0, "operator"))
	bye := a.Request(sip.BYE)
	assert.Equal(t, uint32(8), bye.CSeq().SeqNo)
	a.Reply(bye, 200, "")
	e.waitGone(t)
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
	uac.Send(e.addr, uac.Invite("sip:bob@"+e.addr))
	a.Reply(a.Request(sip.INVITE), 486, "legA")
	uac.Final()
	assert.Empty(t, e.m.Dialogs())
	assert.Zero(t, e.m.Stats().Snapshot()["created_dialogs"])

	uac.Send(e.addr, uac.Invite("sip:bob@"+e.addr, "X-Track: yes"))
	ia := a.Request(sip.INVITE)
	require.NotNil(t, ia.RecordRoute(), "a tracked dialog record-routes")
	assert.Equal(t, int64(1), e.m.Stats().Snapshot()["created_dialogs"])
	a.Reply(ia, 486, "legA")
	uac.Final()
	e.waitGone(t)
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
	var mp atomic.Pointer[Manager]
	e := newEnvInner(t, DefaultConfig(), tm.RouterFunc(func(r *tm.Request) tm.Decision {
		got <- seen{string(r.Method), mp.Load().IsKnown(r)}
		if r.Initial {
			return tm.RelayTo(target(a, "bob"))
		}
		return tm.RelayTo()
	}))
	mp.Store(e.m)
	inv := uac.Invite("sip:bob@" + e.addr)
	uac.Send(e.addr, inv)
	ia := a.Request(sip.INVITE)
	assert.Equal(t, seen{"INVITE", false}, <-got, "the dialog is created after the router ran")
	d := e.only(t)
	var mine []string
	var mu sync.Mutex
	d.RegisterCallback(CbConfirmed|CbTerminated, func(_ *Dialog, typ Callback, _ CallbackParams) {
		mu.Lock()
		mine = append(mine, typ.String())
		mu.Unlock()
	})
	a.Reply(ia, 200, "legA")
	r200 := uac.Response(200)
	uac.Send(e.addr, uac.AckFor(inv, r200))
	a.Request(sip.ACK)
	assert.Equal(t, seen{"ACK", true}, <-got)
	e.waitState(t, d, Confirmed)
	uac.Send(e.addr, uac.InDialog("BYE", inv, r200, 2))
	assert.Equal(t, seen{"BYE", true}, <-got)
	bye := a.Request(sip.BYE)
	a.Reply(bye, 200, "")
	uac.Response(200)
	e.waitGone(t)
	mu.Lock()
	assert.Equal(t, []string{"CONFIRMED", "TERMINATED"}, mine)
	mu.Unlock()

	// A BYE for a dialog that is gone is not known.
	uac.Send(e.addr, uac.InDialog("BYE", inv, r200, 3))
	assert.Equal(t, seen{"BYE", false}, <-got)
}

// The INVITE that created a dialog, seen again after its transaction
// ended (a late retransmission), creates no second dialog and no call.
func TestDesign4_LateInviteRetransmissionIsDropped(t *testing.T) {
	m, err := New(DefaultConfig(), tm.RouterFunc(func(*tm.Request) tm.Decision { return tm.RelayTo() }), nil, siptest.NewClock())
	require.NoError(t, err)
	raw := "INVITE sip:bob@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-first\r\n" +
		"From: <sip:alice@127.0.0.1>;tag=f1\r\nTo: <sip:bob@127.0.0.1>\r\nCall-ID: late-1@test\r\n" +
		"CSeq: 1 INVITE\r\nContact: <sip:alice@127.0.0.1:5070>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
	msg, err := sip.ParseMessage([]byte(raw))
	require.NoError(t, err)
	req := &tm.Request{Request: msg.(*sip.Request), Initial: true, Source: "127.0.0.1:5070", Transport: "UDP"}
	m.create(req)
	d := m.Route(req)
	assert.Equal(t, tm.Drop, d.Kind)
	assert.Len(t, m.Dialogs(), 1)
}

package imsdialog

import (
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imsdlg/imsdlg/dlgout"
	"github.com/imsdlg/imsdlg/tm"
)

var t0 = time.Unix(1_700_000_000, 0)

const (
	lifetime = 43200 * time.Second
	byeWait  = 32 * time.Second
	did      = "1f.2"
	proxy    = "proxy.ims.example.net"
)

var testCellConfig = CellConfig{RRParam: "did", Timeout: lifetime, ByeWait: byeWait, EarlyTerminateCode: 487,
	ExtraHeaders: []Header{{Name: "X-Extra", Value: "1"}}}

func uri(t testing.TB, s string) sip.Uri {
	t.Helper()
	var u sip.Uri
	require.NoError(t, sip.ParseUri(s, &u))
	return u
}

// newCell is the dialog of an INVITE from alice (record-routed by a P-CSCF
// before us) to bob.
func newCell(t testing.TB) *Cell {
	t.Helper()
	from := sip.FromHeader{Address: uri(t, "sip:alice@ims.example.net"), Params: sip.HeaderParams{{K: "tag", V: "ftag"}}}
	to := sip.ToHeader{Address: uri(t, "sip:bob@ims.example.net"), Params: sip.HeaderParams{}}
	inv := Invite{CallID: "call-1", FromTag: "ftag", ViaBranch: "z9hG4bK-up", From: from, To: to,
		Contact: uri(t, "sip:alice@10.0.0.1:5070"), RecordRoute: []sip.Uri{uri(t, "sip:pcscf.ims.example.net;lr")},
		CSeq: 1, Source: "10.0.0.9:5060", Transport: "UDP"}
	return NewCell(&testCellConfig, t0, did, inv, func(u *sip.Uri) bool { return u.Host == proxy })
}

// reply is a reply of the INVITE from the callee behind branch: its
// Record-Route has an AS above our entry and the P-CSCF below it.
func reply(t testing.TB, branch, code int, tag string) Event {
	r := dlgout.Reply{Code: code, ToTag: tag, CSeq: 1, Method: sip.INVITE, Transport: "UDP", Source: "10.0.1.1:5060",
		RecordRoute: []sip.Uri{uri(t, "sip:as.ims.example.net;lr"), uri(t, "sip:"+proxy+";lr;did="+did),
			uri(t, "sip:pcscf.ims.example.net;lr")}}
	if tag != "" {
		r.Contact, r.HasContact = uri(t, "sip:bob@10.0.1."+tag+":5062"), true
	}
	return Event{Kind: EvReply, Branch: branch, Reply: r}
}

// ackOf is the caller's ACK of the 2xx of leg tag.
func ackOf(tag string) Event {
	return Event{Kind: EvRequest, Request: Request{Method: "ACK", CSeq: 1, FromCaller: true, FromTag: "ftag", ToTag: tag}}
}

var (
	created  = Event{Kind: EvCreated}
	done     = Event{Kind: EvInviteDone}
	ack      = ackOf("1")
	callerBy = Event{Kind: EvRequest, Request: Request{Method: "BYE", CSeq: 2, FromCaller: true, FromTag: "ftag", ToTag: "1"}}
	calleeBy = Event{Kind: EvRequest, Request: Request{Method: "BYE", CSeq: 9, FromTag: "1", ToTag: "ftag"}}
)

func outcome(k tm.OutcomeKind, code int) Event { return Event{Kind: EvOutcome, Outcome: k, Code: code} }

// run feeds events to a new cell, a second apart, and returns the cell and
// the actions of the last event.
func run(t *testing.T, evs ...Event) (*Cell, []Action) {
	t.Helper()
	c := newCell(t)
	var acts []Action
	for i, ev := range evs {
		acts = c.Step(t0.Add(time.Duration(i)*time.Second), ev)
	}
	return c, acts
}

func callbacks(acts []Action) []Callback {
	var out []Callback
	for _, a := range acts {
		if a.Kind == ActFire && a.Callback != CbResponseFwded {
			out = append(out, a.Callback)
		}
	}
	return out
}

func has(acts []Action, k ActionKind) []Action {
	var out []Action
	for _, a := range acts {
		if a.Kind == k {
			out = append(out, a)
		}
	}
	return out
}

func sends(acts []Action) []*OutRequest {
	var out []*OutRequest
	for _, a := range has(acts, ActSend) {
		out = append(out, a.Send)
	}
	return out
}

func header(hs []Header, name string) string {
	for _, h := range hs {
		if strings.EqualFold(h.Name, name) {
			return h.Value
		}
	}
	return ""
}

// Every transition of the ims_dialog state diagram, with the callbacks the
// seed (002, "register_dlgcb") says fire on it.
func TestSeedImsDialog_Transitions(t *testing.T) {
	cases := []struct {
		name  string
		evs   []Event
		state State
		end   EndReason
		cbs   []Callback
	}{
		{"created", []Event{created}, Unconfirmed, NotEnded, []Callback{CbCreated}},
		{"first tagged 1xx: EARLY", []Event{created, reply(t, 0, 180, "1")}, Early, NotEnded, []Callback{CbEarly}},
		{"untagged 1xx: still UNCONFIRMED", []Event{created, reply(t, 0, 183, "")}, Unconfirmed, NotEnded, nil},
		{"100 changes nothing", []Event{created, reply(t, 0, 100, "")}, Unconfirmed, NotEnded, nil},
		{"second leg rings: EARLY fires again", []Event{created, reply(t, 0, 180, "1"), reply(t, 1, 180, "2")}, Early, NotEnded, []Callback{CbEarly}},
		{"same leg again: no callback", []Event{created, reply(t, 0, 180, "1"), reply(t, 0, 183, "1")}, Early, NotEnded, nil},
		{"2xx: CONFIRMED_NA", []Event{created, reply(t, 0, 180, "1"), reply(t, 0, 200, "1")}, ConfirmedNA, NotEnded, []Callback{CbConfirmedNA}},
		{"2xx without 1xx", []Event{created, reply(t, 0, 200, "1")}, ConfirmedNA, NotEnded, []Callback{CbConfirmedNA}},
		{"ACK: CONFIRMED", []Event{created, reply(t, 0, 200, "1"), ack}, Confirmed, NotEnded, []Callback{CbConfirmed}},
		{"1xx after the 2xx changes nothing", []Event{created, reply(t, 0, 200, "1"), reply(t, 0, 180, "1")}, ConfirmedNA, NotEnded, nil},
		{"re-INVITE is REQ_WITHIN", []Event{created, reply(t, 0, 200, "1"), ack,
			{Kind: EvRequest, Request: Request{Method: "INVITE", CSeq: 2, FromCaller: true, ToTag: "1"}}}, Confirmed, NotEnded, []Callback{CbReqWithin}},
		{"ACK of the INVITE again is REQ_WITHIN", []Event{created, reply(t, 0, 200, "1"), ack, ack}, Confirmed, NotEnded, []Callback{CbReqWithin}},
		{"reply within", []Event{created, reply(t, 0, 200, "1"), ack, {Kind: EvRequestReply, Method: "UPDATE", Code: 200}}, Confirmed, NotEnded,
			[]Callback{CbRplWithin}},
		{"caller BYE", []Event{created, reply(t, 0, 200, "1"), ack, callerBy}, Terminated, EndByeCaller, []Callback{CbReqWithin, CbTerminated}},
		{"callee BYE", []Event{created, reply(t, 0, 200, "1"), ack, calleeBy}, Terminated, EndByeCallee, []Callback{CbReqWithin, CbTerminated}},
		{"BYE before ACK ends the call", []Event{created, reply(t, 0, 200, "1"), callerBy}, Terminated, EndByeCaller,
			[]Callback{CbReqWithin, CbTerminated}},
		{"a 100 to the BYE is not its answer", []Event{created, reply(t, 0, 200, "1"), ack, callerBy,
			{Kind: EvRequestReply, Method: "BYE", Code: 100}}, Terminated, EndByeCaller, []Callback{CbRplWithin}},
		{"reply to the BYE: TERMINATED_CONFIRMED, DELETED", []Event{created, reply(t, 0, 200, "1"), ack, callerBy,
			{Kind: EvRequestReply, Method: "BYE", Code: 200}}, Deleted, EndByeCaller, []Callback{CbRplWithin, CbTerminatedConfirmed, CbDestroy}},
		{"non-2xx final: FAILED once the INVITE is done", []Event{created, reply(t, 0, 180, "1"), reply(t, 0, 486, "1"), outcome(tm.Failed, 486), done},
			Terminated, EndFailed, []Callback{CbFailed, CbDestroy}},
		{"a failure waits for the last branch", []Event{created, reply(t, 0, 180, "1"), outcome(tm.Cancelled, 487)}, Early, NotEnded, nil},
		// Issue 13 §5: DESTROY on every end path, failed calls included.
		{"caller CANCEL: FAILED", []Event{created, reply(t, 0, 180, "1"), outcome(tm.Cancelled, 487), done}, Terminated, EndCancelled,
			[]Callback{CbFailed, CbDestroy}},
		{"t_reply by another module: FAILED", []Event{created, outcome(tm.Replied, 500), done}, Terminated, EndFailed, []Callback{CbFailed, CbDestroy}},
		{"failed after the INVITE was done", []Event{created, done, outcome(tm.Failed, 408)}, Terminated, EndFailed, []Callback{CbFailed, CbDestroy}},
		{"answered outcome changes nothing", []Event{created, reply(t, 0, 200, "1"), outcome(tm.Answered, 200)}, ConfirmedNA, NotEnded, nil},
		{"ACK after the end is ignored", []Event{created, outcome(tm.Failed, 486), done, ack}, Terminated, EndFailed, nil},
		{"ACK of another leg's 2xx does not confirm", []Event{created, reply(t, 0, 200, "1"), reply(t, 1, 200, "2"), ackOf("2")}, ConfirmedNA,
			NotEnded, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, acts := run(t, tc.evs...)
			assert.Equal(t, tc.state, c.State())
			assert.Equal(t, tc.end, c.end)
			assert.Equal(t, tc.cbs, callbacks(acts))
		})
	}
}

// The actions that come with the transitions: timers, persistence of
// confirmed dialogs, release and removal on every end.
func TestSeedImsDialog_TransitionActions(t *testing.T) {
	kinds := func(acts []Action) []ActionKind {
		var out []ActionKind
		for _, a := range acts {
			if a.Kind != ActFire && a.Kind != ActLog {
				out = append(out, a.Kind)
			}
		}
		return out
	}
	c, acts := run(t, created)
	assert.Equal(t, []ActionKind{ActArmTimer}, kinds(acts))
	assert.Equal(t, lifetime, acts[1].After)
	assert.Equal(t, t0.Add(lifetime), c.Deadline())

	c, acts = run(t, created, reply(t, 0, 180, "1"))
	assert.Equal(t, []ActionKind{ActStateChanged}, kinds(acts), "EARLY is not saved")
	assert.Equal(t, Action{Kind: ActStateChanged, From: Unconfirmed, To: Early}, has(acts, ActStateChanged)[0])

	_, acts = run(t, created, reply(t, 0, 180, "1"), reply(t, 0, 200, "1"))
	assert.Equal(t, []ActionKind{ActStateChanged, ActPersist, ActArmTimer}, kinds(acts), "the lifetime starts with the answer")

	_, acts = run(t, created, reply(t, 0, 200, "1"), ack, callerBy)
	assert.Equal(t, []ActionKind{ActPersist, ActStateChanged, ActPersist, ActStopTimer, ActArmTimer}, kinds(acts))
	assert.Equal(t, TimerByeWait, acts[len(acts)-1].Timer)
	assert.Equal(t, byeWait, acts[len(acts)-1].After)

	_, acts = run(t, created, reply(t, 0, 180, "1"), outcome(tm.Failed, 486))
	assert.Empty(t, kinds(acts), "the failure waits for the INVITE's last branch")
	_, acts = run(t, created, reply(t, 0, 180, "1"), outcome(tm.Failed, 486), done)
	assert.Equal(t, []ActionKind{ActStateChanged, ActStopTimer, ActRelease, ActDestroy}, kinds(acts))

	_, acts = run(t, created, reply(t, 0, 200, "1"), ack, callerBy, Event{Kind: EvRequestReply, Method: "BYE", Code: 200})
	assert.Equal(t, []ActionKind{ActStateChanged, ActStopTimer, ActRelease, ActDestroy}, kinds(acts))

	c, _ = run(t, created, reply(t, 0, 200, "1"), ack)
	acts = c.Step(t0, Event{Kind: EvInviteDone})
	assert.Empty(t, kinds(acts), "nothing to prune")
}

// RFC 3261 §16.7 step 5, RFC 5407 §3.1.2 and DESIGN §4: which leg the
// call goes on with when 2xx come from several branches, late, or across a
// CANCEL; and never both relayed and ended by the proxy.
func TestRFC5407_AnswerDecisions(t *testing.T) {
	absorbing := testCellConfig
	absorbing.AbsorbSecond2xx = true
	t.Run("first 2xx answers; its leg is the dialog's To tag", func(t *testing.T) {
		c, _ := run(t, created, reply(t, 0, 180, "1"), reply(t, 1, 180, "2"), reply(t, 1, 200, "2"))
		assert.Equal(t, "2", c.ToTag())
	})
	t.Run("second 2xx: relayed, the leg tracked for the caller to end", func(t *testing.T) {
		c, acts := run(t, created, reply(t, 0, 180, "1"), reply(t, 1, 180, "2"), reply(t, 0, 200, "1"), reply(t, 1, 200, "2"))
		assert.Equal(t, ConfirmedNA, c.State())
		assert.Equal(t, "1", c.ToTag())
		assert.Empty(t, sends(acts), "the proxy does not end what it relayed")
		assert.Empty(t, has(acts, ActAbsorb))
		c.Step(t0, done)
		assert.Len(t, c.outs.Confirmed(), 2, "kept past the INVITE's end")
		// The caller ACKs both, keeps the first and BYEs the second.
		assert.Len(t, callbacks(c.Step(t0, ackOf("1"))), 1)
		c.Step(t0, ackOf("2"))
		acts = c.Step(t0, Event{Kind: EvRequest, Request: Request{Method: "BYE", CSeq: 2, FromCaller: true, FromTag: "ftag", ToTag: "2"}})
		assert.Equal(t, Confirmed, c.State(), "the call goes on with the first leg")
		assert.Empty(t, has(acts, ActStateChanged))
		assert.Len(t, c.outs.Confirmed(), 1)
		// A termination now reaches the first leg only.
		assert.Len(t, sends(c.Step(t0, Event{Kind: EvTerminate})), 2)
	})
	t.Run("the BYE of the second leg overtakes its ACK: the ACK still finds the leg", func(t *testing.T) {
		// UDP (or the proxy's parallel readers) reorders the caller's ACK
		// and BYE of the second callee; a caller that ignores the route
		// set's target (sipp's [next_url] stays the first Contact) leaves
		// the proxy the only one that knows where the ACK goes.
		c, _ := run(t, created, reply(t, 0, 200, "1"), reply(t, 1, 200, "2"), done, ackOf("1"))
		want, _, _, ok := c.Target(true, "2")
		require.True(t, ok)
		c.Step(t0, Event{Kind: EvRequest, Request: Request{Method: "BYE", CSeq: 2, FromCaller: true, FromTag: "ftag", ToTag: "2"}})
		require.Len(t, c.outs.Confirmed(), 1, "the second leg ended")
		got, _, _, ok := c.Target(true, "2")
		require.True(t, ok, "the ended leg is still a target")
		assert.Equal(t, want.String(), got.String())
		first, _, _, _ := c.Target(true, "1")
		assert.NotEqual(t, first.String(), got.String())
		c.Step(t0, ackOf("2"))
		assert.Equal(t, Confirmed, c.State(), "the late ACK changes nothing")
	})
	t.Run("second 2xx kept: the caller hangs up the first leg", func(t *testing.T) {
		c, _ := run(t, created, reply(t, 0, 200, "1"), reply(t, 1, 200, "2"), done, ackOf("1"))
		acts := c.Step(t0, Event{Kind: EvRequest, Request: Request{Method: "BYE", CSeq: 2, FromCaller: true, FromTag: "ftag", ToTag: "1"}})
		assert.Equal(t, Confirmed, c.State())
		assert.Equal(t, "2", c.ToTag(), "the other answered leg carries the call")
		assert.NotEmpty(t, has(acts, ActPersist), "the saved dialog follows the leg that carries the call")
	})
	t.Run("terminating a call with two answered legs BYEs both, both ways", func(t *testing.T) {
		c, _ := run(t, created, reply(t, 0, 200, "1"), reply(t, 1, 200, "2"), done, ackOf("1"))
		out := sends(c.Step(t0, Event{Kind: EvTerminate}))
		require.Len(t, out, 4)
		var tags []string
		for _, r := range out {
			tag := tm.Tag(r.To.Params)
			if r.Side == SideCaller {
				tag = tm.Tag(r.From.Params)
			}
			tags = append(tags, sideName(r.Side)+":"+tag)
		}
		assert.Equal(t, []string{"caller:1", "callee:1", "caller:2", "callee:2"}, tags)
		for _, s := range []Side{SideCaller, SideCallee, SideCaller} {
			c.Step(t0, Event{Kind: EvByeDone, Side: s})
		}
		assert.Equal(t, Terminated, c.State(), "one BYE still unanswered")
		c.Step(t0, Event{Kind: EvByeDone, Side: SideCallee})
		assert.Equal(t, Deleted, c.State())
	})
	t.Run("second 2xx with absorb: kept from the caller, ACK and BYE that leg", func(t *testing.T) {
		c := newCell(t)
		c.cfg = &absorbing
		for _, ev := range []Event{created, reply(t, 0, 180, "1"), reply(t, 1, 180, "2"), reply(t, 0, 200, "1")} {
			c.Step(t0, ev)
		}
		acts := c.Step(t0, reply(t, 1, 200, "2"))
		assert.Len(t, has(acts, ActAbsorb), 1)
		assert.Empty(t, callbacks(acts), "not forwarded")
		out := sends(acts)
		require.Len(t, out, 2)
		ack, bye := out[0], out[1]
		assert.Equal(t, sip.ACK, ack.Method)
		assert.Equal(t, uint32(1), ack.CSeq, "the INVITE's CSeq")
		assert.Equal(t, sip.BYE, bye.Method)
		assert.Equal(t, uint32(2), bye.CSeq)
		for _, r := range out {
			assert.Equal(t, "sip:bob@10.0.1.2:5062", r.Target.String(), "the second leg's Contact")
			assert.Equal(t, "2", tm.Tag(r.To.Params))
			assert.Equal(t, "ftag", tm.Tag(r.From.Params))
			assert.Equal(t, []string{"sip:as.ims.example.net;lr"}, uriStrings(r.Route), "its route set, above our entry")
			assert.False(t, r.Await, "the dialog does not wait for it")
		}
		assert.Equal(t, `SIP ;cause=200 ;text="call completed elsewhere"`, header(bye.Headers, "Reason"))
		assert.Nil(t, c.outs.Get("2"))
	})
	t.Run("2xx after the INVITE transaction ended, on a pruned leg", func(t *testing.T) {
		c, _ := run(t, created, reply(t, 0, 180, "1"), reply(t, 1, 180, "2"), reply(t, 0, 200, "1"), ack, done)
		acts := c.Step(t0, reply(t, 1, 200, "2"))
		assert.Empty(t, sends(acts))
		assert.NotNil(t, c.outs.Get("2"), "adopted: the caller's ACK and BYE find it")
		c2, _ := run(t, created, reply(t, 0, 180, "1"), reply(t, 1, 180, "2"), reply(t, 0, 200, "1"), ack, done)
		c2.cfg = &absorbing
		out := sends(c2.Step(t0, reply(t, 1, 200, "2")))
		require.Len(t, out, 2)
		assert.Equal(t, "2", tm.Tag(out[1].To.Params))
	})
	t.Run("2xx crossing the caller's CANCEL wins: the dialog is confirmed", func(t *testing.T) {
		c, acts := run(t, created, reply(t, 0, 180, "1"), outcome(tm.Cancelled, 487), reply(t, 0, 200, "1"))
		assert.Equal(t, ConfirmedNA, c.State())
		assert.Empty(t, sends(acts), "relayed; the caller ends it if it wants")
		assert.Empty(t, has(acts, ActAbsorb))
		assert.Empty(t, c.Step(t0, done), "no failure once answered")
		assert.Equal(t, ConfirmedNA, c.State())
		c, acts = run(t, created, reply(t, 0, 180, "1"), reply(t, 0, 200, "1"), outcome(tm.Cancelled, 487))
		assert.Equal(t, ConfirmedNA, c.State())
		assert.Empty(t, acts)
	})
	t.Run("200 crossing our early termination: kept from the caller, ended", func(t *testing.T) {
		c, acts := run(t, created, reply(t, 0, 180, "1"), Event{Kind: EvTerminate}, reply(t, 0, 200, "1"))
		assert.Equal(t, Terminated, c.State())
		assert.Len(t, has(acts, ActAbsorb), 1)
		out := sends(acts)
		require.Len(t, out, 2, "ACK and BYE that leg")
		assert.Equal(t, `SIP ;cause=200 ;text="call already ended"`, header(out[1].Headers, "Reason"))
	})
	t.Run("the answering leg's 2xx again changes nothing", func(t *testing.T) {
		_, acts := run(t, created, reply(t, 0, 200, "1"), reply(t, 0, 200, "1"))
		assert.Empty(t, callbacks(acts))
		assert.Empty(t, sends(acts))
	})
	t.Run("a failed branch ends its early legs only", func(t *testing.T) {
		c, _ := run(t, created, reply(t, 0, 180, "1"), reply(t, 1, 180, "2"), reply(t, 0, 486, "1"))
		legs := map[string]string{}
		for _, l := range c.outs.Legs() {
			legs[l.ToTag] = l.State.String()
		}
		assert.Equal(t, map[string]string{"1": "TERMINATED", "2": "EARLY"}, legs)
		assert.Equal(t, Early, c.State())
	})
	t.Run("the INVITE's end prunes the legs that did not answer", func(t *testing.T) {
		c, _ := run(t, created, reply(t, 0, 180, "1"), reply(t, 1, 180, "2"), reply(t, 1, 200, "2"))
		acts := c.Step(t0, done)
		require.Len(t, has(acts, ActLog), 1)
		require.Len(t, c.outs.Legs(), 1)
		assert.Equal(t, "2", c.outs.Legs()[0].ToTag)
	})
}

// RFC 3261 §12.1.2: a 2xx without a To tag answers with a null tag; the
// caller's ACK and BYE (To without tag) confirm and end the dialog, so it
// never lingers UNCONFIRMED (issue 11 §3).
func TestRFC3261_12_1_2_AnswerWithoutToTag(t *testing.T) {
	c, _ := run(t, created, reply(t, 0, 200, ""), done, ackOf(""))
	assert.Equal(t, Confirmed, c.State())
	assert.Equal(t, "", c.ToTag())
	c.Step(t0, Event{Kind: EvRequest, Request: Request{Method: "BYE", CSeq: 2, FromCaller: true, FromTag: "ftag"}})
	assert.Equal(t, Terminated, c.State())
	assert.Equal(t, EndByeCaller, c.end)
}

// Issue 11 §2: a request within the dialog goes to its leg's remote target
// along that leg's route set, or to the caller's.
func TestIssue11_TargetOfRequestsWithinTheDialog(t *testing.T) {
	c, _ := run(t, created, reply(t, 0, 486, "1"), reply(t, 1, 200, "2"), done, ackOf("2"))
	target, route, dst, ok := c.Target(true, "2")
	require.True(t, ok)
	assert.Equal(t, "sip:bob@10.0.1.2:5062", target.String())
	assert.Equal(t, []string{"sip:as.ims.example.net;lr"}, uriStrings(route))
	assert.Empty(t, dst)
	_, _, _, ok = c.Target(true, "1")
	assert.False(t, ok, "the leg that failed is gone")
	target, route, _, ok = c.Target(false, "ftag")
	require.True(t, ok)
	assert.Equal(t, "sip:alice@10.0.0.1:5070", target.String())
	assert.Equal(t, []string{"sip:pcscf.ims.example.net;lr"}, uriStrings(route))
}

// DESIGN §4 termination of a confirmed call: BYE to the caller and to the
// callee leg that answered, each with its route set, remote target and a
// CSeq above anything that direction used (RFC 3261 §12.2.1.1).
func TestDesign4_ByeTargetRouteAndCSeq(t *testing.T) {
	c, _ := run(t, created, reply(t, 0, 180, "1"), reply(t, 1, 200, "2"), ackOf("2"),
		// The caller's re-INVITE raises its CSeq to 5, the callee's UPDATE
		// its own to 20.
		Event{Kind: EvRequest, Request: Request{Method: "INVITE", CSeq: 5, FromCaller: true, FromTag: "ftag", ToTag: "2"}},
		Event{Kind: EvRequest, Request: Request{Method: "UPDATE", CSeq: 20, FromTag: "2", ToTag: "ftag"}})
	acts := c.Step(t0, Event{Kind: EvTerminate, Side: SideBoth, Reason: `operator "x"`, Headers: []Header{{"X-Charging", "stop"}}})
	assert.Equal(t, Terminated, c.State())
	assert.Equal(t, EndTerminated, c.end)
	out := sends(acts)
	require.Len(t, out, 2)
	toCaller, toCallee := out[0], out[1]

	assert.Equal(t, SideCaller, toCaller.Side)
	assert.True(t, toCaller.Await)
	assert.Equal(t, "sip:alice@10.0.0.1:5070", toCaller.Target.String(), "the caller's Contact")
	assert.Equal(t, []string{"sip:pcscf.ims.example.net;lr"}, uriStrings(toCaller.Route), "the INVITE's Record-Route")
	assert.Empty(t, toCaller.Dst)
	assert.Equal(t, "2", tm.Tag(toCaller.From.Params), "we stand for the callee")
	assert.Equal(t, "ftag", tm.Tag(toCaller.To.Params))
	assert.Equal(t, uint32(21), toCaller.CSeq, "above the callee's UPDATE")

	assert.Equal(t, SideCallee, toCallee.Side)
	assert.Equal(t, "sip:bob@10.0.1.2:5062", toCallee.Target.String(), "the leg that answered, not the first one")
	assert.Equal(t, []string{"sip:as.ims.example.net;lr"}, uriStrings(toCallee.Route))
	assert.Equal(t, "ftag", tm.Tag(toCallee.From.Params))
	assert.Equal(t, "2", tm.Tag(toCallee.To.Params))
	assert.Equal(t, uint32(6), toCallee.CSeq, "above the caller's re-INVITE")

	for _, r := range out {
		assert.Equal(t, "call-1", r.CallID)
		assert.Equal(t, sip.BYE, r.Method)
		assert.Equal(t, "1", header(r.Headers, "X-Extra"), "dlg_extra_hdrs")
		assert.Equal(t, "stop", header(r.Headers, "X-Charging"))
		assert.Equal(t, `SIP ;cause=200 ;text="operator \"x\""`, header(r.Headers, "Reason"), "RFC 3326 quoting")
	}
	wait := has(acts, ActArmTimer)
	require.Len(t, wait, 1)
	assert.Equal(t, TimerByeWait, wait[0].Timer)

	// A second termination finds the BYEs' CSeqs taken.
	c2, _ := run(t, created, reply(t, 0, 200, "1"), ack)
	first := sends(c2.Step(t0, Event{Kind: EvTerminate, Side: SideCallee}))
	require.Len(t, first, 1)
	assert.Equal(t, uint32(2), first[0].CSeq)
	assert.Equal(t, `SIP ;cause=200 ;text="terminated by the proxy"`, header(first[0].Headers, "Reason"),
		"no reason given, a Reason all the same")
}

// Without a route set, a BYE goes where that side's messages came from.
func TestDesign4_ByeWithoutRouteSetGoesToTheSource(t *testing.T) {
	c := NewCell(&testCellConfig, t0, did, Invite{CallID: "c", FromTag: "f",
		From: sip.FromHeader{Address: uri(t, "sip:a@x"), Params: sip.HeaderParams{{K: "tag", V: "f"}}},
		To:   sip.ToHeader{Address: uri(t, "sip:b@x")}, Contact: uri(t, "sip:a@10.0.0.1"), CSeq: 1,
		Source: "10.0.0.1:5070", Transport: "TCP"}, nil)
	c.Step(t0, created)
	c.Step(t0, Event{Kind: EvReply, Reply: dlgout.Reply{Code: 200, ToTag: "t", CSeq: 1, Method: sip.INVITE,
		Contact: uri(t, "sip:b@10.0.1.1"), HasContact: true, Transport: "UDP", Source: "10.0.1.1:5090"}})
	out := sends(c.Step(t0, Event{Kind: EvTerminate, Side: SideBoth}))
	require.Len(t, out, 2)
	assert.Equal(t, "tcp:10.0.0.1:5070", out[0].Dst)
	assert.Equal(t, "udp:10.0.1.1:5090", out[1].Dst)
}

// dlg_terminate of an early dialog: a final reply upstream (default
// early_terminate_code) with the Reason, which tm repeats on the CANCELs
// (DESIGN §4, TS 24.229 §5.4.5); the dialog goes at once.
func TestSeedImsDialog_TerminateEarly(t *testing.T) {
	for _, tc := range []struct {
		code, want int
		reason     string
		wantReason string
	}{
		{0, 487, "operator", `SIP ;cause=487 ;text="operator"`},
		{480, 480, "", `SIP ;cause=480 ;text="Request Terminated"`},
	} {
		c, acts := run(t, created, reply(t, 0, 180, "1"), Event{Kind: EvTerminate, Code: tc.code, Reason: tc.reason,
			Headers: []Header{{"X-Why", "test"}}})
		assert.Equal(t, Terminated, c.State())
		assert.Equal(t, EndTerminated, c.end)
		up := has(acts, ActReplyUpstream)
		require.Len(t, up, 1)
		assert.Equal(t, tc.want, up[0].Code)
		assert.Equal(t, tc.wantReason, header(up[0].Headers, "Reason"))
		assert.Equal(t, "test", header(up[0].Headers, "X-Why"))
		assert.Empty(t, sends(acts))
		assert.Equal(t, []Callback{CbTerminated, CbFailed, CbDestroy}, callbacks(acts), "DESTROY for an early-ended call too")
		assert.Len(t, has(acts, ActRelease), 1)
		assert.Len(t, has(acts, ActDestroy), 1)
	}
}

// A confirmed dialog terminated on one or both sides is DELETED once every
// BYE is answered, or its wait ends.
func TestSeedImsDialog_TerminateConfirmed(t *testing.T) {
	for _, tc := range []struct {
		name  string
		side  Side
		sides []Side
	}{
		{"both", SideBoth, []Side{SideCaller, SideCallee}},
		{"caller", SideCaller, []Side{SideCaller}},
		{"callee", SideCallee, []Side{SideCallee}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, acts := run(t, created, reply(t, 0, 200, "1"), ack, Event{Kind: EvTerminate, Side: tc.side, Reason: "operator"})
			var got []Side
			for _, r := range sends(acts) {
				got = append(got, r.Side)
			}
			assert.Equal(t, tc.sides, got)
			for i, s := range tc.sides {
				acts = c.Step(t0, Event{Kind: EvByeDone, Side: s, Code: 200})
				if i < len(tc.sides)-1 {
					assert.Empty(t, acts, "still waiting for the other BYE")
				}
			}
			assert.Equal(t, Deleted, c.State())
			assert.Equal(t, []Callback{CbTerminatedConfirmed, CbDestroy}, callbacks(acts))
			assert.Len(t, has(acts, ActRelease), 1)
		})
	}
	t.Run("BYE wait ends without replies", func(t *testing.T) {
		c, _ := run(t, created, reply(t, 0, 200, "1"), ack, Event{Kind: EvTerminate})
		acts := c.Step(t0, Event{Kind: EvByeWaitOver})
		assert.Equal(t, Deleted, c.State())
		assert.Len(t, has(acts, ActDestroy), 1)
	})
	t.Run("party BYE whose reply never comes is deleted by the wait", func(t *testing.T) {
		c, _ := run(t, created, reply(t, 0, 200, "1"), ack, callerBy)
		c.Step(t0, Event{Kind: EvByeWaitOver})
		assert.Equal(t, Deleted, c.State())
	})
	t.Run("a callee leg without Contact: no BYE to it, no wait for it", func(t *testing.T) {
		ev := reply(t, 0, 200, "1")
		ev.Reply.HasContact = false
		c, acts := run(t, created, ev, ack, Event{Kind: EvTerminate, Side: SideCallee})
		assert.Equal(t, Deleted, c.State())
		assert.Empty(t, sends(acts))
		assert.Len(t, has(acts, ActLog), 1)
	})
	t.Run("an ended dialog takes no command", func(t *testing.T) {
		c, _ := run(t, created, outcome(tm.Failed, 486), done)
		assert.True(t, c.Ended())
		assert.Empty(t, c.Step(t0, Event{Kind: EvTerminate}))
	})
}

// default_timeout: a confirmed call gets BYE both ways (EXPIRED), an early
// one is answered 408 upstream (its branches cancelled).
func TestSeedImsDialog_DefaultTimeout(t *testing.T) {
	c, acts := run(t, created, reply(t, 0, 200, "1"), ack)
	acts = c.Step(c.Deadline(), Event{Kind: EvTimeout})
	assert.Equal(t, EndExpired, c.end)
	assert.Len(t, sends(acts), 2)
	assert.Equal(t, []Callback{CbExpired}, callbacks(acts))
	assert.Contains(t, header(sends(acts)[0].Headers, "Reason"), "dialog expired")

	c, _ = run(t, created, reply(t, 0, 180, "1"))
	acts = c.Step(c.Deadline(), Event{Kind: EvTimeout})
	assert.Equal(t, EndExpired, c.end)
	up := has(acts, ActReplyUpstream)
	require.Len(t, up, 1)
	assert.Equal(t, 408, up[0].Code)
	assert.Len(t, has(acts, ActDestroy), 1)

	// A late timer after the end does nothing.
	c, _ = run(t, created, outcome(tm.Failed, 404), done)
	assert.Empty(t, c.Step(t0.Add(lifetime), Event{Kind: EvTimeout}))
}

// timeout_avp / dlg_set_timeout: a new lifetime from now; the timer armed
// before it, firing late, is ignored.
func TestSeedImsDialog_SetTimeout(t *testing.T) {
	c, _ := run(t, created, reply(t, 0, 200, "1"), ack)
	now := t0.Add(time.Hour)
	acts := c.Step(now, Event{Kind: EvSetTimeout, Timeout: 10 * time.Minute})
	require.Len(t, has(acts, ActArmTimer), 1)
	assert.Equal(t, 10*time.Minute, has(acts, ActArmTimer)[0].After)
	assert.Len(t, has(acts, ActPersist), 1)
	assert.Equal(t, now.Add(10*time.Minute), c.Deadline())
	assert.Empty(t, c.Step(now.Add(time.Minute), Event{Kind: EvTimeout}), "an earlier arming's timer")
	assert.Len(t, sends(c.Step(now.Add(10*time.Minute), Event{Kind: EvTimeout})), 2)
}

// Variables and flags of a confirmed dialog are saved with it (db_mode);
// an early one's are not.
func TestSeedDialog_VarsAndFlagsPersist(t *testing.T) {
	c, _ := run(t, created)
	assert.Empty(t, c.SetVar("k", "v"), "early dialogs are not saved")
	c, _ = run(t, created, reply(t, 0, 200, "1"))
	assert.Len(t, c.SetVar("k", "v"), 1)
	assert.Len(t, c.SetFlag(3, true), 1)
	assert.Empty(t, c.SetFlag(3, true), "no change, nothing to save")
	assert.True(t, c.IsFlagSet(3))
	assert.Len(t, c.SetFlag(3, false), 1)
	v, ok := c.Var("k")
	assert.True(t, ok)
	assert.Equal(t, "v", v)
	c.SetVar("k", "")
	_, ok = c.Var("k")
	assert.False(t, ok)
}

// Snapshot and RestoreCell give back a dialog that ends as the saved one
// would: same BYE targets, route sets and CSeqs.
func TestIssue6_SnapshotRestoreRoundTrip(t *testing.T) {
	c, _ := run(t, created, reply(t, 0, 180, "1"), reply(t, 1, 200, "2"), done, ackOf("2"),
		Event{Kind: EvRequest, Request: Request{Method: "INVITE", CSeq: 5, FromCaller: true, FromTag: "ftag", ToTag: "2"}})
	c.SetVar("charging", "on")
	c.SetFlag(2, true)
	s, ok := c.Snapshot()
	require.True(t, ok)
	assert.Equal(t, did, s.DID())
	r, err := RestoreCell(&testCellConfig, s, nil)
	require.NoError(t, err)
	assert.Equal(t, Confirmed, r.State())
	assert.Equal(t, "2", r.ToTag())
	v, _ := r.Var("charging")
	assert.Equal(t, "on", v)
	assert.True(t, r.IsFlagSet(2))
	want := sends(c.Step(t0, Event{Kind: EvTerminate}))
	got := sends(r.Step(t0, Event{Kind: EvTerminate}))
	require.Len(t, got, 2)
	for i := range want {
		assert.Equal(t, want[i].Target.String(), got[i].Target.String())
		assert.Equal(t, uriStrings(want[i].Route), uriStrings(got[i].Route))
		assert.Equal(t, want[i].CSeq, got[i].CSeq)
		assert.Equal(t, want[i].From.Value(), got[i].From.Value())
		assert.Equal(t, want[i].To.Value(), got[i].To.Value())
	}

	_, ok = newCell(t).Snapshot()
	assert.False(t, ok, "an unconfirmed dialog is not saved")
	s.State = Early
	_, err = RestoreCell(&testCellConfig, s, nil)
	assert.ErrorContains(t, err, "not a confirmed one")
}

func TestSeedImsDialog_Names(t *testing.T) {
	assert.Equal(t, "CONFIRMED_NA", ConfirmedNA.String())
	assert.Equal(t, "DELETED", Deleted.String())
	assert.Equal(t, "TERMINATED_CONFIRMED", CbTerminatedConfirmed.String())
	assert.NotEqual(t, CbSpiraled, CbTerminatedConfirmed, "own bit (DESIGN §8)")
	assert.Equal(t, "expired", EndExpired.String())
}

// OpenSIPS dialog manual, create_dialog flags P/p and
// options_ping_interval (issue 12 §5): a confirmed dialog pings its
// parties with in-dialog OPTIONS; a 408 or 481, or a ping still unanswered
// at the next interval, ends it with BYE both ways (end reason
// ping_timeout); any other reply keeps it. A ping's CSeq is one above the
// party's and not remembered, so the party's own next request is not "out
// of order" at the other side however many pings went before it.
// wantKeepaliveEnd checks that acts end the call by its keepalive: BYE
// both ways, end reason ping_timeout.
func wantKeepaliveEnd(t *testing.T, c *Cell, acts []Action) []*OutRequest {
	t.Helper()
	assert.Equal(t, Terminated, c.State())
	assert.Equal(t, EndPingTimeout, c.end)
	ss := sends(acts)
	require.Len(t, ss, 2, "BYE both ways")
	for _, s := range ss {
		assert.Equal(t, sip.BYE, s.Method)
	}
	return ss
}

func TestSeedDialog_OptionsPing(t *testing.T) {
	pinging := testCellConfig
	pinging.Ping, pinging.PingInterval = PingCallee, 20*time.Second
	start := func(t *testing.T, cfg *CellConfig) (*Cell, []Action) {
		c := newCell(t)
		c.cfg, c.ping = cfg, cfg.Ping
		var acts []Action
		for _, ev := range []Event{created, reply(t, 0, 200, "1")} {
			acts = c.Step(t0, ev)
		}
		return c, acts
	}
	pingTimer := func(acts []Action) []Action {
		var out []Action
		for _, a := range has(acts, ActArmTimer) {
			if a.Timer == TimerPing {
				out = append(out, a)
			}
		}
		return out
	}
	t.Run("the answer arms the ping timer; a ping goes to the callee only", func(t *testing.T) {
		c, acts := start(t, &pinging)
		require.Len(t, pingTimer(acts), 1)
		assert.Equal(t, 20*time.Second, pingTimer(acts)[0].After)
		acts = c.Step(t0.Add(20*time.Second), Event{Kind: EvPingTimer})
		ss := sends(acts)
		require.Len(t, ss, 1)
		assert.Equal(t, sip.OPTIONS, ss[0].Method)
		assert.True(t, ss[0].Await)
		assert.Equal(t, SideCallee, ss[0].Side)
		assert.Equal(t, "10.0.1.1", ss[0].Target.Host[:8], "the callee's Contact")
		assert.Equal(t, uint32(2), ss[0].CSeq, "one above the INVITE's")
		assert.Len(t, pingTimer(acts), 1, "re-armed")
		// Answered 200: alive; the next ping has the next CSeq, and the
		// caller's own requests reach the callee above both (a UA refuses
		// a CSeq it saw already with 500, RFC 3261 §12.2.2).
		assert.Empty(t, c.Step(t0.Add(21*time.Second), Event{Kind: EvPingDone, Side: SideCallee, Code: 200}))
		ss = sends(c.Step(t0.Add(40*time.Second), Event{Kind: EvPingTimer}))
		require.Len(t, ss, 1)
		assert.Equal(t, uint32(3), ss[0].CSeq, "a ping's number is taken for good")
		assert.Equal(t, uint32(2), c.Shift(true, "", "1"), "the caller's CSeq 2 reaches the callee as 4")
		assert.Zero(t, c.Shift(false, "1", ""), "nothing went to the caller")
		c.Step(t0.Add(41*time.Second), Event{Kind: EvPingDone, Side: SideCallee, Code: 405})
		assert.Equal(t, ConfirmedNA, c.State(), "a 405 is an answer")
	})
	for _, tc := range []struct {
		name string
		ev   Event
	}{
		{"481: the callee forgot the dialog", Event{Kind: EvPingDone, Side: SideCallee, Code: 481}},
		{"408: tm's timeout", Event{Kind: EvPingDone, Side: SideCallee, Code: 408}},
		{"not sent at all", Event{Kind: EvPingDone, Side: SideCallee, Code: 0}},
		{"still out at the next interval", Event{Kind: EvPingTimer}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := start(t, &pinging)
			c.Step(t0.Add(20*time.Second), Event{Kind: EvPingTimer})
			ss := wantKeepaliveEnd(t, c, c.Step(t0.Add(40*time.Second), tc.ev))
			assert.Contains(t, header(ss[0].Headers, "Reason"), "keepalive failed")
		})
	}
	t.Run("none: no timer, no ping", func(t *testing.T) {
		c, acts := start(t, &testCellConfig)
		assert.Empty(t, pingTimer(acts))
		assert.Empty(t, c.Step(t0.Add(time.Minute), Event{Kind: EvPingTimer}))
	})
	t.Run("per call: switched on and off", func(t *testing.T) {
		cfg := testCellConfig
		cfg.PingInterval = 10 * time.Second
		c, _ := start(t, &cfg)
		assert.Len(t, pingTimer(c.Step(t0, Event{Kind: EvSetPing, Ping: PingBoth})), 1)
		ss := sends(c.Step(t0.Add(10*time.Second), Event{Kind: EvPingTimer}))
		require.Len(t, ss, 2, "both sides")
		assert.Equal(t, SideCaller, ss[0].Side)
		assert.Equal(t, "alice", ss[0].Target.User, "the caller's Contact")
		acts := c.Step(t0.Add(11*time.Second), Event{Kind: EvSetPing, Ping: PingNone})
		assert.Len(t, has(acts, ActStopTimer), 1)
		assert.Empty(t, c.Step(t0.Add(20*time.Second), Event{Kind: EvPingTimer}), "off: a late tick does nothing")
		assert.Equal(t, ConfirmedNA, c.State())
	})
	t.Run("an ended dialog stops its ping timer", func(t *testing.T) {
		c, _ := start(t, &pinging)
		acts := c.Step(t0.Add(5*time.Second), callerBy)
		var stopped bool
		for _, a := range has(acts, ActStopTimer) {
			stopped = stopped || a.Timer == TimerPing
		}
		assert.True(t, stopped)
	})
}

// RFC 3261 §13.3.1.4 (issue 15 §0): an answer the caller never ACKs (its
// 2xx all lost, or the caller gone) leaves a session nobody holds: the
// callee repeats its 2xx to the end (64*T1), and after ack_timeout the
// dialog ends with BYE both ways (end reason no_ack). An ACK in time stops
// the wait. A callee that stopped repeating early got an ACK that did not
// pass the proxy (a caller ignoring Record-Route), or died after answering
// (seen in the soak, issue 15 §15): both parties are asked with an OPTIONS,
// and the call ends only if one of them does not hold it.
func TestRFC3261_13_3_1_4_AnswerNeverACKed(t *testing.T) {
	cfg := testCellConfig
	cfg.AckWait = 32 * time.Second
	answered := func(t *testing.T) (*Cell, []Action) {
		c := newCell(t)
		c.cfg = &cfg
		c.Step(t0, created)
		return c, c.Step(t0, reply(t, 0, 200, "1"))
	}
	repeat := Event{Kind: EvAnswerRepeated, Reply: dlgout.Reply{ToTag: "1", Code: 200, CSeq: 1, Method: sip.INVITE}}
	// Once ACKed, a repeat of the answer arms the wait again; a re-INVITE's
	// 2xx repeated (its CSeq is not the INVITE's) is not the answer.
	c, _ := answered(t)
	c.Step(t0.Add(time.Second), ack)
	reinvite := repeat
	reinvite.Reply.CSeq = 2
	assert.Empty(t, has(c.Step(t0.Add(2*time.Second), reinvite), ActArmTimer), "a re-INVITE's 2xx")
	assert.NotEmpty(t, has(c.Step(t0.Add(3*time.Second), repeat), ActArmTimer), "the answer repeated")

	c, acts := answered(t)
	var armed bool
	for _, a := range has(acts, ActArmTimer) {
		armed = armed || (a.Timer == TimerAck && a.After == 32*time.Second)
	}
	require.True(t, armed, "the answer arms the ACK wait")
	for _, at := range []time.Duration{4, 8, 12, 16, 20, 24, 28} {
		c.Step(t0.Add(at*time.Second), repeat) // the callee repeats: no ACK reached it
	}
	acts = c.Step(t0.Add(32*time.Second), Event{Kind: EvAckTimeout})
	assert.Equal(t, Terminated, c.State())
	assert.Equal(t, EndNoACK, c.end)
	ss := sends(acts)
	require.Len(t, ss, 2)
	assert.Equal(t, sip.BYE, ss[0].Method)
	assert.Equal(t, sip.BYE, ss[1].Method)

	c, _ = answered(t)
	acts = c.Step(t0.Add(time.Second), ack)
	var stopped bool
	for _, a := range has(acts, ActStopTimer) {
		stopped = stopped || a.Timer == TimerAck
	}
	assert.True(t, stopped, "the ACK stops the wait")
	assert.Empty(t, c.Step(t0.Add(32*time.Second), Event{Kind: EvAckTimeout}), "a timer stopped too late does nothing")
	assert.Equal(t, Confirmed, c.State())

	// The callee stopped repeating early: it got an ACK we did not see,
	// or it died. Both parties are asked with an OPTIONS.
	for _, tc := range []struct {
		name           string
		caller, callee int // their replies to the probe; 0: none
		ends           bool
	}{
		{"both answer: the call is up", 200, 200, false},
		{"a 405 is an answer too", 405, 200, false},
		{"the callee died after answering", 200, 0, true},
		{"the callee forgot the call", 200, 481, true},
		{"the caller never had the answer", 481, 200, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := answered(t)
			c.Step(t0.Add(time.Second), repeat)
			acts := c.Step(t0.Add(32*time.Second), Event{Kind: EvAckTimeout})
			ss := sends(acts)
			require.Len(t, ss, 2)
			for _, r := range ss {
				assert.Equal(t, sip.OPTIONS, r.Method)
			}
			assert.ElementsMatch(t, []Side{SideCaller, SideCallee}, []Side{ss[0].Side, ss[1].Side})
			assert.Equal(t, ConfirmedNA, c.State(), "nothing ends before the answers")
			at := t0.Add(40 * time.Second)
			acts = c.Step(at, Event{Kind: EvPingDone, Side: SideCaller, Code: tc.caller})
			acts = append(acts, c.Step(at, Event{Kind: EvPingDone, Side: SideCallee, Code: tc.callee})...)
			if !tc.ends {
				assert.Equal(t, ConfirmedNA, c.State(), "the call stays")
				assert.Empty(t, sends(acts))
				return
			}
			assert.Equal(t, Terminated, c.State())
			assert.Equal(t, EndNoACK, c.end)
			byes := sends(acts)
			require.Len(t, byes, 2)
			assert.Equal(t, sip.BYE, byes[0].Method)
		})
	}
}

// Issue 13 §2 (Kamailio's timeout_noreset, inverted): with
// timeout_refresh a re-INVITE or UPDATE from either side starts the
// timeout again; other requests, or the option off, leave it.
func TestSeedDialog_TimeoutRefresh(t *testing.T) {
	reinvite := func(method string, fromCaller bool) Event {
		r := Request{Method: method, CSeq: 3, FromCaller: fromCaller, FromTag: "ftag", ToTag: "1"}
		if !fromCaller {
			r.FromTag, r.ToTag, r.CSeq = "1", "ftag", 10
		}
		return Event{Kind: EvRequest, Request: r}
	}
	for _, tc := range []struct {
		name    string
		refresh bool
		ev      Event
		rearmed bool
	}{
		{"re-INVITE from the caller", true, reinvite("INVITE", true), true},
		{"UPDATE from the callee", true, reinvite("UPDATE", false), true},
		{"INFO refreshes nothing", true, reinvite("INFO", true), false},
		{"off: a re-INVITE leaves the deadline", false, reinvite("INVITE", true), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testCellConfig
			cfg.TimeoutRefresh = tc.refresh
			c := newCell(t)
			c.cfg = &cfg
			c.Step(t0, created)
			c.Step(t0, reply(t, 0, 200, "1"))
			c.Step(t0, ack)
			before := c.Deadline()
			at := t0.Add(time.Hour)
			acts := c.Step(at, tc.ev)
			var armed []Action
			for _, a := range has(acts, ActArmTimer) {
				if a.Timer == TimerLifetime {
					armed = append(armed, a)
				}
			}
			if !tc.rearmed {
				assert.Empty(t, armed)
				assert.Equal(t, before, c.Deadline())
				return
			}
			require.Len(t, armed, 1)
			assert.Equal(t, lifetime, armed[0].After)
			assert.Equal(t, at.Add(lifetime), c.Deadline())
		})
	}
}

// OpenSIPS dialog 1.6.40 (race_condition_timeout) and create_dialog's flag
// E: a call answered across the caller's CANCEL (RFC 5407's 200 OK vs
// CANCEL; tm passes the 2xx up, §16.10) ends with BYE both ways
// race_condition_timeout after the answer (end reason race_condition),
// unless its lifetime is shorter; a re-INVITE does not put it off
// (timeout_refresh). Without the flag, or for an answer that crossed no
// CANCEL, the call keeps its lifetime.
func TestSeedDialog_1_6_40_RaceConditionTimeout(t *testing.T) {
	outcome := func(afterCancel bool) Event {
		return Event{Kind: EvOutcome, Outcome: tm.Answered, Code: 200, AfterCancel: afterCancel}
	}
	lifetimeArm := func(acts []Action) (time.Duration, bool) {
		for _, a := range has(acts, ActArmTimer) {
			if a.Timer == TimerLifetime {
				return a.After, true
			}
		}
		return 0, false
	}
	for _, tc := range []struct {
		name        string
		endRaces    bool
		lifetime    time.Duration
		afterCancel bool
		armed       time.Duration // 0: the outcome arms nothing
	}{
		{"E: the call ends after race_condition_timeout", true, lifetime, true, 5 * time.Second},
		{"E: a shorter lifetime stays", true, 3 * time.Second, true, 0},
		{"E: no race, no change", true, lifetime, false, 0},
		{"no E: the caller ends it", false, lifetime, true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testCellConfig
			cfg.RaceTimeout, cfg.Timeout, cfg.TimeoutRefresh = 5*time.Second, tc.lifetime, true
			c := newCell(t)
			c.cfg, c.timeout = &cfg, tc.lifetime
			c.Step(t0, created)
			c.Step(t0, Event{Kind: EvSetEndRaces, On: tc.endRaces})
			c.Step(t0, reply(t, 0, 200, "1"))
			after, armed := lifetimeArm(c.Step(t0.Add(time.Second), outcome(tc.afterCancel)))
			if tc.armed == 0 {
				assert.False(t, armed, "the lifetime timer untouched")
				return
			}
			require.True(t, armed)
			assert.Equal(t, tc.armed, after)
			c.Step(t0.Add(2*time.Second), ackOf("1"))
			// Saved (db_mode) and restored, the call still ends as a race.
			s, ok := c.Snapshot()
			require.True(t, ok)
			assert.True(t, s.Raced)
			assert.Equal(t, t0.Add(time.Second+tc.armed), s.Deadline)
			r, err := RestoreCell(&cfg, s, nil)
			require.NoError(t, err)
			r.Step(t0.Add(6*time.Second), Event{Kind: EvTimeout})
			assert.Equal(t, EndRace, r.end, "restored")
			reinvite := Event{Kind: EvRequest, Request: Request{Method: "INVITE", CSeq: 2, FromCaller: true, FromTag: "ftag", ToTag: "1"}}
			_, rearmed := lifetimeArm(c.Step(t0.Add(3*time.Second), reinvite))
			assert.False(t, rearmed, "a re-INVITE does not put the race's end off")
			acts := c.Step(t0.Add(6*time.Second), Event{Kind: EvTimeout})
			assert.Equal(t, Terminated, c.State())
			assert.Equal(t, EndRace, c.end)
			assert.Equal(t, "race_condition", c.end.String())
			assert.Contains(t, callbacks(acts), CbTerminated)
			ss := sends(acts)
			require.Len(t, ss, 2, "BYE both ways")
			assert.Equal(t, sip.BYE, ss[0].Method)
			assert.Equal(t, sip.BYE, ss[1].Method)
		})
	}
}

// RFC 3261 §13.3.1.4 with a forger: a repeat of the answer counts only
// from where the callee answered. A stray 2xx is matched by Call-ID and
// tags alone, and repeats late in ack_timeout end the call (no_ack): one
// from any other address is ignored; one whose source is unknown (an
// older record) still counts.
func TestRFC3261_13_3_1_4_RepeatFromAnotherAddressIgnored(t *testing.T) {
	cfg := testCellConfig
	cfg.AckWait = 32 * time.Second
	for _, tc := range []struct {
		source string
		arms   bool
	}{
		{"10.0.1.1:5060", true}, // reply()'s: the callee's
		{"", true},
		{"192.0.2.66:5060", false},
	} {
		t.Run("from "+tc.source, func(t *testing.T) {
			c := newCell(t)
			c.cfg = &cfg
			c.Step(t0, created)
			c.Step(t0, reply(t, 0, 200, "1"))
			c.Step(t0.Add(time.Second), ackOf("1"))
			repeat := Event{Kind: EvAnswerRepeated, Reply: dlgout.Reply{ToTag: "1", Code: 200, CSeq: 1, Method: sip.INVITE,
				Source: tc.source}}
			acts := c.Step(t0.Add(2*time.Second), repeat)
			assert.Equal(t, tc.arms, len(has(acts, ActArmTimer)) == 1, "ack_timeout armed")
			assert.Equal(t, tc.arms, c.ackWanted)
		})
	}
}

// Issue 14: the room a reply's Record-Route is read into is lent (a pool of
// the reply hook's, reused by the next reply): the leg the 1xx creates keeps
// its route set as copies (DESIGN §4, dlgout), which a later reply written
// into that room leaves alone.
func TestIssue14_ReplyRouteRoomIsLentNotKept(t *testing.T) {
	c := newCell(t)
	c.Step(t0, created)
	res := sip.NewResponse(180, "Ringing")
	res.AppendHeader(&sip.ToHeader{Address: uri(t, "sip:bob@ims.example.net"), Params: sip.HeaderParams{{K: "tag", V: "1"}}})
	res.AppendHeader(&sip.CSeqHeader{SeqNo: 1, MethodName: sip.INVITE})
	res.AppendHeader(&sip.ContactHeader{Address: uri(t, "sip:bob@10.0.1.1:5062")})
	for _, rr := range []string{"sip:as.ims.example.net;lr", "sip:" + proxy + ";lr;did=" + did, "sip:pcscf.ims.example.net;lr"} {
		res.AppendHeader(&sip.RecordRouteHeader{Address: uri(t, rr)})
	}
	room := make([]sip.Uri, 0, 4)
	facts := replyFacts(res, room)
	require.Len(t, facts.RecordRoute, 3)
	require.Same(t, &room[:1][0], &facts.RecordRoute[0], "read into the room lent")
	c.Step(t0.Add(time.Second), Event{Kind: EvReply, Branch: 0, Reply: facts})
	leg := c.outs.Get("1")
	require.NotNil(t, leg)
	want := []string{"sip:as.ims.example.net;lr"}
	got := func() []string {
		var out []string
		for _, u := range leg.RouteSet {
			out = append(out, u.String())
		}
		return out
	}
	require.Equal(t, want, got(), "the callee's side of the route, reversed")

	// The next reply, read into the same room.
	for i := range room[:cap(room)] {
		room[:cap(room)][i] = uri(t, "sip:evil.example.org;lr")
	}
	assert.Equal(t, want, got(), "the leg's route set is its own")
}

package imsdialog

import (
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The session descriptions of the call in these tests.
var (
	offerSDP  = []byte("v=0\r\no=alice 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n")
	answerSDP = []byte("v=0\r\no=bob 7 7 IN IP4 10.0.1.1\r\ns=-\r\nc=IN IP4 10.0.1.1\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\n")
)

// repingCell is an answered call (offer in the INVITE, answer in the 2xx)
// whose cell pings who with re-INVITEs every 60 s, and OPTIONS pings
// options.
func repingCell(t *testing.T, who, options Ping) (*Cell, []Action) {
	t.Helper()
	cfg := testCellConfig
	cfg.ReinvitePing, cfg.ReinvitePingInterval = who, time.Minute
	cfg.Ping, cfg.PingInterval = options, 20*time.Second
	c := newCell(t)
	c.cfg, c.ping, c.reping, c.callerSDP = &cfg, options, who, offerSDP
	c.Step(t0, created)
	ok := reply(t, 0, 200, "1")
	ok.Reply.SDP = answerSDP
	acts := c.Step(t0, ok)
	c.Step(t0, ackOf("1"))
	require.Equal(t, Confirmed, c.State())
	return c, acts
}

func timersOf(acts []Action, k ActionKind, tm Timer) []Action {
	var out []Action
	for _, a := range has(acts, k) {
		if a.Timer == tm {
			out = append(out, a)
		}
	}
	return out
}

// OpenSIPS dialog §1.6.12 (reinvite_ping_interval) and create_dialog's R
// and r flags: each party is asked with a re-INVITE that offers again, as
// it is, the session description the other party last sent (RFC 3264 §8:
// same version, no change), along the dialog's route set, with the next
// CSeq of the party we speak for and that party's Contact.
func TestSeedDialog_ReinvitePingInterval(t *testing.T) {
	c, acts := repingCell(t, PingBoth, PingNone)
	arm := timersOf(acts, ActArmTimer, TimerReinvitePing)
	require.Len(t, arm, 1, "the answer arms the re-INVITE ping")
	assert.Equal(t, time.Minute, arm[0].After)

	acts = c.Step(t0.Add(time.Minute), Event{Kind: EvReinvitePingTimer})
	ss := sends(acts)
	require.Len(t, ss, 2)
	toCaller, toCallee := ss[0], ss[1]
	for _, s := range ss {
		assert.Equal(t, sip.INVITE, s.Method)
		assert.True(t, s.Await)
		assert.Equal(t, "application/sdp", header(s.Headers, "Content-Type"))
	}
	assert.Equal(t, SideCaller, toCaller.Side)
	assert.Equal(t, answerSDP, toCaller.Body, "the caller is offered the callee's description")
	assert.Equal(t, "<sip:bob@10.0.1.1:5062>", header(toCaller.Headers, "Contact"), "we speak for the callee")
	assert.Equal(t, "alice", toCaller.Target.User)
	assert.Equal(t, uint32(1), toCaller.CSeq, "the first request from the callee's side")
	assert.Equal(t, "1", toCaller.From.Params.GetOr("tag", ""), "From is the callee")

	assert.Equal(t, SideCallee, toCallee.Side)
	assert.Equal(t, offerSDP, toCallee.Body, "the callee is offered the caller's description")
	assert.Equal(t, "<sip:alice@10.0.0.1:5070>", header(toCallee.Headers, "Contact"))
	assert.Equal(t, uint32(2), toCallee.CSeq, "one above the INVITE's")
	assert.Equal(t, "sip:as.ims.example.net;lr", toCallee.Route[0].String(), "along the callee's route set")
	assert.NotEmpty(t, has(acts, ActPersist), "the CSeqs moved")
	assert.Len(t, timersOf(acts, ActArmTimer, TimerReinvitePing), 1, "re-armed")

	// Both answer: alive; the parties' next requests go above our pings.
	assert.Empty(t, has(c.Step(t0.Add(61*time.Second), Event{Kind: EvPingDone, Method: "INVITE", Side: SideCaller, Code: 200}), ActSend))
	c.Step(t0.Add(61*time.Second), Event{Kind: EvPingDone, Method: "INVITE", Side: SideCallee, Code: 491})
	assert.Equal(t, Confirmed, c.State(), "a 491 is an answer")
	assert.Equal(t, uint32(1), c.Shift(true, "ftag", "1"))
	assert.Equal(t, uint32(1), c.Shift(false, "1", "ftag"))
	ss = sends(c.Step(t0.Add(2*time.Minute), Event{Kind: EvReinvitePingTimer}))
	require.Len(t, ss, 2)
	assert.Equal(t, uint32(2), ss[0].CSeq)
	assert.Equal(t, uint32(3), ss[1].CSeq)
}

// The ways a re-INVITE ping fails: 408 (tm's timeout), 481, nothing sent,
// or still unanswered at the next tick (the seed checks at each tick).
// Each ends the call with BYE both ways, end reason ping_timeout.
func TestSeedDialog_ReinvitePingFails(t *testing.T) {
	for _, tc := range []struct {
		name string
		ev   Event
	}{
		{"481: the callee forgot the dialog", Event{Kind: EvPingDone, Method: "INVITE", Side: SideCallee, Code: 481}},
		{"408: no final reply", Event{Kind: EvPingDone, Method: "INVITE", Side: SideCallee, Code: 408}},
		{"not sent", Event{Kind: EvPingDone, Method: "INVITE", Side: SideCallee}},
		{"still out at the next tick", Event{Kind: EvReinvitePingTimer}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := repingCell(t, PingCallee, PingNone)
			require.Len(t, sends(c.Step(t0.Add(time.Minute), Event{Kind: EvReinvitePingTimer})), 1)
			wantKeepaliveEnd(t, c, c.Step(t0.Add(2*time.Minute), tc.ev))
			assert.Nil(t, c.callerSDP, "an ended call keeps no description")
		})
	}
	t.Run("an OPTIONS answer does not settle a re-INVITE ping", func(t *testing.T) {
		c, _ := repingCell(t, PingCallee, PingNone)
		c.Step(t0.Add(time.Minute), Event{Kind: EvReinvitePingTimer})
		c.Step(t0.Add(61*time.Second), Event{Kind: EvPingDone, Method: "OPTIONS", Side: SideCallee, Code: 200})
		c.Step(t0.Add(2*time.Minute), Event{Kind: EvReinvitePingTimer})
		assert.Equal(t, Terminated, c.State())
	})
}

// create_dialog: "both RE-INVITE and OPTIONS pinging cannot be enabled at
// the same time for a single dialog leg. If both flags ("PR" or "pr") are
// provided only RE-INVITE pinging will be used."
func TestSeedDialog_CreateDialogFlagsPRMeansR(t *testing.T) {
	c, _ := repingCell(t, PingCallee, PingBoth)
	ss := sends(c.Step(t0.Add(20*time.Second), Event{Kind: EvPingTimer}))
	require.Len(t, ss, 1, "OPTIONS to the caller only")
	assert.Equal(t, sip.OPTIONS, ss[0].Method)
	assert.Equal(t, SideCaller, ss[0].Side)
	ss = sends(c.Step(t0.Add(time.Minute), Event{Kind: EvReinvitePingTimer}))
	require.Len(t, ss, 1)
	assert.Equal(t, sip.INVITE, ss[0].Method)
	assert.Equal(t, SideCallee, ss[0].Side)
}

// RFC 3261 §14.1: no INVITE while another is in progress in the dialog. A
// re-INVITE of the parties that has no final reply yet puts the ping off
// to the next tick; its final reply lets the next one go.
func TestRFC3261_14_1_NoPingDuringARenegotiation(t *testing.T) {
	c, _ := repingCell(t, PingCallee, PingNone)
	c.Step(t0.Add(50*time.Second), Event{Kind: EvRequest, Request: Request{Method: "INVITE", CSeq: 2, FromCaller: true, FromTag: "ftag", ToTag: "1"}})
	acts := c.Step(t0.Add(time.Minute), Event{Kind: EvReinvitePingTimer})
	assert.Empty(t, sends(acts), "the parties renegotiate")
	assert.Len(t, timersOf(acts, ActArmTimer, TimerReinvitePing), 1, "tried again next tick")
	c.Step(t0.Add(61*time.Second), Event{Kind: EvRequestReply, Method: "INVITE", Code: 200, Request: Request{FromCaller: true}})
	ss := sends(c.Step(t0.Add(2*time.Minute), Event{Kind: EvReinvitePingTimer}))
	require.Len(t, ss, 1)
	assert.Equal(t, uint32(3), ss[0].CSeq, "above the parties' re-INVITE")
}

// The descriptions follow the call: a re-INVITE (offer) or its 2xx
// (answer), an UPDATE, the ACK of a late offer; a ping offers the newest.
// A call nobody pings with re-INVITEs keeps none after its answer.
func TestRFC3264_8_PingOffersTheLatestDescription(t *testing.T) {
	newer := []byte("v=0\r\no=alice 1 2 IN IP4 10.0.0.2\r\ns=-\r\n")
	newerB := []byte("v=0\r\no=bob 7 8 IN IP4 10.0.1.2\r\ns=-\r\n")
	for _, tc := range []struct {
		name     string
		evs      []Event
		toCallee []byte
		toCaller []byte
	}{
		{name: "as answered", toCallee: offerSDP, toCaller: answerSDP},
		{name: "re-INVITE from the caller and its 2xx", evs: []Event{
			{Kind: EvRequest, Request: Request{Method: "INVITE", CSeq: 2, FromCaller: true, FromTag: "ftag", ToTag: "1", SDP: newer}},
			{Kind: EvRequestReply, Method: "INVITE", Code: 200, Request: Request{FromCaller: true, FromTag: "ftag", ToTag: "1", SDP: newerB}},
		}, toCallee: newer, toCaller: newerB},
		{name: "UPDATE from the callee", evs: []Event{
			{Kind: EvRequest, Request: Request{Method: "UPDATE", CSeq: 1, FromCaller: false, FromTag: "1", ToTag: "ftag", SDP: newerB}},
		}, toCallee: offerSDP, toCaller: newerB},
		{name: "a 488 to a re-INVITE changes nothing", evs: []Event{
			{Kind: EvRequestReply, Method: "INVITE", Code: 488, Request: Request{FromCaller: true, FromTag: "ftag", ToTag: "1", SDP: newerB}},
		}, toCallee: offerSDP, toCaller: answerSDP},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, _ := repingCell(t, PingBoth, PingNone)
			for _, ev := range tc.evs {
				c.Step(t0.Add(time.Second), ev)
			}
			ss := sends(c.Step(t0.Add(time.Minute), Event{Kind: EvReinvitePingTimer}))
			require.Len(t, ss, 2)
			assert.Equal(t, tc.toCaller, ss[0].Body)
			assert.Equal(t, tc.toCallee, ss[1].Body)
		})
	}
	t.Run("no re-INVITE pings: nothing kept after the answer", func(t *testing.T) {
		c, _ := repingCell(t, PingNone, PingNone)
		assert.Nil(t, c.callerSDP)
		assert.Nil(t, c.outs.Answered().SDP)
		c.Step(t0.Add(time.Second), Event{Kind: EvRequest, Request: Request{Method: "INVITE", CSeq: 2, FromCaller: true, FromTag: "ftag", ToTag: "1", SDP: newer}})
		assert.Nil(t, c.callerSDP)
	})
	t.Run("switched on after the answer: OPTIONS for lack of a description", func(t *testing.T) {
		c, _ := repingCell(t, PingNone, PingNone)
		acts := c.Step(t0.Add(time.Second), Event{Kind: EvSetReinvitePing, Ping: PingCallee})
		require.Len(t, timersOf(acts, ActArmTimer, TimerReinvitePing), 1)
		ss := sends(c.Step(t0.Add(time.Minute), Event{Kind: EvReinvitePingTimer}))
		require.Len(t, ss, 1)
		assert.Equal(t, sip.OPTIONS, ss[0].Method)
	})
	t.Run("the snapshot keeps descriptions and CSeq shifts", func(t *testing.T) {
		c, _ := repingCell(t, PingBoth, PingNone)
		c.Step(t0.Add(time.Minute), Event{Kind: EvReinvitePingTimer})
		s, ok := c.Snapshot()
		require.True(t, ok)
		r, err := RestoreCell(c.cfg, s, nil)
		require.NoError(t, err)
		assert.Equal(t, offerSDP, r.callerSDP)
		assert.Equal(t, answerSDP, r.outs.Answered().SDP)
		assert.Equal(t, uint32(1), r.Shift(true, "ftag", "1"))
		assert.Equal(t, uint32(1), r.Shift(false, "1", "ftag"))
	})
}

// keep_sdp (issue 13 §3): the parties' SDP outlive the answer without
// re-INVITE pings, and a re-INVITE from dlg.send_sequential without a body
// offers the other party's; without keep_sdp it needs a body.
func TestIssue13_3_KeepSDPForSendSequential(t *testing.T) {
	for _, keep := range []bool{true, false} {
		c, _ := repingCell(t, PingNone, PingNone)
		cfg := *c.cfg
		cfg.KeepSDP = keep
		c2 := newCell(t)
		c2.cfg, c2.callerSDP = &cfg, offerSDP
		c2.Step(t0, created)
		ok := reply(t, 0, 200, "1")
		ok.Reply.SDP = answerSDP
		c2.Step(t0, ok)
		c2.Step(t0, ackOf("1"))
		req, _, err := c2.Sequential(t0.Add(time.Second), SideCallee, "invite", nil, "", nil)
		if !keep {
			assert.ErrorIs(t, err, ErrNoSDP)
			continue
		}
		require.NoError(t, err)
		assert.Equal(t, offerSDP, req.Body, "the caller's SDP to the callee")
		assert.Equal(t, "application/sdp", header(req.Headers, "Content-Type"))
		req, _, err = c2.Sequential(t0.Add(2*time.Second), SideCaller, "INVITE", nil, "", nil)
		assert.ErrorIs(t, err, ErrInviteInProgress, "RFC 3261 §14.1: ours is still pending")
		assert.Nil(t, req)
	}
}

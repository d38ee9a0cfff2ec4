package dlgout

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestState_String(t *testing.T) {
	for s, want := range map[State]string{
		Early: "EARLY", Confirmed: "CONFIRMED", Terminated: "TERMINATED", 0: "State(0)", 9: "State(9)",
	} {
		assert.Equal(t, want, s.String())
	}
}

func TestRFC3261_12_1_OnResponseIgnoresWhatCreatesNoLeg(t *testing.T) {
	for _, tc := range []struct {
		name string
		code int
		tag  string
	}{
		{name: "100 Trying (never a dialog, §12.1)", code: 100, tag: ""},
		{name: "100 with a tag", code: 100, tag: "b1"},
		{name: "180 without To tag", code: 180, tag: ""},
		{name: "183 without To tag", code: 183, tag: ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s Set
			leg, created, err := s.OnResponse(t0, 0, rsp(t, tc.code, tc.tag, "Contact: <sip:bob@10.0.0.2>"), ours)
			assert.NoError(t, err)
			assert.Nil(t, leg)
			assert.False(t, created)
			assert.Empty(t, s.Legs())
		})
	}
}

func TestRFC3261_8_2_6_2_OnResponseRejectsMalformed(t *testing.T) {
	status := func(code int) func(t *testing.T) *sip.Response {
		return func(t *testing.T) *sip.Response {
			res := rsp(t, 180, "b1")
			res.StatusCode = code
			return res
		}
	}
	for _, tc := range []struct {
		name string
		res  func(t *testing.T) *sip.Response
		want error
	}{
		{name: "nil response", res: func(*testing.T) *sip.Response { return nil }, want: ErrMalformed},
		{name: "status 99", res: status(99), want: ErrMalformed},
		{name: "status 700", res: status(700), want: ErrMalformed},
		{name: "no CSeq", res: func(t *testing.T) *sip.Response {
			res := rsp(t, 180, "b1")
			res.RemoveHeader("CSeq")
			return res
		}, want: ErrMalformed},
		{name: "200 to a PRACK", res: func(t *testing.T) *sip.Response { return rsp(t, 200, "b1", "CSeq: 2 PRACK") }, want: ErrNotInvite},
		{name: "183 to an UPDATE", res: func(t *testing.T) *sip.Response { return rsp(t, 183, "b1", "CSeq: 2 UPDATE") }, want: ErrNotInvite},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s Set
			leg, created, err := s.OnResponse(t0, 0, tc.res(t), ours)
			assert.ErrorIs(t, err, tc.want)
			assert.Nil(t, leg)
			assert.False(t, created)
			assert.Empty(t, s.Legs())
		})
	}
}

func TestRFC3261_12_1_2_LegFromTaggedProvisional(t *testing.T) {
	var s Set
	res := rsp(t, 180, "b1", "Contact: <sip:bob@10.0.0.2:5062;transport=tcp>",
		"Record-Route: <sip:c1.example.net;lr>", "Record-Route: <sip:"+ourHost+";lr>", "CSeq: 314159 INVITE")
	res.SetTransport("TCP")
	res.SetSource("10.0.0.2:5062")
	leg, created, err := s.OnResponse(t0, 3, res, ours)
	require.NoError(t, err)
	require.True(t, created)
	assert.Equal(t, "b1", leg.ToTag)
	assert.Equal(t, Early, leg.State)
	assert.Equal(t, "sip:bob@10.0.0.2:5062;transport=tcp", leg.RemoteTarget.String())
	assert.Equal(t, []string{"c1.example.net"}, hosts(leg.RouteSet))
	assert.Equal(t, uint32(314159), leg.LocalCSeq, "the INVITE's CSeq is the first seen towards the callee")
	assert.Zero(t, leg.RemoteCSeq)
	assert.Equal(t, "TCP", leg.Transport)
	assert.Equal(t, "10.0.0.2:5062", leg.Source)
	assert.Equal(t, 3, leg.Branch)
	assert.Equal(t, 180, leg.LastCode)
	assert.Equal(t, t0, leg.Created)
	assert.Equal(t, t0, leg.Updated)
	assert.Same(t, leg, s.Get("b1"))
	assert.Nil(t, s.Get("B1"), "To-tags compare exactly")
}

func TestRFC3261_12_1_2_RemoteTargetAndRouteSetUpdates(t *testing.T) {
	var s Set
	t1, t2, t3 := t0.Add(time.Second), t0.Add(2*time.Second), t0.Add(3*time.Second)
	mustResp(t, &s, 0, rsp(t, 180, "b1", "Contact: <sip:bob@10.0.0.2>",
		"Record-Route: <sip:c1.example.net;lr>", "Record-Route: <sip:"+ourHost+";lr>"))

	// A 1xx without Contact keeps the previous target.
	leg, created, err := s.OnResponse(t1, 0, rsp(t, 183, "b1", "Record-Route: <sip:"+ourHost+";lr>"), ours)
	require.NoError(t, err)
	assert.False(t, created)
	assert.Equal(t, "sip:bob@10.0.0.2", leg.RemoteTarget.String())
	// Later 1xx do not change the route set: it is set on creation and
	// recomputed only by the 2xx (§12.1.2, §13.2.2.4).
	assert.Equal(t, []string{"c1.example.net"}, hosts(leg.RouteSet))
	assert.Equal(t, 183, leg.LastCode)
	assert.Equal(t, t1, leg.Updated)
	assert.Equal(t, t0, leg.Created)

	// A 1xx with a new Contact moves the target.
	mustResp(t, &s, 0, rsp(t, 183, "b1", "Contact: <sip:bob@10.0.0.3>"))
	assert.Equal(t, "sip:bob@10.0.0.3", leg.RemoteTarget.String())

	// The 2xx refreshes the target and recomputes the route set.
	_, _, err = s.OnResponse(t2, 0, rsp(t, 200, "b1", "Contact: <sip:bob@10.0.0.4>",
		"Record-Route: <sip:c2.example.net;lr>", "Record-Route: <sip:"+ourHost+";lr>"), ours)
	require.NoError(t, err)
	assert.Equal(t, Confirmed, leg.State)
	assert.Equal(t, "sip:bob@10.0.0.4", leg.RemoteTarget.String())
	assert.Equal(t, []string{"c2.example.net"}, hosts(leg.RouteSet))

	// A 2xx without Contact keeps the target.
	_, _, err = s.OnResponse(t3, 0, rsp(t, 200, "b1", "Record-Route: <sip:c2.example.net;lr>", "Record-Route: <sip:"+ourHost+";lr>"), ours)
	require.NoError(t, err)
	assert.Equal(t, "sip:bob@10.0.0.4", leg.RemoteTarget.String())
}

func TestRFC3261_12_1_2_LegDoesNotAliasTheResponse(t *testing.T) {
	var s Set
	res := rsp(t, 180, "b1", "Contact: <sip:bob@10.0.0.2;ob>", "Record-Route: <sip:c1.example.net;lr>", "Record-Route: <sip:"+ourHost+";lr>")
	leg := mustResp(t, &s, 0, res)
	res.Contact().Address.UriParams[0].K = "changed"
	res.RecordRoute().Address.UriParams[0].K = "changed"
	assert.Equal(t, "sip:bob@10.0.0.2;ob", leg.RemoteTarget.String())
	assert.Equal(t, "sip:c1.example.net;lr", leg.RouteSet[0].String())
}

// A 180 overtaken by the 200 (UDP reordering) must not bring the leg back
// to Early nor move its target.
func TestRFC3261_13_2_2_4_ProvisionalAfterAnswerChangesNothing(t *testing.T) {
	var s Set
	mustResp(t, &s, 0, rsp(t, 200, "b1", "Contact: <sip:bob@10.0.0.2>"))
	leg, created, err := s.OnResponse(t0.Add(time.Second), 0, rsp(t, 180, "b1", "Contact: <sip:bob@10.0.0.9>"), ours)
	require.NoError(t, err)
	assert.False(t, created)
	assert.Equal(t, Confirmed, leg.State)
	assert.Equal(t, "sip:bob@10.0.0.2", leg.RemoteTarget.String())
	assert.Equal(t, 200, leg.LastCode)
	assert.Equal(t, t0, leg.Updated)
}

func TestSeedImsDialog_DlgOut_ForkedEarlyLegs(t *testing.T) {
	var s Set
	// Branch 0 reaches a proxy that forks again: two legs from one branch.
	a := mustResp(t, &s, 0, rsp(t, 180, "a", "Contact: <sip:bob@10.0.0.2>"))
	b := mustResp(t, &s, 0, rsp(t, 183, "b", "Contact: <sip:bob@10.0.0.3>"))
	// Branch 1 reaches a UE directly.
	c := mustResp(t, &s, 1, rsp(t, 180, "c", "Contact: <sip:bob@10.0.0.4>"))
	// A retransmitted 180 creates nothing.
	_, created, err := s.OnResponse(t0, 0, rsp(t, 180, "a"), ours)
	require.NoError(t, err)
	assert.False(t, created)

	legs := s.Legs()
	require.Len(t, legs, 3)
	assert.Equal(t, []string{"a", "b", "c"}, []string{legs[0].ToTag, legs[1].ToTag, legs[2].ToTag}, "creation order")
	assert.Equal(t, []int{0, 0, 1}, []int{legs[0].Branch, legs[1].Branch, legs[2].Branch})
	assert.Equal(t, []*Leg{a, b, c}, s.Early())
	assert.Nil(t, s.Answered())

	// Legs are copies.
	legs[0].State = Terminated
	legs[0].ToTag = "x"
	assert.Equal(t, Early, a.State)
	assert.Equal(t, "a", s.Legs()[0].ToTag)
}

// A final non-2xx on a branch ends every early leg of that branch (§16.7:
// the branch's client transaction is done), not those of other branches nor
// legs that already answered.
func TestRFC3261_16_7_FinalOnBranchTerminatesItsEarlyLegs(t *testing.T) {
	for _, code := range []int{302, 404, 486, 487, 503, 603} {
		t.Run(itoa(code), func(t *testing.T) {
			var s Set
			a := mustResp(t, &s, 0, rsp(t, 180, "a"))
			b := mustResp(t, &s, 0, rsp(t, 183, "b"))
			ok := mustResp(t, &s, 0, rsp(t, 200, "ok"))
			c := mustResp(t, &s, 1, rsp(t, 180, "c"))
			at := t0.Add(time.Minute)
			leg, created, err := s.OnResponse(at, 0, rsp(t, code, "z"), ours)
			require.NoError(t, err)
			assert.Nil(t, leg)
			assert.False(t, created)
			assert.Equal(t, Terminated, a.State)
			assert.Equal(t, Terminated, b.State)
			assert.Equal(t, code, a.LastCode)
			assert.Equal(t, at, b.Updated)
			assert.Equal(t, Confirmed, ok.State)
			assert.Equal(t, Early, c.State)
			assert.Equal(t, []*Leg{c}, s.Early())
			assert.Len(t, s.Legs(), 4, "terminated legs stay until Prune")
		})
	}
}

func TestDesign4_AnswerThenPrune(t *testing.T) {
	var s Set
	mustResp(t, &s, 0, rsp(t, 180, "a"))
	mustResp(t, &s, 1, rsp(t, 180, "b"))
	mustResp(t, &s, 2, rsp(t, 183, "c"))
	ok := mustResp(t, &s, 1, rsp(t, 200, "b", "Contact: <sip:bob@10.0.0.3>"))

	got, err := s.Answer("b")
	require.NoError(t, err)
	assert.Same(t, ok, got)
	assert.Same(t, ok, s.Answered())
	got, err = s.Answer("b")
	require.NoError(t, err, "a retransmitted 2xx answers the same leg again")
	assert.Same(t, ok, got)

	removed := s.Prune()
	require.Len(t, removed, 2)
	assert.Equal(t, "a", removed[0].ToTag)
	assert.Equal(t, "c", removed[1].ToTag)
	for _, l := range removed {
		assert.Equal(t, Terminated, l.State)
	}
	legs := s.Legs()
	require.Len(t, legs, 1)
	assert.Equal(t, "b", legs[0].ToTag)
	assert.Equal(t, Confirmed, legs[0].State)
	assert.Nil(t, s.Get("a"))
	assert.Empty(t, s.Early())
	assert.Empty(t, s.Prune(), "a second Prune removes nothing")

	// The answered leg's 2xx retransmission is no late answer.
	leg, _, err := s.OnResponse(t0, 1, rsp(t, 200, "b"), ours)
	require.NoError(t, err)
	assert.Same(t, ok, leg)
}

func TestDesign4_PruneWithoutAnswerRemovesAll(t *testing.T) {
	var s Set
	a := mustResp(t, &s, 0, rsp(t, 180, "a"))
	mustResp(t, &s, 1, rsp(t, 180, "b"))
	_, _, err := s.OnResponse(t0, 0, rsp(t, 486, "a"), ours)
	require.NoError(t, err)
	removed := s.Prune()
	require.Len(t, removed, 2)
	assert.Equal(t, 486, removed[0].LastCode)
	assert.Equal(t, Terminated, removed[1].State)
	assert.Equal(t, Terminated, a.State, "a pointer handed out earlier sees the pruning")
	assert.Empty(t, s.Legs())
	assert.Nil(t, s.Answered())

	// Nothing new after the INVITE transaction ended.
	leg, created, err := s.OnResponse(t0, 0, rsp(t, 180, "new"), ours)
	assert.NoError(t, err)
	assert.Nil(t, leg)
	assert.False(t, created)
	assert.Empty(t, s.Legs())
}

// RFC 3261 §16.7 step 5 and DESIGN §4: a second 2xx from another branch
// makes a second confirmed leg, never mixed up with the answered one; it
// stays after Prune until End (the caller's BYE on it).
func TestDesign4_SecondAnswerFromAnotherLeg(t *testing.T) {
	var s Set
	mustResp(t, &s, 0, rsp(t, 180, "a"))
	mustResp(t, &s, 1, rsp(t, 180, "b"))
	first := mustResp(t, &s, 0, rsp(t, 200, "a"))
	_, err := s.Answer("a")
	require.NoError(t, err)

	second, _, err := s.OnResponse(t0, 1, rsp(t, 200, "b", "Contact: <sip:bob@10.0.0.7>"), ours)
	require.NoError(t, err)
	assert.Equal(t, Confirmed, second.State)
	got, err := s.Answer("b")
	assert.ErrorIs(t, err, ErrAlreadyAnswered)
	assert.Same(t, second, got, "the error names the leg to ACK and BYE")
	assert.Same(t, first, s.Answered())

	assert.Empty(t, s.Prune(), "both answered: nothing to prune")
	assert.Equal(t, []*Leg{first, second}, s.Confirmed())
	assert.Same(t, second, s.Get("b"), "the caller's ACK and BYE on it find it")

	assert.Nil(t, s.End("b"), "ending the second leg promotes nobody")
	assert.Equal(t, Terminated, second.State)
	assert.Nil(t, s.Get("b"))
	assert.Same(t, first, s.Answered())

	// The caller keeps the second callee and hangs up the first.
	third, _, err := s.OnResponse(t0, 2, rsp(t, 200, "c", "Contact: <sip:bob@10.0.0.8>"), ours)
	require.ErrorIs(t, err, ErrLateAnswer)
	s.Adopt(third)
	assert.Same(t, third, s.Get("c"))
	assert.Same(t, third, s.End("a"), "the other answered leg becomes the answered one")
	assert.Same(t, third, s.Answered())
	assert.Nil(t, s.End("c"))
	assert.Nil(t, s.Answered())
	assert.Empty(t, s.Legs())
}

// RFC 3261 §16.7 step 5 with UDP reordering: the caller ACKs the second
// callee's 2xx and hangs that leg up at once; the BYE may reach the proxy
// first. The ended leg is remembered (Gone, the newest maxGone) so that the
// ACK still finds where it goes; Get and the rest never see it again.
func TestRFC3261_16_7_EndedLegStillFoundForItsLateACK(t *testing.T) {
	var s Set
	mustResp(t, &s, 0, rsp(t, 200, "a", "Contact: <sip:bob@10.0.0.6>"))
	_, err := s.Answer("a")
	require.NoError(t, err)
	second := mustResp(t, &s, 1, rsp(t, 200, "b", "Contact: <sip:bob@10.0.0.7>"))
	assert.Nil(t, s.Gone("b"), "a live leg is not gone")

	s.End("b")
	assert.Nil(t, s.Get("b"))
	assert.Same(t, second, s.Gone("b"))
	assert.Equal(t, "10.0.0.7", s.Gone("b").RemoteTarget.Host)
	assert.Nil(t, s.Gone("a"))
	assert.Nil(t, s.Gone("x"))
	assert.Equal(t, []*Leg{s.Answered()}, s.Confirmed(), "the gone leg is not confirmed any more")

	// Bounded: only the newest maxGone ended legs are kept.
	for i := range maxGone {
		tag := fmt.Sprintf("late%d", i)
		l, _, err := s.OnResponse(t0, 2+i, rsp(t, 200, tag), ours)
		if errors.Is(err, ErrLateAnswer) {
			s.Adopt(l)
		}
		s.End(tag)
	}
	assert.Nil(t, s.Gone("b"), "pushed out by newer ended legs")
	assert.NotNil(t, s.Gone(fmt.Sprintf("late%d", maxGone-1)))
	assert.Len(t, s.gone, maxGone)
}

// RFC 3261 §12.1.2: a 2xx without a To tag makes a leg with a null tag, so
// the caller's ACK and BYE (To without tag) still find the dialog.
func TestRFC3261_12_1_2_MissingToTagIsNull(t *testing.T) {
	var s Set
	leg, created, err := s.OnResponse(t0, 0, rsp(t, 180, ""), ours)
	assert.NoError(t, err)
	assert.Nil(t, leg, "an untagged 1xx makes no leg")
	assert.False(t, created)
	leg, created, err = s.OnResponse(t0, 0, rsp(t, 200, "", "Contact: <sip:bob@10.0.0.9>"), ours)
	require.NoError(t, err)
	assert.True(t, created)
	assert.Equal(t, "", leg.ToTag)
	_, err = s.Answer("")
	require.NoError(t, err)
	assert.Same(t, leg, s.Get(""))
}

func TestDesign4_AnswerErrors(t *testing.T) {
	var s Set
	mustResp(t, &s, 0, rsp(t, 180, "early"))
	mustResp(t, &s, 1, rsp(t, 180, "failed"))
	_, _, err := s.OnResponse(t0, 1, rsp(t, 480, "failed"), ours)
	require.NoError(t, err)

	_, err = s.Answer("nope")
	assert.ErrorIs(t, err, ErrUnknownLeg)
	_, err = s.Answer("early")
	assert.ErrorIs(t, err, ErrNotAnswered)
	_, err = s.Answer("failed")
	assert.ErrorIs(t, err, ErrLateAnswer)
	assert.Nil(t, s.Answered())
}

func TestDesign4_LateAnswer(t *testing.T) {
	t.Run("2xx after Prune from a removed leg", func(t *testing.T) {
		var s Set
		mustResp(t, &s, 0, rsp(t, 200, "a"))
		mustResp(t, &s, 1, rsp(t, 180, "b"))
		_, err := s.Answer("a")
		require.NoError(t, err)
		s.Prune()
		at := t0.Add(time.Minute)
		leg, created, err := s.OnResponse(at, 1, rsp(t, 200, "b", "Contact: <sip:bob@10.0.0.8>",
			"Record-Route: <sip:c1.example.net;lr>", "Record-Route: <sip:"+ourHost+";lr>", "CSeq: 7 INVITE"), ours)
		assert.ErrorIs(t, err, ErrLateAnswer)
		assert.False(t, created)
		require.NotNil(t, leg, "the leg to ACK and BYE")
		assert.Equal(t, "b", leg.ToTag)
		assert.Equal(t, Terminated, leg.State)
		assert.Equal(t, "sip:bob@10.0.0.8", leg.RemoteTarget.String())
		assert.Equal(t, []string{"c1.example.net"}, hosts(leg.RouteSet))
		assert.Equal(t, 1, leg.Branch)
		assert.Equal(t, at, leg.Updated)
		n, err := leg.NextCSeq(true)
		require.NoError(t, err)
		assert.Equal(t, uint32(8), n, "the BYE goes above the INVITE's CSeq")
		assert.Nil(t, s.Get("b"), "a late leg is not stored")
		assert.Len(t, s.Legs(), 1)
	})
	t.Run("2xx after Prune from a leg never seen", func(t *testing.T) {
		var s Set
		s.Prune()
		leg, _, err := s.OnResponse(t0, 0, rsp(t, 200, "ghost"), ours)
		assert.ErrorIs(t, err, ErrLateAnswer)
		require.NotNil(t, leg)
		assert.Equal(t, Terminated, leg.State)
		assert.Empty(t, s.Legs())
	})
	t.Run("2xx on a leg whose branch failed", func(t *testing.T) {
		var s Set
		a := mustResp(t, &s, 0, rsp(t, 183, "a"))
		_, _, err := s.OnResponse(t0, 0, rsp(t, 487, "a"), ours)
		require.NoError(t, err)
		leg, _, err := s.OnResponse(t0, 0, rsp(t, 200, "a", "Contact: <sip:bob@10.0.0.5>"), ours)
		assert.ErrorIs(t, err, ErrLateAnswer)
		assert.Same(t, a, leg)
		assert.Equal(t, Terminated, a.State)
		assert.Equal(t, 200, a.LastCode)
		assert.Equal(t, "sip:bob@10.0.0.5", a.RemoteTarget.String())
		assert.Empty(t, s.Early())
	})
	t.Run("1xx on a terminated leg changes nothing", func(t *testing.T) {
		var s Set
		a := mustResp(t, &s, 0, rsp(t, 183, "a", "Contact: <sip:bob@10.0.0.5>"))
		_, _, err := s.OnResponse(t0, 0, rsp(t, 480, "a"), ours)
		require.NoError(t, err)
		leg, _, err := s.OnResponse(t0, 0, rsp(t, 180, "a", "Contact: <sip:bob@10.0.0.6>"), ours)
		assert.NoError(t, err)
		assert.Same(t, a, leg)
		assert.Equal(t, Terminated, a.State)
		assert.Equal(t, 480, a.LastCode)
		assert.Equal(t, "sip:bob@10.0.0.5", a.RemoteTarget.String())
	})
}

func TestRFC3261_7_3_1_HeaderDetails(t *testing.T) {
	t.Run("tag parameter name is case-insensitive", func(t *testing.T) {
		res := rsp(t, 180, "b1")
		res.To().Params[0].K = "TAG"
		var s Set
		leg := mustResp(t, &s, 0, res)
		assert.Equal(t, "b1", leg.ToTag)
	})
	t.Run("the first Contact is the target", func(t *testing.T) {
		var s Set
		leg := mustResp(t, &s, 0, rsp(t, 180, "b1", "Contact: <sip:bob@10.0.0.2>", "Contact: <sip:bob@10.0.0.3>"))
		assert.Equal(t, "sip:bob@10.0.0.2", leg.RemoteTarget.String())
	})
	t.Run("a wildcard Contact is no target", func(t *testing.T) {
		var s Set
		mustResp(t, &s, 0, rsp(t, 180, "b1", "Contact: <sip:bob@10.0.0.2>"))
		leg := mustResp(t, &s, 0, rsp(t, 200, "b1", "Contact: *"))
		assert.Equal(t, "sip:bob@10.0.0.2", leg.RemoteTarget.String())
	})
}

// A restored Set (db_mode restart) has its one leg answered and is pruned:
// CSeqs continue above what was saved and a 2xx on another leg is late.
func TestRestoreAnsweredLeg(t *testing.T) {
	s := Restore(Leg{ToTag: "t1", LocalCSeq: 4, RemoteCSeq: 9, State: Early})
	a := s.Answered()
	if a == nil || a.ToTag != "t1" || a.State != Confirmed {
		t.Fatalf("Answered = %+v", a)
	}
	if s.Get("t1") != a || len(s.Legs()) != 1 {
		t.Fatalf("legs = %+v", s.Legs())
	}
	if n, err := s.NextCSeq("t1", true); err != nil || n != 5 {
		t.Errorf("NextCSeq towards the callee = %d, %v; want 5", n, err)
	}
	if n, err := s.NextCSeq("t1", false); err != nil || n != 10 {
		t.Errorf("NextCSeq towards the caller = %d, %v; want 10", n, err)
	}
	if pruned := s.Prune(); len(pruned) != 0 {
		t.Errorf("Prune of a restored set removed %+v", pruned)
	}
}

// Trim leaves the Set as Prune does and counts what Prune would return,
// without copying the legs.
func TestDesign4_TrimIsPruneWithoutTheCopies(t *testing.T) {
	for _, answer := range []bool{true, false} {
		build := func() *Set {
			var s Set
			mustResp(t, &s, 0, rsp(t, 180, "a"))
			mustResp(t, &s, 1, rsp(t, 180, "b"))
			mustResp(t, &s, 2, rsp(t, 183, "c"))
			if answer {
				mustResp(t, &s, 1, rsp(t, 200, "b", "Contact: <sip:bob@10.0.0.3>"))
				_, err := s.Answer("b")
				require.NoError(t, err)
			}
			return &s
		}
		pruned, trimmed := build(), build()
		removed := pruned.Prune()
		assert.Equal(t, len(removed), trimmed.Trim(), "answered %v", answer)
		assert.Equal(t, len(pruned.Legs()), len(trimmed.Legs()))
		for i, l := range pruned.Legs() {
			assert.Equal(t, l.ToTag, trimmed.Legs()[i].ToTag)
		}
		assert.Zero(t, trimmed.Trim(), "a second Trim removes nothing")
		assert.Nil(t, trimmed.Get("a"))
	}
}

package imsdialog

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var t0 = time.Unix(1_700_000_000, 0)

const (
	lifetime = 43200 * time.Second
	byeWait  = 32 * time.Second
)

// run feeds events to a new dialog and returns the machine and the actions
// of the last event.
func run(t *testing.T, evs ...Event) (*FSM, []Action, error) {
	t.Helper()
	f := NewFSM(t0, lifetime, byeWait)
	var acts []Action
	var err error
	for i, ev := range evs {
		acts, err = f.Step(t0.Add(time.Duration(i)*time.Second), ev)
	}
	return f, acts, err
}

func callbacks(acts []Action) []Callback {
	var out []Callback
	for _, a := range acts {
		if a.Kind == ActFire {
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

var (
	created  = Event{Kind: EvCreated}
	ring     = Event{Kind: EvProvisional, NewLeg: true}
	answered = Event{Kind: EvAnswered}
	ack      = Event{Kind: EvAck}
)

// Every transition of the ims_dialog state diagram, with the callbacks the
// seed (002, "register_dlgcb") says fire on it.
func TestSeedImsDialog_Transitions(t *testing.T) {
	cases := []struct {
		name  string
		evs   []Event
		state State
		end   EndReason
		cbs   []Callback
		acts  []ActionKind
	}{
		{"created", []Event{created}, Unconfirmed, NotEnded, []Callback{CbCreated}, []ActionKind{ActFire, ActArmTimeout}},
		{"first tagged 1xx: EARLY", []Event{created, ring}, Early, NotEnded, []Callback{CbEarly}, nil},
		{"second leg rings: EARLY fires again", []Event{created, ring, ring}, Early, NotEnded, []Callback{CbEarly}, nil},
		{"same leg again: no callback", []Event{created, ring, {Kind: EvProvisional}}, Early, NotEnded, nil, nil},
		{"2xx: CONFIRMED_NA, lifetime armed", []Event{created, ring, answered}, ConfirmedNA, NotEnded, []Callback{CbConfirmedNA},
			[]ActionKind{ActStateChanged, ActFire, ActArmTimeout}},
		{"2xx without 1xx", []Event{created, answered}, ConfirmedNA, NotEnded, []Callback{CbConfirmedNA}, nil},
		{"ACK: CONFIRMED", []Event{created, answered, ack}, Confirmed, NotEnded, []Callback{CbConfirmed}, nil},
		{"retransmitted 2xx changes nothing", []Event{created, answered, ack, answered}, Confirmed, NotEnded, nil, nil},
		{"re-INVITE is REQ_WITHIN", []Event{created, answered, ack, {Kind: EvRequest, Method: "INVITE", FromCaller: true}},
			Confirmed, NotEnded, []Callback{CbReqWithin}, nil},
		{"ACK of a re-INVITE is REQ_WITHIN", []Event{created, answered, ack, ack}, Confirmed, NotEnded, []Callback{CbReqWithin}, nil},
		{"reply within", []Event{created, answered, ack, {Kind: EvReply, Method: "UPDATE", Code: 200}}, Confirmed, NotEnded,
			[]Callback{CbRplWithin}, nil},
		{"caller BYE", []Event{created, answered, ack, {Kind: EvRequest, Method: "BYE", FromCaller: true}}, Terminated, EndByeCaller,
			[]Callback{CbReqWithin, CbTerminated}, nil},
		{"callee BYE", []Event{created, answered, ack, {Kind: EvRequest, Method: "BYE"}}, Terminated, EndByeCallee,
			[]Callback{CbReqWithin, CbTerminated}, nil},
		{"BYE before ACK ends the call", []Event{created, answered, {Kind: EvRequest, Method: "BYE", FromCaller: true}}, Terminated,
			EndByeCaller, []Callback{CbReqWithin, CbTerminated}, nil},
		{"reply to the BYE: TERMINATED_CONFIRMED, DELETED", []Event{created, answered, ack, {Kind: EvRequest, Method: "BYE", FromCaller: true},
			{Kind: EvReply, Method: "BYE", Code: 200}}, Deleted, EndByeCaller,
			[]Callback{CbRplWithin, CbTerminatedConfirmed, CbDestroy}, nil},
		{"non-2xx final: FAILED", []Event{created, ring, {Kind: EvFailed, Code: 486}}, Terminated, EndFailed, []Callback{CbFailed}, nil},
		{"caller CANCEL: FAILED", []Event{created, ring, {Kind: EvCancelled}}, Terminated, EndCancelled, []Callback{CbFailed}, nil},
		{"ACK after the end is ignored", []Event{created, ring, {Kind: EvFailed, Code: 486}, ack}, Terminated, EndFailed, nil, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f, acts, err := run(t, tc.evs...)
			require.NoError(t, err)
			assert.Equal(t, tc.state, f.State)
			assert.Equal(t, tc.end, f.End)
			assert.Equal(t, tc.cbs, callbacks(acts))
			if tc.acts != nil {
				var kinds []ActionKind
				for _, a := range acts {
					kinds = append(kinds, a.Kind)
				}
				assert.Equal(t, tc.acts, kinds)
			}
		})
	}
}

func TestSeedImsDialog_StateChangedActions(t *testing.T) {
	_, acts, _ := run(t, created, ring)
	ch := has(acts, ActStateChanged)
	require.Len(t, ch, 1)
	assert.Equal(t, Unconfirmed, ch[0].From)
	assert.Equal(t, Early, ch[0].To)
	_, acts, _ = run(t, created, ring, ring)
	assert.Empty(t, has(acts, ActStateChanged), "no change, no event")
}

// dlg_terminate of an early dialog: CANCEL down, final reply up (default
// 487), with the Reason (DESIGN §4, TS 24.229 §5.4.5).
func TestSeedImsDialog_TerminateEarly(t *testing.T) {
	for _, tc := range []struct {
		code, want int
	}{{0, 487}, {480, 480}} {
		f, acts, err := run(t, created, ring, Event{Kind: EvTerminate, Code: tc.code, Reason: "operator"})
		require.NoError(t, err)
		assert.Equal(t, Terminated, f.State)
		assert.Equal(t, EndTerminated, f.End)
		ce := has(acts, ActCancelEarly)
		require.Len(t, ce, 1)
		assert.Equal(t, tc.want, ce[0].Code)
		assert.Equal(t, "operator", ce[0].Reason)
		assert.Empty(t, has(acts, ActSendBye))
		assert.Equal(t, []Callback{CbTerminated, CbFailed}, callbacks(acts))
		assert.Len(t, has(acts, ActDestroy), 1)
	}
}

// dlg_terminate of a confirmed dialog: BYE to each side asked for, then
// DELETED once every BYE is answered (or its wait ended).
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
			f, acts, err := run(t, created, answered, ack, Event{Kind: EvTerminate, Side: tc.side, Reason: "operator"})
			require.NoError(t, err)
			assert.Equal(t, Terminated, f.State)
			var got []Side
			for _, a := range has(acts, ActSendBye) {
				got = append(got, a.Side)
				assert.Equal(t, "operator", a.Reason)
			}
			assert.Equal(t, tc.sides, got)
			require.Len(t, has(acts, ActArmByeWait), 1)
			assert.Equal(t, byeWait, has(acts, ActArmByeWait)[0].After)
			for i, s := range tc.sides {
				acts, err = f.Step(t0, Event{Kind: EvByeDone, Side: s})
				require.NoError(t, err)
				if i < len(tc.sides)-1 {
					assert.Empty(t, acts, "still waiting for the other BYE")
				}
			}
			assert.Equal(t, Deleted, f.State)
			assert.Equal(t, []Callback{CbTerminatedConfirmed, CbDestroy}, callbacks(acts))
		})
	}
}

func TestSeedImsDialog_TerminateEndedIsNotFound(t *testing.T) {
	for _, evs := range [][]Event{
		{created, {Kind: EvFailed, Code: 486}},
		{created, answered, ack, {Kind: EvRequest, Method: "BYE", FromCaller: true}},
	} {
		f, _, _ := run(t, evs...)
		acts, err := f.Step(t0, Event{Kind: EvTerminate})
		assert.ErrorIs(t, err, ErrNotFound)
		assert.Empty(t, acts)
	}
}

// default_timeout: a confirmed call gets BYE both ways (EXPIRED), an
// early one is cancelled.
func TestSeedImsDialog_DefaultTimeout(t *testing.T) {
	f, acts, _ := run(t, created, answered, ack, Event{Kind: EvTimeout})
	assert.Equal(t, EndExpired, f.End)
	assert.Len(t, has(acts, ActSendBye), 2)
	assert.Equal(t, []Callback{CbExpired}, callbacks(acts))

	f, acts, _ = run(t, created, ring, Event{Kind: EvTimeout})
	assert.Equal(t, EndExpired, f.End)
	require.Len(t, has(acts, ActCancelEarly), 1)
	assert.Equal(t, 408, has(acts, ActCancelEarly)[0].Code)

	// A late timer after the end does nothing.
	f, _, _ = run(t, created, Event{Kind: EvFailed, Code: 404})
	acts, err := f.Step(t0, Event{Kind: EvTimeout})
	assert.NoError(t, err)
	assert.Empty(t, acts)
}

// Races named in issue 4.
func TestSeedImsDialog_Races(t *testing.T) {
	t.Run("CANCEL crossing 200: the 2xx wins, the cancel is late", func(t *testing.T) {
		f, acts, _ := run(t, created, ring, answered, Event{Kind: EvCancelled})
		assert.Equal(t, ConfirmedNA, f.State)
		assert.Empty(t, acts)
	})
	t.Run("200 crossing our early termination is too late to confirm", func(t *testing.T) {
		f, acts, _ := run(t, created, ring, Event{Kind: EvTerminate}, answered)
		assert.Equal(t, Terminated, f.State)
		require.Len(t, has(acts, ActEndLeg), 1, "ACK and BYE that leg")
		assert.Empty(t, has(acts, ActStateChanged))
	})
	t.Run("2xx from two branches: the second leg is ended", func(t *testing.T) {
		f, acts, _ := run(t, created, ring, ring, answered, Event{Kind: EvOtherLegAnswered})
		assert.Equal(t, ConfirmedNA, f.State)
		require.Len(t, has(acts, ActEndLeg), 1)
		assert.Empty(t, callbacks(acts))
	})
	t.Run("retransmitted 2xx of the answering leg", func(t *testing.T) {
		_, acts, _ := run(t, created, answered, answered)
		assert.Empty(t, acts)
	})
	t.Run("timeout during early", func(t *testing.T) {
		f, _, _ := run(t, created, ring, Event{Kind: EvTimeout})
		assert.Equal(t, Terminated, f.State)
	})
	t.Run("BYE wait ends without replies", func(t *testing.T) {
		f, _, _ := run(t, created, answered, ack, Event{Kind: EvTerminate}, Event{Kind: EvByeDone, Side: SideCaller}, Event{Kind: EvByeDone, Side: SideCallee})
		assert.Equal(t, Deleted, f.State)
	})
	t.Run("party BYE whose reply never comes is deleted by the wait", func(t *testing.T) {
		f, _, _ := run(t, created, answered, ack, Event{Kind: EvRequest, Method: "BYE"}, Event{Kind: EvByeDone})
		assert.Equal(t, Deleted, f.State)
	})
}

func TestSeedImsDialog_Names(t *testing.T) {
	assert.Equal(t, "CONFIRMED_NA", ConfirmedNA.String())
	assert.Equal(t, "DELETED", Deleted.String())
	assert.Equal(t, "TERMINATED_CONFIRMED", CbTerminatedConfirmed.String())
	assert.NotEqual(t, CbSpiraled, CbTerminatedConfirmed, "own bit (DESIGN §8)")
	assert.Equal(t, "expired", EndExpired.String())
}

package imsdialog

import (
	"errors"
	"time"
)

// State is a dialog state, named as in the ims_dialog manual.
type State uint8

const (
	Unconfirmed State = iota + 1 // initial INVITE seen, no tagged reply yet
	Early                        // a 1xx with a To tag came back
	ConfirmedNA                  // a 2xx came back, the caller's ACK not yet
	Confirmed                    // the ACK of the 2xx passed
	Terminated                   // ended (BYE, failure, cancel, expiry, command)
	Deleted                      // gone from the table; only lingering references see it
)

var stateNames = [...]string{"", "UNCONFIRMED", "EARLY", "CONFIRMED_NA", "CONFIRMED", "TERMINATED", "DELETED"}

func (s State) String() string {
	if int(s) < len(stateNames) && s > 0 {
		return stateNames[s]
	}
	return "UNKNOWN"
}

// EndReason says why a dialog ended.
type EndReason uint8

const (
	NotEnded      EndReason = iota
	EndFailed               // the INVITE got a non-2xx final reply
	EndCancelled            // the caller cancelled the INVITE
	EndByeCaller            // the caller sent BYE
	EndByeCallee            // the callee sent BYE
	EndExpired              // default_timeout / per-dialog timeout
	EndTerminated           // dlg_terminate / management command
)

var endNames = [...]string{"", "failed", "cancelled", "bye_caller", "bye_callee", "expired", "terminated"}

func (r EndReason) String() string {
	if int(r) < len(endNames) {
		return endNames[r]
	}
	return "unknown"
}

// Callback is a dialog callback type (a bit, so a registration can cover
// several). TERMINATED_CONFIRMED has a bit of its own: in Kamailio it
// shares one with SPIRALED (DESIGN §8).
type Callback uint32

const (
	CbCreated Callback = 1 << iota
	CbSpiraled
	CbEarly
	CbConfirmedNA
	CbConfirmed
	CbReqWithin
	CbRplWithin
	CbFailed
	CbTerminated
	CbTerminatedConfirmed
	CbExpired
	CbDestroy
	CbMIContext
	CbResponseFwded
)

var cbNames = []struct {
	c    Callback
	name string
}{
	{CbCreated, "CREATED"}, {CbSpiraled, "SPIRALED"}, {CbEarly, "EARLY"}, {CbConfirmedNA, "CONFIRMED_NA"},
	{CbConfirmed, "CONFIRMED"}, {CbReqWithin, "REQ_WITHIN"}, {CbRplWithin, "RPL_WITHIN"}, {CbFailed, "FAILED"},
	{CbTerminated, "TERMINATED"}, {CbTerminatedConfirmed, "TERMINATED_CONFIRMED"}, {CbExpired, "EXPIRED"},
	{CbDestroy, "DESTROY"}, {CbMIContext, "MI_CONTEXT"}, {CbResponseFwded, "RESPONSE_FWDED"},
}

func (c Callback) String() string {
	for _, n := range cbNames {
		if n.c == c {
			return n.name
		}
	}
	return "MULTIPLE"
}

// Side selects the parties a termination reaches.
type Side uint8

const (
	SideBoth Side = iota
	SideCaller
	SideCallee
)

// EventKind is what happened to a dialog.
type EventKind uint8

const (
	EvCreated          EventKind = iota + 1 // the initial INVITE created the dialog
	EvSpiral                                // the INVITE came back through an AS
	EvProvisional                           // a 1xx with a To tag; NewLeg when its tag is new
	EvAnswered                              // a 2xx of the INVITE on the leg that answered first (or its retransmission)
	EvOtherLegAnswered                      // a 2xx of the INVITE on another leg than the answered one
	EvFailed                                // the INVITE's final reply is not 2xx (Code)
	EvCancelled                             // the caller cancelled the INVITE
	EvAck                                   // the ACK of the 2xx
	EvRequest                               // an in-dialog request (Method, FromCaller)
	EvReply                                 // a reply to an in-dialog request (Method, Code)
	EvTimeout                               // the dialog timer fired
	EvTerminate                             // dlg_terminate (Side, Code, Reason)
	EvByeDone                               // a BYE we sent got its final reply, or the BYE wait ended (Side)
)

// Event is fed to FSM.Step.
type Event struct {
	Kind       EventKind
	NewLeg     bool     // EvProvisional: first reply with this To tag
	Code       int      // EvFailed, EvReply; EvTerminate: final code for an early dialog (0: 487)
	Method     string   // EvRequest, EvReply
	FromCaller bool     // EvRequest: direction
	Side       Side     // EvTerminate, EvByeDone
	Reason     string   // EvTerminate: text for the Reason header
	Headers    []string // EvTerminate: extra "Name: value" lines for the BYEs / the final reply
}

// ActionKind is what the manager must do.
type ActionKind uint8

const (
	ActFire         ActionKind = iota + 1 // run the callbacks of Callback
	ActStateChanged                       // From -> To: statistics, E_DLG_STATE_CHANGED, persistence
	ActArmTimeout                         // (re)arm the dialog timer for After
	ActStopTimeout                        // stop the dialog timer
	ActCancelEarly                        // CANCEL every early leg, reply Code upstream, with Reason
	ActSendBye                            // BYE to Side (caller or callee), with Reason
	ActArmByeWait                         // bound the wait for the BYE replies
	ActDestroy                            // remove the dialog from the table
	ActEndLeg                             // ACK and BYE a leg that answered when it must not (second 2xx, 2xx after the end)
)

// Action is one instruction for the manager.
type Action struct {
	Kind     ActionKind
	Callback Callback
	From, To State
	After    time.Duration
	Side     Side
	Code     int
	Reason   string
	Headers  []string
}

// ErrNotFound answers a command on a dialog that has ended.
var ErrNotFound = errors.New("dialog not found")

// FSM is the life cycle of one dialog. The zero value is not usable: use
// NewFSM.
type FSM struct {
	State     State
	End       EndReason
	Start     time.Time // when the dialog was confirmed (2xx)
	Ended     time.Time
	Timeout   time.Duration // dialog lifetime after confirmation (default_timeout)
	ByeWait   time.Duration // how long BYEs we send may take
	byeCaller bool          // a BYE of ours to the caller awaits its reply
	byeCallee bool
	Created   time.Time
}

// NewFSM returns the machine of a dialog just created by an INVITE.
func NewFSM(now time.Time, timeout, byeWait time.Duration) *FSM {
	return &FSM{State: Unconfirmed, Created: now, Timeout: timeout, ByeWait: byeWait}
}

func (f *FSM) move(out []Action, now time.Time, to State) []Action {
	if f.State == to {
		return out
	}
	from := f.State
	f.State = to
	if to == Terminated {
		f.Ended = now
	}
	return append(out, Action{Kind: ActStateChanged, From: from, To: to})
}

func fire(out []Action, c Callback) []Action {
	return append(out, Action{Kind: ActFire, Callback: c})
}

// ended reports a state that takes no more call events.
func (f *FSM) ended() bool { return f.State == Terminated || f.State == Deleted }

// Step applies one event at time now and returns the manager's actions.
// Commands on an ended dialog return ErrNotFound.
func (f *FSM) Step(now time.Time, ev Event) ([]Action, error) {
	var out []Action
	switch ev.Kind {
	case EvCreated:
		// An early dialog expires too (it is then cancelled); the timer is
		// re-armed for the call's lifetime when it is answered.
		out = fire(out, CbCreated)
		return append(out, Action{Kind: ActArmTimeout, After: f.Timeout}), nil
	case EvSpiral:
		if f.ended() {
			return nil, ErrNotFound
		}
		return fire(out, CbSpiraled), nil
	case EvProvisional:
		if f.State != Unconfirmed && f.State != Early {
			return nil, nil // a late 1xx changes nothing
		}
		out = f.move(out, now, Early)
		if ev.NewLeg {
			out = fire(out, CbEarly)
		}
		return out, nil
	case EvAnswered:
		if f.ended() {
			// The callee answered as we ended the call: it has a session
			// nobody will use (DESIGN §8: handled, not mixed up).
			return append(out, Action{Kind: ActEndLeg, Reason: "call already ended"}), nil
		}
		if f.State != Unconfirmed && f.State != Early {
			return nil, nil // a retransmission of the answer
		}
		f.Start = now
		out = f.move(out, now, ConfirmedNA)
		out = fire(out, CbConfirmedNA)
		return append(out, Action{Kind: ActArmTimeout, After: f.Timeout}), nil
	case EvOtherLegAnswered:
		// Two forked callees answered: the call goes on with the first;
		// the second gets ACK then BYE.
		return append(out, Action{Kind: ActEndLeg, Reason: "call completed elsewhere"}), nil
	case EvFailed, EvCancelled:
		if f.State != Unconfirmed && f.State != Early {
			return nil, nil
		}
		f.End = EndFailed
		if ev.Kind == EvCancelled {
			f.End = EndCancelled
		}
		out = f.move(out, now, Terminated)
		out = fire(out, CbFailed)
		return append(out, Action{Kind: ActStopTimeout}, Action{Kind: ActDestroy}), nil
	case EvAck:
		if f.State != ConfirmedNA {
			if f.State == Confirmed {
				return fire(out, CbReqWithin), nil // ACK of a re-INVITE
			}
			return nil, nil
		}
		out = f.move(out, now, Confirmed)
		return fire(out, CbConfirmed), nil
	case EvRequest:
		if f.ended() {
			return nil, ErrNotFound
		}
		out = fire(out, CbReqWithin)
		if ev.Method != "BYE" {
			return out, nil
		}
		// A BYE ends the dialog at once, ACK seen or not (a BYE may
		// overtake the ACK).
		f.End = EndByeCallee
		if ev.FromCaller {
			f.End = EndByeCaller
		}
		out = f.move(out, now, Terminated)
		out = fire(out, CbTerminated)
		// The BYE's reply confirms the end; the wait bounds it.
		return append(out, Action{Kind: ActStopTimeout}, Action{Kind: ActArmByeWait, After: f.ByeWait}), nil
	case EvReply:
		out = fire(out, CbRplWithin)
		if ev.Method == "BYE" && f.State == Terminated && !f.byeCaller && !f.byeCallee {
			// The answer to the BYE that ended the dialog.
			out = fire(out, CbTerminatedConfirmed)
			out = f.move(out, now, Deleted)
			out = fire(out, CbDestroy)
			out = append(out, Action{Kind: ActDestroy})
		}
		return out, nil
	case EvTimeout:
		switch f.State {
		case Unconfirmed, Early:
			f.End = EndExpired
			out = f.move(out, now, Terminated)
			out = fire(out, CbExpired)
			return append(out, Action{Kind: ActCancelEarly, Code: 408, Reason: "dialog expired"}, Action{Kind: ActDestroy}), nil
		case ConfirmedNA, Confirmed:
			f.End = EndExpired
			out = f.move(out, now, Terminated)
			out = fire(out, CbExpired)
			return f.byes(out, SideBoth, "dialog expired", nil), nil
		}
		return nil, nil
	case EvTerminate:
		switch f.State {
		case Unconfirmed, Early:
			code := ev.Code
			if code == 0 {
				code = 487
			}
			f.End = EndTerminated
			out = f.move(out, now, Terminated)
			out = fire(out, CbTerminated)
			out = fire(out, CbFailed)
			return append(out, Action{Kind: ActCancelEarly, Code: code, Reason: ev.Reason, Headers: ev.Headers}, Action{Kind: ActDestroy}), nil
		case ConfirmedNA, Confirmed:
			f.End = EndTerminated
			out = f.move(out, now, Terminated)
			out = fire(out, CbTerminated)
			return f.byes(out, ev.Side, ev.Reason, ev.Headers), nil
		}
		return nil, ErrNotFound
	case EvByeDone:
		if ev.Side == SideCaller {
			f.byeCaller = false
		} else {
			f.byeCallee = false
		}
		if f.State != Terminated || f.byeCaller || f.byeCallee {
			return nil, nil
		}
		out = fire(out, CbTerminatedConfirmed)
		out = f.move(out, now, Deleted)
		out = fire(out, CbDestroy)
		return append(out, Action{Kind: ActDestroy}), nil
	}
	return nil, nil
}

// byes sends BYE to the chosen sides of a confirmed dialog and bounds the
// wait for their replies.
func (f *FSM) byes(out []Action, side Side, reason string, hdrs []string) []Action {
	out = append(out, Action{Kind: ActStopTimeout})
	if side == SideBoth || side == SideCaller {
		f.byeCaller = true
		out = append(out, Action{Kind: ActSendBye, Side: SideCaller, Reason: reason, Headers: hdrs})
	}
	if side == SideBoth || side == SideCallee {
		f.byeCallee = true
		out = append(out, Action{Kind: ActSendBye, Side: SideCallee, Reason: reason, Headers: hdrs})
	}
	return append(out, Action{Kind: ActArmByeWait, After: f.ByeWait})
}

package imsdialog

import (
	"fmt"
	"strings"
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

// ParseState reads a state name (any case), as String writes it.
func ParseState(name string) (State, bool) {
	for i, n := range stateNames {
		if i > 0 && strings.EqualFold(n, name) {
			return State(i), true
		}
	}
	return 0, false
}

func (s State) String() string {
	if int(s) < len(stateNames) && s > 0 {
		return stateNames[s]
	}
	return "UNKNOWN"
}

// EndReason says why a dialog ended.
type EndReason uint8

const (
	NotEnded       EndReason = iota
	EndFailed                // the INVITE got a non-2xx final reply
	EndCancelled             // the caller cancelled the INVITE
	EndByeCaller             // the caller sent BYE
	EndByeCallee             // the callee sent BYE
	EndExpired               // default_timeout / per-dialog timeout
	EndTerminated            // dlg_terminate / management command
	EndPingTimeout           // an in-dialog OPTIONS ping got 408, 481 or no answer
	EndNoACK                 // answered, but the caller's ACK never came (ack_timeout)
	EndRace                  // answered across the caller's CANCEL (end_races, race_condition_timeout)
)

var endNames = [...]string{"", "failed", "cancelled", "bye_caller", "bye_callee", "expired", "terminated", "ping_timeout", "no_ack",
	"race_condition"}

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
	// CbLoaded (DLGCB_LOADED): the dialog was restored from the dialog
	// store at start (db_mode); register it globally.
	CbLoaded
	// CbSaved (DLGCB_SAVED): the dialog's record was written to the
	// dialog store; it runs on the persister's goroutine.
	CbSaved
)

var cbNames = []struct {
	c    Callback
	name string
}{
	{CbCreated, "CREATED"}, {CbSpiraled, "SPIRALED"}, {CbEarly, "EARLY"}, {CbConfirmedNA, "CONFIRMED_NA"},
	{CbConfirmed, "CONFIRMED"}, {CbReqWithin, "REQ_WITHIN"}, {CbRplWithin, "RPL_WITHIN"}, {CbFailed, "FAILED"},
	{CbTerminated, "TERMINATED"}, {CbTerminatedConfirmed, "TERMINATED_CONFIRMED"}, {CbExpired, "EXPIRED"},
	{CbDestroy, "DESTROY"}, {CbMIContext, "MI_CONTEXT"}, {CbResponseFwded, "RESPONSE_FWDED"},
	{CbLoaded, "LOADED"}, {CbSaved, "SAVED"},
}

func (c Callback) String() string {
	for _, n := range cbNames {
		if n.c == c {
			return n.name
		}
	}
	return "MULTIPLE"
}

// Ping selects the parties of a confirmed dialog the module sends
// in-dialog OPTIONS to, every options_ping_interval (OpenSIPS dialog's
// create_dialog flags P and p).
type Ping uint8

const (
	PingNone   Ping = 0
	PingCaller Ping = 1 << 0
	PingCallee Ping = 1 << 1
	PingBoth        = PingCaller | PingCallee
)

var pingNames = map[string]Ping{"none": PingNone, "caller": PingCaller, "callee": PingCallee, "both": PingBoth}

// ParsePing reads the dialog.ping setting: none, caller, callee or both.
func ParsePing(s string) (Ping, error) {
	if p, ok := pingNames[strings.ToLower(s)]; ok {
		return p, nil
	}
	return 0, fmt.Errorf("unknown ping side %q (want none, caller, callee or both)", s)
}

func (p Ping) String() string {
	for n, v := range pingNames {
		if v == p {
			return n
		}
	}
	return "unknown"
}

// Side selects the parties a termination reaches.
type Side uint8

const (
	SideBoth Side = iota
	SideCaller
	SideCallee
)

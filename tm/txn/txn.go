package txn

import (
	"math"
	"time"
)

// Kind is which of the four §17 state machines a transaction runs.
type Kind uint8

const (
	ClientInvite    Kind = iota + 1 // §17.1.1, with RFC 6026 §7.2 Accepted
	ClientNonInvite                 // §17.1.2
	ServerInvite                    // §17.2.1, with RFC 6026 §7.1 Accepted
	ServerNonInvite                 // §17.2.2
)

var kindNames = [...]string{"invalid", "client-invite", "client-non-invite", "server-invite", "server-non-invite"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return kindNames[0]
}

// Client reports whether k is a client transaction.
func (k Kind) Client() bool { return k == ClientInvite || k == ClientNonInvite }

// Invite reports whether k is an INVITE transaction.
func (k Kind) Invite() bool { return k == ClientInvite || k == ServerInvite }

// State is the state of a transaction, named as in the RFC figures.
type State uint8

const (
	Idle       State = iota // a client transaction before EvSendRequest
	Calling                 // client INVITE: request sent, nothing heard
	Trying                  // non-INVITE: client sent the request / server got it
	Proceeding              // a provisional response went by (server INVITE starts here)
	Completed               // a final response went by: absorbing retransmissions
	Confirmed               // server INVITE: the ACK of the non-2xx final came
	Accepted                // INVITE: a 2xx went by (RFC 6026)
	Terminated              // the owner removes the transaction
)

var stateNames = [...]string{"idle", "calling", "trying", "proceeding", "completed", "confirmed", "accepted", "terminated"}

func (s State) String() string {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return "invalid"
}

// TimerID names a timer of RFC 3261 §17 or RFC 6026. There is no Timer C:
// that is the proxy core's (§16.6 step 11), kept by the response context.
type TimerID uint8

const (
	TimerA TimerID = iota + 1 // client INVITE request retransmission (T1, doubling)
	TimerB                    // client INVITE timeout in Calling (64*T1)
	TimerD                    // client INVITE Completed: absorb final retransmissions
	TimerE                    // client non-INVITE request retransmission (T1 doubling, capped at T2)
	TimerF                    // client non-INVITE timeout (64*T1)
	TimerG                    // server INVITE final response retransmission (T1 doubling, capped at T2)
	TimerH                    // server INVITE: wait for the ACK (64*T1)
	TimerI                    // server INVITE Confirmed: absorb ACK retransmissions (T4)
	TimerJ                    // server non-INVITE Completed: absorb request retransmissions (64*T1, Linger)
	TimerK                    // client non-INVITE Completed: absorb response retransmissions (T4)
	TimerL                    // server INVITE Accepted (RFC 6026, 64*T1, Linger)
	TimerM                    // client INVITE Accepted (RFC 6026, 64*T1, Linger)
)

var timerNames = [...]string{"-", "A", "B", "D", "E", "F", "G", "H", "I", "J", "K", "L", "M"}

func (id TimerID) String() string {
	if int(id) < len(timerNames) {
		return "Timer " + timerNames[id]
	}
	return "Timer ?"
}

// Retransmission reports whether id is a retransmission timer (A, E, G).
// A transaction has at most one of those and one other timer pending.
func (id TimerID) Retransmission() bool { return id == TimerA || id == TimerE || id == TimerG }

// EventKind is what happened to a transaction.
type EventKind uint8

const (
	_                EventKind = iota
	EvSendRequest              // client: the owner sends the request; starts the transaction
	EvRecvResponse             // client: a response matching the transaction arrived (Code)
	EvRecvRequest              // server: a retransmission of the request arrived
	EvRecvACK                  // server INVITE: an ACK matching the transaction arrived
	EvSendResponse             // server: the TU sends a response (Code)
	EvTimer                    // a timer fired (Timer, Gen as armed)
	EvTransportError           // the transport failed to send for this transaction
	EvCancelSent               // client INVITE: the owner sent a CANCEL for it (§9.1)
)

var eventNames = [...]string{"none", "send-request", "recv-response", "recv-request", "recv-ack", "send-response", "timer", "transport-error", "cancel-sent"}

func (k EventKind) String() string {
	if int(k) < len(eventNames) {
		return eventNames[k]
	}
	return "invalid"
}

// Event is one input of Step.
type Event struct {
	Kind  EventKind
	Code  int     // EvRecvResponse, EvSendResponse: the status code
	Timer TimerID // EvTimer
	Gen   uint32  // EvTimer: the generation of the ActArmTimer that armed it
}

// ActionKind is what the owner must do.
type ActionKind uint8

const (
	_ ActionKind = iota
	// ActSendRequest: pass the request to the transport (first time).
	ActSendRequest
	// ActResendRequest: pass the same request to the transport again
	// (Timer A or E).
	ActResendRequest
	// ActSendACK: build the ACK of the non-2xx final (Code) as §17.1.1.3
	// says, keep it, and send it where the request went.
	ActSendACK
	// ActResendACK: send the kept ACK again: the final was retransmitted.
	ActResendACK
	// ActSendResponse: send the response the TU passed (Code) and keep it
	// as the last response.
	ActSendResponse
	// ActResendResponse: send the last response again (a retransmitted
	// request, or Timer G).
	ActResendResponse
	// ActPassProvisional: pass the 1xx (Code) to the TU.
	ActPassProvisional
	// ActPassFinal: pass the first final response (Code) to the TU; at
	// most once per client transaction.
	ActPassFinal
	// ActPass2xxRetransmission: a further 2xx (Code) in Accepted: a
	// retransmission, or the 2xx of another UAS the request forked to
	// downstream (compare To tags). A proxy forwards it (§16.7 step 5).
	ActPass2xxRetransmission
	// ActPassACK: pass the ACK up: server INVITE in Accepted, where it is
	// the ACK of a 2xx, a transaction of its own that the proxy relays.
	ActPassACK
	// ActArmTimer: arm Timer to fire After from now; hand Gen back in
	// EvTimer.
	ActArmTimer
	// ActStopTimer: the pending Timer (of generation Gen) is not needed any
	// more. Stopping is an optimisation: a late firing is ignored.
	ActStopTimer
	// ActTimeout: Timer (B, F or H) fired without the awaited message.
	// Client: the TU answers the branch with 408 (§16.7 step 6 treats it as
	// a 408). Server INVITE: the ACK never came (§17.2.1).
	ActTimeout
	// ActTransportError: tell the TU the transport failed (§17.1.4,
	// §17.2.4 as updated by RFC 6026 §8.8).
	ActTransportError
	// ActTerminated: the transaction is over; remove it from the table.
	// Always the last action of its Step.
	ActTerminated
)

var actionNames = [...]string{"none", "send-request", "resend-request", "send-ack", "resend-ack", "send-response", "resend-response",
	"pass-provisional", "pass-final", "pass-2xx-retransmission", "pass-ack", "arm-timer", "stop-timer", "timeout", "transport-error", "terminated"}

func (k ActionKind) String() string {
	if int(k) < len(actionNames) {
		return actionNames[k]
	}
	return "invalid"
}

// Action is one output of Step.
type Action struct {
	Kind  ActionKind
	Timer TimerID // ActArmTimer, ActStopTimer, ActTimeout
	// N is which retransmission ActResendRequest is (1: the first, after
	// T1), saturating at 62.
	N     uint8
	Gen   uint32        // ActArmTimer, ActStopTimer
	After time.Duration // ActArmTimer
	Code  int           // ActSendACK, ActSendResponse, ActPass*: the status code
}

// MaxActions bounds the actions of one Step: an out buffer with this much
// spare capacity never grows.
const MaxActions = 6

// RFC 3261 defaults (Table 4).
const (
	DefaultT1 = 500 * time.Millisecond
	DefaultT2 = 4 * time.Second
	DefaultT4 = 5 * time.Second
	// MinTimerD is the floor of Timer D on unreliable transports: the
	// client cannot know the server's T1 (§17.1.1.2).
	MinTimerD = 32 * time.Second
)

// Timers are the durations of the state machines. Zero fields take the RFC
// defaults; see Duration for every timer.
type Timers struct {
	T1 time.Duration // RTT estimate; default 500ms
	T2 time.Duration // cap of E and G; default 4s
	T4 time.Duration // time a message lives in the network: I and K; default 5s
	// TimerB is how long a client INVITE waits in Calling (no response at
	// all) before giving up; default 64*T1. The proxy sets it to fr_timeout.
	TimerB time.Duration
	// TimerF is how long a client non-INVITE waits for a final; default
	// 64*T1. The proxy sets it to fr_timeout.
	TimerF time.Duration
	// TimerD is how long a client INVITE absorbs final retransmissions on
	// unreliable transports; default max(32s, 64*T1). OpenSIPS' wt_timer.
	TimerD time.Duration
	// Linger is how long a transaction that completed stays to absorb
	// retransmissions: Timer J (unreliable transports only) and Timers L
	// and M (RFC 6026); default 64*T1. A proxy sets it to OpenSIPS'
	// wt_timer (5 s), which trades the RFC's 32 s for memory: every
	// answered call holds its transactions that long.
	Linger time.Duration
}

// WithDefaults returns t with every zero field set to its RFC default.
func (t Timers) WithDefaults() Timers {
	if t.T1 <= 0 {
		t.T1 = DefaultT1
	}
	if t.T2 <= 0 {
		t.T2 = DefaultT2
	}
	if t.T4 <= 0 {
		t.T4 = DefaultT4
	}
	if t.TimerB <= 0 {
		t.TimerB = 64 * t.T1
	}
	if t.TimerF <= 0 {
		t.TimerF = 64 * t.T1
	}
	if t.TimerD <= 0 {
		t.TimerD = max(MinTimerD, 64*t.T1)
	}
	if t.Linger <= 0 {
		t.Linger = 64 * t.T1
	}
	return t
}

// Duration is the first value of timer id (for A, E and G, the first
// interval) on a reliable or unreliable transport. Zero means the timer is
// not used: retransmissions are off on reliable transports, and D, I, J
// and K are zero there (the RFC's "zero seconds for reliable transports").
func (t Timers) Duration(id TimerID, reliable bool) time.Duration {
	t = t.WithDefaults()
	switch id {
	case TimerA, TimerE, TimerG:
		if reliable {
			return 0
		}
		return t.T1
	case TimerB:
		return t.TimerB
	case TimerF:
		return t.TimerF
	case TimerH:
		return 64 * t.T1
	case TimerL, TimerM:
		return t.Linger
	case TimerD:
		if reliable {
			return 0
		}
		return t.TimerD
	case TimerI, TimerK:
		if reliable {
			return 0
		}
		return t.T4
	case TimerJ:
		if reliable {
			return 0
		}
		return t.Linger
	}
	return 0
}

// Tx is one transaction: a pure state machine. Keep it by value in the
// owner's table entry; it holds no pointers.
type Tx struct {
	t1, t2  time.Duration
	timeout time.Duration // B, F or H
	wait    time.Duration // D, K, I or J: zero on reliable transports
	linger  time.Duration // L or M

	kind     Kind
	state    State
	reliable bool
	// provisional: the server sent a 1xx, so a retransmitted request gets
	// the last one again (§17.2.1, §17.2.2).
	provisional bool
	backoff     uint8   // retransmissions done: A, E, G wait T1<<backoff
	rt, lt      TimerID // pending retransmission and lifetime timers; 0 = none
	rtGen       uint32
	ltGen       uint32
}

// New returns a transaction of kind k. A client transaction starts Idle and
// begins with EvSendRequest; a server one starts in Proceeding (INVITE) or
// Trying (non-INVITE), the request already handed to the TU.
func New(k Kind, reliable bool, timers Timers) Tx {
	t := timers.WithDefaults()
	tx := Tx{t1: t.T1, t2: t.T2, linger: t.Linger, kind: k, reliable: reliable}
	switch k {
	case ClientInvite:
		tx.timeout = t.TimerB
		tx.wait = t.TimerD
	case ClientNonInvite:
		tx.timeout = t.TimerF
		tx.wait = t.T4
	case ServerInvite:
		tx.timeout = 64 * t.T1
		tx.wait = t.T4
		tx.state = Proceeding
	case ServerNonInvite:
		tx.wait = t.Linger
		tx.state = Trying
	}
	if reliable {
		tx.wait = 0
	}
	return tx
}

// Kind returns the kind of the transaction.
func (t *Tx) Kind() Kind { return t.kind }

// State returns the current state.
func (t *Tx) State() State { return t.state }

// Reliable reports whether the transaction runs over a reliable transport.
func (t *Tx) Reliable() bool { return t.reliable }

// Pending returns the pending timers: the retransmission timer and the
// lifetime timer, 0 for none.
func (t *Tx) Pending() (retransmission, lifetime TimerID) { return t.rt, t.lt }

// Step applies ev and appends to out what the owner must do, in order (see
// the package documentation). It never allocates when out has MaxActions
// spare capacity. Events a state does not take are ignored: they append
// nothing.
func (t *Tx) Step(ev Event, out []Action) []Action {
	if t.state == Terminated {
		return out
	}
	switch ev.Kind {
	case EvTimer:
		return t.onTimer(ev, out)
	case EvTransportError:
		return t.onTransportError(out)
	}
	switch t.kind {
	case ClientInvite:
		return t.stepClientInvite(ev, out)
	case ClientNonInvite:
		return t.stepClientNonInvite(ev, out)
	case ServerInvite:
		return t.stepServerInvite(ev, out)
	case ServerNonInvite:
		return t.stepServerNonInvite(ev, out)
	}
	return out
}

// stepClientInvite is Figure 5 of §17.1.1.2 with RFC 6026 §7.2.
func (t *Tx) stepClientInvite(ev Event, out []Action) []Action {
	switch ev.Kind {
	case EvSendRequest:
		if t.state != Idle {
			return out
		}
		t.state = Calling
		out = append(out, Action{Kind: ActSendRequest})
		if !t.reliable {
			out = t.armRT(out, TimerA, t.t1)
		}
		return t.armLT(out, TimerB, t.timeout)
	case EvCancelSent:
		// §9.1: without a final 64*T1 after the CANCEL, the client
		// transaction is destroyed. In Calling Timer B already runs (and
		// §9.1 holds the CANCEL until a provisional anyway).
		if t.state == Proceeding && t.lt == 0 {
			return t.armLT(out, TimerB, t.timeout)
		}
		return out
	case EvRecvResponse:
	default:
		return out
	}
	code := ev.Code
	if code < 100 || code > 699 {
		return out
	}
	switch t.state {
	case Calling, Proceeding:
		switch {
		case code < 200:
			if t.state == Calling {
				// Retransmissions stop and Timer B belongs to Calling
				// only: from here the TU's Timer C decides (§16.6).
				out = t.stopRT(out)
				out = t.stopLT(out)
				t.state = Proceeding
			}
			return append(out, Action{Kind: ActPassProvisional, Code: code})
		case code < 300:
			// RFC 6026 §7.2: stay Accepted for Timer M so that the 2xx
			// retransmissions, and the 2xx of other forks, are passed up
			// rather than taken for strays.
			out = t.stopRT(out)
			out = t.stopLT(out)
			t.state = Accepted
			out = t.armLT(out, TimerM, t.linger)
			return append(out, Action{Kind: ActPassFinal, Code: code})
		default:
			// The ACK is sent even on reliable transports (§17.1.1.2).
			out = t.stopRT(out)
			out = t.stopLT(out)
			t.state = Completed
			out = append(out, Action{Kind: ActSendACK, Code: code})
			if t.wait > 0 {
				out = t.armLT(out, TimerD, t.wait)
			}
			out = append(out, Action{Kind: ActPassFinal, Code: code})
			if t.wait == 0 {
				out = t.terminate(out)
			}
			return out
		}
	case Completed:
		// A retransmitted final: the ACK was lost. It is not passed up.
		if code >= 300 {
			return append(out, Action{Kind: ActResendACK, Code: code})
		}
	case Accepted:
		if code >= 200 && code < 300 {
			return append(out, Action{Kind: ActPass2xxRetransmission, Code: code})
		}
	}
	return out
}

// stepClientNonInvite is Figure 6 of §17.1.2.2.
func (t *Tx) stepClientNonInvite(ev Event, out []Action) []Action {
	switch ev.Kind {
	case EvSendRequest:
		if t.state != Idle {
			return out
		}
		t.state = Trying
		out = append(out, Action{Kind: ActSendRequest})
		if !t.reliable {
			out = t.armRT(out, TimerE, t.t1)
		}
		return t.armLT(out, TimerF, t.timeout)
	case EvRecvResponse:
	default:
		return out
	}
	code := ev.Code
	if code < 100 || code > 699 {
		return out
	}
	switch t.state {
	case Trying, Proceeding:
		if code < 200 {
			// Timer E keeps its schedule; it resets to T2 when it next
			// fires in Proceeding.
			t.state = Proceeding
			return append(out, Action{Kind: ActPassProvisional, Code: code})
		}
		out = t.stopRT(out)
		out = t.stopLT(out)
		t.state = Completed
		if t.wait > 0 {
			out = t.armLT(out, TimerK, t.wait)
		}
		out = append(out, Action{Kind: ActPassFinal, Code: code})
		if t.wait == 0 {
			out = t.terminate(out)
		}
	}
	// Completed: every response is a retransmission, absorbed.
	return out
}

// stepServerInvite is Figure 7 of §17.2.1 with RFC 6026 §7.1.
func (t *Tx) stepServerInvite(ev Event, out []Action) []Action {
	switch ev.Kind {
	case EvRecvRequest:
		switch t.state {
		case Proceeding:
			if t.provisional {
				return append(out, Action{Kind: ActResendResponse})
			}
		case Completed:
			return append(out, Action{Kind: ActResendResponse})
		}
		// Confirmed, Accepted: absorbed. In Accepted the 2xx is the TU's
		// to retransmit (RFC 6026 §7.1); passing the INVITE up would make
		// it a new request.
		return out
	case EvRecvACK:
		switch t.state {
		case Completed:
			out = t.stopRT(out)
			out = t.stopLT(out)
			t.state = Confirmed
			if t.wait > 0 {
				return t.armLT(out, TimerI, t.wait)
			}
			return t.terminate(out)
		case Accepted:
			// The ACK of a 2xx (an RFC 2543 UA may reuse the INVITE's
			// branch, or a UA its cookie branch): the proxy relays it.
			return append(out, Action{Kind: ActPassACK})
		}
		// Proceeding: no final was sent, nothing to acknowledge.
		// Confirmed: an ACK retransmission, absorbed.
		return out
	case EvSendResponse:
	default:
		return out
	}
	code := ev.Code
	if code < 100 || code > 699 {
		return out
	}
	switch t.state {
	case Proceeding:
		out = append(out, Action{Kind: ActSendResponse, Code: code})
		switch {
		case code < 200:
			t.provisional = true
		case code < 300:
			t.state = Accepted
			out = t.armLT(out, TimerL, t.linger)
		default:
			t.state = Completed
			if !t.reliable {
				out = t.armRT(out, TimerG, t.t1)
			}
			out = t.armLT(out, TimerH, t.timeout)
		}
	case Accepted:
		// The TU retransmits its 2xx, or forwards the 2xx of another
		// branch (§16.7 step 5); the transaction never does on its own.
		if code >= 200 && code < 300 {
			out = append(out, Action{Kind: ActSendResponse, Code: code})
		}
	}
	// Completed, Confirmed: the final is sent; others are discarded. A 2xx
	// left here is for the proxy to forward statelessly (§16.7 step 9).
	return out
}

// stepServerNonInvite is Figure 8 of §17.2.2.
func (t *Tx) stepServerNonInvite(ev Event, out []Action) []Action {
	switch ev.Kind {
	case EvRecvRequest:
		if t.state == Proceeding || t.state == Completed {
			return append(out, Action{Kind: ActResendResponse})
		}
		// Trying: nothing to resend yet; the retransmission is discarded.
		return out
	case EvSendResponse:
	default:
		return out
	}
	code := ev.Code
	if code < 100 || code > 699 {
		return out
	}
	if t.state != Trying && t.state != Proceeding {
		return out // Completed: other finals are discarded
	}
	out = append(out, Action{Kind: ActSendResponse, Code: code})
	if code < 200 {
		t.state = Proceeding
		t.provisional = true
		return out
	}
	t.state = Completed
	if t.wait > 0 {
		return t.armLT(out, TimerJ, t.wait)
	}
	return t.terminate(out)
}

func (t *Tx) onTimer(ev Event, out []Action) []Action {
	switch {
	case ev.Timer != 0 && ev.Timer == t.rt && ev.Gen == t.rtGen:
		t.rt = 0
	case ev.Timer != 0 && ev.Timer == t.lt && ev.Gen == t.ltGen:
		t.lt = 0
	default:
		return out // stale (re-armed or stopped since) or never armed
	}
	switch ev.Timer {
	case TimerA:
		// §17.1.1.2: the interval doubles after each transmission, with no
		// cap: Timer B ends it.
		t.bump()
		out = append(out, Action{Kind: ActResendRequest, N: t.backoff})
		return t.armRT(out, TimerA, shift(t.t1, t.backoff))
	case TimerE:
		// §17.1.2.2: MIN(2^n*T1, T2) in Trying, T2 in Proceeding.
		t.bump()
		d := t.t2
		if t.state == Trying {
			d = min(shift(t.t1, t.backoff), t.t2)
		}
		out = append(out, Action{Kind: ActResendRequest, N: t.backoff})
		return t.armRT(out, TimerE, d)
	case TimerG:
		// §17.2.1: as E in Trying.
		t.bump()
		out = append(out, Action{Kind: ActResendResponse})
		return t.armRT(out, TimerG, min(shift(t.t1, t.backoff), t.t2))
	case TimerB, TimerF, TimerH:
		// No ACK is generated for a timeout (§17.1.1.2).
		out = t.stopRT(out)
		out = append(out, Action{Kind: ActTimeout, Timer: ev.Timer})
		return t.terminate(out)
	default: // D, I, J, K, L, M: the absorbing is over
		return t.terminate(out)
	}
}

func (t *Tx) onTransportError(out []Action) []Action {
	switch t.kind {
	case ClientInvite, ClientNonInvite:
		switch t.state {
		case Idle, Calling, Trying, Proceeding:
		case Completed:
			if t.kind == ClientNonInvite {
				return out // nothing is sent in Completed (Figure 6)
			}
			// The ACK could not be sent (Figure 5).
		default:
			// Accepted: the transaction sends nothing; the 2xx is up.
			return out
		}
		out = t.stopRT(out)
		out = t.stopLT(out)
		out = append(out, Action{Kind: ActTransportError})
		return t.terminate(out)
	case ServerInvite, ServerNonInvite:
		// RFC 6026 §8.8: inform the TU and MUST remain in the current
		// state; retransmitted requests are still absorbed.
		return append(out, Action{Kind: ActTransportError})
	}
	return out
}

// terminate ends the transaction with ActTerminated. Callers stop the
// pending timers before their wire and TU actions (the order of the package
// documentation); the stops here only make sure nothing stays pending.
func (t *Tx) terminate(out []Action) []Action {
	out = t.stopRT(out)
	out = t.stopLT(out)
	t.state = Terminated
	return append(out, Action{Kind: ActTerminated})
}

func (t *Tx) armRT(out []Action, id TimerID, d time.Duration) []Action {
	t.rtGen++
	t.rt = id
	return append(out, Action{Kind: ActArmTimer, Timer: id, Gen: t.rtGen, After: d})
}

func (t *Tx) armLT(out []Action, id TimerID, d time.Duration) []Action {
	t.ltGen++
	t.lt = id
	return append(out, Action{Kind: ActArmTimer, Timer: id, Gen: t.ltGen, After: d})
}

func (t *Tx) stopRT(out []Action) []Action {
	if t.rt == 0 {
		return out
	}
	out = append(out, Action{Kind: ActStopTimer, Timer: t.rt, Gen: t.rtGen})
	t.rt = 0
	return out
}

func (t *Tx) stopLT(out []Action) []Action {
	if t.lt == 0 {
		return out
	}
	out = append(out, Action{Kind: ActStopTimer, Timer: t.lt, Gen: t.ltGen})
	t.lt = 0
	return out
}

// bump counts a retransmission; it saturates where shift does.
func (t *Tx) bump() {
	if t.backoff < 62 {
		t.backoff++
	}
}

// shift is d*2^n, saturating instead of overflowing (Timer A has no cap,
// and Timer B may be set long).
func shift(d time.Duration, n uint8) time.Duration {
	if n >= 62 || d > math.MaxInt64>>n {
		return math.MaxInt64
	}
	return d << n
}

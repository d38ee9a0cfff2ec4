package txn

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

const (
	t1 = 500 * time.Millisecond
	t2 = 4 * time.Second
	t4 = 5 * time.Second
)

// owner plays the transaction's owner: it keeps the pending timers the way
// a wheel would (one entry per timer, with the generation it was armed
// with) and checks the rules every action list must follow.
type owner struct {
	tb      testing.TB
	tx      Tx
	pending map[TimerID]Action
	// what the owner did, for assertions across steps
	terminated int
	passFinal  int
	log        []Action
}

func newOwner(tb testing.TB, k Kind, reliable bool) *owner {
	return newOwnerTimers(tb, k, reliable, Timers{})
}

func newOwnerTimers(tb testing.TB, k Kind, reliable bool, tm Timers) *owner {
	return &owner{tb: tb, tx: New(k, reliable, tm), pending: map[TimerID]Action{}}
}

// phase orders the actions of one Step (package documentation).
func phase(k ActionKind) int {
	switch k {
	case ActStopTimer:
		return 0
	case ActSendRequest, ActResendRequest, ActSendACK, ActResendACK, ActSendResponse, ActResendResponse:
		return 1
	case ActArmTimer:
		return 2
	case ActTerminated:
		return 4
	default:
		return 3
	}
}

// check applies acts to the owner's timers and reports the first broken
// rule, "" if none.
func (o *owner) check(acts []Action) string {
	if len(acts) > MaxActions {
		return fmt.Sprintf("%d actions, more than MaxActions", len(acts))
	}
	if o.terminated > 0 && len(acts) > 0 {
		return fmt.Sprintf("actions after Terminated: %v", kinds(acts))
	}
	last := -1
	for i, a := range acts {
		if p := phase(a.Kind); p < last {
			return fmt.Sprintf("action %d (%v) out of order in %v", i, a.Kind, kinds(acts))
		} else {
			last = p
		}
		switch a.Kind {
		case ActArmTimer:
			if a.After <= 0 {
				return fmt.Sprintf("%v armed with %v", a.Timer, a.After)
			}
			for id := range o.pending {
				if id.Retransmission() == a.Timer.Retransmission() {
					return fmt.Sprintf("%v armed while %v pends in its slot", a.Timer, id)
				}
			}
			o.pending[a.Timer] = a
		case ActStopTimer:
			p, ok := o.pending[a.Timer]
			if !ok || p.Gen != a.Gen {
				return fmt.Sprintf("stop of %v gen %d that is not pending", a.Timer, a.Gen)
			}
			delete(o.pending, a.Timer)
		case ActTerminated:
			o.terminated++
			if i != len(acts)-1 {
				return "Terminated is not the last action"
			}
		case ActPassFinal:
			o.passFinal++
		}
	}
	o.log = append(o.log, acts...)
	st := o.tx.State()
	if (st == Terminated) != (o.terminated > 0) {
		return fmt.Sprintf("state %v after %d ActTerminated", st, o.terminated)
	}
	if o.terminated > 1 {
		return "ActTerminated twice"
	}
	for id := range o.pending {
		if !owns(o.tx.Kind(), st, id) {
			return fmt.Sprintf("%v pending in %v %v", id, o.tx.Kind(), st)
		}
		if o.tx.Reliable() && (id.Retransmission() || id == TimerD || id == TimerI || id == TimerJ || id == TimerK) {
			return fmt.Sprintf("%v pending on a reliable transport", id)
		}
	}
	rt, lt := o.tx.Pending()
	for _, id := range []TimerID{rt, lt} {
		if _, ok := o.pending[id]; id != 0 && !ok {
			return fmt.Sprintf("tx says %v pends, the owner has no such timer", id)
		}
	}
	if n := len(o.pending); n != btoi(rt != 0)+btoi(lt != 0) {
		return fmt.Sprintf("owner has %d timers pending, tx %v/%v", n, rt, lt)
	}
	return ""
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// owns reports whether a timer may pend in a state (the RFC figures).
func owns(k Kind, s State, id TimerID) bool {
	var ids []TimerID
	switch k {
	case ClientInvite:
		switch s {
		case Calling:
			ids = []TimerID{TimerA, TimerB}
		case Proceeding:
			ids = []TimerID{TimerB} // only after EvCancelSent
		case Completed:
			ids = []TimerID{TimerD}
		case Accepted:
			ids = []TimerID{TimerM}
		}
	case ClientNonInvite:
		switch s {
		case Trying, Proceeding:
			ids = []TimerID{TimerE, TimerF}
		case Completed:
			ids = []TimerID{TimerK}
		}
	case ServerInvite:
		switch s {
		case Completed:
			ids = []TimerID{TimerG, TimerH}
		case Confirmed:
			ids = []TimerID{TimerI}
		case Accepted:
			ids = []TimerID{TimerL}
		}
	case ServerNonInvite:
		if s == Completed {
			ids = []TimerID{TimerJ}
		}
	}
	return slices.Contains(ids, id)
}

func (o *owner) step(ev Event) []Action {
	o.tb.Helper()
	acts := o.tx.Step(ev, nil)
	if msg := o.check(acts); msg != "" {
		o.tb.Fatalf("%v on %v: %s", ev.Kind, o.tx.Kind(), msg)
	}
	return acts
}

// fire fires a pending timer with the generation it was armed with.
func (o *owner) fire(id TimerID) []Action {
	o.tb.Helper()
	a, ok := o.pending[id]
	if !ok {
		o.tb.Fatalf("%v is not pending (pending: %v)", id, o.pending)
	}
	delete(o.pending, id)
	return o.step(Event{Kind: EvTimer, Timer: id, Gen: a.Gen})
}

func (o *owner) armed(id TimerID) (time.Duration, bool) {
	a, ok := o.pending[id]
	return a.After, ok
}

func kinds(acts []Action) []ActionKind {
	out := make([]ActionKind, len(acts))
	for i, a := range acts {
		out[i] = a.Kind
	}
	return out
}

func find(acts []Action, k ActionKind) []Action {
	var out []Action
	for _, a := range acts {
		if a.Kind == k {
			out = append(out, a)
		}
	}
	return out
}

// sig is a short form of an action list for table tests: kinds, with the
// timer of arms, stops and timeouts and the code of the others.
func sig(acts []Action) string {
	s := ""
	for i, a := range acts {
		if i > 0 {
			s += " "
		}
		s += a.Kind.String()
		switch a.Kind {
		case ActArmTimer:
			s += fmt.Sprintf("(%s=%v)", timerNames[a.Timer], a.After)
		case ActStopTimer, ActTimeout:
			s += "(" + timerNames[a.Timer] + ")"
		case ActSendACK, ActSendResponse, ActPassProvisional, ActPassFinal, ActPass2xxRetransmission:
			s += fmt.Sprintf("(%d)", a.Code)
		}
	}
	return s
}

func want(t *testing.T, got []Action, w string) {
	t.Helper()
	if g := sig(got); g != w {
		t.Fatalf("actions\n got: %s\nwant: %s", g, w)
	}
}

func resp(code int) Event    { return Event{Kind: EvRecvResponse, Code: code} }
func respond(code int) Event { return Event{Kind: EvSendResponse, Code: code} }

var (
	sendReq    = Event{Kind: EvSendRequest}
	recvReq    = Event{Kind: EvRecvRequest}
	recvACK    = Event{Kind: EvRecvACK}
	tpErr      = Event{Kind: EvTransportError}
	cancelSent = Event{Kind: EvCancelSent}
)

func reliableName(r bool) string {
	if r {
		return "reliable"
	}
	return "unreliable"
}

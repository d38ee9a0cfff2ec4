package tm

import (
	"time"

	"github.com/imsdlg/imsdlg/tm/txn"
	"github.com/imsdlg/imsdlg/tm/wheel"
)

// Clock is the time source of the proxy's own timers (fr_timeout,
// fr_inv_timeout, held CANCELs), so tests can drive them without sleeping.
type Clock interface {
	Now() time.Time
	AfterFunc(d time.Duration, f func()) Timer
}

// Timer is a pending AfterFunc. An alias of the unnamed interface, so a
// clock written without importing tm (a test clock) satisfies Clock.
type Timer = interface {
	Stop() bool
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) AfterFunc(d time.Duration, f func()) Timer { return time.AfterFunc(d, f) }

// armTx arms a transaction timer: with tm's wheel, the Entry embedded in
// the transaction, the transaction itself as the callback (no allocation
// per arming or per transaction); with any other clock (tests' fake
// clocks), AfterFunc. The timer and its generation travel in arg (txArg),
// so a firing that lost the race with a re-arming is told apart by the
// state machine.
func (p *Proxy) armTx(e *wheel.Entry, fr wheel.Firer, d time.Duration, id txn.TimerID, gen uint32) Timer {
	arg := uint64(id)<<32 | uint64(gen)
	if p.wheel != nil {
		p.wheel.ScheduleFirer(e, d, fr, arg)
		return e
	}
	return p.clock.AfterFunc(d, func() { fr.Fire(arg) })
}

// branchTimers is a Transaction as the Firer of its branches' timers
// (fr_timeout, fr_inv_timeout), without an exported Fire on Transaction.
type branchTimers Transaction

// Fire is a branch timer firing; arg is the branch and the generation of
// its arming.
func (b *branchTimers) Fire(arg uint64) {
	(*Transaction)(b).step(event{kind: evTimer, branch: int(arg >> 32), gen: uint32(arg)})
}

// armBranch arms the timer of branch i of t. On tm's wheel the branch's
// Entry is made once and re-armed (a branch's timer is re-armed by its
// first provisional: fr_timeout, then fr_inv_timeout); a closure and an
// Entry per arming were two allocations each.
func (p *Proxy) armBranch(t *Transaction, b *branchIO, i int, d time.Duration, gen uint32) {
	if p.wheel == nil {
		if b.timer != nil {
			b.timer.Stop()
		}
		b.timer = p.clock.AfterFunc(d, func() { t.step(event{kind: evTimer, branch: i, gen: gen}) })
		return
	}
	e, _ := b.timer.(*wheel.Entry)
	if e == nil {
		if b.timer != nil {
			b.timer.Stop()
		}
		e = new(wheel.Entry)
		b.timer = e
	}
	p.wheel.ScheduleFirer(e, d, (*branchTimers)(t), uint64(i)<<32|uint64(gen))
}

// txArg unpacks armTx's arg into a timer event.
func txArg(arg uint64) txn.Event {
	return txn.Event{Kind: txn.EvTimer, Timer: txn.TimerID(arg >> 32), Gen: uint32(arg)}
}

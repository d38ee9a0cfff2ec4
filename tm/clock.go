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
// the transaction and its one callback (no allocation per arming); with
// any other clock (tests' fake clocks), AfterFunc. The timer and its
// generation travel in arg (txArg), so a firing that lost the race with a
// re-arming is told apart by the state machine.
func (p *Proxy) armTx(e *wheel.Entry, f func(uint64), d time.Duration, id txn.TimerID, gen uint32) Timer {
	arg := uint64(id)<<32 | uint64(gen)
	if p.wheel != nil {
		p.wheel.ScheduleArg(e, d, f, arg)
		return e
	}
	return p.clock.AfterFunc(d, func() { f(arg) })
}

// txArg unpacks armTx's arg into a timer event.
func txArg(arg uint64) txn.Event {
	return txn.Event{Kind: txn.EvTimer, Timer: txn.TimerID(arg >> 32), Gen: uint32(arg)}
}

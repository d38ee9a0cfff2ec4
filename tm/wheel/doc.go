// Package wheel is a hashed timing wheel: one driver fires any number of
// timers, each scheduled and stopped in O(1) under one mutex, with no
// goroutine and no runtime timer per timer. A wheel made by New is on the
// real clock and driven by Run (one goroutine, one time.Ticker); a wheel
// made by NewAt is on a manual clock that only Advance moves, so tests of
// its users run timers of minutes without sleeping.
//
// It exists for tm's own transactions (issue 14): a proxy holds tens of
// thousands of them, each with a retransmission and a lifetime timer
// (RFC 3261 §17), and a runtime timer plus closure per arming is what the
// sipgo transaction layer spends. SIP timers need no more than millisecond
// precision and tolerate a tick of lateness; they need cheap arming and
// stopping, because most of them are stopped before they fire.
//
// Time is cut into ticks of a fixed length. A timer due at time t goes to
// the slot of tick ceil((t-start)/tick) modulo the number of slots; each
// entry remembers its absolute tick, so a duration longer than one
// revolution just stays in its slot for more revolutions. A timer never
// fires early: tick k is processed only once the driver's time reaches
// start+k*tick. Under normal load it fires at most one tick late.
//
// Two ways to schedule:
//   - Schedule(e, d, f) or ScheduleArg(e, d, f, arg) with an Entry the
//     caller embeds in its own struct (a transaction record holds two): no
//     allocation at all, and the caller may re-arm the same Entry for ever.
//     ScheduleArg hands arg back to f, so one func built per Entry serves
//     every arming and each firing knows which arming it belongs to;
//   - AfterFunc(d, f), the shape of time.AfterFunc and of tm's Clock: it
//     allocates the Entry it returns. Entries of AfterFunc are not pooled
//     on purpose: a handle kept after its timer fired must not stop a
//     stranger's timer.
//
// Callbacks run on the driving goroutine, one after the other, outside the
// wheel's lock: they may schedule and stop timers, their own included.
// They must not block (they hold up every other timer) and must not call
// Advance.
package wheel

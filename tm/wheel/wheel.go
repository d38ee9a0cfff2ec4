package wheel

import (
	"context"
	"errors"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// Timer is a pending AfterFunc. It is an alias of the unnamed interface so
// that *Wheel satisfies a clock interface declared elsewhere (tm.Clock)
// without either package importing the other.
type Timer = interface {
	Stop() bool
}

// Entry states.
const (
	idle   uint8 = iota // not scheduled, or fired, or stopped
	queued              // in a slot, waiting for its tick
	due                 // its tick came; in the due list, callback not started
)

// Entry is one timer. Embed it in the struct it times (its zero value is
// ready) and arm it with Wheel.Schedule; do not copy it once used. An
// Entry belongs to the last wheel that scheduled it; scheduling it on two
// wheels at the same time is not supported.
type Entry struct {
	next, prev *Entry
	w          atomic.Pointer[Wheel]
	fr         Firer // the callback (Schedule's func is wrapped: plainFunc)
	arg        uint64
	tick       uint64 // absolute tick it is due at
	state      uint8
}

// Firer is what ScheduleFirer calls when the timer fires, with the arg of
// its arming. A pointer to the struct the Entry is embedded in makes a
// Firer without allocating, where a method value or a closure per owner
// was an allocation of every transaction (issue 14).
type Firer interface {
	Fire(arg uint64)
}

// argFunc makes a func(uint64) a Firer, and plainFunc a func() (a func
// value is stored in an interface as it is: no allocation). One callback
// field per Entry: an Entry is 64 bytes, and a dialog embeds five.
type argFunc func(uint64)

func (f argFunc) Fire(arg uint64) { f(arg) }

type plainFunc func()

func (f plainFunc) Fire(uint64) { f() }

// Stop cancels the timer. It returns true when it stopped a pending timer:
// the callback has not started and will not run. It returns false when the
// timer was not pending: never scheduled, already stopped, or fired. When
// Stop races with the firing, exactly one side wins: either Stop returns
// true and the callback never runs, or Stop returns false and the callback
// has run, is running or is about to run on the driving goroutine (as with
// time.Timer.Stop, the caller cannot tell those three apart).
func (e *Entry) Stop() bool {
	w := e.w.Load()
	if w == nil {
		return false
	}
	w.mu.Lock()
	ok := w.remove(e)
	w.mu.Unlock()
	return ok
}

// Pending reports whether the timer is scheduled and its callback has not
// started.
func (e *Entry) Pending() bool {
	w := e.w.Load()
	if w == nil {
		return false
	}
	w.mu.Lock()
	ok := e.state != idle
	w.mu.Unlock()
	return ok
}

// Wheel is a hashed timing wheel. Its methods are safe for concurrent use;
// only one goroutine drives it (Run, or Advance calls, which serialise).
type Wheel struct {
	mu     sync.Mutex
	slots  []Entry // list heads
	due    Entry   // list head: entries whose tick came, callbacks pending
	mask   uint64
	cur    uint64 // last tick processed
	queued int    // entries in slots
	ndue   int    // entries in due

	tick   time.Duration
	start  time.Time
	manual bool // made by NewAt: its clock is Advance's, not the real one
	// now is the driver's time, as nanoseconds since start: where the last
	// Advance got to, or the tick being processed while callbacks run.
	now atomic.Int64

	drive sync.Mutex // one driver at a time
}

// New returns a wheel on the real clock, with ticks of length tick and at
// least slots slots (rounded up to a power of two), to be driven by Run. A
// revolution (tick*slots) should cover the common timer durations: longer
// ones cost one look per extra revolution.
func New(tick time.Duration, slots int) *Wheel {
	return newWheel(time.Now(), tick, slots, false)
}

// NewAt returns a wheel on a manual clock that starts at start and moves
// only with Advance: for tests, which then need no sleeping.
func NewAt(start time.Time, tick time.Duration, slots int) *Wheel {
	return newWheel(start, tick, slots, true)
}

func newWheel(start time.Time, tick time.Duration, slots int, manual bool) *Wheel {
	if tick <= 0 {
		panic("wheel: tick must be positive")
	}
	n := 1
	for n < slots && n < 1<<30 {
		n <<= 1
	}
	w := &Wheel{slots: make([]Entry, n), mask: uint64(n - 1), tick: tick, start: start, manual: manual}
	for i := range w.slots {
		h := &w.slots[i]
		h.next, h.prev = h, h
	}
	w.due.next, w.due.prev = &w.due, &w.due
	return w
}

// Tick returns the length of a tick.
func (w *Wheel) Tick() time.Duration { return w.tick }

// Now returns the wheel's time: the real clock (New), or the time the last
// Advance reached (NewAt; while a callback runs, the time of the tick that
// fired it).
func (w *Wheel) Now() time.Time {
	if !w.manual {
		return time.Now()
	}
	return w.start.Add(time.Duration(w.now.Load()))
}

// elapsed is Now as a duration since start.
func (w *Wheel) elapsed() time.Duration {
	if !w.manual {
		return time.Since(w.start)
	}
	return time.Duration(w.now.Load())
}

// Len returns how many timers are pending.
func (w *Wheel) Len() int {
	w.mu.Lock()
	n := w.queued + w.ndue
	w.mu.Unlock()
	return n
}

// AfterFunc calls f on the driving goroutine once d has elapsed, and
// returns the timer, whose Stop cancels it. It allocates the Entry; use
// Schedule with an embedded Entry where that matters.
func (w *Wheel) AfterFunc(d time.Duration, f func()) Timer {
	e := new(Entry)
	w.Schedule(e, d, f)
	return e
}

// Schedule arms e to call f once d has elapsed (d <= 0: at the next tick).
// If e is pending it is re-armed: its previous callback will not run.
// Schedule does not allocate.
func (w *Wheel) Schedule(e *Entry, d time.Duration, f func()) {
	if f == nil {
		panic("wheel: nil func")
	}
	w.schedule(e, d, plainFunc(f), 0)
}

// ScheduleFirer is ScheduleArg with fr.Fire as the callback.
func (w *Wheel) ScheduleFirer(e *Entry, d time.Duration, fr Firer, arg uint64) {
	if fr == nil {
		panic("wheel: nil Firer")
	}
	w.schedule(e, d, fr, arg)
}

// ScheduleArg is Schedule for a callback that takes an argument, kept in
// the Entry and passed to f when it fires. An owner can then build one
// func per Entry once and re-arm with a new arg each time, allocating
// nothing. And since arg is read when the entry is taken to fire, a
// callback whose Stop lost the race (Stop returned false, the callback was
// about to run) still carries the arg of its own arming even if the Entry
// was re-armed since: pass a generation (txn's Action.Gen) and the stale
// firing is told from the new arming.
func (w *Wheel) ScheduleArg(e *Entry, d time.Duration, f func(arg uint64), arg uint64) {
	if f == nil {
		panic("wheel: nil func")
	}
	w.schedule(e, d, argFunc(f), arg)
}

func (w *Wheel) schedule(e *Entry, d time.Duration, fr Firer, arg uint64) {
	if old := e.w.Load(); old != w {
		if old != nil {
			e.Stop()
		}
		e.w.Store(w)
	}
	at := w.elapsed()
	w.mu.Lock()
	w.remove(e)
	e.tick = w.tickAt(at, d)
	e.fr, e.arg = fr, arg
	e.state = queued
	pushBack(&w.slots[e.tick&w.mask], e)
	w.queued++
	w.mu.Unlock()
}

// tickAt is the first tick at or after at+d that is still to be processed.
func (w *Wheel) tickAt(at, d time.Duration) uint64 {
	if at < 0 {
		at = 0
	}
	if d < 0 {
		d = 0
	}
	sum := at + d
	if d > math.MaxInt64-at {
		sum = math.MaxInt64
	}
	t := uint64(sum / w.tick)
	if sum%w.tick != 0 {
		t++
	}
	if t <= w.cur {
		t = w.cur + 1
	}
	return t
}

// remove unlinks e if it is pending; w.mu is held.
func (w *Wheel) remove(e *Entry) bool {
	switch e.state {
	case queued:
		w.queued--
	case due:
		w.ndue--
	default:
		return false
	}
	unlink(e)
	e.state = idle
	e.fr = nil
	return true
}

// Advance moves the wheel's time to to, firing in order every timer due by
// then; on a manual wheel each callback runs with Now at the tick it fired
// on. Times before the current one are ignored. On a real-clock wheel, to
// should be time.Now(): a later time would fire timers early. Callbacks
// must not call Advance, and while Run drives the wheel Advance waits for
// it to return.
func (w *Wheel) Advance(to time.Time) {
	w.drive.Lock()
	defer w.drive.Unlock()
	w.advance(to.Sub(w.start))
}

// ErrManual is returned by Run on a wheel made by NewAt.
var ErrManual = errors.New("wheel: a manual wheel (NewAt) is driven by Advance, not Run")

// Run drives a wheel made by New from a ticker of one tick until ctx is
// done, and returns ctx.Err().
func (w *Wheel) Run(ctx context.Context) error {
	if w.manual {
		return ErrManual
	}
	w.drive.Lock()
	defer w.drive.Unlock()
	tk := time.NewTicker(w.tick)
	defer tk.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tk.C:
			w.advance(time.Since(w.start))
		}
	}
}

func (w *Wheel) advance(to time.Duration) {
	if to < 0 {
		return
	}
	target := uint64(to / w.tick)
	w.mu.Lock()
	defer w.mu.Unlock()
	w.runDue() // left over by a callback that panicked
	for w.cur < target {
		if w.queued == 0 {
			w.cur = target // nothing can fire: skip the empty ticks
			break
		}
		if target-w.cur > uint64(len(w.slots)) {
			// A long way to go (a manual clock jumping, or a driver that
			// was stopped): go straight to the first tick with something
			// due instead of visiting every tick on the way.
			if m := w.firstTick(); m-1 > w.cur {
				w.cur = min(m-1, target)
				continue
			}
		}
		w.cur++
		w.setNow(time.Duration(w.cur) * w.tick)
		head := &w.slots[w.cur&w.mask]
		for e := head.next; e != head; {
			next := e.next
			if e.tick <= w.cur {
				unlink(e)
				e.state = due
				w.queued--
				w.ndue++
				pushBack(&w.due, e)
			}
			e = next
		}
		w.runDue()
	}
	w.setNow(to)
}

// firstTick is the earliest tick a queued entry is due at; w.mu is held.
func (w *Wheel) firstTick() uint64 {
	m := uint64(math.MaxUint64)
	for i := range w.slots {
		head := &w.slots[i]
		for e := head.next; e != head; e = e.next {
			m = min(m, e.tick)
		}
	}
	return m
}

// setNow moves the driver's time forward, never back.
func (w *Wheel) setNow(d time.Duration) {
	if int64(d) > w.now.Load() {
		w.now.Store(int64(d))
	}
}

// runDue fires the due entries one by one, in order, releasing the lock
// around each callback; w.mu is held on entry and on return. Taking them
// one at a time lets a callback stop or re-arm any entry, due ones
// included: a due entry stopped before its turn does not fire.
func (w *Wheel) runDue() {
	for {
		e := w.due.next
		if e == &w.due {
			return
		}
		unlink(e)
		w.ndue--
		e.state = idle
		fr, arg := e.fr, e.arg
		e.fr = nil
		w.mu.Unlock()
		func() {
			// Relock even if f panics: advance's deferred Unlock then
			// leaves the wheel usable while the panic goes on up.
			defer w.mu.Lock()
			fr.Fire(arg)
		}()
	}
}

func pushBack(head, e *Entry) {
	e.prev = head.prev
	e.next = head
	head.prev.next = e
	head.prev = e
}

func unlink(e *Entry) {
	e.prev.next = e.next
	e.next.prev = e.prev
	e.next, e.prev = nil, nil
}

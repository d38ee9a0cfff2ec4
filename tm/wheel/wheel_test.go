package wheel

import (
	"context"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"
)

// Clock is tm's clock abstraction, declared here without importing tm:
// *Wheel must satisfy it as it is.
type Clock interface {
	Now() time.Time
	AfterFunc(d time.Duration, f func()) interface{ Stop() bool }
}

var _ Clock = (*Wheel)(nil)

var epoch = time.Unix(1_700_000_000, 0)

const ms = time.Millisecond

func manual(tick time.Duration, slots int) *Wheel { return NewAt(epoch, tick, slots) }

// firing records when a callback ran, by the wheel's clock.
type firing struct {
	id int
	at time.Duration
}

type recorder struct {
	w   *Wheel
	mu  sync.Mutex
	got []firing
}

func (r *recorder) fn(id int) func() {
	return func() {
		r.mu.Lock()
		r.got = append(r.got, firing{id, r.w.Now().Sub(epoch)})
		r.mu.Unlock()
	}
}

func (r *recorder) ids() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]int, len(r.got))
	for i, f := range r.got {
		out[i] = f.id
	}
	return out
}

func equal(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestOrderAndNeverEarly(t *testing.T) {
	w := manual(10*ms, 16)
	r := &recorder{w: w}
	durs := []time.Duration{35 * ms, 5 * ms, 100 * ms, 10 * ms, 0, 11 * ms, 159 * ms, 160 * ms, 161 * ms, 30 * ms}
	for i, d := range durs {
		w.AfterFunc(d, r.fn(i))
	}
	// Step by odd amounts so ticks and advances do not line up.
	for now := time.Duration(0); now <= 300*ms; now += 7 * ms {
		w.Advance(epoch.Add(now))
	}
	// Expected order: by due tick, then by scheduling order.
	if want := []int{1, 3, 4, 5, 9, 0, 2, 6, 7, 8}; !equal(r.ids(), want) {
		t.Fatalf("order %v, want %v", r.ids(), want)
	}
	for _, f := range r.got {
		d := durs[f.id]
		if f.at < d {
			t.Errorf("timer %d (%v) fired early at %v", f.id, d, f.at)
		}
		if f.at > d+w.Tick() {
			t.Errorf("timer %d (%v) fired late at %v", f.id, d, f.at)
		}
	}
	if w.Len() != 0 {
		t.Fatalf("%d pending", w.Len())
	}
}

func TestNeverEarlyRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	w := manual(4*ms, 8) // a 32ms revolution: most timers take several
	type sched struct {
		at, d time.Duration
	}
	var mu sync.Mutex
	scheds := map[int]sched{}
	fired := map[int]time.Duration{}
	now := time.Duration(0)
	id := 0
	for range 2000 {
		if rng.IntN(3) == 0 {
			now += time.Duration(rng.IntN(20)) * ms / 3
			w.Advance(epoch.Add(now))
			continue
		}
		d := time.Duration(rng.IntN(500)) * ms / 7
		i := id
		id++
		mu.Lock()
		scheds[i] = sched{w.Now().Sub(epoch), d}
		mu.Unlock()
		w.AfterFunc(d, func() {
			mu.Lock()
			fired[i] = w.Now().Sub(epoch)
			mu.Unlock()
		})
	}
	w.Advance(epoch.Add(now + time.Minute))
	if len(fired) != id {
		t.Fatalf("%d of %d fired", len(fired), id)
	}
	for i, at := range fired {
		s := scheds[i]
		if at < s.at+s.d {
			t.Fatalf("timer %d scheduled at %v for %v fired early at %v", i, s.at, s.d, at)
		}
		if at > s.at+s.d+w.Tick() {
			t.Fatalf("timer %d scheduled at %v for %v fired more than a tick late at %v", i, s.at, s.d, at)
		}
	}
}

func TestLongDurations(t *testing.T) {
	// Revolution of 80ms; timers of many revolutions stay in their slot
	// until their own round.
	w := manual(10*ms, 8)
	r := &recorder{w: w}
	w.AfterFunc(time.Second, r.fn(1))
	w.AfterFunc(10*time.Second+5*ms, r.fn(2))
	w.AfterFunc(40*ms, r.fn(0)) // same slot as 1s, first round
	for now := time.Duration(0); now <= 11*time.Second; now += 10 * ms {
		w.Advance(epoch.Add(now))
	}
	if want := []int{0, 1, 2}; !equal(r.ids(), want) {
		t.Fatalf("order %v", r.ids())
	}
	wantAt := []time.Duration{40 * ms, time.Second, 10*time.Second + 10*ms}
	for i, f := range r.got {
		if f.at != wantAt[i] {
			t.Errorf("timer %d at %v, want %v", f.id, f.at, wantAt[i])
		}
	}
}

func TestAdvanceJumps(t *testing.T) {
	// One big Advance fires everything in order, each callback seeing the
	// time of its own tick; the empty stretch costs nothing.
	w := manual(ms, 4)
	r := &recorder{w: w}
	w.AfterFunc(time.Hour, r.fn(2))
	w.AfterFunc(3*ms, r.fn(0))
	w.AfterFunc(time.Minute, r.fn(1))
	start := time.Now()
	w.Advance(epoch.Add(2 * time.Hour))
	if el := time.Since(start); el > time.Second {
		t.Errorf("a 2h jump with 1ms ticks took %v", el)
	}
	if want := []int{0, 1, 2}; !equal(r.ids(), want) {
		t.Fatalf("order %v", r.ids())
	}
	if r.got[1].at != time.Minute || r.got[2].at != time.Hour {
		t.Fatalf("callbacks saw %v", r.got)
	}
	if got := w.Now(); !got.Equal(epoch.Add(2 * time.Hour)) {
		t.Fatalf("Now %v", got)
	}
	// Going back is ignored.
	w.Advance(epoch)
	if got := w.Now(); !got.Equal(epoch.Add(2 * time.Hour)) {
		t.Fatalf("Now went back to %v", got)
	}
}

func TestStop(t *testing.T) {
	w := manual(10*ms, 16)
	var fired atomic.Int32
	tm := w.AfterFunc(50*ms, func() { fired.Add(1) })
	if !tm.Stop() {
		t.Fatal("Stop of a pending timer returned false")
	}
	if tm.Stop() {
		t.Fatal("second Stop returned true")
	}
	w.Advance(epoch.Add(time.Second))
	if fired.Load() != 0 {
		t.Fatal("stopped timer fired")
	}

	tm = w.AfterFunc(50*ms, func() { fired.Add(1) })
	w.Advance(epoch.Add(2 * time.Second))
	if fired.Load() != 1 {
		t.Fatal("timer did not fire")
	}
	if tm.Stop() {
		t.Fatal("Stop after the firing returned true")
	}

	var zero Entry
	if zero.Stop() || zero.Pending() {
		t.Fatal("zero Entry")
	}
	if w.Len() != 0 {
		t.Fatalf("%d pending", w.Len())
	}
}

func TestScheduleEmbeddedReArms(t *testing.T) {
	w := manual(10*ms, 16)
	var e Entry
	var which []string
	w.Schedule(&e, 30*ms, func() { which = append(which, "first") })
	if !e.Pending() {
		t.Fatal("not pending")
	}
	// Re-arming moves it: the first callback is gone.
	w.Schedule(&e, 100*ms, func() { which = append(which, "second") })
	if w.Len() != 1 {
		t.Fatalf("%d pending", w.Len())
	}
	w.Advance(epoch.Add(50 * ms))
	if len(which) != 0 {
		t.Fatalf("fired %v at 50ms", which)
	}
	w.Advance(epoch.Add(100 * ms))
	if len(which) != 1 || which[0] != "second" {
		t.Fatalf("fired %v", which)
	}
	if e.Pending() {
		t.Fatal("still pending after firing")
	}
	// And again after firing.
	w.Schedule(&e, 10*ms, func() { which = append(which, "third") })
	w.Advance(epoch.Add(110 * ms))
	if len(which) != 2 {
		t.Fatalf("fired %v", which)
	}

	// An Entry moved to another wheel leaves the first one.
	w2 := manual(10*ms, 16)
	w.Schedule(&e, 10*ms, func() { which = append(which, "w1") })
	w2.Schedule(&e, 10*ms, func() { which = append(which, "w2") })
	if w.Len() != 0 || w2.Len() != 1 {
		t.Fatalf("lens %d %d", w.Len(), w2.Len())
	}
}

func TestCallbacksRescheduleAndStop(t *testing.T) {
	w := manual(10*ms, 8)
	var ticks []time.Duration
	var periodic Entry
	var fn func()
	fn = func() {
		ticks = append(ticks, w.Now().Sub(epoch))
		if len(ticks) < 5 {
			w.Schedule(&periodic, 25*ms, fn) // re-arm itself
		}
	}
	w.Schedule(&periodic, 25*ms, fn)

	// A callback that stops a timer due in the same tick: it must not fire.
	var victimFired, killerRan bool
	victim := new(Entry)
	killer := new(Entry)
	w.Schedule(killer, 40*ms, func() {
		killerRan = true
		if !victim.Stop() {
			t.Error("Stop of a due timer whose callback has not started returned false")
		}
	})
	w.Schedule(victim, 40*ms, func() { victimFired = true })

	// A callback that stops itself and schedules new work (d = 0 fires at
	// the next tick, not in the running one).
	var self Entry
	var zeroAt time.Duration = -1
	w.Schedule(&self, 20*ms, func() {
		if self.Stop() {
			t.Error("a running timer stopped itself with true")
		}
		w.AfterFunc(0, func() { zeroAt = w.Now().Sub(epoch) })
	})

	w.Advance(epoch.Add(time.Second))
	want := []time.Duration{30 * ms, 60 * ms, 90 * ms, 120 * ms, 150 * ms}
	if len(ticks) != len(want) {
		t.Fatalf("periodic fired at %v", ticks)
	}
	for i := range want {
		if ticks[i] != want[i] {
			t.Fatalf("periodic fired at %v, want %v", ticks, want)
		}
	}
	if !killerRan || victimFired {
		t.Fatalf("killer ran %v, victim fired %v", killerRan, victimFired)
	}
	if zeroAt != 30*ms {
		t.Fatalf("zero-delay timer from a callback at 20ms fired at %v", zeroAt)
	}
}

func TestCallbackPanicLeavesWheelUsable(t *testing.T) {
	w := manual(10*ms, 8)
	var after bool
	w.AfterFunc(10*ms, func() { panic("boom") })
	w.AfterFunc(10*ms, func() { after = true })
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("no panic")
			}
		}()
		w.Advance(epoch.Add(10 * ms))
	}()
	// The other callback of that tick runs on the next drive.
	w.Advance(epoch.Add(10 * ms))
	if !after {
		t.Fatal("the timer after the panicking one was lost")
	}
	w.AfterFunc(10*ms, func() {})
	if w.Len() != 1 {
		t.Fatalf("%d pending", w.Len())
	}
}

// Many goroutines schedule and stop while one drives: every timer either
// stops (Stop true) or fires, exactly once.
func TestConcurrentScheduleStop(t *testing.T) {
	w := manual(ms, 64)
	const workers, per = 8, 500
	var fires [workers * per]atomic.Int32
	var stopped atomic.Int32
	var wg sync.WaitGroup
	done := make(chan struct{})
	var driver sync.WaitGroup
	driver.Add(1)
	go func() {
		defer driver.Done()
		now := time.Duration(0)
		for {
			select {
			case <-done:
				return
			default:
			}
			now += ms
			w.Advance(epoch.Add(now))
		}
	}()
	for g := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 7))
			var own [4]Entry // embedded entries, re-armed over and over
			for i := range per {
				id := g*per + i
				d := time.Duration(rng.IntN(20)) * ms
				var tm Timer
				if i%2 == 0 {
					tm = w.AfterFunc(d, func() { fires[id].Add(1) })
				} else {
					e := &own[i%4]
					if e.Stop() {
						stopped.Add(1) // its previous id will not fire
					}
					w.Schedule(e, d, func() { fires[id].Add(1) })
					tm = e
				}
				if rng.IntN(2) == 0 {
					if tm.Stop() {
						stopped.Add(1)
					}
				}
			}
		}()
	}
	wg.Wait()
	close(done)
	driver.Wait()
	w.Advance(epoch.Add(time.Hour * 24 * 365))
	var fired int32
	for i := range fires {
		n := fires[i].Load()
		if n > 1 {
			t.Fatalf("timer %d fired %d times", i, n)
		}
		fired += n
	}
	t.Logf("fired %d, stopped %d", fired, stopped.Load())
	if fired+stopped.Load() != workers*per {
		t.Fatalf("fired %d + stopped %d != %d", fired, stopped.Load(), workers*per)
	}
	if w.Len() != 0 {
		t.Fatalf("%d pending", w.Len())
	}
}

// The real Run loop: bounded, and asserting no timing, only that a 1ms
// timer fires.
func TestRunFires(t *testing.T) {
	w := New(time.Millisecond, 256)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- w.Run(ctx) }()
	fired := make(chan struct{})
	w.AfterFunc(time.Millisecond, func() { close(fired) })
	select {
	case <-fired:
	case <-ctx.Done():
		t.Fatal("a 1ms timer did not fire within 10s of Run")
	}
	cancel()
	if err := <-errc; err != context.Canceled {
		t.Fatalf("Run returned %v", err)
	}
	if err := manual(ms, 8).Run(context.Background()); err != ErrManual {
		t.Fatalf("Run of a manual wheel: %v", err)
	}
}

// An Entry is embedded five times in every dialog and twice in every
// transaction: one callback field (Schedule's func wrapped as a Firer)
// keeps it at 64 bytes.
func TestEntrySize(t *testing.T) {
	if n := unsafe.Sizeof(Entry{}); n > 64 {
		t.Errorf("sizeof(Entry) = %d bytes, want at most 64", n)
	}
}

func TestNewRoundsSlots(t *testing.T) {
	for _, c := range []struct{ in, want int }{{0, 1}, {1, 1}, {3, 4}, {512, 512}, {513, 1024}} {
		if got := len(manual(ms, c.in).slots); got != c.want {
			t.Errorf("slots %d -> %d, want %d", c.in, got, c.want)
		}
	}
	defer func() {
		if recover() == nil {
			t.Error("zero tick accepted")
		}
	}()
	New(0, 8)
}

func TestScheduleArg(t *testing.T) {
	w := manual(10*ms, 8)
	var e Entry
	var got []uint64
	var fn func(uint64)
	fn = func(gen uint64) {
		got = append(got, gen)
		if gen < 3 {
			// Re-arming from the callback does not change the arg this
			// call carries.
			w.ScheduleArg(&e, 10*ms, fn, gen+1)
			got = append(got, gen)
		}
	}
	w.ScheduleArg(&e, 10*ms, fn, 1)
	w.Advance(epoch.Add(time.Second))
	if want := []uint64{1, 1, 2, 2, 3}; len(got) != len(want) || got[0] != 1 || got[2] != 2 || got[4] != 3 {
		t.Fatalf("args %v, want %v", got, want)
	}
	// Schedule after ScheduleArg drops the arg callback.
	var plain bool
	w.ScheduleArg(&e, 10*ms, func(uint64) { t.Error("arg callback ran") }, 9)
	w.Schedule(&e, 10*ms, func() { plain = true })
	w.Advance(epoch.Add(2 * time.Second))
	if !plain {
		t.Fatal("plain callback did not run")
	}
}

// firerOwner embeds its Entry and is its own Firer, as tm's transactions.
type firerOwner struct {
	e   Entry
	got []uint64
}

func (o *firerOwner) Fire(arg uint64) { o.got = append(o.got, arg) }

// ScheduleFirer calls the owner with the arg of the last arming; re-arming
// replaces the pending one; Stop cancels it; and arming allocates nothing
// (a method value or closure per owner was an allocation per transaction).
func TestScheduleFirer(t *testing.T) {
	w := manual(10*ms, 8)
	o := &firerOwner{}
	w.ScheduleFirer(&o.e, 10*ms, o, 1)
	w.ScheduleFirer(&o.e, 20*ms, o, 2) // re-armed: 1 never fires
	w.Advance(epoch.Add(100 * ms))
	w.ScheduleFirer(&o.e, 10*ms, o, 3)
	if !o.e.Stop() {
		t.Fatal("Stop of a pending Firer entry returned false")
	}
	w.Advance(epoch.Add(200 * ms))
	if len(o.got) != 1 || o.got[0] != 2 {
		t.Fatalf("fired with %v, want [2]", o.got)
	}
	if n := testing.AllocsPerRun(100, func() {
		w.ScheduleFirer(&o.e, 10*ms, o, 4)
		o.e.Stop()
	}); n != 0 {
		t.Fatalf("ScheduleFirer+Stop allocates %v times, want 0", n)
	}
}

// An owner re-arms one Entry with a new generation after each Stop, while
// the wheel fires on another goroutine: a firing only ever carries a
// generation whose Stop did not succeed, each generation fires at most
// once, and every generation is accounted for. This is what txn's Gen
// check relies on.
func TestScheduleArgStopRace(t *testing.T) {
	w := manual(ms, 16)
	const gens = 5000
	var fired, stopped [gens + 1]atomic.Int32
	var e Entry
	cb := func(g uint64) { fired[g].Add(1) }
	done := make(chan struct{})
	var driver sync.WaitGroup
	driver.Add(1)
	go func() {
		defer driver.Done()
		now := time.Duration(0)
		for {
			select {
			case <-done:
				return
			default:
			}
			now += ms
			w.Advance(epoch.Add(now))
		}
	}()
	rng := rand.New(rand.NewPCG(3, 4))
	for g := uint64(1); g <= gens; g++ {
		if e.Stop() {
			stopped[g-1].Add(1)
		}
		w.ScheduleArg(&e, time.Duration(rng.IntN(2))*ms, cb, g)
		if rng.IntN(2) == 0 {
			runtime.Gosched() // let the driver take some
		}
	}
	close(done)
	driver.Wait()
	w.Advance(epoch.Add(time.Hour * 24 * 365))
	var nf, ns int32
	for g := 1; g <= gens; g++ {
		f, s := fired[g].Load(), stopped[g].Load()
		if f > 1 || f+s != 1 {
			t.Fatalf("generation %d fired %d times, stopped %d", g, f, s)
		}
		nf += f
		ns += s
	}
	t.Logf("fired %d, stopped %d", nf, ns)
}

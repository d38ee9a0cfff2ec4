package wheel

import (
	"testing"
	"time"
)

func nop() {}

// BenchmarkScheduleStop arms and stops an embedded Entry, the way a
// transaction arms Timer A and stops it on the first response: no
// allocation.
func BenchmarkScheduleStop(b *testing.B) {
	w := manual(ms, 4096)
	var e Entry
	b.ReportAllocs()
	for b.Loop() {
		w.Schedule(&e, 500*ms, nop)
		e.Stop()
	}
}

// BenchmarkScheduleStopLoaded is the same with 100k other timers pending.
func BenchmarkScheduleStopLoaded(b *testing.B) {
	w := manual(ms, 4096)
	others := make([]Entry, 100_000)
	for i := range others {
		w.Schedule(&others[i], time.Duration(i%64_000)*ms, nop)
	}
	var e Entry
	b.ReportAllocs()
	for b.Loop() {
		w.Schedule(&e, 500*ms, nop)
		e.Stop()
	}
}

// BenchmarkAfterFuncStop is the Clock-shaped call: one allocation, the
// Entry it returns.
func BenchmarkAfterFuncStop(b *testing.B) {
	w := manual(ms, 4096)
	b.ReportAllocs()
	for b.Loop() {
		w.AfterFunc(500*ms, nop).Stop()
	}
}

// BenchmarkRuntimeAfterFuncStop is what the wheel replaces.
func BenchmarkRuntimeAfterFuncStop(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		time.AfterFunc(500*time.Millisecond, nop).Stop()
	}
}

// BenchmarkFire is the cost per timer of firing: 1000 embedded entries
// spread over 100 ticks, re-armed and fired each iteration.
func BenchmarkFire(b *testing.B) {
	w := manual(ms, 256)
	es := make([]Entry, 1000)
	now := time.Duration(0)
	b.ReportAllocs()
	for b.Loop() {
		for i := range es {
			w.Schedule(&es[i], time.Duration(i%100)*ms, nop)
		}
		now += 100 * ms
		w.Advance(epoch.Add(now))
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(es)), "ns/timer")
}

// BenchmarkScheduleStopParallel measures the one lock under contention.
func BenchmarkScheduleStopParallel(b *testing.B) {
	w := manual(ms, 4096)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		var e Entry
		for pb.Next() {
			w.Schedule(&e, 500*ms, nop)
			e.Stop()
		}
	})
}

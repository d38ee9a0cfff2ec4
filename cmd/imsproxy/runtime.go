package main

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"time"
)

// RuntimeSection is the runtime section: the Go garbage collector's
// knobs and the Go scheduler's processor count. A proxy's heap is mostly
// short-lived messages and transactions:
// a higher GOGC trades memory for CPU (GOGC=400 alone saved 12 % CPU per
// call in issue 14's measurements), and a memory limit keeps that trade
// from running away under a burst.
type RuntimeSection struct {
	// GOGC is the collector's target heap growth in percent (Go's GOGC);
	// -1 turns the proportional collector off (then set memory_limit).
	GOGC int `config:"gogc"`
	// MemoryLimit is a soft limit on the memory the Go runtime uses (Go's
	// GOMEMLIMIT): bytes, or with a unit (KiB, MiB, GiB, KB, MB, GB);
	// empty or 0: none.
	MemoryLimit string `config:"memory_limit"`
	// HeapHeadroom bounds, in bytes, how far the heap may grow over the
	// live heap before a collection, on top of GOGC's percentage: with a
	// large population of long-lived data (100 000 held calls) GOGC's
	// 200 % is hundreds of megabytes of garbage kept resident, where the
	// churn of call set-ups needs a fixed amount. Applied as a soft memory
	// limit of live heap + headroom, moved as the live heap moves (and
	// never above memory_limit). Empty or 0: off.
	HeapHeadroom string `config:"heap_headroom"`
	// GoMaxProcs is how many CPUs run Go code at once (Go's GOMAXPROCS);
	// 0: half the CPUs the process may use, at least one (gomaxprocsFor).
	GoMaxProcs int `config:"gomaxprocs"`

	memoryLimit  int64 // MemoryLimit parsed
	heapHeadroom int64 // HeapHeadroom parsed
}

func runtimeDefaults() map[string]any {
	return map[string]any{
		"runtime.gogc":          400,
		"runtime.memory_limit":  "",
		"runtime.heap_headroom": "128MiB",
		"runtime.gomaxprocs":    0,
	}
}

func (c *Config) validateRuntime() []error {
	var errs []error
	r := &c.Runtime
	if r.GOGC < -1 || r.GOGC == 0 {
		errs = append(errs, fmt.Errorf("config: runtime.gogc = %d: must be a positive percentage, or -1 (off, with runtime.memory_limit)", r.GOGC))
	}
	n, err := parseByteSize(r.MemoryLimit)
	if err != nil {
		errs = append(errs, fmt.Errorf("config: runtime.memory_limit = %q: %w", r.MemoryLimit, err))
	}
	r.memoryLimit = n
	if r.heapHeadroom, err = parseByteSize(r.HeapHeadroom); err != nil {
		errs = append(errs, fmt.Errorf("config: runtime.heap_headroom = %q: %w", r.HeapHeadroom, err))
	}
	if r.GoMaxProcs < 0 || r.GoMaxProcs > maxGoMaxProcs {
		errs = append(errs, fmt.Errorf("config: runtime.gomaxprocs = %d: must be 0 (half the CPUs) to %d", r.GoMaxProcs, maxGoMaxProcs))
	}
	if r.GOGC == -1 && n == 0 {
		errs = append(errs, fmt.Errorf("config: runtime.gogc = -1 needs runtime.memory_limit: without either the heap grows without bound"))
	}
	return errs
}

// maxGoMaxProcs bounds runtime.gomaxprocs to something a machine has.
const maxGoMaxProcs = 1024

// gomaxprocsFor is the GOMAXPROCS for the setting runtime.gomaxprocs on a
// process that may use cpus CPUs (Go's own default). Auto (0) is half of
// them: a quarter to a third of a SIP proxy's CPU is the kernel's (socket
// calls, the network stack), which runs beside Go's processors, and with
// a processor per CPU the scheduler and the caches spent more handing
// goroutines and data between CPUs than the second one gave (issue 14, 2
// CPUs, sipp record-routed calls: 8 % less CPU per call with one, and the
// highest passing rate up from under 2000 to 3000 calls/s).
func gomaxprocsFor(setting, cpus int) int {
	if setting > 0 {
		return setting
	}
	return max(1, cpus/2)
}

// apply sets the collector and the processor count. The environment's
// GOGC, GOMEMLIMIT and GOMAXPROCS, when set, win: they are how Go programs
// are tuned, and an operator who set them meant it.
func (r RuntimeSection) apply(log *slog.Logger) {
	if v, ok := os.LookupEnv("GOMAXPROCS"); ok {
		log.Info("runtime.gomaxprocs left to the environment", "GOMAXPROCS", v)
	} else {
		cpus := runtime.GOMAXPROCS(0)
		n := gomaxprocsFor(r.GoMaxProcs, cpus)
		runtime.GOMAXPROCS(n)
		log.Info("Go processors", "gomaxprocs", n, "cpus", cpus)
	}
	if v, ok := os.LookupEnv("GOGC"); ok {
		log.Info("runtime.gogc left to the environment", "GOGC", v)
	} else {
		debug.SetGCPercent(r.GOGC)
	}
	if v, ok := os.LookupEnv("GOMEMLIMIT"); ok {
		log.Info("runtime.memory_limit left to the environment", "GOMEMLIMIT", v)
	} else if r.memoryLimit > 0 {
		debug.SetMemoryLimit(r.memoryLimit)
	}
}

// headroomTuner returns the loop that applies runtime.heap_headroom, or
// nil when it is off or the environment's GOMEMLIMIT owns the limit.
func (r RuntimeSection) headroomTuner(log *slog.Logger) func(context.Context) {
	if r.heapHeadroom <= 0 {
		return nil
	}
	if _, ok := os.LookupEnv("GOMEMLIMIT"); ok {
		log.Info("runtime.heap_headroom off: GOMEMLIMIT sets the memory limit")
		return nil
	}
	t := heapTuner{headroom: r.heapHeadroom, ceiling: r.memoryLimit, every: time.Second,
		live: liveHeap, set: func(n int64) { debug.SetMemoryLimit(n) }}
	return t.run
}

// heapTuner keeps the soft memory limit at the live heap plus a headroom.
// The limit makes the collector run before GOGC's goal only when that goal
// is further away than the headroom; below that it changes nothing. It
// follows the live heap once a period (a collection updates it), moving
// the limit only when it changed by more than an eighth of the headroom.
type heapTuner struct {
	headroom int64
	ceiling  int64 // runtime.memory_limit; 0: none
	every    time.Duration
	live     func() int64
	set      func(int64)
}

func (t heapTuner) run(ctx context.Context) {
	tick := time.NewTicker(t.every)
	defer tick.Stop()
	var last int64
	for {
		if l := t.limit(t.live()); l != last && (last == 0 || abs64(l-last) > t.headroom/8 || l == t.ceiling) {
			t.set(l)
			last = l
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// limit is the memory limit for a live heap of live bytes.
func (t heapTuner) limit(live int64) int64 {
	l := live + t.headroom
	if l < live { // overflow
		l = math.MaxInt64
	}
	if t.ceiling > 0 && l > t.ceiling {
		l = t.ceiling
	}
	return l
}

func abs64(n int64) int64 {
	if n < 0 {
		return -n
	}
	return n
}

// liveHeap reads the live heap of the last collection (runtime/metrics,
// no stop of the world).
func liveHeap() int64 {
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return int64(s[0].Value.Uint64())
}

// parseByteSize reads "", "0", "1073741824", "512MiB", "2GB".
func parseByteSize(s string) (int64, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	units := []struct {
		suffix string
		mult   int64
	}{
		{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40},
		{"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1},
	}
	num, mult := s, int64(1)
	for _, u := range units {
		if strings.HasSuffix(s, u.suffix) {
			num, mult = strings.TrimSpace(strings.TrimSuffix(s, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("not a size: write bytes or a number with KiB, MiB, GiB, KB, MB or GB")
	}
	if n > math.MaxInt64/mult {
		return 0, fmt.Errorf("too large")
	}
	return n * mult, nil
}

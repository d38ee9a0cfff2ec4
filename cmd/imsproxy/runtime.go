package main

import (
	"fmt"
	"log/slog"
	"math"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// RuntimeSection is the runtime section: the Go garbage collector's two
// knobs. A proxy's heap is mostly short-lived messages and transactions:
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

	memoryLimit int64 // MemoryLimit parsed
}

func runtimeDefaults() map[string]any {
	return map[string]any{
		"runtime.gogc":         200,
		"runtime.memory_limit": "",
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
	if r.GOGC == -1 && n == 0 {
		errs = append(errs, fmt.Errorf("config: runtime.gogc = -1 needs runtime.memory_limit: without either the heap grows without bound"))
	}
	return errs
}

// apply sets the collector. The environment's GOGC and GOMEMLIMIT, when
// set, win: they are how Go programs are tuned, and an operator who set
// them meant it.
func (r RuntimeSection) apply(log *slog.Logger) {
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

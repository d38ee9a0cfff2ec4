// Package poolcheck decides what tm does with a message block it gives
// back: reuse it (sync.Pool), or, in test binaries, poison it and leave it
// to the collector, so that whoever kept a message, a header or a
// parameter list past the ownership rule reads garbage and a test fails
// there instead of a call going wrong in production. Benchmarks that
// measure the pooling switch the poisoning off.
package poolcheck

import (
	"sync/atomic"
	"testing"
)

var poison atomic.Bool

func init() { poison.Store(testing.Testing()) }

// Poison tells whether released blocks are poisoned rather than reused.
func Poison() bool { return poison.Load() }

// SetPoison switches poisoning and returns the previous setting.
func SetPoison(on bool) (was bool) { return poison.Swap(on) }

// Package poolcheck decides what tm does with a message block it gives
// back: reuse it (sync.Pool), or, in test binaries, poison it and leave it
// to the collector, so that whoever kept a message, a header or a
// parameter list past the ownership rule reads garbage and a test fails
// there instead of a call going wrong in production. Benchmarks that
// measure the pooling switch the poisoning off. A process started with
// POOLCHECK_POISON=1 poisons too: the end-to-end tests run the daemon so,
// and every flow they drive (sipp's, the dialog module's, the roles')
// then checks that nothing is kept past its message.
package poolcheck

import (
	"os"
	"sync/atomic"
	"testing"
)

var poison atomic.Bool

// EnvPoison is the environment variable that turns poisoning on in a
// process that is not a test binary.
const EnvPoison = "POOLCHECK_POISON"

func init() { poison.Store(testing.Testing() || os.Getenv(EnvPoison) == "1") }

// Poison tells whether released blocks are poisoned rather than reused.
func Poison() bool { return poison.Load() }

// SetPoison switches poisoning and returns the previous setting.
func SetPoison(on bool) (was bool) { return poison.Swap(on) }

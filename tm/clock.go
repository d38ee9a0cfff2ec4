package tm

import "time"

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

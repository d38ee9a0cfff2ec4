package ratelog

import (
	"sync/atomic"
	"time"
)

// Every is the most often one kind of event is logged.
const Every = time.Second

// Limiter is one kind of event. Its zero value is ready; it is safe for
// concurrent use.
type Limiter struct {
	last       atomic.Int64 // unix nanoseconds of the last line
	suppressed atomic.Uint64
}

// Allow reports whether a line may be logged now and, if so, how many
// events were not logged since the previous line.
func (l *Limiter) Allow() (suppressed uint64, ok bool) { return l.AllowAt(time.Now()) }

// AllowAt is Allow at the time at, for callers that read a clock of their
// own (tm's, which tests drive).
func (l *Limiter) AllowAt(at time.Time) (suppressed uint64, ok bool) {
	now := at.UnixNano()
	last := l.last.Load()
	if now-last >= int64(Every) && l.last.CompareAndSwap(last, now) {
		return l.suppressed.Swap(0), true
	}
	l.suppressed.Add(1)
	return 0, false
}

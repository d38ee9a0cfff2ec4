package transport

import (
	"sync/atomic"
	"time"
)

// logEvery is the most often one kind of per-message problem is logged.
const logEvery = time.Second

// logLimiter lets one log line through per logEvery for a kind of event
// that a peer can cause at will (a garbage datagram, a refused connection):
// a flood produces one line a second that counts what it stands for, not
// one line per event. The counters in Stats have every event.
type logLimiter struct {
	last       atomic.Int64 // unix nanoseconds of the last line
	suppressed atomic.Uint64
}

// allow reports whether a line may be logged now and, if so, how many
// events were not logged since the previous line.
func (l *logLimiter) allow() (suppressed uint64, ok bool) {
	now := time.Now().UnixNano()
	last := l.last.Load()
	if now-last >= int64(logEvery) && l.last.CompareAndSwap(last, now) {
		return l.suppressed.Swap(0), true
	}
	l.suppressed.Add(1)
	return 0, false
}

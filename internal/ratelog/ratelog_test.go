package ratelog

import (
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
)

// One line per Every, and the next one counts what was left out.
func TestIssue15_OneLineASecond(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var l Limiter
		_, ok := l.Allow()
		assert.True(t, ok, "the first event is logged")
		for range 5 {
			_, ok = l.Allow()
			assert.False(t, ok)
		}
		time.Sleep(Every / 2)
		_, ok = l.Allow()
		assert.False(t, ok, "half a second later: still quiet")
		time.Sleep(Every / 2)
		sup, ok := l.Allow()
		assert.True(t, ok)
		assert.Equal(t, uint64(6), sup, "the six left out")
	})
}

// AllowAt keeps the same pace on a clock of the caller's (tm's, which tests
// drive): one line per Every of that clock, whatever the real time does.
func TestIssue15_OneLineASecondOfTheCallersClock(t *testing.T) {
	var l Limiter
	at := time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)
	_, ok := l.AllowAt(at)
	assert.True(t, ok)
	_, ok = l.AllowAt(at.Add(Every - time.Millisecond))
	assert.False(t, ok)
	sup, ok := l.AllowAt(at.Add(Every))
	assert.True(t, ok)
	assert.Equal(t, uint64(1), sup)
}

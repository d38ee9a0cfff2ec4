package events

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestPublishDeliversInOrderInBatches(t *testing.T) {
	sink := &fakeSink{name: "fake"}
	p, err := New(Options{BatchSize: 7, Sinks: []Sink{sink}})
	require.NoError(t, err)
	var want []Event
	for i := range 100 {
		want = append(want, ev(i))
		require.True(t, p.Publish(ev(i)))
	}
	require.NoError(t, p.Close(context.Background()))

	assert.Equal(t, want, sink.events())
	for _, b := range sink.batches {
		assert.LessOrEqual(t, len(b), 7)
	}
	s := p.Stats().Snapshot()
	assert.Equal(t, int64(100), s["published"])
	assert.Equal(t, int64(100), s["sent_fake"])
	assert.Equal(t, int64(0), s["dropped"])
	assert.Equal(t, int64(0), s["sink_errors_fake"])
	assert.Equal(t, int64(0), s["queue_length"])
}

func TestPublishBatchesWhatQueuedMeanwhile(t *testing.T) {
	sink := &fakeSink{name: "fake", entered: make(chan struct{}, 10), gate: make(chan struct{})}
	p := newPublisher(t, Options{BatchSize: 100, Sinks: []Sink{sink}})
	require.True(t, p.Publish(ev(0)))
	<-sink.entered // the worker holds event 0; the next ones queue
	for i := 1; i <= 5; i++ {
		require.True(t, p.Publish(ev(i)))
	}
	assert.Equal(t, int64(5), snap(p, "queue_length"))
	close(sink.gate)
	require.NoError(t, p.Close(context.Background()))
	require.Len(t, sink.batches, 2)
	assert.Len(t, sink.batches[0], 1)
	assert.Len(t, sink.batches[1], 5, "what queued during a send leaves as one batch")
}

func TestPublishFillsNameTimeNode(t *testing.T) {
	sink := &fakeSink{name: "fake"}
	p := newPublisher(t, Options{Sinks: []Sink{sink}, Node: "node-a"})
	before := time.Now()
	require.True(t, p.Publish(Event{ID: "1.2", NewState: 4}))
	require.True(t, p.Publish(Event{ID: "1.3", Node: "other", Time: time.Unix(10, 0)}))
	require.NoError(t, p.Close(context.Background()))

	got := sink.events()
	require.Len(t, got, 2)
	assert.Equal(t, StateChanged, got[0].Name)
	assert.Equal(t, "node-a", got[0].Node)
	assert.False(t, got[0].Time.Before(before))
	assert.Equal(t, "other", got[1].Node, "a node given by the caller is kept")
	assert.True(t, got[1].Time.Equal(time.Unix(10, 0)))
}

func TestQueueFullDropsWithoutBlocking(t *testing.T) {
	sink := &fakeSink{name: "fake", entered: make(chan struct{}, 100), gate: make(chan struct{})}
	p := newPublisher(t, Options{QueueSize: 4, BatchSize: 1, Sinks: []Sink{sink}})

	require.True(t, p.Publish(ev(0)))
	<-sink.entered // event 0 is out of the queue, held by the blocked sink
	for i := 1; i <= 4; i++ {
		require.True(t, p.Publish(ev(i)), "event %d fits in the queue", i)
	}
	// The sink is still blocked: these return at once, refused.
	for i := 5; i < 8; i++ {
		assert.False(t, p.Publish(ev(i)), "event %d is past the queue size", i)
	}
	s := p.Stats().Snapshot()
	assert.Equal(t, int64(5), s["published"])
	assert.Equal(t, int64(3), s["dropped"])
	assert.Equal(t, int64(4), s["queue_length"])

	close(sink.gate)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	require.NoError(t, p.Close(ctx))
	assert.Equal(t, []Event{ev(0), ev(1), ev(2), ev(3), ev(4)}, sink.events(), "Close flushes the queue")
	assert.Equal(t, int64(5), snap(p, "sent_fake"))
	assert.Equal(t, int64(0), snap(p, "queue_length"))
}

func TestCloseDeadlineDropsQueuedAndStopsWorker(t *testing.T) {
	before := runtime.NumGoroutine()
	sink := &fakeSink{name: "fake", entered: make(chan struct{}, 100), gate: make(chan struct{})}
	p, err := New(Options{QueueSize: 10, BatchSize: 1, Sinks: []Sink{sink}})
	require.NoError(t, err)
	require.True(t, p.Publish(ev(0)))
	<-sink.entered
	for i := 1; i <= 3; i++ {
		require.True(t, p.Publish(ev(i)))
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel() // the sink never lets go: Close must give up, not hang
	err = p.Close(ctx)
	require.Error(t, err)
	assert.True(t, errors.Is(err, context.Canceled), "%v", err)
	assert.Contains(t, err.Error(), "3 queued events dropped")

	s := p.Stats().Snapshot()
	assert.Equal(t, int64(3), s["dropped_at_close"])
	assert.Equal(t, int64(1), s["sink_dropped_fake"], "the batch in flight is lost for the sink")
	assert.Empty(t, sink.events())
	assert.Equal(t, err, p.Close(context.Background()), "a second Close returns the first result")

	// Not require.Eventually: it runs the condition on a goroutine of its
	// own, which would be counted.
	deadline := time.Now().Add(waitFor)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(tick)
	}
	assert.LessOrEqual(t, runtime.NumGoroutine(), before, "goroutines left after Close")
}

func TestPublishAfterCloseIsRefused(t *testing.T) {
	p, err := New(Options{Sinks: []Sink{&fakeSink{name: "fake"}}})
	require.NoError(t, err)
	require.NoError(t, p.Close(context.Background()))
	assert.False(t, p.Publish(ev(0)))
	assert.Equal(t, int64(1), snap(p, "dropped_at_close"))
	assert.Equal(t, int64(0), snap(p, "published"))
}

func TestFailedBatchIsRetriedOnce(t *testing.T) {
	log, logs := newLogger()
	sink := &fakeSink{name: "fake", fail: func(call int) error {
		if call == 1 {
			return errDown
		}
		return nil
	}}
	p := newPublisher(t, Options{Sinks: []Sink{sink}, Logger: log, RetryBackoff: time.Millisecond})
	require.True(t, p.Publish(ev(0)))
	require.NoError(t, p.Close(context.Background()))

	assert.Equal(t, []Event{ev(0)}, sink.events())
	s := p.Stats().Snapshot()
	assert.Equal(t, int64(1), s["sink_errors_fake"])
	assert.Equal(t, int64(1), s["sent_fake"])
	assert.Equal(t, int64(0), s["sink_dropped_fake"])
	assert.Zero(t, logs.count("sink failing"), "a blip the retry absorbed is no outage:\n%s", logs)
}

func TestOutageIsLoggedOnceAndRecoveryOnce(t *testing.T) {
	log, logs := newLogger()
	up := make(chan bool, 1)
	up <- false
	sink := &fakeSink{name: "fake", fail: func(int) error {
		ok := <-up
		up <- ok
		if !ok {
			return errDown
		}
		return nil
	}}
	p := newPublisher(t, Options{BatchSize: 1, Sinks: []Sink{sink}, Logger: log, RetryBackoff: time.Millisecond})

	for i := range 5 {
		require.True(t, p.Publish(ev(i)))
		eventually(t, p, "sink_dropped_fake", int64(i+1))
	}
	// The first batch is retried; once the outage is known, no more.
	assert.Equal(t, int64(6), snap(p, "sink_errors_fake"))
	assert.Equal(t, 6, sink.callCount())
	assert.Equal(t, 1, logs.count("level=WARN"), "one warning per outage:\n%s", logs)
	assert.Equal(t, 1, logs.count("sink failing"))
	assert.Contains(t, logs.String(), "sink down")

	<-up
	up <- true
	require.True(t, p.Publish(ev(5)))
	eventually(t, p, "sent_fake", 1)
	assert.Equal(t, []Event{ev(5)}, sink.events())
	assert.Equal(t, 1, logs.count("level=INFO msg=\"events: sink recovered\""), "%s", logs)
	assert.Contains(t, logs.String(), "events_lost=5")

	require.True(t, p.Publish(ev(6)))
	eventually(t, p, "sent_fake", 2)
	assert.Equal(t, 1, logs.count("sink recovered"), "recovery is logged once:\n%s", logs)
	assert.Equal(t, 1, logs.count("level=WARN"))
}

func TestFailingSinkDoesNotStarveTheOther(t *testing.T) {
	bad := &fakeSink{name: "bad", fail: func(int) error { return errDown }}
	good := &fakeSink{name: "good"}
	log, _ := newLogger()
	p := newPublisher(t, Options{BatchSize: 2, Sinks: []Sink{bad, good}, Logger: log, RetryBackoff: time.Millisecond})
	var want []Event
	for i := range 10 {
		want = append(want, ev(i))
		require.True(t, p.Publish(ev(i)))
	}
	require.NoError(t, p.Close(context.Background()))
	assert.Equal(t, want, good.events())
	s := p.Stats().Snapshot()
	assert.Equal(t, int64(10), s["sent_good"])
	assert.Equal(t, int64(10), s["sink_dropped_bad"])
	assert.Equal(t, int64(0), s["sent_bad"])
	assert.Equal(t, int64(0), s["sink_errors_good"])
}

func TestNewRejectsBadSinksAndOptions(t *testing.T) {
	_, err := New(Options{Sinks: []Sink{&fakeSink{name: "x"}, &fakeSink{name: "x"}}})
	assert.ErrorContains(t, err, `"x"`)
	_, err = New(Options{Sinks: []Sink{nil}})
	assert.ErrorContains(t, err, "nil")
	_, err = New(Options{QueueSize: -1})
	assert.ErrorContains(t, err, "events.queue_size")
}

func TestOptionsValidate(t *testing.T) {
	assert.NoError(t, Options{}.Validate())
	assert.NoError(t, Options{QueueSize: MaxQueueSize, BatchSize: 1, RetryBackoff: time.Second}.Validate())
	for _, tc := range []struct {
		opts Options
		key  string
	}{
		{Options{QueueSize: -1}, "events.queue_size = -1"},
		{Options{QueueSize: MaxQueueSize + 1}, "events.queue_size"},
		{Options{BatchSize: -5}, "events.batch_size = -5"},
		{Options{RetryBackoff: -time.Second}, "events.retry_backoff = -1s"},
	} {
		assert.ErrorContains(t, tc.opts.Validate(), tc.key)
	}
}

// Issue 13 §5 (OpenSIPS event_id_format): the ids an event carries, as
// OpenSIPS consumers parse them; db_id is h_entry<<32 | h_id.
func TestSeedDialog_EventIDFormat(t *testing.T) {
	for _, tc := range []struct {
		n            int
		id, hash, db bool
	}{
		{0, false, true, false},
		{1, true, false, true},
		{2, true, true, true},
	} {
		t.Run(fmt.Sprint("event_id_format ", tc.n), func(t *testing.T) {
			f, err := ParseIDFormat(tc.n)
			require.NoError(t, err)
			sink := &fakeSink{name: "fake"}
			p := newPublisher(t, Options{Sinks: []Sink{sink}, IDs: f})
			ev := Event{ID: "3.7", EndReason: "bye_caller"}
			ev.WithIDs(3, 7)
			require.True(t, p.Publish(ev))
			require.NoError(t, p.Close(context.Background()))
			got := sink.events()[0]
			assert.Equal(t, tc.id, got.ID == "3.7")
			assert.Equal(t, tc.hash, got.HashEntry != nil && *got.HashEntry == 3 && got.HashID != nil && *got.HashID == 7)
			assert.Equal(t, tc.db, got.DBID != nil && *got.DBID == 3<<32|7)
			assert.Equal(t, "bye_caller", got.EndReason)
			fields := fmt.Sprint(streamFields(&got))
			assert.Equal(t, tc.hash, strings.Contains(fields, "hash_entry 3 hash_id 7"), fields)
			assert.Equal(t, tc.db, strings.Contains(fields, fmt.Sprint("db_id ", uint64(3<<32|7))), fields)
		})
	}
	_, err := ParseIDFormat(3)
	assert.ErrorContains(t, err, "events.event_id_format = 3")
}

package events

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/imsdlg/imsdlg/internal/redistest"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func newRedisStream(t *testing.T, opts RedisStreamOptions) *RedisStream {
	t.Helper()
	r, err := NewRedisStream(opts)
	require.NoError(t, err)
	return r
}

func xrange(t *testing.T, c *redis.Client, stream string) []redis.XMessage {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	msgs, err := c.XRange(ctx, stream, "-", "+").Result()
	require.NoError(t, err)
	return msgs
}

// entry is what an event must look like in the stream.
func entry(e Event) map[string]any {
	m := map[string]any{
		"event":          e.Name,
		"id":             e.ID,
		"callid":         e.CallID,
		"from_tag":       e.FromTag,
		"to_tag":         e.ToTag,
		"old_state":      strconv.Itoa(e.OldState),
		"new_state":      strconv.Itoa(e.NewState),
		"old_state_name": e.OldStateName,
		"new_state_name": e.NewStateName,
		"time":           e.Time.Format(time.RFC3339Nano),
	}
	if e.Node != "" {
		m["node"] = e.Node
	}
	return m
}

func TestRedisStreamEntries(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	c := srv.Client(t)
	p := newPublisher(t, Options{Sinks: []Sink{newRedisStream(t, RedisStreamOptions{Client: c})}, Node: "node-a"})

	var want []Event
	for i := range 3 {
		e := ev(i)
		e.Node = "node-a"
		e.OldState, e.NewState, e.OldStateName, e.NewStateName = 2, 4, "EARLY", "CONFIRMED"
		want = append(want, e)
		require.True(t, p.Publish(e))
	}
	eventually(t, p, "sent_redis_stream", 3)

	msgs := xrange(t, c, DefaultStream)
	require.Len(t, msgs, 3)
	for i, m := range msgs {
		assert.Equal(t, entry(want[i]), m.Values, "entry %d", i)
	}
	assert.Equal(t, "CONFIRMED", msgs[0].Values["new_state_name"])
	assert.Equal(t, "2025-03-01T12:00:00.123456789Z", msgs[0].Values["time"])
}

func TestRedisStreamMaxLen(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	c := srv.Client(t)
	sink := newRedisStream(t, RedisStreamOptions{Client: c, Stream: "test:events", MaxLen: 5, Exact: true})
	p := newPublisher(t, Options{BatchSize: 4, Sinks: []Sink{sink}})

	for i := range 12 {
		require.True(t, p.Publish(ev(i)))
	}
	eventually(t, p, "sent_redis_stream", 12)

	msgs := xrange(t, c, "test:events")
	require.Len(t, msgs, 5, "MAXLEN 5 keeps the newest five")
	for i, m := range msgs {
		assert.Equal(t, ev(7+i).CallID, m.Values["callid"])
	}
}

func TestRedisStreamApproxMaxLenIsSent(t *testing.T) {
	// Approximate trimming only cuts whole macro nodes (100 entries by
	// default), so it is checked on a cap of 1 with enough entries to fill
	// several nodes: the stream must be trimmed, not kept whole.
	srv := redistest.Start(t, redistest.Options{})
	c := srv.Client(t)
	sink := newRedisStream(t, RedisStreamOptions{Client: c, Stream: "test:approx", MaxLen: 1})
	batch := make([]Event, 500)
	for i := range batch {
		batch[i] = ev(i)
	}
	require.NoError(t, sink.Send(context.Background(), batch))
	n, err := c.XLen(context.Background(), "test:approx").Result()
	require.NoError(t, err)
	assert.Less(t, n, int64(500))
	assert.GreaterOrEqual(t, n, int64(1))
}

func TestRedisStreamOutageAndRecovery(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	c := srv.Client(t)
	log, logs := newLogger()
	sink := newRedisStream(t, RedisStreamOptions{Client: c, Timeout: time.Second})
	p := newPublisher(t, Options{BatchSize: 1, Sinks: []Sink{sink}, Logger: log, RetryBackoff: time.Millisecond})

	require.True(t, p.Publish(ev(0)))
	eventually(t, p, "sent_redis_stream", 1)

	srv.Stop()
	for i := 1; i <= 3; i++ {
		require.True(t, p.Publish(ev(i)), "Publish does not wait for a dead Redis")
		eventually(t, p, "sink_dropped_redis_stream", int64(i))
	}
	assert.Equal(t, int64(4), snap(p, "sink_errors_redis_stream"), "first batch sent and retried, then one send per batch")
	assert.Equal(t, 1, logs.count("level=WARN"), "one warning for the outage:\n%s", logs)
	assert.Equal(t, 1, logs.count("sink failing"))
	assert.Contains(t, logs.String(), "sink=redis_stream")
	assert.Zero(t, logs.count("sink recovered"))

	require.NoError(t, srv.Restart())
	// go-redis may refuse for a moment after the restart (its pool backs
	// off dialling after many failures), and a sink known to be down gets
	// no retry: publish until an event gets through.
	require.Eventually(t, func() bool {
		if snap(p, "sent_redis_stream") >= 2 {
			return true
		}
		if snap(p, "queue_length") == 0 {
			p.Publish(ev(4))
		}
		return false
	}, waitFor, tick, "no event reached the restarted Redis; stats %v", p.Stats().Snapshot())
	assert.Equal(t, 1, logs.count("level=INFO msg=\"events: sink recovered\""), "%s", logs)
	assert.Contains(t, logs.String(), "events_lost=")
	assert.Equal(t, 1, logs.count("level=WARN"), "still the one warning:\n%s", logs)

	// The restarted server has no persistence: only events after it.
	msgs := xrange(t, c, DefaultStream)
	require.NotEmpty(t, msgs)
	for _, m := range msgs {
		assert.Equal(t, entry(ev(4)), m.Values)
	}
}

func TestRedisStreamFromURL(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	sink := newRedisStream(t, RedisStreamOptions{URL: srv.URL(), Stream: "url:events"})
	require.NoError(t, sink.Send(context.Background(), []Event{ev(0), ev(1)}))
	msgs := xrange(t, srv.Client(t), "url:events")
	require.Len(t, msgs, 2)
	assert.Equal(t, entry(ev(1)), msgs[1].Values)

	require.NoError(t, sink.Close())
	assert.Error(t, sink.Send(context.Background(), []Event{ev(2)}), "Close closed the client the sink made")
}

func TestRedisStreamLeavesCallersClientOpen(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	c := srv.Client(t)
	p, err := New(Options{Sinks: []Sink{newRedisStream(t, RedisStreamOptions{Client: c})}})
	require.NoError(t, err)
	require.NoError(t, p.Close(context.Background()))
	assert.NoError(t, c.Ping(context.Background()).Err())
}

func TestRedisStreamValidate(t *testing.T) {
	assert.NoError(t, RedisStreamOptions{URL: "redis://127.0.0.1:6379/0"}.Validate())
	assert.NoError(t, RedisStreamOptions{Client: redis.NewClient(&redis.Options{}), Stream: "a:b", MaxLen: 10, Timeout: time.Second}.Validate())
	for _, tc := range []struct {
		opts    RedisStreamOptions
		want    string
		notWant string
	}{
		{opts: RedisStreamOptions{}, want: "events.redis_stream.url: required"},
		{opts: RedisStreamOptions{URL: "http://x"}, want: "events.redis_stream.url"},
		{opts: RedisStreamOptions{URL: "redis://u:hunter2@host:99999/0"}, want: "events.redis_stream.url", notWant: "hunter2"},
		{opts: RedisStreamOptions{URL: "redis://h", Stream: "imsdlg events"}, want: `events.redis_stream.stream = "imsdlg events"`},
		{opts: RedisStreamOptions{URL: "redis://h", MaxLen: -1}, want: "events.redis_stream.maxlen = -1"},
		{opts: RedisStreamOptions{URL: "redis://h", Timeout: -time.Second}, want: "events.redis_stream.timeout"},
	} {
		err := tc.opts.Validate()
		require.Error(t, err, "%+v", tc.opts)
		assert.Contains(t, err.Error(), tc.want)
		if tc.notWant != "" {
			assert.NotContains(t, err.Error(), tc.notWant)
		}
		_, err = NewRedisStream(tc.opts)
		assert.Error(t, err, "NewRedisStream validates")
	}
}

package events

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/imsdlg/imsdlg/cachedb"
	"github.com/redis/go-redis/v9"
)

// Defaults of RedisStreamOptions and WebhookOptions.
const (
	DefaultStream = "imsdlg:events"
	DefaultMaxLen = 100000
	// DefaultTimeout bounds one delivery of a batch: a sink slower than
	// that is treated as down, so the queue keeps moving.
	DefaultTimeout = 2 * time.Second
)

// RedisStreamOptions configures NewRedisStream. Zero values take the
// defaults.
type RedisStreamOptions struct {
	// URL is a cachedb_url (see cachedb.ParseURL), used when Client is
	// nil; the sink then owns the client and closes it.
	URL string
	// Client is an existing client, for sharing the daemon's connection
	// pool; the caller closes it. Its own socket timeouts bound a send
	// unless it was made with ContextTimeoutEnabled.
	Client redis.UniversalClient
	Stream string // the stream's key, DefaultStream when empty
	// MaxLen caps the stream so that it cannot eat Redis's memory when no
	// consumer reads it. Trimming is approximate (MAXLEN ~), which Redis
	// does in whole macro nodes and so nearly for free, unless Exact.
	MaxLen int64
	Exact  bool // MAXLEN = : costlier, for tests and tiny caps
	// Timeout bounds the pipeline of one batch.
	Timeout time.Duration
}

// Validate reports every unusable value, naming it as the daemon's
// configuration does.
func (o RedisStreamOptions) Validate() error {
	var errs []error
	switch {
	case o.Client != nil:
	case o.URL == "":
		errs = append(errs, errors.New("events.redis_stream.url: required (redis://host:port/db, redis-sentinel://... or redis-cluster://...)"))
	default:
		if _, err := cachedb.ParseURL(o.URL); err != nil {
			errs = append(errs, fmt.Errorf("events.redis_stream.url: %v", err))
		}
	}
	// Spaces are legal in a Redis key, but in a configuration file they are
	// a stray quote or paste, and a consumer would read an empty stream.
	if strings.ContainsFunc(o.Stream, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) {
		errs = append(errs, fmt.Errorf("events.redis_stream.stream = %q: must not contain spaces or control characters", o.Stream))
	}
	if o.MaxLen < 0 {
		errs = append(errs, fmt.Errorf("events.redis_stream.maxlen = %d: must be positive (0 means %d)", o.MaxLen, DefaultMaxLen))
	}
	if o.Timeout < 0 {
		errs = append(errs, fmt.Errorf("events.redis_stream.timeout = %s: must not be negative (0 means %s)", o.Timeout, DefaultTimeout))
	}
	return errors.Join(errs...)
}

// RedisStream is the Sink that appends events to a Redis Stream, one
// entry per event with the event's fields as flat string fields, so that
// redis-cli and consumers in any language read them without a decoder.
type RedisStream struct {
	c       redis.UniversalClient
	owned   bool
	stream  string
	maxLen  int64
	approx  bool
	timeout time.Duration
}

var _ Sink = (*RedisStream)(nil)

// NewRedisStream validates opts; it does not connect (go-redis dials on
// first use), so an unreachable Redis shows up as send errors, not here.
func NewRedisStream(opts RedisStreamOptions) (*RedisStream, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if opts.Stream == "" {
		opts.Stream = DefaultStream
	}
	if opts.MaxLen == 0 {
		opts.MaxLen = DefaultMaxLen
	}
	if opts.Timeout == 0 {
		opts.Timeout = DefaultTimeout
	}
	r := &RedisStream{c: opts.Client, stream: opts.Stream, maxLen: opts.MaxLen, approx: !opts.Exact, timeout: opts.Timeout}
	if r.c == nil {
		uo, err := cachedb.ParseURL(opts.URL)
		if err != nil {
			return nil, err
		}
		// As cachedb does: the socket timeouts back up the context, so a
		// black-holed Redis costs Timeout per batch, not go-redis's
		// defaults times its retries.
		uo.DialTimeout = opts.Timeout
		uo.ReadTimeout = opts.Timeout
		uo.WriteTimeout = opts.Timeout
		uo.PoolTimeout = opts.Timeout
		uo.ContextTimeoutEnabled = true
		r.c, r.owned = redis.NewUniversalClient(uo), true
	}
	return r, nil
}

// Name implements Sink.
func (r *RedisStream) Name() string { return "redis_stream" }

// Send implements Sink: one pipeline of XADDs, each trimming the stream.
// When the pipeline fails part-way, the entries already added stay, and
// the retry adds them again.
func (r *RedisStream) Send(ctx context.Context, batch []Event) error {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	_, err := r.c.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i := range batch {
			p.XAdd(ctx, &redis.XAddArgs{
				Stream: r.stream,
				MaxLen: r.maxLen,
				Approx: r.approx,
				Values: streamFields(&batch[i]),
			})
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("redis stream %q: XADD of %d events: %w", r.stream, len(batch), err)
	}
	return nil
}

// Close closes the client when the sink made it from URL.
func (r *RedisStream) Close() error {
	if r.owned {
		return r.c.Close()
	}
	return nil
}

// streamFields are the entry's fields in a fixed order, named as the JSON
// of the webhook, so both sinks carry the same event the same way.
func streamFields(ev *Event) []any {
	f := []any{"event", ev.Name}
	if ev.ID != "" {
		f = append(f, "id", ev.ID)
	}
	if ev.HashEntry != nil && ev.HashID != nil {
		f = append(f, "hash_entry", strconv.FormatUint(uint64(*ev.HashEntry), 10), "hash_id", strconv.FormatUint(uint64(*ev.HashID), 10))
	}
	if ev.DBID != nil {
		f = append(f, "db_id", strconv.FormatUint(*ev.DBID, 10))
	}
	f = append(f,
		"callid", ev.CallID,
		"from_tag", ev.FromTag,
		"to_tag", ev.ToTag,
		"old_state", strconv.Itoa(ev.OldState),
		"new_state", strconv.Itoa(ev.NewState),
		"old_state_name", ev.OldStateName,
		"new_state_name", ev.NewStateName,
		"time", ev.Time.Format(time.RFC3339Nano),
	)
	if ev.Node != "" {
		f = append(f, "node", ev.Node)
	}
	if ev.EndReason != "" {
		f = append(f, "end_reason", ev.EndReason)
	}
	return f
}

package events

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of Options.
const (
	DefaultQueueSize    = 10000
	DefaultBatchSize    = 100
	DefaultRetryBackoff = 200 * time.Millisecond
	// MaxQueueSize bounds events.queue_size: the queue is allocated up
	// front, so a typo of a few zeros would otherwise take the memory of
	// the whole machine at start.
	MaxQueueSize = 1_000_000
)

// Options configures New. Zero values take the defaults.
type Options struct {
	// QueueSize is how many events may wait for the sinks; past it Publish
	// drops. It is the burst the proxy rides out while a sink is slow.
	QueueSize int
	// BatchSize is the most events handed to a sink at once.
	BatchSize int
	Sinks     []Sink
	Logger    *slog.Logger // slog.Default() when nil
	// RetryBackoff is the pause before a failed batch's one retry, long
	// enough for a Redis fail-over or a reconnect to finish.
	RetryBackoff time.Duration
	// Node is set on events that carry none, so consumers of a stream
	// shared by several proxies can tell them apart.
	Node string
	// IDs is event_id_format: which ids an event carries (all by
	// default).
	IDs IDFormat
}

// Validate reports every unusable value, naming it as the daemon's
// configuration does.
func (o Options) Validate() error {
	var errs []error
	if o.QueueSize < 0 || o.QueueSize > MaxQueueSize {
		errs = append(errs, fmt.Errorf("events.queue_size = %d: must be within 1..%d (0 means %d)", o.QueueSize, MaxQueueSize, DefaultQueueSize))
	}
	if o.BatchSize < 0 {
		errs = append(errs, fmt.Errorf("events.batch_size = %d: must be positive (0 means %d)", o.BatchSize, DefaultBatchSize))
	}
	if o.IDs < IDsAll || o.IDs > IDsID {
		errs = append(errs, fmt.Errorf("events: unknown IDFormat %d", o.IDs))
	}
	if o.RetryBackoff < 0 {
		errs = append(errs, fmt.Errorf("events.retry_backoff = %s: must not be negative (0 means %s)", o.RetryBackoff, DefaultRetryBackoff))
	}
	return errors.Join(errs...)
}

// Publisher queues events and delivers them to its sinks in the
// background. Its methods are safe for concurrent use.
type Publisher struct {
	// mu orders Publish against Close: Publish holds it shared only for a
	// non-blocking send, so Close can close the queue knowing no send is
	// in flight, and the worker can then drain it with a plain range.
	mu     sync.RWMutex
	closed bool
	queue  chan Event

	batchSize int
	backoff   time.Duration
	node      string
	idFormat  IDFormat
	log       *slog.Logger
	sinks     []*sinkState
	stats     *Stats

	// ctx is cancelled when Close runs out of time: the send in flight
	// returns and what is still queued is counted, not sent.
	ctx       context.Context
	abort     context.CancelFunc
	done      chan struct{} // closed when the worker has returned
	cut       atomic.Bool   // a send failed because ctx was cancelled
	closeOnce sync.Once
	closeErr  error
}

// sinkState is a sink with its outage bookkeeping, touched only by the
// worker (one goroutine per sink per batch, never two for one sink).
type sinkState struct {
	sink    Sink
	stats   *sinkStats
	failing bool      // an outage was logged and has not ended
	since   time.Time // start of the outage
	lost    int64     // events given up during the outage
}

// New starts the worker; Close stops it. It fails on invalid options and
// on sinks that are nil or share a name (their metrics would collide).
func New(opts Options) (*Publisher, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if opts.QueueSize == 0 {
		opts.QueueSize = DefaultQueueSize
	}
	if opts.BatchSize == 0 {
		opts.BatchSize = DefaultBatchSize
	}
	if opts.RetryBackoff == 0 {
		opts.RetryBackoff = DefaultRetryBackoff
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	stats := &Stats{}
	var sinks []*sinkState
	seen := map[string]bool{}
	for i, s := range opts.Sinks {
		if s == nil {
			return nil, fmt.Errorf("events: sink %d is nil", i)
		}
		name := s.Name()
		if name == "" || seen[name] {
			return nil, fmt.Errorf("events: sink %d: name %q is empty or already taken; it labels the sink's metrics", i, name)
		}
		seen[name] = true
		ss := &sinkStats{name: name}
		stats.sinks = append(stats.sinks, ss)
		sinks = append(sinks, &sinkState{sink: s, stats: ss})
	}
	ctx, cancel := context.WithCancel(context.Background())
	p := &Publisher{
		queue:     make(chan Event, opts.QueueSize),
		batchSize: opts.BatchSize,
		backoff:   opts.RetryBackoff,
		node:      opts.Node,
		idFormat:  opts.IDs,
		log:       opts.Logger,
		sinks:     sinks,
		stats:     stats,
		ctx:       ctx,
		abort:     cancel,
		done:      make(chan struct{}),
	}
	stats.queueLen = func() int { return len(p.queue) }
	go p.run()
	return p, nil
}

// Stats returns the publisher's counters.
func (p *Publisher) Stats() *Stats { return p.stats }

// Publish queues ev without ever blocking: it reports false, and counts
// the drop, when the queue is full or the publisher is closed. An empty
// Name becomes StateChanged, a zero Time now, an empty Node Options.Node.
func (p *Publisher) Publish(ev Event) bool {
	if ev.Name == "" {
		ev.Name = StateChanged
	}
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	if ev.Node == "" {
		ev.Node = p.node
	}
	ev.applyIDFormat(p.idFormat)
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		p.stats.droppedClosed.Add(1)
		return false
	}
	select {
	case p.queue <- ev:
		p.stats.published.Add(1)
		return true
	default:
		p.stats.dropped.Add(1)
		return false
	}
}

// Close stops accepting events, waits until the queued ones are delivered
// or ctx ends, stops the worker and closes the sinks that are io.Closers.
// When ctx ends first, the send in flight is cancelled, what is still
// queued is dropped and counted, and the error wraps ctx.Err(). Close
// always waits for the worker, so no goroutine outlives it; calling it
// again returns the first result.
func (p *Publisher) Close(ctx context.Context) error {
	p.closeOnce.Do(func() {
		p.mu.Lock()
		p.closed = true
		close(p.queue)
		p.mu.Unlock()

		before := p.stats.droppedClosed.Load()
		var errs []error
		select {
		case <-p.done:
		default:
			select {
			case <-p.done:
			case <-ctx.Done():
				p.abort()
				<-p.done
				// The worker may have finished on its own meanwhile: only
				// an actual loss is an error.
				if n := p.stats.droppedClosed.Load() - before; n > 0 || p.cut.Load() {
					errs = append(errs, fmt.Errorf("events: close: %w; %d queued events dropped, and the batch in flight if any", ctx.Err(), n))
				}
			}
		}
		p.abort()
		for _, s := range p.sinks {
			if c, ok := s.sink.(io.Closer); ok {
				if err := c.Close(); err != nil {
					errs = append(errs, fmt.Errorf("events: close sink %s: %w", s.sink.Name(), err))
				}
			}
		}
		p.closeErr = errors.Join(errs...)
	})
	return p.closeErr
}

// run is the worker: it takes what the queue holds, up to a batch, so a
// burst costs one round trip per batch while a lone event leaves at once.
func (p *Publisher) run() {
	defer close(p.done)
	batch := make([]Event, 0, p.batchSize)
	for ev := range p.queue {
		batch = append(batch[:0], ev)
	fill:
		for len(batch) < p.batchSize {
			select {
			case ev, ok := <-p.queue:
				if !ok {
					break fill
				}
				batch = append(batch, ev)
			default:
				break fill
			}
		}
		p.deliver(batch)
		clear(batch) // let the strings go while the queue is idle
	}
}

func (p *Publisher) deliver(batch []Event) {
	if p.ctx.Err() != nil {
		p.stats.droppedClosed.Add(int64(len(batch)))
		return
	}
	// Sinks are sent to side by side so that a sink timing out delays the
	// others by its timeout once, not the sum of all of them.
	if len(p.sinks) == 1 {
		p.sendTo(p.sinks[0], batch)
		return
	}
	var wg sync.WaitGroup
	for _, s := range p.sinks {
		wg.Go(func() { p.sendTo(s, batch) })
	}
	wg.Wait()
}

// sendTo delivers batch to one sink, retrying once. A sink already known
// to be down gets no retry: the retry is for blips, and during an outage
// it would only halve the rate at which the queue drains.
func (p *Publisher) sendTo(s *sinkState, batch []Event) {
	attempts := 2
	if s.failing {
		attempts = 1
	}
	var err error
	for i := range attempts {
		if i > 0 && !p.pause(p.backoff) {
			break
		}
		if err = s.sink.Send(p.ctx, batch); err == nil {
			break
		}
		s.stats.errors.Add(1)
		if p.ctx.Err() != nil {
			break
		}
	}
	// The log line comes before the counters move, so that whoever waits
	// on a counter also sees the line.
	n := int64(len(batch))
	if err == nil {
		if s.failing {
			p.log.Info("events: sink recovered", "sink", s.sink.Name(),
				"down_for", time.Since(s.since).Round(time.Millisecond), "events_lost", s.lost)
			s.failing, s.lost = false, 0
		}
		s.stats.sent.Add(n)
		return
	}
	if p.ctx.Err() != nil {
		// Shutdown cut the send short; that says nothing about the sink.
		p.cut.Store(true)
		s.stats.lost.Add(n)
		return
	}
	s.lost += n
	if !s.failing {
		s.failing, s.since = true, time.Now()
		p.log.Warn("events: sink failing; events for it are dropped and counted, and logged again only when it recovers",
			"sink", s.sink.Name(), "error", err)
	}
	s.stats.lost.Add(n)
}

// pause waits d unless Close gives up first.
func (p *Publisher) pause(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-p.ctx.Done():
		return false
	}
}

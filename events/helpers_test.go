package events

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// waitFor bounds every wait for asynchronous delivery.
const waitFor = 10 * time.Second

const tick = 5 * time.Millisecond

// ev is the i-th event of a test: distinct fields, so order and field
// mapping mistakes show.
func ev(i int) Event {
	return Event{
		Name:         StateChanged,
		ID:           fmt.Sprintf("%d.%d", i%16, 1000+i),
		CallID:       fmt.Sprintf("call-%d@test", i),
		FromTag:      fmt.Sprintf("ft%d", i),
		ToTag:        fmt.Sprintf("tt%d", i),
		OldState:     1,
		NewState:     2,
		OldStateName: "UNCONFIRMED",
		NewStateName: "EARLY",
		Time:         time.Date(2025, 3, 1, 12, 0, 0, 123456789+i, time.UTC),
	}
}

// fakeSink records batches; it can fail calls and hold each call until
// the test lets it go.
type fakeSink struct {
	name    string
	entered chan struct{} // receives once per Send call, when not nil
	gate    chan struct{} // Send waits for a value or its close, when not nil

	mu      sync.Mutex
	batches [][]Event
	calls   int
	fail    func(call int) error // nil error: accept
}

func (f *fakeSink) Name() string { return f.name }

func (f *fakeSink) Send(ctx context.Context, batch []Event) error {
	f.mu.Lock()
	f.calls++
	call := f.calls
	f.mu.Unlock()
	if f.entered != nil {
		f.entered <- struct{}{}
	}
	if f.gate != nil {
		select {
		case <-f.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if f.fail != nil {
		if err := f.fail(call); err != nil {
			return err
		}
	}
	f.mu.Lock()
	f.batches = append(f.batches, append([]Event(nil), batch...))
	f.mu.Unlock()
	return nil
}

func (f *fakeSink) events() []Event {
	f.mu.Lock()
	defer f.mu.Unlock()
	var all []Event
	for _, b := range f.batches {
		all = append(all, b...)
	}
	return all
}

func (f *fakeSink) callCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

var errDown = errors.New("sink down")

// logBuffer collects slog output; the worker writes it while the test
// reads it.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) count(substr string) int { return strings.Count(b.String(), substr) }

func newLogger() (*slog.Logger, *logBuffer) {
	b := &logBuffer{}
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

// newPublisher starts a publisher closed at the end of the test, so that a
// failing test leaves no worker behind.
func newPublisher(t *testing.T, opts Options) *Publisher {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(t.Output(), nil))
	}
	p, err := New(opts)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		_ = p.Close(ctx)
	})
	return p
}

func snap(p *Publisher, key string) int64 { return p.Stats().Snapshot()[key] }

// eventually waits until the counter reaches want.
func eventually(t *testing.T, p *Publisher, key string, want int64) {
	t.Helper()
	require.Eventually(t, func() bool { return snap(p, key) >= want }, waitFor, tick,
		"%s never reached %d; stats %v", key, want, p.Stats().Snapshot())
}

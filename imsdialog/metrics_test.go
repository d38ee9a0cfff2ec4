package imsdialog_test

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	. "github.com/imsdlg/imsdlg/imsdialog"
	"github.com/imsdlg/imsdlg/internal/dlgtest"
	"github.com/imsdlg/imsdlg/internal/siptest"
	"github.com/imsdlg/imsdlg/tm"
)

// histogram gathers one histogram from a collector.
func histogram(t *testing.T, c prometheus.Collector, name string) *dto.Histogram {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(c))
	mfs, err := reg.Gather()
	require.NoError(t, err)
	for _, mf := range mfs {
		if mf.GetName() == name {
			require.Len(t, mf.Metric, 1)
			return mf.Metric[0].GetHistogram()
		}
	}
	t.Fatalf("no %s among the metrics", name)
	return nil
}

// Issue 12 §7: how long answered calls lasted, from the answer to the end
// (a NOC graphs the average call duration and its spread); a call that
// never got an answer has no duration.
func TestIssue12_7_CallDurationHistogram(t *testing.T) {
	uac, a := siptest.NewUA(t), siptest.NewUA(t)
	e := newEnv(t, DefaultConfig(), func(r *tm.Request) tm.Decision { return tm.RelayTo(target(a, "bob")) })
	d := e.ConfirmedCall(t, uac, a)
	e.Clock.Advance(90 * time.Second)
	require.NoError(t, e.M.Terminate(d, SideBoth, 0, "test"))
	a.Reply(a.Request(sip.BYE), 200, "legA")
	uac.Reply(uac.Request(sip.BYE), 200, "")
	e.WaitGone(t)

	// A failed call: no duration.
	inv := uac.Invite("sip:bob@" + e.Addr)
	uac.Send(e.Addr, inv)
	a.Reply(a.Request(sip.INVITE), 486, "x")
	uac.Final()
	e.WaitGone(t)

	h := histogram(t, e.M.Stats(), "imsdlg_dialog_call_duration_seconds")
	assert.Equal(t, uint64(1), h.GetSampleCount())
	assert.InDelta(t, 90, h.GetSampleSum(), 1)
}

// recorder keeps the records logged at Info and above.
type recorder struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (r *recorder) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }
func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	r.recs = append(r.recs, rec.Clone())
	r.mu.Unlock()
	return nil
}
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *recorder) WithGroup(string) slog.Handler      { return r }

// Issue 12 §8: a call leaves one line at the default level, at its end,
// with its Call-ID, its did (the spelling dlgctl --id accepts), why it
// ended, whether it was answered and how long it lasted.
func TestIssue12_8_OneInfoLinePerCall(t *testing.T) {
	rec := &recorder{}
	uac, a := siptest.NewUA(t), siptest.NewUA(t)
	e := dlgtest.New(t, dlgtest.Options{Logger: slog.New(rec)},
		dlgtest.Route(func(r *tm.Request) tm.Decision { return tm.RelayTo(target(a, "bob")) }))
	inv := uac.Invite("sip:bob@" + e.Addr)
	uac.Send(e.Addr, inv)
	a.Reply(a.Request(sip.INVITE), 200, "legA")
	r200 := uac.Response(200)
	uac.Send(e.Addr, uac.AckFor(inv, r200))
	a.Request(sip.ACK)
	d := e.Only(t)
	e.WaitState(t, d, Confirmed)
	e.Clock.Advance(42 * time.Second)
	uac.Send(e.Addr, uac.InDialog("BYE", inv, r200, 2))
	a.Reply(a.Request(sip.BYE), 200, "legA")
	uac.Response(200)
	e.WaitGone(t)

	rec.mu.Lock()
	defer rec.mu.Unlock()
	require.Len(t, rec.recs, 1, "one Info line per call: %v", rec.recs)
	r := rec.recs[0]
	assert.Equal(t, "call ended", r.Message)
	attrs := map[string]string{}
	r.Attrs(func(a slog.Attr) bool { attrs[a.Key] = a.Value.String(); return true })
	assert.Equal(t, d.CallID, attrs["callid"])
	assert.Equal(t, d.DID(), attrs["did"])
	assert.Equal(t, "bye_caller", attrs["reason"])
	assert.Equal(t, "true", attrs["answered"])
	assert.Equal(t, "42s", attrs["duration"])
}

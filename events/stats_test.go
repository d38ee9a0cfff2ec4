package events

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestStatsPrometheus(t *testing.T) {
	bad := &fakeSink{name: "bad", fail: func(int) error { return errDown }}
	good := &fakeSink{name: "good", entered: make(chan struct{}, 10), gate: make(chan struct{})}
	log, _ := newLogger()
	p, err := New(Options{QueueSize: 2, BatchSize: 1, Sinks: []Sink{good, bad}, Logger: log})
	require.NoError(t, err)
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(p.Stats()))

	require.True(t, p.Publish(ev(0)))
	<-good.entered
	require.True(t, p.Publish(ev(1)))
	require.True(t, p.Publish(ev(2)))
	require.False(t, p.Publish(ev(3)))

	got := gather(t, reg)
	assert.Equal(t, 3.0, got["imsdlg_events_published_total"])
	assert.Equal(t, 1.0, got["imsdlg_events_dropped_total"])
	assert.Equal(t, 2.0, got["imsdlg_events_queue_length"])

	close(good.gate)
	require.NoError(t, p.Close(context.Background()))
	assert.False(t, p.Publish(ev(4)))

	got = gather(t, reg)
	assert.Equal(t, map[string]float64{
		"imsdlg_events_published_total":               3,
		"imsdlg_events_dropped_total":                 1,
		"imsdlg_events_dropped_at_close_total":        1,
		"imsdlg_events_queue_length":                  0,
		"imsdlg_events_sent_total{sink=good}":         3,
		"imsdlg_events_sent_total{sink=bad}":          0,
		"imsdlg_events_sink_errors_total{sink=good}":  0,
		"imsdlg_events_sink_errors_total{sink=bad}":   4, // 2 for the first batch, 1 each after
		"imsdlg_events_sink_dropped_total{sink=good}": 0,
		"imsdlg_events_sink_dropped_total{sink=bad}":  3,
	}, got)

	snapshot := p.Stats().Snapshot()
	assert.Equal(t, int64(3), snapshot["sent_good"])
	assert.Equal(t, int64(4), snapshot["sink_errors_bad"])
	assert.Equal(t, int64(3), snapshot["sink_dropped_bad"])
	assert.Equal(t, int64(1), snapshot["dropped_at_close"])
}

// gather flattens the registry into name{label=value} -> value.
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	require.NoError(t, err)
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			for _, l := range m.GetLabel() {
				key += "{" + l.GetName() + "=" + l.GetValue() + "}"
			}
			switch {
			case m.GetCounter() != nil:
				out[key] = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				out[key] = m.GetGauge().GetValue()
			}
		}
	}
	return out
}

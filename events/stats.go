package events

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Stats are the publisher's counters, kept as atomics because Publish runs
// on the SIP path and must take no lock for them; they are exported both
// to Prometheus (Stats is a prometheus.Collector) and to the management
// interface (Snapshot).
type Stats struct {
	published     atomic.Int64 // accepted onto the queue
	dropped       atomic.Int64 // refused: the queue was full
	droppedClosed atomic.Int64 // refused after Close, or still queued when Close gave up
	queueLen      func() int   // nil before the publisher exists
	sinks         []*sinkStats // in the order of Options.Sinks; fixed by New
}

type sinkStats struct {
	name   string
	sent   atomic.Int64 // events the sink accepted
	errors atomic.Int64 // failed Send calls, retries included
	lost   atomic.Int64 // events given up for this sink after the retry
}

// Snapshot returns the counters by name; per-sink counters end in the
// sink's name (sent_webhook, sink_errors_redis_stream, ...).
func (s *Stats) Snapshot() map[string]int64 {
	m := map[string]int64{
		"published":        s.published.Load(),
		"dropped":          s.dropped.Load(),
		"dropped_at_close": s.droppedClosed.Load(),
		"queue_length":     s.queueLength(),
	}
	for _, k := range s.sinks {
		m["sent_"+k.name] = k.sent.Load()
		m["sink_errors_"+k.name] = k.errors.Load()
		m["sink_dropped_"+k.name] = k.lost.Load()
	}
	return m
}

func (s *Stats) queueLength() int64 {
	if s.queueLen == nil {
		return 0
	}
	return int64(s.queueLen())
}

var (
	descPublished     = prometheus.NewDesc("imsdlg_events_published_total", "Dialog events accepted onto the publish queue.", nil, nil)
	descDropped       = prometheus.NewDesc("imsdlg_events_dropped_total", "Dialog events dropped because the publish queue was full.", nil, nil)
	descDroppedClosed = prometheus.NewDesc("imsdlg_events_dropped_at_close_total", "Dialog events published after shutdown began, or still queued when the shutdown deadline passed.", nil, nil)
	descQueue         = prometheus.NewDesc("imsdlg_events_queue_length", "Dialog events waiting in the publish queue.", nil, nil)
	descSent          = prometheus.NewDesc("imsdlg_events_sent_total", "Dialog events delivered, by sink.", []string{"sink"}, nil)
	descSinkErrors    = prometheus.NewDesc("imsdlg_events_sink_errors_total", "Failed deliveries of a batch of dialog events (retries included), by sink.", []string{"sink"}, nil)
	descSinkDropped   = prometheus.NewDesc("imsdlg_events_sink_dropped_total", "Dialog events given up for a sink after its retry failed, by sink.", []string{"sink"}, nil)
)

// Describe implements prometheus.Collector.
func (s *Stats) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descPublished, descDropped, descDroppedClosed, descQueue, descSent, descSinkErrors, descSinkDropped} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (s *Stats) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	counter(descPublished, s.published.Load())
	counter(descDropped, s.dropped.Load())
	counter(descDroppedClosed, s.droppedClosed.Load())
	ch <- prometheus.MustNewConstMetric(descQueue, prometheus.GaugeValue, float64(s.queueLength()))
	for _, k := range s.sinks {
		counter(descSent, k.sent.Load(), k.name)
		counter(descSinkErrors, k.errors.Load(), k.name)
		counter(descSinkDropped, k.lost.Load(), k.name)
	}
}

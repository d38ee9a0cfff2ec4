package imsdialog

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Stats are the statistics of the ims_dialog manual (§7), with the
// failed_dialogs Kamailio's module lacks.
type Stats struct {
	active    atomic.Int64  // active_dialogs: answered, not ended
	early     atomic.Int64  // early_dialogs
	processed atomic.Uint64 // processed_dialogs: ended since start
	expired   atomic.Uint64 // expired_dialogs
	failed    atomic.Uint64 // failed_dialogs: ended before an answer
	created   atomic.Uint64
	spiraled  atomic.Uint64 // initial INVITEs that joined their dialog as a spiral
	restored  atomic.Uint64 // dialogs loaded from the dialog store at start
	// invalids counts the requests validate_dialog found not to fit their
	// dialog, by check (cseq, remote_target, route_set, other).
	invalids [4]atomic.Uint64
	// ended counts the dialogs that ended, by EndReason.
	ended [len(endNames)]atomic.Uint64
	// duration is how long answered calls lasted, answer to end.
	duration prometheus.Histogram
}

// DurationBuckets are the bounds (seconds) of imsdlg_dialog_call_duration_seconds:
// from a hang-up at once to a call held past a working day.
var DurationBuckets = []float64{1, 5, 10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 43200, 86400}

func (s *Stats) init() {
	s.duration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "imsdlg_dialog_call_duration_seconds",
		Help:    "How long answered calls lasted, from the answer to the end, however they ended.",
		Buckets: DurationBuckets,
	})
}

func (s *Stats) transition(from, to State, end EndReason) {
	wasActive := from == ConfirmedNA || from == Confirmed
	isActive := to == ConfirmedNA || to == Confirmed
	switch {
	case wasActive && !isActive:
		s.active.Add(-1)
	case !wasActive && isActive:
		s.active.Add(1)
	}
	if from == Early && to != Early {
		s.early.Add(-1)
	}
	if to == Early {
		s.early.Add(1)
	}
	if to == Terminated {
		if int(end) < len(s.ended) {
			s.ended[end].Add(1)
		}
		s.processed.Add(1)
		if end == EndExpired {
			s.expired.Add(1)
		}
		if from == Unconfirmed || from == Early {
			s.failed.Add(1)
		}
	}
}

func (s *Stats) invalid(c Check) {
	if i := -int(c) - 1; i >= 0 && i < len(s.invalids) {
		s.invalids[i].Add(1)
	}
}

// Snapshot returns the counters under the manual's names, and the dialogs
// ended by cause as ended_<reason> (failed, cancelled, bye_caller,
// bye_callee, expired, terminated, ping_timeout, no_ack): failed_dialogs
// by cause is ended_failed + ended_cancelled + the early share of
// ended_terminated and ended_expired.
func (s *Stats) Snapshot() map[string]int64 {
	m := s.snapshot()
	for r := EndFailed; int(r) < len(s.ended); r++ {
		m["ended_"+r.String()] = int64(s.ended[r].Load())
	}
	return m
}

func (s *Stats) snapshot() map[string]int64 {
	return map[string]int64{
		"active_dialogs":    max(s.active.Load(), 0),
		"early_dialogs":     max(s.early.Load(), 0),
		"processed_dialogs": int64(s.processed.Load()),
		"expired_dialogs":   int64(s.expired.Load()),
		"failed_dialogs":    int64(s.failed.Load()),
		"created_dialogs":   int64(s.created.Load()),
		"spiraled_requests": int64(s.spiraled.Load()),
		"restored_dialogs":  int64(s.restored.Load()),
		// Not in the manual: dialogs ended by their keepalive (dialog.ping).
		"ping_timeout_dialogs": int64(s.ended[EndPingTimeout].Load()),
		// Requests within a dialog that did not fit it (validate_dialog).
		"invalid_cseq":          int64(s.invalids[0].Load()),
		"invalid_remote_target": int64(s.invalids[1].Load()),
		"invalid_route_set":     int64(s.invalids[2].Load()),
	}
}

var (
	descActive    = prometheus.NewDesc("imsdlg_dialog_active_dialogs", "Dialogs answered and not ended.", nil, nil)
	descEarly     = prometheus.NewDesc("imsdlg_dialog_early_dialogs", "Dialogs in early state.", nil, nil)
	descProcessed = prometheus.NewDesc("imsdlg_dialog_processed_dialogs_total", "Dialogs ended since start.", nil, nil)
	descExpired   = prometheus.NewDesc("imsdlg_dialog_expired_dialogs_total", "Dialogs ended by their timeout.", nil, nil)
	descFailed    = prometheus.NewDesc("imsdlg_dialog_failed_dialogs_total", "Dialogs ended before an answer.", nil, nil)
	descCreated   = prometheus.NewDesc("imsdlg_dialog_created_dialogs_total", "Dialogs created since start.", nil, nil)
	descSpiraled  = prometheus.NewDesc("imsdlg_dialog_spiraled_requests_total", "Initial INVITEs that came back to us and joined their dialog (detect_spirals).", nil, nil)
	descRestored  = prometheus.NewDesc("imsdlg_dialog_restored_dialogs_total", "Dialogs loaded from the dialog store (db_mode) at start.", nil, nil)
	descInvalid   = prometheus.NewDesc("imsdlg_dialog_invalid_requests_total", "Requests within a dialog that did not fit it (validate_dialog), by check: cseq, remote_target, route_set, other.", []string{"check"}, nil)
	descEnded     = prometheus.NewDesc("imsdlg_dialog_ended_dialogs_total", "Dialogs ended, by why: failed, cancelled, bye_caller, bye_callee, expired, terminated, ping_timeout.", []string{"reason"}, nil)
)

// Describe implements prometheus.Collector.
func (s *Stats) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descActive, descEarly, descProcessed, descExpired, descFailed, descCreated, descSpiraled, descRestored, descInvalid, descEnded} {
		ch <- d
	}
	s.duration.Describe(ch)
}

// Collect implements prometheus.Collector.
func (s *Stats) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(descActive, prometheus.GaugeValue, float64(max(s.active.Load(), 0)))
	ch <- prometheus.MustNewConstMetric(descEarly, prometheus.GaugeValue, float64(max(s.early.Load(), 0)))
	ch <- prometheus.MustNewConstMetric(descProcessed, prometheus.CounterValue, float64(s.processed.Load()))
	ch <- prometheus.MustNewConstMetric(descExpired, prometheus.CounterValue, float64(s.expired.Load()))
	ch <- prometheus.MustNewConstMetric(descFailed, prometheus.CounterValue, float64(s.failed.Load()))
	ch <- prometheus.MustNewConstMetric(descCreated, prometheus.CounterValue, float64(s.created.Load()))
	ch <- prometheus.MustNewConstMetric(descSpiraled, prometheus.CounterValue, float64(s.spiraled.Load()))
	ch <- prometheus.MustNewConstMetric(descRestored, prometheus.CounterValue, float64(s.restored.Load()))
	for i := range s.invalids {
		ch <- prometheus.MustNewConstMetric(descInvalid, prometheus.CounterValue, float64(s.invalids[i].Load()), Check(-i-1).String())
	}
	for r := EndFailed; int(r) < len(s.ended); r++ {
		ch <- prometheus.MustNewConstMetric(descEnded, prometheus.CounterValue, float64(s.ended[r].Load()), r.String())
	}
	s.duration.Collect(ch)
}

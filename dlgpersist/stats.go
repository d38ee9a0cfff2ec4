package dlgpersist

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Stats count what the persister did.
type Stats struct {
	writes  atomic.Uint64 // dialog records written or deleted
	errors  atomic.Uint64 // flushes to the dialog store that failed
	dropped atomic.Uint64 // saved dialogs not restored: their deadline had passed
}

// Snapshot returns the counters under the names dlg.stats shows them.
func (s *Stats) Snapshot() map[string]int64 {
	return map[string]int64{
		"db_writes":           int64(s.writes.Load()),
		"db_errors":           int64(s.errors.Load()),
		"db_outlived_dropped": int64(s.dropped.Load()),
	}
}

var (
	descDBWrites  = prometheus.NewDesc("imsdlg_dialog_db_writes_total", "Dialog records written to or deleted from the dialog store.", nil, nil)
	descDBErrors  = prometheus.NewDesc("imsdlg_dialog_db_errors_total", "Flushes to the dialog store that failed (retried).", nil, nil)
	descDBDropped = prometheus.NewDesc("imsdlg_dialog_db_outlived_dropped_total", "Saved dialogs dropped at restore instead of restored: their deadline passed while the proxy was down.", nil, nil)
)

// Describe implements prometheus.Collector.
func (s *Stats) Describe(ch chan<- *prometheus.Desc) {
	ch <- descDBWrites
	ch <- descDBErrors
	ch <- descDBDropped
}

// Collect implements prometheus.Collector.
func (s *Stats) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(descDBWrites, prometheus.CounterValue, float64(s.writes.Load()))
	ch <- prometheus.MustNewConstMetric(descDBErrors, prometheus.CounterValue, float64(s.errors.Load()))
	ch <- prometheus.MustNewConstMetric(descDBDropped, prometheus.CounterValue, float64(s.dropped.Load()))
}

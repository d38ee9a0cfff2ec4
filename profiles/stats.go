package profiles

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Stats are the counters that show how the profile stores behave, kept as
// atomics so that the call path takes no lock. Stats is a
// prometheus.Collector; Snapshot serves the management API.
type Stats struct {
	set           *Set
	storeErrors   [numKinds]atomic.Uint64
	limitRejected map[string]*atomic.Uint64 // by bare profile name; fixed by New, so read without a lock
	uncertainAdds atomic.Uint64
	retriedOK     atomic.Uint64
	republished   atomic.Uint64
	failOpen      atomic.Uint64
	failClosed    atomic.Uint64
	// limitCheck is the round trip of a limited admission's count, by
	// store: what a limit adds to a call's set-up.
	limitCheck [numKinds]prometheus.Histogram
}

// LimitCheckBuckets are the bounds (seconds) of
// imsdlg_profile_limit_check_seconds: from a loopback Redis to a timeout.
var LimitCheckBuckets = prometheus.ExponentialBuckets(0.0001, 2, 14) // 100µs .. 0.8s

func (st *Stats) init(s *Set) {
	st.set = s
	for k := range st.limitCheck {
		st.limitCheck[k] = prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:        "imsdlg_profile_limit_check_seconds",
			Help:        "Round trip of the atomic check-and-count of a limited profile (set_dlg_profile with a limit), by store.",
			Buckets:     LimitCheckBuckets,
			ConstLabels: prometheus.Labels{"store": storeKind(k).String()},
		})
	}
	st.limitRejected = make(map[string]*atomic.Uint64, len(s.profiles))
	for name := range s.profiles {
		st.limitRejected[name] = new(atomic.Uint64)
	}
}

// Stats returns the Set's statistics.
func (s *Set) Stats() *Stats { return &s.stats }

// CountFailOpen counts a call admitted without its profile check because
// the store failed. The fail-open/fail-closed policy belongs to the caller
// (it knows which calls may pass), so the caller counts its decisions here,
// next to the store errors that caused them.
func (s *Set) CountFailOpen() { s.stats.failOpen.Add(1) }

// CountFailClosed counts a call refused because the store failed.
func (s *Set) CountFailClosed() { s.stats.failClosed.Add(1) }

// Snapshot returns the counters by name; limit_rejected is the total and
// limit_rejected_<profile> the count of each declared profile.
func (st *Stats) Snapshot() map[string]int64 {
	m := map[string]int64{
		"store_errors_local":    int64(st.storeErrors[kindLocal].Load()),
		"store_errors_shared":   int64(st.storeErrors[kindShared].Load()),
		"store_healthy_local":   healthy(st.set, kindLocal),
		"store_healthy_shared":  healthy(st.set, kindShared),
		"uncertain_adds":        int64(st.uncertainAdds.Load()),
		"pending_decrements":    int64(st.set.Pending()),
		"decrements_retried_ok": int64(st.retriedOK.Load()),
		"store_republished":     int64(st.republished.Load()),
		"fail_open":             int64(st.failOpen.Load()),
		"fail_closed":           int64(st.failClosed.Load()),
	}
	var total int64
	for name, c := range st.limitRejected {
		n := int64(c.Load())
		m["limit_rejected_"+name] = n
		total += n
	}
	m["limit_rejected"] = total
	return m
}

func healthy(s *Set, k storeKind) int64 {
	if s.health[k].failing.Load() {
		return 0
	}
	return 1
}

var (
	descStoreErrors   = prometheus.NewDesc("imsdlg_profile_store_errors_total", "Profile store calls that failed (timeout, connection refused...), by store; limits reached are not errors.", []string{"store"}, nil)
	descStoreHealthy  = prometheus.NewDesc("imsdlg_profile_store_healthy", "1 when the last call to the profile store succeeded, 0 while it fails.", []string{"store"}, nil)
	descLimitRejected = prometheus.NewDesc("imsdlg_profile_limit_rejected_total", "set_dlg_profile calls refused because the profile limit was reached.", []string{"profile"}, nil)
	descUncertain     = prometheus.NewDesc("imsdlg_profile_uncertain_adds_total", "Profile increments whose outcome is unknown (store error); removed when the dialog ends.", nil, nil)
	descPending       = prometheus.NewDesc("imsdlg_profile_pending_decrements", "Ended dialogs whose profile decrements failed and are being retried.", nil, nil)
	descRetriedOK     = prometheus.NewDesc("imsdlg_profile_decrements_retried_ok_total", "Profile decrements that succeeded on a retry.", nil, nil)
	descRepublished   = prometheus.NewDesc("imsdlg_profile_store_republished_total", "Times this node re-published its live memberships because the shared store may have lost its data (restarted without persistence, flushed, failed over).", nil, nil)
	descFailOpen      = prometheus.NewDesc("imsdlg_profile_fail_open_total", "Calls admitted without their profile check because the store failed (fail_open).", nil, nil)
	descFailClosed    = prometheus.NewDesc("imsdlg_profile_fail_closed_total", "Calls refused because the profile store failed (fail_closed).", nil, nil)
	descSize          = prometheus.NewDesc("imsdlg_profile_size", "Dialogs in a node-local profile (shared profiles are not read at scrape time: that would cost a Redis round trip per scrape).", []string{"profile"}, nil)
)

// scrapeTimeout bounds the local size reads of one scrape, in case the
// local store is not in memory.
const scrapeTimeout = time.Second

// Describe implements prometheus.Collector.
func (st *Stats) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descStoreErrors, descStoreHealthy, descLimitRejected, descUncertain,
		descPending, descRetriedOK, descRepublished, descFailOpen, descFailClosed, descSize} {
		ch <- d
	}
	for _, h := range st.limitCheck {
		h.Describe(ch)
	}
}

// Collect implements prometheus.Collector. The shared store's series are
// left out when no profile is shared, so that a node without Redis does not
// report a Redis. Sizes are read only for local profiles: a shared size
// would be a Redis round trip per profile per scrape, and it is the same
// cluster-wide count on every node.
func (st *Stats) Collect(ch chan<- prometheus.Metric) {
	s := st.set
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, float64(v), labels...)
	}
	// Sizes first, so that the error counts and health of this scrape
	// include its own reads.
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	for _, p := range s.profiles {
		if p.info.Shared {
			continue
		}
		n, err := p.store.Size(ctx, p.cp, "")
		s.observe(ctx, p.kind, err)
		if err != nil {
			// No sample rather than a false 0; the error is counted.
			continue
		}
		gauge(descSize, n, p.info.Name)
	}
	kinds := []storeKind{kindLocal}
	if s.probe != nil {
		kinds = append(kinds, kindShared)
	}
	for _, k := range kinds {
		counter(descStoreErrors, st.storeErrors[k].Load(), k.String())
		gauge(descStoreHealthy, healthy(s, k), k.String())
	}
	for name, c := range st.limitRejected {
		counter(descLimitRejected, c.Load(), name)
	}
	counter(descUncertain, st.uncertainAdds.Load())
	gauge(descPending, int64(s.Pending()))
	counter(descRetriedOK, st.retriedOK.Load())
	if s.probe != nil {
		counter(descRepublished, st.republished.Load())
	}
	counter(descFailOpen, st.failOpen.Load())
	counter(descFailClosed, st.failClosed.Load())
	st.limitCheck[kindLocal].Collect(ch)
	if s.probe != nil {
		st.limitCheck[kindShared].Collect(ch)
	}

}

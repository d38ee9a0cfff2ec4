package profiles

import (
	"errors"
	"maps"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"

	"github.com/imsdlg/imsdlg/cachedb"
)

// statsScenario drives the counters of a faultSet: two limit rejections
// on caller and one on trunk, three shared store errors (two uncertain
// Adds, one failed Remove leaving one pending dialog) and the caller's
// policy decisions.
func statsScenario(t *testing.T) *Set {
	t.Helper()
	s, _, shared := faultSet(t)
	mustSet(t, s, "1.1", "caller", "a", 1, 1)
	mustSet(t, s, "1.2", "caller", "b", 0, 1)
	mustSet(t, s, "1.2", "inbound", "", 0, 1)
	for _, id := range []string{"1.3", "1.4"} {
		if _, err := s.SetProfile(ctx, id, "caller", "a", 1); !errors.Is(err, cachedb.ErrLimit) {
			t.Fatalf("SetProfile over the limit: %v", err)
		}
	}
	mustSet(t, s, "1.1", "trunk", "", 1, 1)
	if _, err := s.SetProfile(ctx, "1.5", "trunk", "", 1); !errors.Is(err, cachedb.ErrLimit) {
		t.Fatalf("SetProfile over the limit: %v", err)
	}
	shared.set(faultDown)
	for _, id := range []string{"2.1", "2.2"} {
		if _, err := s.SetProfile(ctx, id, "callee", "x", 0); err == nil {
			t.Fatal("SetProfile succeeded on a failing store")
		}
	}
	if err := s.Release(ctx, "1.1"); err == nil {
		t.Fatal("Release succeeded on a failing store")
	}
	s.CountFailOpen()
	s.CountFailClosed()
	s.CountFailClosed()
	return s
}

func TestStatsSnapshot(t *testing.T) {
	s := statsScenario(t)
	want := map[string]int64{
		"store_errors_local":     0,
		"store_errors_shared":    3,
		"store_healthy_local":    1,
		"store_healthy_shared":   0,
		"uncertain_adds":         2,
		"store_republished":      0,
		"pending_decrements":     1,
		"decrements_retried_ok":  0,
		"fail_open":              1,
		"fail_closed":            2,
		"limit_rejected":         3,
		"limit_rejected_caller":  2,
		"limit_rejected_callee":  0,
		"limit_rejected_inbound": 0,
		"limit_rejected_trunk":   1,
	}
	if got := s.Stats().Snapshot(); !maps.Equal(got, want) {
		t.Errorf("Snapshot =\n%v\nwant\n%v", got, want)
	}
}

// metrics gathers the Set's collector through a pedantic registry, which
// also checks that Collect matches Describe.
func metrics(t *testing.T, s *Set) []*dto.MetricFamily {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(s.Stats()); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	return mfs
}

// series maps "name{label=value}" (no braces without a label) to the value
// of each series.
func series(mfs []*dto.MetricFamily) map[string]float64 {
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			if len(labels) > 0 {
				key += "{" + strings.Join(labels, ",") + "}"
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

func TestStatsPrometheus(t *testing.T) {
	s := statsScenario(t)
	mfs := metrics(t, s)
	want := map[string]float64{
		"imsdlg_profile_store_errors_total{store=local}":       0,
		"imsdlg_profile_store_errors_total{store=shared}":      3,
		"imsdlg_profile_store_healthy{store=local}":            1,
		"imsdlg_profile_store_healthy{store=shared}":           0,
		"imsdlg_profile_limit_rejected_total{profile=caller}":  2,
		"imsdlg_profile_limit_rejected_total{profile=callee}":  0,
		"imsdlg_profile_limit_rejected_total{profile=inbound}": 0,
		"imsdlg_profile_limit_rejected_total{profile=trunk}":   1,
		"imsdlg_profile_uncertain_adds_total":                  2,
		"imsdlg_profile_store_republished_total":               0,
		"imsdlg_profile_pending_decrements":                    1,
		"imsdlg_profile_decrements_retried_ok_total":           0,
		"imsdlg_profile_fail_open_total":                       1,
		"imsdlg_profile_fail_closed_total":                     2,
		// Local profiles only: caller holds 1.2 "b" (1.1 released), inbound
		// 1.2.
		"imsdlg_profile_size{profile=caller}":  1,
		"imsdlg_profile_size{profile=inbound}": 1,
	}
	if got := series(mfs); !maps.Equal(got, want) {
		keys := slices.Sorted(maps.Keys(got))
		t.Errorf("series:\n%v\nvalues %v\nwant %v", keys, got, want)
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint %s: %s", p.Metric, p.Text)
	}
}

// Without a shared profile there is no shared store to report on.
func TestStatsPrometheusWithoutSharedStore(t *testing.T) {
	s, err := New(Config{NoValue: []string{"inbound"}}, nil, nil, "n")
	if err != nil {
		t.Fatal(err)
	}
	for key := range series(metrics(t, s)) {
		if strings.Contains(key, "store=shared") {
			t.Errorf("series %s without a shared store", key)
		}
	}
}

// A size the local store cannot read is left out (not reported as 0) and
// counted as a store error.
func TestStatsSizeLeftOutWhenTheLocalStoreFails(t *testing.T) {
	s, local, _ := faultSet(t)
	mustSet(t, s, "1.1", "inbound", "", 0, 1)
	local.set(faultDown)
	got := series(metrics(t, s))
	for key := range got {
		if strings.HasPrefix(key, "imsdlg_profile_size") {
			t.Errorf("size series %s while the local store fails", key)
		}
	}
	if n := got["imsdlg_profile_store_errors_total{store=local}"]; n != 2 {
		t.Errorf("local store errors = %v, want 2 (one per local profile)", n)
	}
}

// Issue 12 §7: the round trip of each limited admission's count is a
// histogram by store; a count without a limit is not a limit check.
func TestIssue12_7_LimitCheckHistogram(t *testing.T) {
	s, _, _ := testSet(t)
	step := time.Unix(1000, 0)
	s.now = func() time.Time { step = step.Add(2 * time.Millisecond); return step }
	mustSet(t, s, "1.1", "trunk", "", 5, 1)   // shared, limited
	mustSet(t, s, "1.2", "trunk", "", 0, 2)   // shared, not limited
	mustSet(t, s, "1.1", "inbound", "", 5, 1) // local, limited
	got := map[string][2]float64{}
	for _, mf := range metrics(t, s) {
		if mf.GetName() != "imsdlg_profile_limit_check_seconds" {
			continue
		}
		for _, m := range mf.Metric {
			h := m.GetHistogram()
			got[m.Label[0].GetValue()] = [2]float64{float64(h.GetSampleCount()), h.GetSampleSum()}
		}
	}
	want := map[string][2]float64{"local": {1, 0.002}, "shared": {1, 0.002}}
	for k, w := range want {
		if g := got[k]; g[0] != w[0] || math.Abs(g[1]-w[1]) > 1e-9 {
			t.Errorf("limit checks of the %s store: count %v sum %v, want %v %v", k, g[0], g[1], w[0], w[1])
		}
	}
}

package tm

import (
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imsdlg/imsdlg/internal/siptest"
)

// gather returns the metric families of s by name.
func gather(t *testing.T, s *Stats) map[string]*dto.MetricFamily {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(s))
	mfs, err := reg.Gather()
	require.NoError(t, err)
	out := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

func byLabel(mf *dto.MetricFamily) map[string]*dto.Metric {
	out := map[string]*dto.Metric{}
	for _, m := range mf.GetMetric() {
		out[m.Label[0].GetValue()] = m
	}
	return out
}

// Issue 12 §7: the counters and histograms a NOC graphs: requests by
// method, replies by code, what the proxy adds to a request, and the call
// set-up through it (INVITE to ringing, INVITE to answer), on tm's clock.
func TestIssue12_7_RequestsRepliesAndSetupTimes(t *testing.T) {
	uac, a := siptest.NewUA(t), siptest.NewUA(t)
	p := startProxy(t, testCfg(), toUAs(a))
	inv := uac.Invite("sip:bob@" + p.udp)
	uac.Send(p.udp, inv)
	ia := a.Request(sip.INVITE)
	p.clock.Advance(2 * time.Second)
	a.Reply(ia, 180, "a")
	uac.Response(180)
	p.clock.Advance(3 * time.Second)
	a.Reply(ia, 200, "a")
	uac.Response(200)
	uac.Send(p.udp, uac.NewRequest("OPTIONS", "sip:bob@"+p.udp, 1))
	a.Reply(a.Request(sip.OPTIONS), 404, "")
	uac.Final()
	// A reply is counted once it left: the caller may see it first, and
	// with two readers the 404 may be counted before the 200 is.
	require.Eventually(t, func() bool {
		mfs := gather(t, p.Stats())
		rep := byLabel(mfs["imsdlg_tm_sent_replies_total"])
		answer, ok := byLabel(mfs["imsdlg_tm_invite_setup_seconds"])["answer"]
		return rep["404"] != nil && rep["404"].GetCounter().GetValue() == 1 &&
			rep["200"] != nil && rep["200"].GetCounter().GetValue() == 1 &&
			ok && answer.GetHistogram().GetSampleCount() == 1
	}, 5*time.Second, time.Millisecond)

	mfs := gather(t, p.Stats())
	req := byLabel(mfs["imsdlg_tm_received_requests_total"])
	assert.Equal(t, 1.0, req["INVITE"].GetCounter().GetValue())
	assert.Equal(t, 1.0, req["OPTIONS"].GetCounter().GetValue())
	assert.Equal(t, 0.0, req["BYE"].GetCounter().GetValue())
	rep := byLabel(mfs["imsdlg_tm_sent_replies_total"])
	for code, n := range map[string]float64{"100": 1, "180": 1, "200": 1, "404": 1} {
		if assert.Contains(t, rep, code) {
			assert.Equal(t, n, rep[code].GetCounter().GetValue(), "replies %s", code)
		}
	}
	assert.NotContains(t, rep, "486", "codes never sent are left out")

	setup := byLabel(mfs["imsdlg_tm_invite_setup_seconds"])
	assert.Equal(t, uint64(1), setup["ringing"].GetHistogram().GetSampleCount())
	assert.InDelta(t, 2, setup["ringing"].GetHistogram().GetSampleSum(), 0.01)
	assert.InDelta(t, 5, setup["answer"].GetHistogram().GetSampleSum(), 0.01)
	lat := mfs["imsdlg_tm_relay_latency_seconds"].Metric[0].GetHistogram()
	assert.Equal(t, uint64(2), lat.GetSampleCount(), "the INVITE and the OPTIONS were relayed")
	assert.Less(t, lat.GetSampleSum(), 1.0, "no fake-clock time passed before they were relayed")

	problems, err := promlint.NewWithMetricFamilies(func() []*dto.MetricFamily {
		var out []*dto.MetricFamily
		for _, mf := range mfs {
			out = append(out, mf)
		}
		return out
	}()).Lint()
	require.NoError(t, err)
	assert.Empty(t, problems, "Prometheus naming")
}

// Issue 12 §8: no log line carries a key twice (the transport's lines had
// component=transport twice: a JSON consumer keeps one or refuses both).
func TestIssue12_8_NoDuplicateKeysInLogLines(t *testing.T) {
	var buf syncLog
	p := startProxy(t, testCfg(), toUAs(), func(o *Options) { o.Logger = slog.New(slog.NewTextHandler(&buf, nil)) })
	ua := siptest.NewUA(t)
	for range 3 { // parse failures are logged by the transport, rate-limited
		ua.SendRaw(p.udp, "garbage that is not SIP\r\n\r\n")
	}
	require.Eventually(t, func() bool { return strings.Contains(buf.String(), "component=transport") }, 5*time.Second, 10*time.Millisecond,
		"the transport logged nothing: %s", buf.String())
	for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
		seen := map[string]bool{}
		for _, f := range strings.Fields(line) {
			k, _, ok := strings.Cut(f, "=")
			if !ok || strings.ContainsAny(k, `"`) {
				continue
			}
			if seen[k] {
				t.Errorf("key %s twice in %q", k, line)
			}
			seen[k] = true
		}
	}
}

// OpenSIPS tm manual 1.7.12-1.7.16: request retransmissions are counted by
// their place in the series (retransmission_req_T1_1 the first, after T1;
// _T1_2 after 2*T1; _T1_3 after 4*T1; _T2 every later one), reply
// retransmissions in retransmission_rpl_T2 (Timer G, and a retransmitted
// request answered with its final again); retransmissions_sent is their
// sum.
func TestSeedTm_1_7_12_RetransmissionsByInterval(t *testing.T) {
	uac, uas := siptest.NewUA(t), siptest.NewUA(t)
	cfg := testCfg()
	cfg.FrTimeout = 30 * time.Second // the series, not fr_timeout, is under test
	p := startProxy(t, cfg, toUAs(uas))
	snap := func() map[string]uint64 { return p.Stats().Snapshot() }

	// A callee that never answers an OPTIONS: Timer E at T1, 2T1, 4T1, T2, T2.
	uac.Send(p.udp, uac.NewRequest("OPTIONS", "sip:bob@"+p.udp, 1))
	uas.Request(sip.OPTIONS)
	want := map[string]uint64{}
	for i, step := range []struct {
		after    time.Duration
		interval string
	}{{p.cfg.T1, "T1_1"}, {2 * p.cfg.T1, "T1_2"}, {4 * p.cfg.T1, "T1_3"}, {p.cfg.T2, "T2"}, {p.cfg.T2, "T2"}} {
		p.clock.Advance(step.after)
		uas.Request(sip.OPTIONS)
		want["retransmission_req_"+step.interval]++
		siptest.Eventually(t, func() bool { return snap()["retransmissions_sent"] == uint64(i+1) }, "counted")
		for _, n := range []string{"T1_1", "T1_2", "T1_3", "T2"} {
			assert.Equal(t, want["retransmission_req_"+n], snap()["retransmission_req_"+n], "after retransmission %d: %s", i+1, n)
		}
	}
	assert.Zero(t, snap()["retransmission_rpl_T2"])

	// A rejected INVITE: Timer G sends the 486 again until the ACK.
	inv := uac.Invite("sip:bob@" + p.udp)
	uac.Send(p.udp, inv)
	got := uas.Request(sip.INVITE)
	uas.Reply(got, 486, "b")
	uac.Response(486)
	p.clock.Advance(p.cfg.T1)
	uac.Response(486)
	siptest.Eventually(t, func() bool { return snap()["retransmission_rpl_T2"] == 1 }, "Timer G counted")
	// A repeated INVITE is answered with the 486 again.
	uac.Send(p.udp, inv)
	uac.Response(486)
	siptest.Eventually(t, func() bool { return snap()["retransmission_rpl_T2"] == 2 }, "the answered repeat counted")
	assert.Equal(t, uint64(7), snap()["retransmissions_sent"], "5 requests and 2 replies")

	mfs := gather(t, p.Stats())
	byInterval := byLabel(mfs["imsdlg_tm_request_retransmissions_total"])
	for n, v := range map[string]float64{"T1_1": 1, "T1_2": 1, "T1_3": 1, "T2": 2} {
		if assert.Contains(t, byInterval, n) {
			assert.Equal(t, v, byInterval[n].GetCounter().GetValue(), "interval %s", n)
		}
	}
	assert.Equal(t, 2.0, mfs["imsdlg_tm_reply_retransmissions_total"].Metric[0].GetCounter().GetValue())
}

package imsdialog_test

import (
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	. "github.com/imsdlg/imsdlg/imsdialog"
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

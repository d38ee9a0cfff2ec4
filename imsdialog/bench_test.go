package imsdialog

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/imsdlg/imsdlg/internal/siptest"
	"github.com/imsdlg/imsdlg/tm"
)

func benchInvite(b *testing.B, i int) *tm.Request {
	raw := fmt.Sprintf("INVITE sip:bob@127.0.0.1 SIP/2.0\r\n"+
		"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-b%d\r\n"+
		"Record-Route: <sip:127.0.0.1:5090;lr>\r\n"+
		"From: <sip:alice@127.0.0.1>;tag=f%d\r\nTo: <sip:bob@127.0.0.1>\r\nCall-ID: bench-%d@test\r\n"+
		"CSeq: 1 INVITE\r\nContact: <sip:alice@127.0.0.1:5070>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n", i, i, i)
	m, err := sip.ParseMessage([]byte(raw))
	if err != nil {
		b.Fatal(err)
	}
	return &tm.Request{Request: m.(*sip.Request), Source: "127.0.0.1:5070", Transport: "UDP", Initial: true}
}

// BenchmarkDialogMemory reports the heap held per dialog with one answered
// leg, at 100k dialogs (issue 4 asks for resident memory per confirmed
// dialog at 100k concurrent ones; this is the module's own share of it).
func BenchmarkDialogMemory(b *testing.B) {
	const n = 100_000
	for b.Loop() {
		m, err := New(DefaultConfig(), tm.RouterFunc(func(*tm.Request) tm.Decision { return tm.RelayTo() }), nil, siptest.NewClock())
		if err != nil {
			b.Fatal(err)
		}
		reqs := make([]*tm.Request, n)
		for i := range reqs {
			reqs[i] = benchInvite(b, i)
		}
		ok := sip.NewResponse(200, "OK")
		ok.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: "bob", Host: "127.0.0.1"}, Params: sip.NewParams()})
		ok.To().Params.Add("tag", "callee")
		ok.AppendHeader(&sip.CSeqHeader{SeqNo: 1, MethodName: sip.INVITE})
		ok.AppendHeader(&sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "bob", Host: "127.0.0.1", Port: 5071}})
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		ds := make([]*Dialog, n)
		for i, r := range reqs {
			d := m.create(r)
			d.mu.Lock()
			d.outs.OnResponse(time.Unix(0, 0), 0, ok, d.ourRR)
			d.outs.Answer("callee")
			m.stepLocked(d, Event{Kind: EvAnswered})
			d.mu.Unlock()
			ds[i] = d
		}
		runtime.GC()
		runtime.ReadMemStats(&after)
		b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/n, "B/dialog")
		runtime.KeepAlive(ds)
		runtime.KeepAlive(reqs)
	}
}

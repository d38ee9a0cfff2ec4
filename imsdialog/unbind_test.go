package imsdialog_test

import (
	"runtime"
	"testing"
	"time"
	"weak"

	"github.com/emiago/sipgo/sip"
	"github.com/stretchr/testify/require"

	. "github.com/imsdlg/imsdlg/imsdialog"
	"github.com/imsdlg/imsdlg/internal/dlgtest"
	"github.com/imsdlg/imsdlg/internal/siptest"
	"github.com/imsdlg/imsdlg/tm"
)

// Issue 14 (memory under load): an answered INVITE transaction lingers
// (wt_timer; the RFC's 64*T1) after its end to relay retransmitted 2xx
// (RFC 6026 §7.2), and the BYE's client transaction stays Timer K (T4) to
// absorb retransmitted replies. A call that ends meanwhile must not stay
// reachable through either: at 2000 calls/s of short calls the ended
// dialogs were a third of the live heap.
func TestIssue14_EndedDialogLeavesItsInviteTransaction(t *testing.T) {
	uac, b := siptest.NewUA(t), siptest.NewUA(t)
	txs := make(chan *tm.Transaction, 1)
	byes := make(chan *tm.Transaction, 1)
	cfg := DefaultConfig()
	watch := tm.Module{Name: "watch", Observer: tm.ObserverFuncs{Done: func(t *tm.Transaction) {
		if r := t.Original(); r != nil && r.Method == sip.BYE {
			byes <- t
		}
	}}}
	e := dlgtest.New(t, dlgtest.Options{Config: &cfg, Modules: []tm.Module{watch}}, dlgtest.Route(func(r *tm.Request) tm.Decision {
		txs <- r.Tx
		return tm.RelayTo(target(b, "bob"))
	}))
	inv := uac.Invite("sip:bob@" + e.Addr)
	d, r200 := e.Answer(t, uac, b, inv)
	inviteTx := <-txs
	select {
	case <-inviteTx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the INVITE transaction did not end")
	}
	w := weak.Make(d)
	d = nil

	bye := uac.InDialog("BYE", inv, r200, 2)
	uac.Send(e.Addr, bye)
	b.Reply(b.Request(sip.BYE), 200, "legA")
	uac.Response(200)
	e.WaitGone(t)
	var byeTx *tm.Transaction
	select {
	case byeTx = <-byes:
	case <-time.After(5 * time.Second):
		t.Fatal("the BYE transaction did not end")
	}
	// Hardly any time passes (the fake clock drops its stopped timers,
	// which hold their callbacks): both transactions linger, and neither
	// holds the call.
	e.Clock.Advance(time.Millisecond)
	require.Eventually(t, func() bool {
		runtime.GC()
		return w.Value() == nil
	}, 5*time.Second, 10*time.Millisecond, "the ended dialog is still reachable")
	runtime.KeepAlive(inviteTx)
	runtime.KeepAlive(byeTx)
}

package imsdialog_test

import (
	"runtime"
	"testing"
	"time"
	"weak"

	"github.com/emiago/sipgo/sip"
	"github.com/stretchr/testify/require"

	. "github.com/imsdlg/imsdlg/imsdialog"
	"github.com/imsdlg/imsdlg/internal/siptest"
	"github.com/imsdlg/imsdlg/tm"
)

// Issue 14 (memory under load): an answered INVITE transaction lingers
// 64*T1 after its end to relay retransmitted 2xx (RFC 6026 §7.2). A call
// that ends meanwhile must not stay reachable through it: at 2000 calls/s
// of short calls the ended dialogs were a third of the live heap.
func TestIssue14_EndedDialogLeavesItsInviteTransaction(t *testing.T) {
	uac, b := siptest.NewUA(t), siptest.NewUA(t)
	txs := make(chan *tm.Transaction, 1)
	e := newEnv(t, DefaultConfig(), func(r *tm.Request) tm.Decision {
		txs <- r.Tx
		return tm.RelayTo(target(b, "bob"))
	})
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
	// The BYE's transactions end (Timer K, T4); the INVITE's lingers.
	e.Clock.Advance(6 * time.Second)
	require.Eventually(t, func() bool {
		runtime.GC()
		return w.Value() == nil
	}, 5*time.Second, 10*time.Millisecond, "the ended dialog is still reachable")
	runtime.KeepAlive(inviteTx) // lingering, as in the 64*T1 after the call
}

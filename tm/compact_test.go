package tm

import (
	"runtime"
	"testing"
	"time"
	"weak"

	"github.com/emiago/sipgo/sip"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imsdlg/imsdlg/internal/siptest"
)

// Issue 14 (memory under load): an answered INVITE transaction stays
// 64*T1 after its final reply, its branch's client transaction relaying
// retransmitted 2xx (RFC 6026 §7.2). In that time it must hold no message:
// neither the INVITE nor the reply (they were ~7 KB per call), nor, in
// the server transaction, the 2xx's bytes.
func TestIssue14_DoneTransactionKeepsNoMessages(t *testing.T) {
	var (
		wOrig, wTmpl weak.Pointer[sip.Request]
		wRes         weak.Pointer[sip.Response]
	)
	done := make(chan *Transaction, 1)
	watch := Module{Name: "watch", Observer: ObserverFuncs{
		Outcome: func(tx *Transaction, o Outcome) {
			wOrig, wTmpl, wRes = weak.Make(tx.Original()), weak.Make(tx.Request()), weak.Make(o.Response)
		},
		Done: func(tx *Transaction) { done <- tx },
	}}
	uac, uas := siptest.NewUA(t), siptest.NewUA(t)
	p := startProxy(t, testCfg(), toUAs(uas), withModules(watch))
	inv := uac.Invite("sip:bob@" + p.udp)
	uac.Send(p.udp, inv)
	got := uas.Request(sip.INVITE)
	uas.Reply(got, 200, "b")
	assert.Equal(t, 200, uac.Response(200).StatusCode)

	var tx *Transaction
	select {
	case tx = <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the transaction did not end")
	}
	// compact runs right after the OnDone observers.
	require.Eventually(t, func() bool { return tx.Original() == nil && tx.Request() == nil }, 5*time.Second, time.Millisecond)
	require.NotEqual(t, weak.Pointer[sip.Request]{}, wOrig, "the observer saw the request")
	runtime.GC()
	runtime.GC()
	assert.Nil(t, wOrig.Value(), "the INVITE as received is still held")
	assert.Nil(t, wTmpl.Value(), "the branch template is still held")
	assert.Nil(t, wRes.Value(), "the 200 is still held")
	tx.srv.mu.Lock()
	last := tx.srv.last
	tx.srv.mu.Unlock()
	assert.Nil(t, last, "the server transaction in Accepted still holds its 2xx (RFC 6026 §7.1: it never repeats it)")
	for _, b := range tx.Branches() {
		assert.Equal(t, 200, b.LastCode)
		assert.Empty(t, b.URI, "the branch's request is dropped")
	}

	// The callee did not get its ACK and repeats the 200: still relayed,
	// with the caller's CSeq, after the messages were dropped.
	uas.Reply(got, 200, "b")
	again := uac.Response(200)
	assert.Equal(t, inv.CSeq().SeqNo, again.CSeq().SeqNo)
	assert.Equal(t, inv.CallID().Value(), again.CallID().Value())
	runtime.KeepAlive(tx)
}

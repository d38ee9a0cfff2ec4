package tm

import (
	"runtime"
	"sync"
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
	tx.mu.Lock()
	rc, br, srv := tx.rc, tx.br, tx.srv
	tx.mu.Unlock()
	assert.Nil(t, srv, "the server transaction in Accepted is still held (it lingers as a record)")
	assert.Zero(t, p.srvTxs.len())
	assert.Equal(t, 1, p.srvLinger.liveAt(p.clock.Now()), "the server transaction's record (Timer L)")
	assert.Nil(t, rc, "the response context (branch targets and states) is still held")
	assert.Nil(t, br, "the branches' I/O state is still held")
	assert.Empty(t, tx.Branches())

	// The callee did not get its ACK and repeats the 200: still relayed,
	// with the caller's CSeq, after the messages were dropped.
	uas.Reply(got, 200, "b")
	again := uac.Response(200)
	assert.Equal(t, inv.CSeq().SeqNo, again.CSeq().SeqNo)
	assert.Equal(t, inv.CallID().Value(), again.CallID().Value())
	runtime.KeepAlive(tx)
}

// absorbHook keeps a second 2xx from the caller (a module that ends that
// session itself), as the dialog module's dialog.second_2xx: absorb does.
type absorbHook struct{ tag string }

func (h absorbHook) OnReply(t *Transaction, _ int, res *sip.Response) bool {
	return res.StatusCode >= 300 || Tag(res.To().Params) != h.tag
}

// Issue 14 with RFC 3261 §16.7 step 5: once a done transaction dropped its
// response context, what it decided still holds: the 2xx a reply hook
// absorbed stays absorbed in its retransmissions, the relayed one is
// relayed again. Both callees ring, then answer; the second 200 crosses
// our CANCEL.
func TestIssue14_AbsorbedBranchStaysAbsorbedOnceCompacted(t *testing.T) {
	uac, a, b := siptest.NewUA(t), siptest.NewUA(t), siptest.NewUA(t)
	done := make(chan *Transaction, 1)
	watch := Module{Name: "watch", Reply: absorbHook{tag: "b"}, Observer: ObserverFuncs{Done: func(tx *Transaction) {
		assert.Len(t, tx.Branches(), 2, "an OnDone observer still sees the branches")
		done <- tx
	}}}
	p := startProxy(t, testCfg(), toUAs(a, b), withModules(watch))
	uac.Send(p.udp, uac.Invite("sip:bob@"+p.udp))
	ia, ib := a.Request(sip.INVITE), b.Request(sip.INVITE)
	a.Reply(ia, 180, "a")
	b.Reply(ib, 180, "b")
	a.Reply(ia, 200, "a")
	assert.Equal(t, "a", Tag(uac.Response(200).To().Params))
	cb := b.Request(sip.CANCEL)
	b.Reply(ib, 200, "b") // crosses the CANCEL; absorbed
	b.Reply(cb, 200, "")
	var tx *Transaction
	select {
	case tx = <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the transaction did not end")
	}
	require.Eventually(t, func() bool {
		tx.mu.Lock()
		defer tx.mu.Unlock()
		return tx.rc == nil
	}, 5*time.Second, time.Millisecond, "compacted")

	b.Reply(ib, 200, "b")
	a.Reply(ia, 200, "a")
	assert.Equal(t, "a", Tag(uac.Response(200).To().Params), "the relayed 2xx is relayed again")
	uac.Quiet(300*time.Millisecond, "the absorbed 2xx", func(m sip.Message) bool {
		r, ok := m.(*sip.Response)
		return ok && Tag(r.To().Params) == "b"
	})
}

// strayWatch is a module observing stray responses.
type strayWatch struct {
	ObserverFuncs
	got chan *sip.Response
}

// OnStrayResponse keeps a copy: the response is valid during the call
// only (msgblock.go).
func (s strayWatch) OnStrayResponse(res *sip.Response) { s.got <- keepRes(res) }

// OpenSIPS tm wt_timer: an answered INVITE's transactions stay wt_timer,
// not 64*T1 (RFC 6026 Timers L and M), and are gone after it. A 2xx the
// callee repeats later is relayed statelessly by its Via (§16.11), and a
// StrayObserver (the dialog module, for its ACK wait) hears of it first.
func TestSeedTm_WtTimerEndsAnsweredInviteTransactions(t *testing.T) {
	uac, uas := siptest.NewUA(t), siptest.NewUA(t)
	w := strayWatch{got: make(chan *sip.Response, 4)}
	p := startProxy(t, testCfg(), toUAs(uas), withModules(Module{Name: "stray", Observer: w}))
	require.Equal(t, 5*time.Second, p.cfg.WtTimer)
	inv := uac.Invite("sip:bob@" + p.udp)
	uac.Send(p.udp, inv)
	got := uas.Request(sip.INVITE)
	uas.Reply(got, 200, "b")
	uac.Response(200)
	// Both transactions in Accepted linger as records (on UDP).
	srvLive := func() int { return p.srvTxs.len() + p.srvLinger.liveAt(p.clock.Now()) }
	cliLive := func() int { return p.cliTxs.len() + p.cliLinger.liveAt(p.clock.Now()) }
	siptest.Eventually(t, func() bool { return srvLive() == 1 && cliLive() == 1 }, "the INVITE's transactions in Accepted")

	p.clock.Advance(p.cfg.WtTimer - time.Millisecond)
	assert.Equal(t, 1, srvLive(), "Timer L ran early")
	assert.Equal(t, 1, cliLive(), "Timer M ran early")
	p.clock.Advance(time.Millisecond)
	siptest.Eventually(t, func() bool { return srvLive() == 0 && cliLive() == 0 }, "the transactions outlive wt_timer")
	assert.Empty(t, w.got, "no stray yet")

	uas.Reply(got, 200, "b")
	again := uac.Response(200)
	assert.Equal(t, inv.CSeq().SeqNo, again.CSeq().SeqNo)
	select {
	case res := <-w.got:
		assert.Equal(t, 200, res.StatusCode)
		assert.Equal(t, "b", Tag(res.To().Params))
	case <-time.After(waitFor):
		t.Fatal("the stray 2xx was relayed without the observer")
	}
}

// RFC 6026 §8.7 (Timer L) with a fake clock: the lingering record of a
// server transaction that sent its 2xx starts at the step's time, not after
// the send. The relaying goroutine is held up after the 2xx left (a
// test hook); the caller has its answer and the clock moves wt_timer on:
// the transaction is gone then, not wt_timer after the sender ran again
// (TestSeedTm_WtTimerEndsAnsweredInviteTransactions failed that way once).
func TestRFC6026_8_7_LingerStartsBeforeTheReplyLeaves(t *testing.T) {
	uac, uas := siptest.NewUA(t), siptest.NewUA(t)
	held, release := make(chan struct{}), make(chan struct{})
	var once, holdOnce sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	// Set before the proxy's readers start (cleared after they stopped).
	testHookReplySent = func(code int) {
		if code == 200 {
			holdOnce.Do(func() {
				close(held)
				<-release
			})
		}
	}
	t.Cleanup(func() { testHookReplySent = nil })
	p := startProxy(t, testCfg(), toUAs(uas))
	t.Cleanup(unblock)
	srvLive := func() int { return p.srvTxs.len() + p.srvLinger.liveAt(p.clock.Now()) }

	uac.Send(p.udp, uac.Invite("sip:bob@"+p.udp))
	uas.Reply(uas.Request(sip.INVITE), 200, "b")
	uac.Response(200)
	<-held // the 2xx is out; its sender has not made the record yet
	p.clock.Advance(p.cfg.WtTimer)
	unblock()
	siptest.Eventually(t, func() bool { return srvLive() == 0 }, "the server transaction outlives wt_timer")
}

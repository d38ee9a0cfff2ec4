package tm

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/stretchr/testify/assert"

	"github.com/imsdlg/imsdlg/internal/siptest"
)

// earlyMediaRefused is the t_cancel_branch example of the OpenSIPS tm
// manual as a module: a branch whose callee offers early media (183) is
// cancelled, with a Reason and a header of its own; the branch hook marks
// each branch with a per-branch value ($bavp) and the failure hook reads
// it back for the branch that won ($T_branch_idx).
type earlyMediaRefused struct {
	failedBest atomic.Int64
	bestValue  atomic.Value
}

func (m *earlyMediaRefused) OnBranch(t *Transaction, b *Branch) bool {
	t.SetBranchValue(b.Index, "gw", "gw-"+string(rune('a'+b.Index)))
	return true
}

func (m *earlyMediaRefused) OnReply(t *Transaction, branch int, res *sip.Response) bool {
	if res.StatusCode == 183 {
		t.CancelBranch(branch, `SIP;cause=488;text="no early media"`, sip.NewHeader("X-Cancelled-By", "policy"))
		return false
	}
	return true
}

func (m *earlyMediaRefused) OnFailure(t *Transaction, best *sip.Response) []Target {
	m.failedBest.Store(int64(t.BestBranch()))
	m.bestValue.Store(t.BranchValue(t.BestBranch(), "gw"))
	return nil
}

// OpenSIPS tm t_cancel_branch, $bavp, $T_branch_idx, and tm.cancel_headers:
// two branches; the one offering early media is cancelled (its CANCEL has
// the Reason, the module's header and the configured one), the other one
// fails 486, which goes upstream (the cancelled branch's 487 ranks lower);
// the failure hook sees branch 1 won, with its own value.
func TestSeedTM_CancelBranchFromAReplyHook(t *testing.T) {
	uac, a, b := siptest.NewUA(t), siptest.NewUA(t), siptest.NewUA(t)
	cfg := testCfg()
	cfg.CancelHeaders = []string{"X-Operator: noc"}
	m := &earlyMediaRefused{}
	p := startProxy(t, cfg, toUAs(a, b), withModules(Module{Name: "early", Branch: m, Reply: m, Failure: m}))
	uac.Send(p.udp, uac.Invite("sip:bob@"+p.udp))
	ia, ib := a.Request(sip.INVITE), b.Request(sip.INVITE)
	a.Reply(ia, 183, "a")
	c := a.Request(sip.CANCEL)
	assert.Equal(t, `SIP;cause=488;text="no early media"`, c.GetHeader("Reason").Value())
	assert.Equal(t, "policy", c.GetHeader("X-Cancelled-By").Value())
	assert.Equal(t, "noc", c.GetHeader("X-Operator").Value())
	a.Reply(c, 200, "")
	a.Reply(ia, 487, "a")
	b.Reply(ib, 180, "b")
	uac.Response(180)
	b.Reply(ib, 486, "b")
	assert.Equal(t, 486, uac.Final().StatusCode)
	assert.Equal(t, int64(1), m.failedBest.Load())
	assert.Equal(t, "gw-b", m.bestValue.Load())
	uac.Quiet(50*time.Millisecond, "the 183 of the cancelled branch", func(msg sip.Message) bool {
		r, ok := msg.(*sip.Response)
		return ok && r.StatusCode == 183
	})
}

// OpenSIPS tm t_reply_with_body / the t_reply MI's body: a pending INVITE
// answered by the proxy with a body of its own (its Content-Type among the
// headers); the callee's branch is cancelled.
func TestSeedTM_ReplyWithBody(t *testing.T) {
	uac, a := siptest.NewUA(t), siptest.NewUA(t)
	p := startProxy(t, testCfg(), toUAs(a))
	uac.Send(p.udp, uac.Invite("sip:bob@"+p.udp))
	ia := a.Request(sip.INVITE)
	a.Reply(ia, 180, "a")
	uac.Response(180)
	txs := p.PendingInvites()
	if assert.Len(t, txs, 1) {
		body := []byte("<html>busy</html>")
		assert.NoError(t, txs[0].ReplyWithBody(480, "Later", body, sip.NewHeader("Content-Type", "text/html")))
		assert.ErrorIs(t, txs[0].ReplyWithBody(486, "", nil), ErrFinalSent)
	}
	res := uac.Final()
	assert.Equal(t, 480, res.StatusCode)
	assert.Equal(t, "<html>busy</html>", string(res.Body()))
	assert.Equal(t, "text/html", res.GetHeader("Content-Type").Value())
	c := a.Request(sip.CANCEL)
	a.Reply(c, 200, "")
	a.Reply(ia, 487, "a")
}

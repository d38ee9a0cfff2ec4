package imsdialog_test

import (
	"context"
	"testing"

	"github.com/emiago/sipgo/sip"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imsdlg/imsdlg/imsdialog"
	"github.com/imsdlg/imsdlg/internal/siptest"
	"github.com/imsdlg/imsdlg/tm"
)

// OpenSIPS dialog dlg_send_sequential (issue 13 §3): a re-INVITE to the
// callee as the caller would send it (the caller's next CSeq, its Contact,
// the dialog's route), its 2xx ACKed by the proxy; an OPTIONS to the
// caller as the callee would send it; the caller's own next request then
// reaches the callee above the proxy's (renumbered), and its reply comes
// back with the caller's number.
func TestSeedDialog_SendSequential(t *testing.T) {
	uac, a := siptest.NewUA(t), siptest.NewUA(t)
	e := newEnv(t, imsdialog.DefaultConfig(), func(r *tm.Request) tm.Decision { return tm.RelayTo(target(a, "bob")) })
	inv := uac.Invite("sip:bob@"+e.Addr, "Content-Type: application/sdp", "body:v=0\r\no=alice 1 1 IN IP4 127.0.0.1\r\n")
	d, r200 := e.Answer(t, uac, a, inv)
	ctx := context.Background()

	_, err := e.M.SendSequential(ctx, d, imsdialog.SideCallee, "INVITE", nil, "")
	assert.ErrorIs(t, err, imsdialog.ErrNoSDP, "no re-INVITE pings: the SDP was not kept")
	_, err = e.M.SendSequential(ctx, d, imsdialog.SideCallee, "BYE", nil, "")
	assert.ErrorContains(t, err, `method "BYE"`)

	hold := "v=0\r\no=alice 1 2 IN IP4 127.0.0.1\r\na=sendonly\r\n"
	type result struct {
		res *sip.Response
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := e.M.SendSequential(ctx, d, imsdialog.SideCallee, "INVITE", []byte(hold), "", "X-Why: hold")
		done <- result{res, err}
	}()
	re := a.Request(sip.INVITE)
	assert.Equal(t, uint32(2), re.CSeq().SeqNo, "the caller's next number")
	assert.Equal(t, hold, string(re.Body()))
	assert.Equal(t, "application/sdp", re.GetHeader("Content-Type").Value())
	assert.Equal(t, "hold", re.GetHeader("X-Why").Value())
	assert.Contains(t, re.GetHeader("Contact").Value(), uac.HostPort(), "the caller's Contact")
	assert.Equal(t, "legA", re.To().Params.GetOr("tag", ""))
	a.Reply(re, 200, "legA")
	r := <-done
	require.NoError(t, r.err)
	assert.Equal(t, 200, r.res.StatusCode)
	ack := a.Request(sip.ACK)
	assert.Equal(t, uint32(2), ack.CSeq().SeqNo)

	go func() {
		res, err := e.M.SendSequential(ctx, d, imsdialog.SideCaller, "OPTIONS", nil, "")
		done <- result{res, err}
	}()
	opt := uac.Request(sip.OPTIONS)
	assert.Equal(t, uint32(1), opt.CSeq().SeqNo, "the callee's first number")
	assert.Equal(t, "legA", opt.From().Params.GetOr("tag", ""), "as the callee")
	uac.Reply(opt, 200, "")
	r = <-done
	require.NoError(t, r.err)
	assert.Equal(t, 200, r.res.StatusCode)

	// Our first re-INVITE is over: a second one may go (RFC 3261 §14.1
	// kept it back only while the first was pending).
	go func() {
		res, err := e.M.SendSequential(ctx, d, imsdialog.SideCallee, "INVITE", []byte(hold), "")
		done <- result{res, err}
	}()
	re2 := a.Request(sip.INVITE)
	assert.Equal(t, uint32(3), re2.CSeq().SeqNo)
	a.Reply(re2, 200, "legA")
	r = <-done
	require.NoError(t, r.err)
	a.Request(sip.ACK)

	// The caller knows nothing of the re-INVITEs: its BYE has CSeq 2.
	uac.Send(e.Addr, uac.InDialog("BYE", inv, r200, 2))
	bye := a.Request(sip.BYE)
	assert.Equal(t, uint32(4), bye.CSeq().SeqNo, "above the proxy's re-INVITEs")
	a.Reply(bye, 200, "legA")
	res := uac.Final()
	assert.Equal(t, 200, res.StatusCode)
	assert.Equal(t, uint32(2), res.CSeq().SeqNo, "the caller's own number back")
	e.WaitGone(t)
	_, err = e.M.SendSequential(ctx, d, imsdialog.SideCallee, "OPTIONS", nil, "")
	assert.ErrorIs(t, err, imsdialog.ErrNotConfirmed)
}

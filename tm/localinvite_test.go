package tm

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imsdlg/imsdlg/internal/siptest"
)

// localReinvite is a re-INVITE the proxy sends on its own within a dialog
// (a keepalive), with a route set of one hop: the UA.
func localReinvite(t *testing.T, uas *siptest.UA) *sip.Request {
	t.Helper()
	req := sip.NewRequest(sip.INVITE, sip.Uri{Scheme: "sip", User: "bob", Host: "10.9.9.9", Port: 5062})
	req.AppendHeader(&sip.RouteHeader{Address: sip.Uri{Scheme: "sip", Host: "127.0.0.1", Port: uas.Addr.Port,
		UriParams: sip.HeaderParams{{K: "lr", V: ""}}}})
	from := sip.NewParams()
	from.Add("tag", "alice-tag")
	req.AppendHeader(&sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: "alice", Host: "example.net"}, Params: from})
	to := sip.NewParams()
	to.Add("tag", "bob-tag")
	req.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: "bob", Host: "example.net"}, Params: to})
	cid := sip.CallIDHeader("reinvite-1")
	req.AppendHeader(&cid)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: 7, MethodName: sip.INVITE})
	req.AppendHeader(sip.NewHeader("Contact", "<sip:alice@10.0.0.1:5070>"))
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.SetBody([]byte("v=0\r\n"))
	return req
}

// RFC 3261 §13.2.2.4: the UAC core ACKs a 2xx to its INVITE, and each
// repeat of the 2xx, end to end (a new transaction, not the INVITE's):
// within a dialog along the INVITE's route set to its Request-URI, with
// its CSeq number and the To of the 2xx. A non-2xx is ACKed by the
// transaction (§17.1.1.3).
func TestRFC3261_13_2_2_4_LocalInviteAnswerIsACKed(t *testing.T) {
	for _, tc := range []struct {
		name string
		code int
		ack  bool
	}{
		{"200", 200, true},
		{"491", 491, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			uas := siptest.NewUA(t)
			p := startProxy(t, testCfg(), toUAs(uas))
			final := make(chan int, 2)
			require.NoError(t, p.Send(localReinvite(t, uas), "", func(res *sip.Response, err error) {
				if res != nil {
					final <- res.StatusCode
				} else {
					final <- 0
				}
			}))
			got := uas.Request(sip.INVITE)
			assert.Equal(t, "v=0\r\n", string(got.Body()))
			res := uas.Reply(got, tc.code, "")
			ack := uas.Request(sip.ACK)
			assert.Equal(t, uint32(7), ack.CSeq().SeqNo)
			assert.Equal(t, "bob-tag", Tag(ack.To().Params))
			if !tc.ack {
				assert.Equal(t, got.Via().Value(), ack.Via().Value(), "the transaction's own ACK: same branch")
				assert.Equal(t, tc.code, <-final)
				return
			}
			assert.NotEqual(t, got.Via().Value(), ack.Via().Value(), "an ACK of its own (§17.1.1.3 is for non-2xx)")
			assert.Equal(t, "10.9.9.9", ack.Recipient.Host, "to the remote target")
			assert.Equal(t, 200, <-final)
			// The UA did not see it: it repeats its 2xx, and gets the ACK again.
			via := got.Via()
			uas.Send(via.Host+":"+itoa(via.Port), res)
			again := uas.Request(sip.ACK)
			assert.Equal(t, ack.Via().Value(), again.Via().Value(), "the same ACK")
			assert.Empty(t, final, "the callback ran once")
		})
	}
}

// A module that renumbers the CSeq of a request it forwards (the dialog
// module does after requests of its own in the dialog) gets the reply back
// upstream with the client's number: the client matches it to its request.
func TestRFC3261_8_1_3_3_ReplyCarriesTheClientsCSeq(t *testing.T) {
	uac, uas := siptest.NewUA(t), siptest.NewUA(t)
	p := startProxy(t, testCfg(), toUAs(uas), withModules(Module{Name: "shift", Branch: shiftBranch{}}))
	inv := uac.Invite("sip:bob@" + p.udp)
	uac.Send(p.udp, inv)
	got := uas.Request(sip.INVITE)
	assert.Equal(t, uint32(11), got.CSeq().SeqNo, "renumbered downstream")
	uas.Reply(got, 180, "b")
	assert.Equal(t, uint32(1), uac.Response(180).CSeq().SeqNo)
	ok := uas.Reply(got, 200, "b")
	assert.Equal(t, uint32(1), uac.Response(200).CSeq().SeqNo)
	via := got.Via()
	uas.Send(via.Host+":"+itoa(via.Port), ok)
	assert.Equal(t, uint32(1), uac.Response(200).CSeq().SeqNo, "a repeated 2xx too")
}

type shiftBranch struct{}

func (shiftBranch) OnBranch(t *Transaction, b *Branch) bool {
	cs := b.Request.CSeq()
	b.Request.ReplaceHeader(&sip.CSeqHeader{SeqNo: cs.SeqNo + 10, MethodName: cs.MethodName})
	return true
}

// RFC 3261 §9.1, §15: a local INVITE whose sender stops waiting (the
// management call's context ended) is cancelled; a 2xx that crosses the
// CANCEL is ACKed and ended with BYE, as nobody holds that session.
func TestRFC3261_9_1_AbandonedLocalInviteIsCancelled(t *testing.T) {
	uas := siptest.NewUA(t)
	p := startProxy(t, testCfg(), toUAs(uas))
	req := localReinvite(t, uas)
	req.To().Params.Remove("tag") // an INVITE that makes a dialog
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() {
		_, err := p.SendRequest(ctx, req, "")
		errc <- err
	}()
	got := uas.Request(sip.INVITE)
	uas.Reply(got, 180, "ua-tag")
	cancel()
	assert.ErrorIs(t, <-errc, context.Canceled)
	c := uas.Request(sip.CANCEL)
	assert.Equal(t, got.Via().Value(), c.Via().Value(), "the INVITE's branch")
	assert.Contains(t, c.GetHeader("Reason").Value(), "request abandoned")
	uas.Reply(c, 200, "")
	// The callee answered before the CANCEL reached it.
	uas.Reply(got, 200, "ua-tag")
	ack := uas.Request(sip.ACK)
	assert.Equal(t, "uas", ack.Recipient.User, "to the 2xx's Contact")
	bye := uas.Request(sip.BYE)
	assert.Equal(t, "ua-tag", Tag(bye.To().Params))
	assert.Equal(t, uint32(8), bye.CSeq().SeqNo, "the next CSeq")
	uas.Reply(bye, 200, "ua-tag")
}

// OpenSIPS tm manual 1.6.1 (t_uac_dlg, socket): a local request named to
// leave from one of the listening sockets does, with that socket in its
// Via; so does the ACK tm sends for its 2xx. A socket that is not
// listening, of another transport than the next hop's, or not an address,
// is refused before anything is sent.
func TestSeedTm_1_6_1_UacDlgLeavesFromItsSocket(t *testing.T) {
	uas := siptest.NewUA(t)
	p := startProxy(t, testCfg(), toUAs(uas))
	second, err := p.Listen("udp", "127.0.0.1:0", "")
	require.NoError(t, err)
	require.NotEqual(t, p.udp, second.String())
	_, port, _ := net.SplitHostPort(second.String())

	type result struct {
		res *sip.Response
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := p.SendRequestFrom(context.Background(), localReinvite(t, uas), "", "udp:"+second.String())
		done <- result{res, err}
	}()
	got := uas.Request(sip.INVITE)
	assert.Equal(t, second.String(), got.Source(), "sent from the socket named")
	assert.Equal(t, port, itoa(got.Via().Port), "its Via names that socket")
	uas.Reply(got, 200, "")
	ack := uas.Request(sip.ACK)
	assert.Equal(t, second.String(), ack.Source(), "the ACK of the 2xx too")
	assert.Equal(t, port, itoa(ack.Via().Port))
	r := <-done
	require.NoError(t, r.err)
	assert.Equal(t, 200, r.res.StatusCode)

	// A wildcard listener serves each of its addresses: named by one, the
	// request leaves from it, with the advertised host in Via.
	wild, err := p.Listen("udp", "0.0.0.0:0", "127.0.0.2")
	require.NoError(t, err)
	_, wport, _ := net.SplitHostPort(wild.String())
	go func() {
		res, err := p.SendRequestFrom(context.Background(), localReinvite(t, uas), "", "udp:127.0.0.1:"+wport)
		done <- result{res, err}
	}()
	got = uas.Request(sip.INVITE)
	assert.Equal(t, "127.0.0.1:"+wport, got.Source(), "sent from the address named")
	assert.Equal(t, "127.0.0.2", got.Via().Host)
	uas.Reply(got, 486, "")
	assert.Equal(t, "127.0.0.1:"+wport, uas.Request(sip.ACK).Source(), "the transaction's ACK of the 486 too")
	r = <-done
	require.NoError(t, r.err)
	assert.Equal(t, 486, r.res.StatusCode)

	for _, tc := range []struct{ socket, want string }{
		{"udp:127.0.0.1:1", "no such listening socket (listening: udp:" + p.udp},
		{"tcp:" + second.String(), "no such listening socket"},
		{"tcp:" + p.tcp, "the next hop"},
		{"udp:localhost:" + port, `host "localhost" is not an IP address`},
		{"udp:127.0.0.1", "missing port"},
	} {
		_, err := p.SendRequestFrom(context.Background(), localReinvite(t, uas), "", tc.socket)
		require.Error(t, err, tc.socket)
		assert.Contains(t, err.Error(), tc.want, tc.socket)
	}
	uas.Quiet(50*time.Millisecond, "a request sent from a refused socket", func(sip.Message) bool { return true })
}

// OpenSIPS tm manual 1.6.2 (t_uac_cancel): an INVITE the proxy sent
// itself, named by Call-ID and CSeq, is cancelled (§9.1: the INVITE's
// branch, the Reason given); its final reply goes to whoever sent it. A 2xx
// that crosses the CANCEL is ACKed and ended with BYE (§15): nobody holds
// that session. Once the INVITE has its final reply, or for one never
// sent, there is nothing to cancel.
func TestSeedTm_1_6_2_UacCancelCancelsALocalInvite(t *testing.T) {
	for _, tc := range []struct {
		name  string
		final int
		bye   bool
	}{
		{"487 after the CANCEL", 487, false},
		{"a 2xx crossing the CANCEL", 200, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			uas := siptest.NewUA(t)
			p := startProxy(t, testCfg(), toUAs(uas))
			done := make(chan *sip.Response, 1)
			go func() {
				res, err := p.SendRequest(context.Background(), localReinvite(t, uas), "")
				assert.NoError(t, err)
				done <- res
			}()
			inv := uas.Request(sip.INVITE)
			uas.Reply(inv, 180, "")
			reason := `SIP;cause=487;text="operator"`
			require.NoError(t, p.CancelLocalInvite("reinvite-1", 7, reason))
			c := uas.Request(sip.CANCEL)
			assert.Equal(t, inv.Via().Value(), c.Via().Value(), "the INVITE's branch")
			require.NotNil(t, c.GetHeader("Reason"))
			assert.Equal(t, reason, c.GetHeader("Reason").Value())
			uas.Reply(c, 200, "")
			uas.Reply(inv, tc.final, "")
			ack := uas.Request(sip.ACK)
			assert.Equal(t, uint32(7), ack.CSeq().SeqNo)
			if tc.bye {
				bye := uas.Request(sip.BYE)
				assert.Equal(t, uint32(8), bye.CSeq().SeqNo)
				uas.Reply(bye, 200, "")
			}
			select {
			case res := <-done:
				require.NotNil(t, res)
				assert.Equal(t, tc.final, res.StatusCode)
			case <-time.After(waitFor):
				t.Fatal("no final reply for the sender")
			}
			assert.ErrorIs(t, p.CancelLocalInvite("reinvite-1", 7, ""), ErrNotPending, "answered: nothing to cancel")
			assert.ErrorIs(t, p.CancelLocalInvite("reinvite-1", 8, ""), ErrNotPending, "another CSeq")
			assert.ErrorIs(t, p.CancelLocalInvite("nobody", 7, ""), ErrNotPending, "another Call-ID")
			assert.Empty(t, p.locals.m, "no INVITE kept")
		})
	}
}

// cancelOnSend is a LocalObserver that asks for the CANCEL of a local
// INVITE the moment it has left, as an operator's t_uac_cancel racing a
// fast callee does.
type cancelOnSend struct {
	ObserverFuncs
	p   *testProxy
	err chan error
}

func (c *cancelOnSend) OnLocalRequest(req *sip.Request) {
	if req.IsInvite() {
		c.err <- c.p.CancelLocalInvite(callID(req), req.CSeq().SeqNo, "")
	}
}

func (c *cancelOnSend) OnLocalReply(*sip.Response) {}

// OpenSIPS tm manual 1.6.2 (t_uac_cancel): a local INVITE can be
// cancelled as soon as it has been sent. It was registered for
// CancelLocalInvite only after the send returned, so a cancel asked for
// right after the send (or a callee's answer racing it) found "no pending
// INVITE".
func TestSeedTm_1_6_2_UacCancelRightAfterTheSend(t *testing.T) {
	uas := siptest.NewUA(t)
	obs := &cancelOnSend{err: make(chan error, 1)}
	p := startProxy(t, testCfg(), toUAs(uas), withModules(Module{Name: "canceller", Observer: obs}))
	obs.p = p
	final := make(chan int, 1)
	require.NoError(t, p.Send(localReinvite(t, uas), "", func(res *sip.Response, err error) {
		if res != nil {
			final <- res.StatusCode
		}
	}))
	require.NoError(t, <-obs.err, "cancelled from the moment it left")
	inv := uas.Request(sip.INVITE)
	c := uas.Request(sip.CANCEL)
	assert.Equal(t, inv.Via().Value(), c.Via().Value(), "the INVITE's branch")
	uas.Reply(c, 200, "")
	uas.Reply(inv, 487, "")
	uas.Request(sip.ACK)
	assert.Equal(t, 487, <-final)
}

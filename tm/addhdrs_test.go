package tm

import (
	"testing"

	"github.com/emiago/sipgo/sip"
	"github.com/stretchr/testify/assert"

	"github.com/imsdlg/imsdlg/internal/siptest"
)

// laterHeader is a reply hook that attaches X-Later to the transaction
// when a branch rings.
type laterHeader struct{}

func (laterHeader) OnReply(t *Transaction, _ int, res *sip.Response) bool {
	if res.StatusCode == 180 {
		t.AddHeaders(sip.NewHeader("X-Later", "1"))
	}
	return true
}

// OpenSIPS tm t_add_hdrs (§1.4.17): headers attached to a transaction go
// into every request tm sends for it from then on: its branches, their
// CANCELs, the ACKs of their non-2xx finals.
func TestSeedTm_1_4_17_AddHdrs(t *testing.T) {
	uac, a, b := siptest.NewUA(t), siptest.NewUA(t), siptest.NewUA(t)
	next := toUAs(a, b)
	router := RouterFunc(func(r *Request) Decision {
		if r.Initial {
			r.Tx.AddHeaders(sip.NewHeader("X-Origin", "1.1.1.1"))
		}
		return next(r)
	})
	p := startProxy(t, testCfg(), router, withModules(Module{Name: "later", Reply: laterHeader{}}))
	inv := uac.Invite("sip:bob@" + p.udp)
	uac.Send(p.udp, inv)
	ia, ib := a.Request(sip.INVITE), b.Request(sip.INVITE)
	for _, r := range []*sip.Request{ia, ib} {
		assert.Equal(t, "1.1.1.1", value(r, "X-Origin"), "a branch")
		assert.Empty(t, value(r, "X-Later"), "attached after the branches left")
	}
	a.Reply(ia, 180, "a")
	uac.Response(180)
	b.Reply(ib, 486, "b")
	ackB := b.Request(sip.ACK)
	assert.Equal(t, "1.1.1.1", value(ackB, "X-Origin"), "the ACK of a 486")
	assert.Equal(t, "1", value(ackB, "X-Later"))

	uac.Send(p.udp, uac.CancelFor(inv))
	uac.Response(200)
	cancel := a.Request(sip.CANCEL)
	assert.Equal(t, "1.1.1.1", value(cancel, "X-Origin"), "a CANCEL")
	assert.Equal(t, "1", value(cancel, "X-Later"))
	a.Reply(cancel, 200, "")
	a.Reply(ia, 487, "a")
	ackA := a.Request(sip.ACK)
	assert.Equal(t, "1.1.1.1", value(ackA, "X-Origin"), "the ACK of a 487")
	assert.Equal(t, 486, uac.Final().StatusCode, "the best final: a 487 after our CANCEL ranks last")
}

// value is the value of the first header of that name, "" when none.
func value(r *sip.Request, name string) string {
	if h := r.GetHeader(name); h != nil {
		return h.Value()
	}
	return ""
}

// OpenSIPS tm t_add_cancel_reason (§1.4.18): a Reason set on the INVITE's
// transaction replaces the caller's in the CANCELs tm sends down when the
// caller cancels; a value that would break the header is refused.
func TestSeedTm_1_4_18_AddCancelReason(t *testing.T) {
	const ours = `SIP;cause=200;text="Call completed elsewhere"`
	uac, a := siptest.NewUA(t), siptest.NewUA(t)
	next := toUAs(a)
	errs := make(chan error, 2)
	router := RouterFunc(func(r *Request) Decision {
		if r.Initial {
			errs <- r.Tx.SetCancelReason("SIP;cause=1\r\nX-Injected: 1")
			errs <- r.Tx.SetCancelReason(ours)
		}
		return next(r)
	})
	p := startProxy(t, testCfg(), router)
	inv := uac.Invite("sip:bob@" + p.udp)
	uac.Send(p.udp, inv)
	ia := a.Request(sip.INVITE)
	if err := <-errs; assert.Error(t, err) {
		assert.Contains(t, err.Error(), "line break")
	}
	assert.NoError(t, <-errs)
	a.Reply(ia, 180, "a")
	uac.Response(180)
	uac.Send(p.udp, uac.CancelFor(inv, `Reason: SIP ;cause=600 ;text="Busy Everywhere"`))
	uac.Response(200)
	cancel := a.Request(sip.CANCEL)
	assert.Equal(t, []string{ours}, values(cancel, "Reason"), "ours, in place of the caller's")
	assert.Empty(t, value(cancel, "X-Injected"))
	a.Reply(cancel, 200, "")
	a.Reply(ia, 487, "a")
	assert.Equal(t, 487, uac.Final().StatusCode)
}

// values are the values of every header of that name.
func values(r *sip.Request, name string) []string {
	var out []string
	for _, h := range r.GetHeaders(name) {
		out = append(out, h.Value())
	}
	return out
}

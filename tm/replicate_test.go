package tm

import (
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imsdlg/imsdlg/internal/siptest"
)

// replicating routes every initial request to uas after a copy went to
// copyTo (an error of Replicate is sent on errs).
func replicating(uas *siptest.UA, copyTo string, errs chan<- error) RouterFunc {
	next := toUAs(uas)
	return func(r *Request) Decision {
		if r.Initial {
			errs <- r.Tx.Replicate(copyTo)
		}
		return next(r)
	}
}

// OpenSIPS tm t_replicate (§1.4.19): a copy of the request goes to another
// destination in a transaction of its own, with the Request-URI kept, and
// nothing of what comes back reaches the caller.
func TestSeedTm_1_4_19_Replicate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		method string
		answer int // the copy's destination answers this
	}{
		{"a MESSAGE whose copy is refused", "MESSAGE", 403},
		{"an INVITE whose copy is rejected", "INVITE", 486},
		{"an INVITE whose copy is answered: ended at once", "INVITE", 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			uac, uas, rec := siptest.NewUA(t), siptest.NewUA(t), siptest.NewUA(t)
			errs := make(chan error, 1)
			p := startProxy(t, testCfg(), replicating(uas, "sip:"+rec.HostPort(), errs))
			req := uac.NewRequest(tc.method, "sip:bob@"+p.udp, 1)
			uac.Send(p.udp, req)
			require.NoError(t, <-errs)

			cp := rec.Request(sip.RequestMethod(tc.method))
			assert.Equal(t, req.Recipient.String(), cp.Recipient.String(), "the Request-URI is kept")
			assert.Equal(t, callID(req), callID(cp))
			vias := cp.GetHeaders("Via")
			require.Len(t, vias, 2)
			assert.True(t, p.IsOurVia(cp.Via()), "our Via on top")
			theirs, ok := vias[1].(*sip.ViaHeader)
			require.True(t, ok)
			branch, _ := Param(theirs.Params, "branch")
			want, _ := Param(req.Via().Params, "branch")
			assert.Equal(t, want, branch, "the caller's Via below (with its received/rport)")
			assert.Equal(t, uint32(*req.MaxForwards())-1, uint32(*cp.MaxForwards()))
			res := rec.Reply(cp, tc.answer, "rec")
			if tc.method == "INVITE" {
				if tc.answer >= 300 {
					assert.Equal(t, cp.Via().Value(), rec.Request(sip.ACK).Via().Value(), "the copy's own ACK (§17.1.1.3)")
				} else {
					rec.Request(sip.ACK)
					bye := rec.Request(sip.BYE)
					assert.Equal(t, Tag(res.To().Params), Tag(bye.To().Params))
					rec.Reply(bye, 200, "")
				}
			}

			got := uas.Request(sip.RequestMethod(tc.method))
			uas.Reply(got, 200, "b")
			final := uac.Final()
			assert.Equal(t, 200, final.StatusCode, "the caller hears of its own branch only")
			assert.Equal(t, "b", Tag(final.To().Params))
			uac.Quiet(100*time.Millisecond, "a reply from the copy's destination", func(m sip.Message) bool {
				r, ok := m.(*sip.Response)
				return ok && Tag(r.To().Params) == "rec"
			})
			assert.Equal(t, uint64(1), p.Stats().Snapshot()["replicated_requests"])
		})
	}
	t.Run("a URI that names no hop", func(t *testing.T) {
		uac, uas := siptest.NewUA(t), siptest.NewUA(t)
		errs := make(chan error, 1)
		p := startProxy(t, testCfg(), replicating(uas, "mailto:rec@example.com", errs))
		uac.Send(p.udp, uac.NewRequest("MESSAGE", "sip:bob@"+p.udp, 1))
		err := <-errs
		require.Error(t, err)
		assert.Contains(t, err.Error(), `"mailto:rec@example.com"`)
		uas.Reply(uas.Request(sip.MESSAGE), 200, "b")
		assert.Equal(t, 200, uac.Final().StatusCode, "the request goes on")
	})
}

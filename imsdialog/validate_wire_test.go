package imsdialog_test

import (
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/stretchr/testify/assert"

	"github.com/imsdlg/imsdlg/imsdialog"
	"github.com/imsdlg/imsdlg/internal/siptest"
	"github.com/imsdlg/imsdlg/tm"
)

// Issue 13 §1: validate_dialog's modes on the wire. A caller's BYE that
// repeats the INVITE's CSeq, or names another Request-URI than the callee's
// Contact: reject answers 400 and the callee never sees it (the call goes
// on), fix sends it to the callee's Contact (a CSeq cannot be fixed: 400),
// log relays it as it came; each is counted under its check.
func TestIssue13_1_ValidateDialogModes(t *testing.T) {
	for _, tc := range []struct {
		mode    string
		badCSeq bool
		relayed bool // the callee gets the BYE
		check   string
	}{
		{imsdialog.ValidateReject, true, false, "invalid_cseq"},
		{imsdialog.ValidateReject, false, false, "invalid_remote_target"},
		{imsdialog.ValidateFix, true, false, "invalid_cseq"},
		{imsdialog.ValidateFix, false, true, "invalid_remote_target"},
		{imsdialog.ValidateLog, true, true, "invalid_cseq"},
		{imsdialog.ValidateOff, true, true, ""},
	} {
		name := tc.mode + "/cseq"
		if !tc.badCSeq {
			name = tc.mode + "/target"
		}
		t.Run(name, func(t *testing.T) {
			uac, a := siptest.NewUA(t), siptest.NewUA(t)
			cfg := imsdialog.DefaultConfig()
			cfg.ValidateDialog = tc.mode
			e := newEnv(t, cfg, func(r *tm.Request) tm.Decision { return tm.RelayTo(target(a, "bob")) })
			inv := uac.Invite("sip:bob@" + e.Addr)
			d, r200 := e.Answer(t, uac, a, inv)

			bye := uac.InDialog("BYE", inv, r200, 2)
			if tc.badCSeq {
				bye = uac.InDialog("BYE", inv, r200, 1)
			} else {
				bye.Recipient = sip.Uri{Scheme: "sip", User: "bob", Host: "127.0.0.2", Port: 5999}
			}
			uac.Send(e.Addr, bye)
			if !tc.relayed {
				res := uac.Final()
				assert.Equal(t, 400, res.StatusCode)
				assert.Contains(t, res.Reason, "Bad Request - ")
				a.Quiet(50*time.Millisecond, "a BYE that does not fit the dialog", func(m sip.Message) bool { return true })
				assert.Equal(t, imsdialog.Confirmed, d.State(), "the call goes on")
			} else {
				got := a.Request(sip.BYE)
				assert.Equal(t, a.Addr.Port, got.Recipient.Port, "at the callee's Contact")
				a.Reply(got, 200, "legA")
				assert.Equal(t, 200, uac.Final().StatusCode)
				e.WaitGone(t)
			}
			st := e.M.Stats().Snapshot()
			for _, k := range []string{"invalid_cseq", "invalid_remote_target", "invalid_route_set"} {
				want := int64(0)
				if k == tc.check {
					want = 1
				}
				assert.Equal(t, want, st[k], k)
			}
		})
	}
}

package imsdialog

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

// Issue 13 §8: failed_dialogs by cause, and every end counted under
// ended_<reason> in dlg.stats (and imsdlg_dialog_ended_dialogs_total).
func TestIssue13_8_DialogsEndedByCause(t *testing.T) {
	for _, tc := range []struct {
		name       string
		from       State
		end        EndReason
		key        string
		failed     int64
		expiredAll int64
	}{
		{"a callee's 486", Early, EndFailed, "ended_failed", 1, 0},
		{"a caller's CANCEL", Early, EndCancelled, "ended_cancelled", 1, 0},
		{"an early call ended by a command", Early, EndTerminated, "ended_terminated", 1, 0},
		{"an early call expired", Unconfirmed, EndExpired, "ended_expired", 1, 1},
		{"a caller's BYE", Confirmed, EndByeCaller, "ended_bye_caller", 0, 0},
		{"a callee's BYE", Confirmed, EndByeCallee, "ended_bye_callee", 0, 0},
		{"a confirmed call expired", Confirmed, EndExpired, "ended_expired", 0, 1},
		{"a keepalive that failed", Confirmed, EndPingTimeout, "ended_ping_timeout", 0, 0},
		{"never ACKed", ConfirmedNA, EndNoACK, "ended_no_ack", 0, 0},
		{"answered across the caller's CANCEL (end_races)", Confirmed, EndRace, "ended_race_condition", 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var s Stats
			s.init()
			s.transition(tc.from, Terminated, tc.end)
			m := s.Snapshot()
			for r := EndFailed; int(r) < len(endNames); r++ {
				want := int64(0)
				if "ended_"+r.String() == tc.key {
					want = 1
				}
				assert.Equal(t, want, m["ended_"+r.String()], r.String())
			}
			assert.Equal(t, tc.failed, m["failed_dialogs"])
			assert.Equal(t, tc.expiredAll, m["expired_dialogs"])
			assert.Equal(t, int64(1), m["processed_dialogs"])
		})
	}
}

package dlgpersist

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/imsdlg/imsdlg/imsdialog"
)

// Issue 6 §4 / issue 12 §5: everything a snapshot holds survives the
// store's record, the CSeq shifts and session descriptions of the
// keepalives included (a restored dialog must not reuse a number its
// pings took, and its re-INVITE pings need the SDP).
func TestIssue6_RecordKeepsEverySnapshotField(t *testing.T) {
	at := time.Date(2026, 12, 2, 6, 0, 0, 0, time.UTC)
	s := imsdialog.Snapshot{
		HEntry: 3, HID: 77, CallID: "c1", FromTag: "f1", UpBranch: "z9hG4bK-1",
		From: "<sip:alice@example.net>;tag=f1", To: "<sip:bob@example.net>",
		CallerTarget: "sip:alice@10.0.0.1", CallerRoute: []string{"<sip:p.example.net;lr>"}, CallerDst: "udp:10.0.0.1:5060",
		CallerCSeq: 4, InviteCSeq: 1,
		Callee: imsdialog.LegSnapshot{ToTag: "t1", RemoteTarget: "sip:bob@10.0.1.1", RouteSet: []string{"<sip:as.example.net;lr>"},
			LocalCSeq: 4, RemoteCSeq: 9, ToCalleeShift: 2, ToCallerShift: 5, SDP: []byte("v=0 bob"),
			Transport: "UDP", Source: "10.0.1.1:5060", Branch: 1, Created: at, Updated: at.Add(time.Second)},
		State: imsdialog.Confirmed, Created: at, Start: at.Add(2 * time.Second), Timeout: time.Hour,
		Deadline: at.Add(time.Hour), Vars: map[string]string{"k": "v"}, Flags: 5, CallerSDP: []byte("v=0 alice"),
		Raced: true,
	}
	p := &Persister{}
	assert.Equal(t, s, snapshot(p.record(&s)))
}

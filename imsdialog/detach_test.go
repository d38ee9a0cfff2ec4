package imsdialog

import (
	"testing"
	"unsafe"

	"github.com/emiago/sipgo/sip"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imsdlg/imsdlg/tm"
)

// Issue 14: tm's parser hands out slices of a message's header block; what
// a dialog keeps of its INVITE for the call's life shares no memory with
// the message (else every held call would keep its INVITE's text).
func TestIssue14_CellKeepsNothingOfTheInvite(t *testing.T) {
	raw := "INVITE sip:bob@example.net SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-77\r\n" +
		"Record-Route: <sip:pcscf.example.net;lr>\r\n" +
		"From: \"Alice\" <sip:alice@example.net>;tag=f77\r\nTo: <sip:bob@example.net>\r\n" +
		"Call-ID: keep-me@10.0.0.1\r\nCSeq: 1 INVITE\r\nContact: <sip:alice@10.0.0.1:5060>\r\n" +
		"Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
	msg, err := tm.NewParser(0).ParseSIP([]byte(raw))
	require.NoError(t, err)
	req := msg.(*sip.Request)
	branch, _ := tm.Param(req.Via().Params, "branch")
	inv := Invite{CallID: req.CallID().Value(), FromTag: tm.Tag(req.From().Params), ViaBranch: branch,
		From: *sip.HeaderClone(req.From()).(*sip.FromHeader), To: *sip.HeaderClone(req.To()).(*sip.ToHeader),
		Contact: req.Contact().Address, RecordRoute: []sip.Uri{req.RecordRoute().Address}, CSeq: 1}
	c := NewCell(&testCellConfig, t0, did, inv, nil)
	same := func(a, b string) bool { return a != "" && unsafe.StringData(a) == unsafe.StringData(b) }
	for _, p := range []struct{ kept, msg string }{
		{c.callID, inv.CallID}, {c.fromTag, inv.FromTag}, {c.upBranch, inv.ViaBranch},
		{c.from.Address.Host, inv.From.Address.Host}, {c.from.DisplayName, inv.From.DisplayName},
		{c.from.Params[0].V, inv.From.Params[0].V}, {c.to.Address.User, inv.To.Address.User},
		{c.callerTarget.Host, inv.Contact.Host}, {c.callerRoute[0].Host, inv.RecordRoute[0].Host},
	} {
		assert.Equal(t, p.msg, p.kept)
		assert.False(t, same(p.kept, p.msg), "%q is the message's", p.kept)
	}
}

// Issue 14 (RFC 3966 URIs): a tel: URI keeps its number out of reach of
// sipstr's pointers (Uri.Raw): the cell keeps copies of it too.
func TestIssue14_CellKeepsItsOwnTelURI(t *testing.T) {
	raw := "INVITE tel:+15559876 SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-78\r\n" +
		"From: <tel:+15551234>;tag=f78\r\nTo: <tel:+15559876>\r\n" +
		"Call-ID: keep-tel@10.0.0.1\r\nCSeq: 1 INVITE\r\nContact: <sip:alice@10.0.0.1:5060>\r\n" +
		"Content-Type: application/sdp\r\nMax-Forwards: 70\r\nContent-Length: 5\r\n\r\nv=0\r\n"
	msg, err := tm.NewParser(0).ParseSIP([]byte(raw))
	require.NoError(t, err)
	req := msg.(*sip.Request)
	inv := Invite{CallID: req.CallID().Value(), FromTag: tm.Tag(req.From().Params),
		From: *sip.HeaderClone(req.From()).(*sip.FromHeader), To: *sip.HeaderClone(req.To()).(*sip.ToHeader),
		Contact: req.Contact().Address, CSeq: 1, SDP: sdpOf(req)}
	require.NotNil(t, inv.SDP)
	c := NewCell(&testCellConfig, t0, did, inv, nil)
	same := func(a, b string) bool { return a != "" && unsafe.StringData(a) == unsafe.StringData(b) }
	assert.Equal(t, "+15551234", c.from.Address.Raw())
	assert.False(t, same(c.from.Address.Raw(), inv.From.Address.Raw()), "the From number is the message's")
	assert.False(t, same(c.to.Address.Raw(), inv.To.Address.Raw()), "the To number is the message's")
	assert.Equal(t, inv.SDP, c.callerSDP)
}

package imsdialog

import (
	"testing"

	"github.com/emiago/sipgo/sip"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imsdlg/imsdlg/internal/siptest"
	"github.com/imsdlg/imsdlg/tm"
)

// Another proxy of the same call running this module (a P-CSCF in front of
// an S-CSCF) derives the same did from the same Call-ID: its Record-Route
// entries are not ours, and stay in the callee's route set.
func TestOurRRNeedsOurAddressNotOnlyTheDID(t *testing.T) {
	uac, callee := siptest.NewUA(t), siptest.NewUA(t)
	e := newEnv(t, DefaultConfig(), func(*tm.Request) tm.Decision { return tm.RelayTo(target(callee, "bob")) })
	inv := uac.Invite("sip:bob@" + e.addr)
	uac.Send(e.addr, inv)
	got := callee.Request(sip.INVITE)
	d := e.only(t)
	ours := got.RecordRoute().Address
	require.True(t, d.ourRR(ours))
	other := *ours.Clone()
	other.Port = callee.Addr.Port // same did, another node
	assert.False(t, d.ourRR(other))
	callee.Reply(got, 486, "x")
	uac.Final()
}

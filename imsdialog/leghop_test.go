package imsdialog

import (
	"testing"

	"github.com/emiago/sipgo/sip"
	"github.com/stretchr/testify/assert"

	"github.com/imsdlg/imsdlg/dlgout"
)

// A request within the dialog to a callee that ignores Record-Route goes
// to the hop its leg answered from: the answer follows the leg's source
// and transport, and asking again for the same leg allocates nothing
// (issue 14: it was a string per ACK and BYE).
func TestLegDstFollowsTheLegsSource(t *testing.T) {
	c := &Cell{}
	a := &dlgout.Leg{Transport: "UDP", Source: "127.0.0.1:5070"}
	b := &dlgout.Leg{Transport: "TCP", Source: "127.0.0.2:5080"}
	assert.Equal(t, "udp:127.0.0.1:5070", c.legDst(a))
	assert.Equal(t, "tcp:127.0.0.2:5080", c.legDst(b))
	assert.Equal(t, "udp:127.0.0.1:5070", c.legDst(a))
	assert.Zero(t, testing.AllocsPerRun(50, func() { c.legDst(a) }))
	a.Source = "127.0.0.1:5071"
	assert.Equal(t, "udp:127.0.0.1:5071", c.legDst(a))
	a.Transport = "TCP"
	assert.Equal(t, "tcp:127.0.0.1:5071", c.legDst(a))
	a.RouteSet = []sip.Uri{{Scheme: "sip", Host: "127.0.0.9"}}
	assert.Empty(t, c.legDst(a), "a leg with a route set goes along it")
	assert.Empty(t, c.legDst(&dlgout.Leg{Transport: "UDP"}), "no source known")
}

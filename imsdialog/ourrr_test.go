package imsdialog

import (
	"testing"

	"github.com/emiago/sipgo/sip"
	"github.com/stretchr/testify/assert"
)

// Another proxy of the same call running this module (a P-CSCF in front of
// an S-CSCF) derives the same did from the same Call-ID: its Record-Route
// entries are not ours, and stay in the callee's route set.
func TestOurRRNeedsOurAddressNotOnlyTheDID(t *testing.T) {
	c := newCell(t)
	assert.True(t, c.ourRR(ptr(uri(t, "sip:"+proxy+";lr;did="+did))))
	assert.True(t, c.ourRR(ptr(uri(t, "sip:"+proxy+";lr;DID="+did))), "parameter names are case-insensitive")
	assert.False(t, c.ourRR(ptr(uri(t, "sip:pcscf.ims.example.net;lr;did="+did))), "same did, another node")
	assert.False(t, c.ourRR(ptr(uri(t, "sip:"+proxy+";lr;did=ff.1"))), "ours, another dialog")

	c.Step(t0, created)
	ev := reply(t, 0, 200, "1")
	// Callee side: an S-CSCF that also put our did; ours; then the caller side.
	ev.Reply.RecordRoute = []sip.Uri{uri(t, "sip:scscf.ims.example.net;lr;did="+did), uri(t, "sip:"+proxy+";lr;did="+did),
		uri(t, "sip:pcscf.ims.example.net;lr")}
	c.Step(t0, ev)
	out := sends(c.Step(t0, Event{Kind: EvTerminate, Side: SideCallee}))
	assert.Equal(t, []string{"sip:scscf.ims.example.net;lr;did=" + did}, uriStrings(out[0].Route))
}

func ptr[T any](v T) *T { return &v }

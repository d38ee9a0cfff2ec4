package dlgout

import (
	"strings"
	"testing"
	"unsafe"

	"github.com/emiago/sipgo/sip"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imsdlg/imsdlg/internal/sipstr"
)

// inside tells whether s's bytes lie in block's.
func inside(s, block string) bool {
	if s == "" || block == "" {
		return false
	}
	p, b := uintptr(unsafe.Pointer(unsafe.StringData(s))), uintptr(unsafe.Pointer(unsafe.StringData(block)))
	return p >= b && p < b+uintptr(len(block))
}

// Issue 14: tm's parser hands out slices of a message's whole header
// block; what a leg keeps for the call's life (its To tag, remote target,
// route set) must not keep that block alive.
func TestIssue14_LegKeepsNothingOfTheReply(t *testing.T) {
	const c, rrText = "sip:bob@10.0.1.1:5062;transport=udp", "sip:as.example.net;lr;did=7"
	block := strings.Repeat("x", 64) + "b1 " + c + " " + rrText
	tag := block[64:66]
	var contact, rr sip.Uri
	i := strings.Index(block, c)
	require.NoError(t, sip.ParseUri(block[i:i+len(c)], &contact))
	require.NoError(t, sip.ParseUri(block[len(block)-len(rrText):], &rr))
	require.True(t, inside(contact.Host, block), "the test's URI is a slice of the block")
	var s Set
	r := Reply{Code: 200, ToTag: tag, CSeq: 1, Method: sip.INVITE, Contact: contact, HasContact: true,
		RecordRoute: []sip.Uri{rr}}
	leg, _, err := s.OnReply(t0, 0, r, func(*sip.Uri) bool { return false })
	require.NoError(t, err)
	assert.Equal(t, "b1", leg.ToTag)
	assert.Equal(t, "sip:bob@10.0.1.1:5062;transport=udp", leg.RemoteTarget.String())
	var all []*string
	all = append(all, &leg.ToTag)
	all = sipstr.URIStrings(all, &leg.RemoteTarget)
	for i := range leg.RouteSet {
		all = sipstr.URIStrings(all, &leg.RouteSet[i])
	}
	for _, p := range all {
		assert.False(t, inside(*p, block), "%q still points into the reply", *p)
	}
	assert.Equal(t, "as.example.net", leg.RouteSet[0].Host)
	assert.Equal(t, "7", leg.RouteSet[0].UriParams.GetOr("did", ""))
}

// Issue 14: the reply's Source is its own too (whatever string the
// caller hands over may be a message's text, reused once the call that
// handed it over returns): the leg keeps a copy, made once.
func TestIssue14_LegKeepsItsOwnSource(t *testing.T) {
	block := "xx b1 10.0.0.9:5070 v=0"
	var s Set
	r := Reply{Code: 180, ToTag: block[3:5], CSeq: 1, Method: sip.INVITE, Transport: "UDP", Source: block[6:19]}
	leg, _, err := s.OnReply(t0, 0, r, nil)
	require.NoError(t, err)
	assert.Equal(t, "10.0.0.9:5070", leg.Source)
	assert.False(t, inside(leg.Source, block), "the Source is a copy")
	src := leg.Source
	r.Code, r.Source = 200, strings.Clone(block[6:19])
	leg, _, err = s.OnReply(t0, 0, r, nil)
	require.NoError(t, err)
	assert.Same(t, unsafe.StringData(src), unsafe.StringData(leg.Source), "an unchanged Source is not copied again")
}

package tm

import (
	"fmt"
	"testing"
	"unsafe"

	"github.com/emiago/sipgo/sip"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Issue 14: the header list of a parsed message lives in its block. This
// fails when a sipgo release moves the list (headerListAt false): every
// message then falls back to sipgo's constructors, correct but with three
// to four more heap objects each.
func TestHeaderListInline(t *testing.T) {
	require.True(t, headerListAt, "sipgo's header list is not where tm expects it: see hdrlist.go")
	msg, err := NewParser(0).ParseSIP([]byte(vtInvite))
	require.NoError(t, err)
	req := msg.(*sip.Request)
	blk := (*reqBlock)(unsafe.Pointer(req)) // req is the block's first field
	require.NotEmpty(t, req.Headers())
	assert.Same(t, &blk.order[0], &req.Headers()[0], "the header list is the block's")
	assert.Equal(t, "SIP/2.0", req.SipVersion)
	assert.Equal(t, req.Via(), req.Headers()[0], "sipgo's references are set as AppendHeader sets them")
}

// branchHeaders is our Via and n Record-Routes for a branch, as
// prependOurs makes them.
func branchHeaders(n int) []sip.Header {
	l := &listener{transport: "UDP", host: "127.0.0.1", port: 5060}
	hs := []sip.Header{newBranchVia(l, "UDP", "", nil)}
	for i := range n {
		rr := new(rrBlock).build(l, nil)
		rr.Address.Port = 5060 + i + 1 // tell them apart
		hs = append(hs, rr)
	}
	return hs
}

// RFC 3261 §16.6 steps 4 and 8: the Record-Route(s) and our Via go on top
// of the branch's request. prependInRoom puts them into the room the clone
// block keeps free and must leave the same message as sipgo's
// PrependHeader (the wire form byte for byte, sipgo's Via reference on our
// Via), without an allocation.
func TestRFC3261_16_6_OurHeadersGoOnTopInTheCloneBlock(t *testing.T) {
	msg, err := NewParser(0).ParseSIP([]byte(vtInvite))
	require.NoError(t, err)
	tmpl := msg.(*sip.Request)
	for n := 0; n <= 2; n++ {
		t.Run(fmt.Sprintf("%d Record-Routes", n), func(t *testing.T) {
			hs := branchHeaders(n)
			want := shallowClone(tmpl)
			want.PrependHeader(hs...)
			cb := shallowCloneTo(tmpl, &tmpl.Recipient)
			require.True(t, prependInRoom(&cb.req.MessageData, cb.order[:], hs))
			got := &cb.req
			assert.Equal(t, string(marshal(want)), string(marshal(got)))
			assert.Same(t, &cb.order[cloneFront-len(hs)], &got.Headers()[0], "prepended in the block")
			assert.Same(t, hs[0], got.Via(), "sipgo's Via is ours")
			if n > 0 {
				assert.Same(t, hs[1], got.RecordRoute(), "sipgo's Record-Route is the top one")
			}
			clone := testing.AllocsPerRun(500, func() { shallowCloneTo(tmpl, &tmpl.Recipient) })
			both := testing.AllocsPerRun(500, func() {
				cb := shallowCloneTo(tmpl, &tmpl.Recipient)
				prependInRoom(&cb.req.MessageData, cb.order[:], hs)
			})
			assert.Equal(t, clone, both, "allocations of a prepend in room")
		})
	}
}

// Where the room is gone (a second prepend after a size switch to TCP
// removed ours, or a hook grew the list past the block), prependInRoom
// says so and the caller's PrependHeader does it: never a header lost or
// written over.
func TestPrependInRoomFallsBack(t *testing.T) {
	msg, err := NewParser(0).ParseSIP([]byte(vtInvite))
	require.NoError(t, err)
	tmpl := msg.(*sip.Request)

	cb := shallowCloneTo(tmpl, &tmpl.Recipient)
	hs := branchHeaders(2)
	require.True(t, prependInRoom(&cb.req.MessageData, cb.order[:], hs))
	cb.req.RemoveHeader("Via")
	again := branchHeaders(0)
	assert.False(t, prependInRoom(&cb.req.MessageData, cb.order[:], again), "no room after the first prepend")

	grown := shallowCloneTo(tmpl, &tmpl.Recipient)
	for i := range cloneHeaders {
		grown.req.AppendHeader(sip.NewHeader("X-Pad", fmt.Sprint(i)))
	}
	assert.False(t, prependInRoom(&grown.req.MessageData, grown.order[:], hs), "the list left the block")
	assert.Len(t, grown.order, cloneHeaders)
}

// RFC 3261 §16.11: a stateless relay puts its Via on top of the request it
// parsed; in the block's spare room the message is the same as
// PrependHeader's, sipgo's Via reference included, without an allocation.
// A full list falls back to PrependHeader.
func TestRFC3261_16_11_StatelessViaInTheParsedBlock(t *testing.T) {
	p := NewParser(0)
	data := []byte(vtInvite)
	via := branchHeaders(0)[0]
	parse := func() *sip.Request {
		msg, err := p.ParseSIP(data)
		require.NoError(t, err)
		return msg.(*sip.Request)
	}
	want, got := parse(), parse()
	want.PrependHeader(via)
	prependHeader(&got.MessageData, via)
	assert.Equal(t, string(marshal(want)), string(marshal(got)))
	assert.Same(t, via, got.Via())
	assert.Same(t, &(*reqBlock)(unsafe.Pointer(got)).order[0], &got.Headers()[0], "still in the block")

	parsed := testing.AllocsPerRun(500, func() { parse() })
	both := testing.AllocsPerRun(500, func() { prependHeader(&parse().MessageData, via) })
	assert.Equal(t, parsed, both, "allocations of the prepend")

	full := parse()
	for len(full.Headers()) < blockHeaders {
		full.AppendHeader(sip.NewHeader("X-Pad", "1"))
	}
	before := len(full.Headers())
	prependHeader(&full.MessageData, via)
	assert.Len(t, full.Headers(), before+1)
	assert.Same(t, via, full.Headers()[0])
	assert.Same(t, via, full.Via())
}

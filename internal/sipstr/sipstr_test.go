package sipstr

import (
	"testing"
	"unsafe"

	"github.com/emiago/sipgo/sip"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func inside(s, block string) bool {
	if s == "" || block == "" {
		return false
	}
	p, b := uintptr(unsafe.Pointer(unsafe.StringData(s))), uintptr(unsafe.Pointer(unsafe.StringData(block)))
	return p >= b && p < b+uintptr(len(block))
}

func TestIssue14_DetachOneBlock(t *testing.T) {
	block := "alpha beta gamma"
	a, b, c, empty := block[0:5], block[6:10], block[11:], ""
	Detach([]*string{&a, &b, &empty, &c})
	assert.Equal(t, []string{"alpha", "beta", "", "gamma"}, []string{a, b, empty, c})
	for _, s := range []string{a, b, c} {
		assert.False(t, inside(s, block))
	}
	next := unsafe.Add(unsafe.Pointer(unsafe.StringData(a)), len(a))
	assert.Equal(t, next, unsafe.Pointer(unsafe.StringData(b)), "one backing array, in order")
}

func TestIssue14_URIIsItsOwn(t *testing.T) {
	block := "xx sip:bob@10.0.1.1:5062;transport=udp?subject=hi"
	var u sip.Uri
	require.NoError(t, sip.ParseUri(block[3:], &u))
	c := URI(u)
	assert.Equal(t, u.String(), c.String())
	var all []*string
	for _, p := range URIStrings(all, &c) {
		assert.False(t, inside(*p, block), "%q", *p)
	}
	c.UriParams[0].V = "tcp"
	assert.Equal(t, "udp", u.UriParams[0].V, "the lists are copies")
}

// Issue 14 (RFC 3966): a tel: URI's number is in sipgo's Raw, which no
// pointer reaches: URI copies it too.
func TestIssue14_NonSIPURIIsItsOwn(t *testing.T) {
	block := "xx tel:+15551234;phone-context=ims.example"
	var u sip.Uri
	require.NoError(t, sip.ParseUri(block[3:], &u))
	require.True(t, inside(u.Raw(), block))
	c := URI(u)
	assert.Equal(t, u.String(), c.String())
	assert.Equal(t, u.Raw(), c.Raw())
	assert.False(t, inside(c.Raw(), block), "the scheme-specific part is a copy")
	for _, p := range URIStrings(nil, &c) {
		assert.False(t, inside(*p, block), "%q", *p)
	}
}

package location

import (
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func mustURI(t testing.TB, s string) sip.Uri {
	t.Helper()
	var u sip.Uri
	require.NoError(t, sip.ParseUri(s, &u))
	return u
}

// okFor is the registrar's 2xx to req, listing the given Contact lines.
func okFor(req *sip.Request, code int, contacts ...string) *sip.Response {
	res := sip.NewResponseFromRequest(req, code, "OK", nil)
	for _, c := range contacts {
		res.AppendHeader(sip.NewHeader("Contact", c))
	}
	return res
}

func TestRFC3327_PathRouteOfBinding(t *testing.T) {
	s, _ := newTestStore(Options{})
	mustOK(t, s.Register(reg(t, "c1", 1,
		"Contact: <sip:alice@10.45.0.7:5060>",
		"Path: <sip:pcscf1.ims.example.com:5070;lr;term>",
		"Path: <sip:p2.example.com;lr>")))
	got := s.Lookup(aliceAOR)
	require.Len(t, got, 1)
	route, err := got[0].PathRoute()
	require.NoError(t, err)
	require.Len(t, route, 2)
	assert.Equal(t, "sip:pcscf1.ims.example.com:5070;lr;term", route[0].String(), "the first Path is the first hop")
	assert.True(t, route[0].UriParams.Has("lr"))
	assert.Equal(t, "sip:p2.example.com;lr", route[1].String())

	mustOK(t, s.Register(reg(t, "c2", 1, "Contact: <sip:alice@10.45.0.8>")))
	for _, b := range s.Lookup(aliceAOR) {
		if b.Contact.Host == "10.45.0.8" {
			r, err := b.PathRoute()
			require.NoError(t, err)
			assert.Nil(t, r, "no Path, no route set")
		}
	}

	_, err = ParsePath([]string{"<tel:+1555>"})
	assert.ErrorContains(t, err, "not a SIP URI")
	_, err = ParsePath([]string{"<sip:x;lr"})
	assert.Error(t, err)
}

func TestLearned_SaveFromRegistrarReply(t *testing.T) {
	clk := &fakeClock{now: t0}
	l := NewLearned(clk.Now)
	req := reg(t, "c1", 1,
		"Contact: <sip:alice@10.45.0.7:5060>",
		"Contact: <sip:alice@10.45.0.8:5062;transport=tcp>;expires=60")

	// Not a 2xx: nothing learned.
	assert.Zero(t, l.Save(req, okFor(req, 403)))
	_, ok := l.Lookup(mustURI(t, "sip:alice@10.45.0.7:5060"))
	assert.False(t, ok)

	// The 2xx lists both, plus one registered through another P-CSCF.
	res := okFor(req, 200,
		"<sip:alice@10.45.0.7:5060>;expires=600",
		"<sip:alice@10.45.0.8:5062;transport=tcp>;expires=60;q=0.5",
		"<sip:alice@192.0.2.99>;expires=600")
	assert.Equal(t, 2, l.Save(req, res))
	b, ok := l.Lookup(mustURI(t, "sip:alice@10.45.0.7:5060"))
	require.True(t, ok)
	assert.Equal(t, aliceAOR, b.AOR)
	assert.Equal(t, t0.Add(600*time.Second), b.Expires, "the lifetime the registrar granted")
	assert.Equal(t, "198.51.100.7:41000", b.Received)
	b, ok = l.Lookup(mustURI(t, "sip:alice@10.45.0.8:5062;transport=tcp"))
	require.True(t, ok)
	assert.Equal(t, 0.5, b.Q)
	_, ok = l.Lookup(mustURI(t, "sip:alice@10.45.0.8:5062"))
	assert.False(t, ok, "another transport is another contact")
	_, ok = l.Lookup(mustURI(t, "sip:alice@192.0.2.99"))
	assert.False(t, ok, "contacts not registered through us are not learned")
	assert.Len(t, l.Bindings(), 2)

	// Expiry.
	clk.Advance(61 * time.Second)
	_, ok = l.Lookup(mustURI(t, "sip:alice@10.45.0.8:5062;transport=tcp"))
	assert.False(t, ok, "expired")
	assert.Equal(t, 1, l.Expire())
	assert.Len(t, l.Bindings(), 1)

	// De-registration: the 2xx no longer lists the contact.
	dereg := reg(t, "c1", 2, "Contact: <sip:alice@10.45.0.7:5060>;expires=0")
	assert.Zero(t, l.Save(dereg, okFor(dereg, 200)))
	_, ok = l.Lookup(mustURI(t, "sip:alice@10.45.0.7:5060"))
	assert.False(t, ok)
}

func TestLearned_WildcardForgetsTheAOR(t *testing.T) {
	l := NewLearned(func() time.Time { return t0 })
	req := reg(t, "c1", 1, "Contact: <sip:alice@10.45.0.7>", "Contact: <sip:alice@10.45.0.9>")
	require.Equal(t, 2, l.Save(req, okFor(req, 200, "<sip:alice@10.45.0.7>;expires=300", "<sip:alice@10.45.0.9>;expires=300")))
	bob := register(t, "To: <sip:bob@ims.example.com>", "Call-ID: b1", "CSeq: 1 REGISTER", "Contact: <sip:bob@10.45.0.20>")
	require.Equal(t, 1, l.Save(bob, okFor(bob, 200, "<sip:bob@10.45.0.20>")), "no expires: the RFC 3261 default")

	all := reg(t, "c1", 2, "Contact: *", "Expires: 0")
	assert.Zero(t, l.Save(all, okFor(all, 200)))
	bs := l.Bindings()
	require.Len(t, bs, 1)
	assert.Equal(t, "sip:bob@ims.example.com", bs[0].AOR)
	assert.Equal(t, t0.Add(time.Hour), bs[0].Expires)
}

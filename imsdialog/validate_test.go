package imsdialog

import (
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// OpenSIPS dialog §1.7.3 validate_dialog: "CSEQ sequence checking and
// routing information checking (contact and route set)", with its return
// codes: -1 invalid cseq, -2 invalid remote target, -3 invalid route set,
// -4 other. The call: alice (behind a P-CSCF) to bob (behind an AS),
// answered by leg "1" (Contact sip:bob@10.0.1.1:5062), bob's re-INVITE
// seen with CSeq 5.
func TestSeedDialog_ValidateDialog(t *testing.T) {
	ours := func(u *sip.Uri) bool { return u.Host == proxy }
	toBob := func(method string, cseq uint32, ruri string, route ...string) *Within {
		w := &Within{Method: method, CSeq: cseq, FromCaller: true, FromTag: "ftag", ToTag: "1", RURI: uri(t, ruri)}
		for _, r := range route {
			w.Route = append(w.Route, uri(t, r))
		}
		return w
	}
	toAlice := func(method string, cseq uint32, ruri string, route ...string) *Within {
		w := toBob(method, cseq, ruri, route...)
		w.FromCaller, w.FromTag, w.ToTag = false, "1", "ftag"
		return w
	}
	const bob, alice = "sip:bob@10.0.1.1:5062", "sip:alice@10.0.0.1:5070"
	const as, pcscf = "sip:as.ims.example.net;lr", "sip:pcscf.ims.example.net;lr"
	for _, tc := range []struct {
		name string
		w    *Within
		want Check
	}{
		{"BYE from the caller along the route set", toBob("BYE", 2, bob, as), 0},
		{"a CSeq far above is fine", toBob("INFO", 900, bob, as), 0},
		{"our own entry left in the Route (a spiral)", toBob("BYE", 2, bob, "sip:"+proxy+";lr", as), 0},
		{"CSeq repeated: -1", toBob("BYE", 1, bob, as), CheckCSeq},
		{"ACK carries its INVITE's CSeq", toBob("ACK", 1, bob, as), 0},
		{"CANCEL carries its INVITE's CSeq", toBob("CANCEL", 1, bob, as), 0},
		{"Request-URI not bob's Contact: -2", toBob("BYE", 2, "sip:bob@ims.example.net", as), CheckRemoteTarget},
		{"a UA that ignores Record-Route: no Route, the AOR: -2", toBob("BYE", 2, "sip:bob@ims.example.net"), CheckRemoteTarget},
		{"no Route but the right target", toBob("BYE", 2, bob), 0},
		{"Route to another host: -3", toBob("BYE", 2, bob, "sip:evil.example.org;lr"), CheckRouteSet},
		{"Route with a hop too many: -3", toBob("BYE", 2, bob, as, "sip:evil.example.org;lr"), CheckRouteSet},
		{"BYE from the callee above its re-INVITE", toAlice("BYE", 6, alice, pcscf), 0},
		{"callee's CSeq below its re-INVITE: -1", toAlice("BYE", 4, alice, pcscf), CheckCSeq},
		{"callee to a wrong target: -2", toAlice("BYE", 6, "sip:alice@10.6.6.6", pcscf), CheckRemoteTarget},
		{"unknown leg: -4", &Within{Method: "BYE", CSeq: 9, FromCaller: true, FromTag: "ftag", ToTag: "nope", RURI: uri(t, bob)}, CheckOther},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCell(t)
			c.Step(t0, created)
			c.Step(t0, reply(t, 0, 200, "1"))
			c.Step(t0, ackOf("1"))
			c.Step(t0, Event{Kind: EvRequest, Request: Request{Method: "INVITE", CSeq: 5, FromTag: "1", ToTag: "ftag"}})
			got := c.Validate(tc.w, ours)
			if tc.want == 0 {
				assert.Nil(t, got)
				return
			}
			require.NotNil(t, got)
			assert.Equal(t, tc.want, got.Check, got.Detail)
		})
	}
}

// RFC 3261 §12.2.2: a target refresh (re-INVITE or UPDATE, or the 2xx to
// one) replaces its sender's remote target: the dialog's BYE, its pings
// and validate_dialog follow the party to its new Contact.
func TestRFC3261_12_2_TargetRefreshMovesTheRemoteTarget(t *testing.T) {
	moved := uri(t, "sip:bob@10.0.1.9:5064")
	movedAlice := uri(t, "sip:alice@10.0.0.7:5070")
	for _, tc := range []struct {
		name        string
		ev          Event
		bob, alice  string
		persistsNew bool
	}{
		{"re-INVITE from the callee", Event{Kind: EvRequest, Request: Request{Method: "INVITE", CSeq: 1, FromTag: "1", ToTag: "ftag", Contact: &moved}},
			"10.0.1.9", "10.0.0.1", true},
		{"2xx of the caller's UPDATE", Event{Kind: EvRequestReply, Method: "UPDATE", Code: 200, Request: Request{FromCaller: true, FromTag: "ftag", ToTag: "1", Contact: &moved}},
			"10.0.1.9", "10.0.0.1", true},
		{"re-INVITE from the caller", Event{Kind: EvRequest, Request: Request{Method: "INVITE", CSeq: 2, FromCaller: true, FromTag: "ftag", ToTag: "1", Contact: &movedAlice}},
			"10.0.1.1", "10.0.0.7", true},
		{"a 488 refreshes nothing", Event{Kind: EvRequestReply, Method: "INVITE", Code: 488, Request: Request{FromCaller: true, FromTag: "ftag", ToTag: "1", Contact: &moved}},
			"10.0.1.1", "10.0.0.1", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newCell(t)
			c.Step(t0, created)
			c.Step(t0, reply(t, 0, 200, "1"))
			c.Step(t0, ackOf("1"))
			acts := c.Step(t0.Add(time.Second), tc.ev)
			assert.Equal(t, tc.persistsNew, len(has(acts, ActPersist)) > 0)
			ss := sends(c.Step(t0.Add(2*time.Second), Event{Kind: EvTerminate, Side: SideBoth}))
			require.Len(t, ss, 2)
			assert.Equal(t, tc.alice, ss[0].Target.Host, "the caller's BYE")
			assert.Equal(t, tc.bob, ss[1].Target.Host, "the callee's BYE")
		})
	}
}

// validate_dialog through a spiral (TS 24.229: UE -> P-CSCF -> S-CSCF ->
// AS -> S-CSCF -> P-CSCF -> UE, this proxy being the P-CSCF): our entry is
// twice in the route set, and a request passes us twice; the Route left at
// each pass is what follows that pass's entry. Neither pass may be taken
// for a forged route (fix would send the request around again).
func TestSeedDialog_ValidateDialogThroughASpiral(t *testing.T) {
	ours := func(u *sip.Uri) bool { return u.Host == proxy }
	us := "sip:" + proxy + ";lr;did=" + did
	const scscf, as, pcscfUE = "sip:scscf.ims.example.net;lr", "sip:as.ims.example.net;lr", "sip:pcscf.ims.example.net;lr"
	c := newCell(t)
	c.Step(t0, created)
	ok := reply(t, 0, 200, "1")
	ok.Reply.RecordRoute = []sip.Uri{uri(t, us), uri(t, scscf), uri(t, as), uri(t, scscf), uri(t, us), uri(t, pcscfUE)}
	c.Step(t0, ok)
	const bob, alice = "sip:bob@10.0.1.1:5062", "sip:alice@10.0.0.1:5070"
	uris := func(ss ...string) []sip.Uri {
		var out []sip.Uri
		for _, s := range ss {
			out = append(out, uri(t, s))
		}
		return out
	}
	for _, tc := range []struct {
		name       string
		fromCaller bool
		route      []sip.Uri
		want       Check
	}{
		{"caller's BYE, first pass", true, uris(scscf, as, scscf, us), 0},
		{"caller's BYE, second pass", true, nil, 0},
		{"caller's BYE skipping the AS", true, uris(scscf, us), CheckRouteSet},
		{"caller's BYE to another S-CSCF", true, uris("sip:evil.example.org;lr", as, scscf, us), CheckRouteSet},
		{"callee's BYE, first pass", false, uris(scscf, as, scscf, us, pcscfUE), 0},
		{"callee's BYE, second pass", false, uris(pcscfUE), 0},
		{"callee's BYE with the hops of the caller's direction", false, uris(scscf, as, scscf, us), CheckRouteSet},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := &Within{Method: "BYE", CSeq: 2, FromCaller: tc.fromCaller, FromTag: "ftag", ToTag: "1", RURI: uri(t, bob), Route: tc.route}
			if !tc.fromCaller {
				w.FromTag, w.ToTag, w.RURI = "1", "ftag", uri(t, alice)
			}
			got := c.Validate(w, ours)
			if tc.want == 0 {
				assert.Nil(t, got)
				return
			}
			require.NotNil(t, got)
			assert.Equal(t, tc.want, got.Check, got.Detail)
		})
	}
}

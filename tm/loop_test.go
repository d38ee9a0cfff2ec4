package tm

import (
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/emiago/sipgo/sip"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// ltOurHost is the sent-by of our Vias in these tests.
const ltOurHost = "proxy.example.net"

func ltIsOurs(v *sip.ViaHeader) bool { return v.Host == ltOurHost }

func ltVia(host, branch string) *sip.ViaHeader {
	return &sip.ViaHeader{
		ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: "UDP",
		Host: host, Port: 5060, Params: sip.HeaderParams{{K: "branch", V: branch}},
	}
}

// ltForward does what §16.6 does to the received request that matters for
// loop detection: our Via on top, our Route entry gone, optionally a new
// Request-URI and Route set. It returns the copy as the next hop gets it.
func ltForward(received *sip.Request, loopHash string, route ...string) *sip.Request {
	out := received.Clone()
	for out.RemoveHeader("Route") {
	}
	for _, r := range route {
		h := &sip.RouteHeader{}
		if err := sip.ParseUri(r, &h.Address); err != nil {
			panic(err)
		}
		out.AppendHeader(h)
	}
	out.PrependHeader(ltVia(ltOurHost, newBranch(loopHash)))
	return out
}

// ltNextHop is a proxy that sends the request back to us: it adds its Via
// and pops the first Route entry, as a loose router addressed by it does.
func ltNextHop(sent *sip.Request, host string) *sip.Request {
	back := sent.Clone()
	if r := back.GetHeaders("Route"); len(r) > 0 {
		back.RemoveHeader("Route")
	}
	back.PrependHeader(ltVia(host, "z9hG4bK"+host+"1"))
	return back
}

// ltReparse sends the request over the wire, so that the test sees what our
// transport would parse.
func ltReparse(t testing.TB, req *sip.Request) *sip.Request {
	t.Helper()
	return vtParse(t, req.String())
}

func TestRFC3261_16_3_4_LoopDetection(t *testing.T) {
	for _, tc := range []struct {
		name     string
		received string
		// trip forwards and brings back the request; it may change it on
		// the way as an application server would.
		trip     func(t *testing.T, r *sip.Request, hash string) *sip.Request
		wantLoop bool
	}{
		{
			name: "comes back unchanged: loop",
			trip: func(t *testing.T, r *sip.Request, h string) *sip.Request {
				return ltNextHop(ltForward(r, h), "p2.example.org")
			},
			wantLoop: true,
		},
		{
			name: "comes back through two hops: loop",
			trip: func(t *testing.T, r *sip.Request, h string) *sip.Request {
				return ltNextHop(ltNextHop(ltForward(r, h), "p2.example.org"), "p3.example.org")
			},
			wantLoop: true,
		},
		{
			name: "sent straight to ourselves: loop",
			trip: func(t *testing.T, r *sip.Request, h string) *sip.Request {
				return ltForward(r, h)
			},
			wantLoop: true,
		},
		{
			name: "AS changed the Request-URI: spiral",
			trip: func(t *testing.T, r *sip.Request, h string) *sip.Request {
				back := ltNextHop(ltForward(r, h), "as.example.org")
				back.Recipient.User = "carol"
				return back
			},
		},
		{
			name: "AS got it through a pushed Route and sends it back with our ODI Route: spiral",
			trip: func(t *testing.T, r *sip.Request, h string) *sip.Request {
				sent := ltForward(r, h, "sip:as.example.org;lr", "sip:"+ltOurHost+";lr;odi=4711")
				return ltNextHop(sent, "as.example.org")
			},
		},
		{
			name: "AS added Proxy-Require: spiral",
			trip: func(t *testing.T, r *sip.Request, h string) *sip.Request {
				back := ltNextHop(ltForward(r, h), "as.example.org")
				back.AppendHeader(sip.NewHeader("Proxy-Require", "foo"))
				return back
			},
		},
		{
			name: "Proxy-Authorization added on the way: spiral",
			trip: func(t *testing.T, r *sip.Request, h string) *sip.Request {
				back := ltNextHop(ltForward(r, h), "p2.example.org")
				back.AppendHeader(sip.NewHeader("Proxy-Authorization", `Digest username="alice"`))
				return back
			},
		},
		{
			name: "spiral, then the same again: loop on the second return",
			trip: func(t *testing.T, r *sip.Request, h string) *sip.Request {
				back := ltNextHop(ltForward(r, h), "as.example.org")
				back.Recipient.User = "carol"
				h2 := computeLoopHash(back)
				require.False(t, isLoop(back, h2, ltIsOurs), "first return is a spiral")
				return ltNextHop(ltForward(back, h2), "as.example.org")
			},
			wantLoop: true,
		},
		{
			name: "Via of another proxy with our branch format: not ours",
			trip: func(t *testing.T, r *sip.Request, h string) *sip.Request {
				back := r.Clone()
				back.PrependHeader(ltVia("other.example.org", newBranch(h)))
				return back
			},
		},
		{
			name: "our sent-by with a foreign branch: not a loop",
			trip: func(t *testing.T, r *sip.Request, h string) *sip.Request {
				back := r.Clone()
				back.PrependHeader(ltVia(ltOurHost, "z9hG4bKforeign"))
				return back
			},
		},
		{
			name: "received and rport added to the Vias on the way: still a loop",
			trip: func(t *testing.T, r *sip.Request, h string) *sip.Request {
				back := ltNextHop(ltForward(r, h), "p2.example.org")
				for _, v := range back.GetHeaders("Via") {
					params := &v.(*sip.ViaHeader).Params
					params.Add("received", "192.0.2.9")
					params.Add("rport", "5099")
				}
				return back
			},
			wantLoop: true,
		},
		{
			name:     "loose-routed through us: first return is a spiral as the Route set changed",
			received: vtEdit(t, "Contact:", "Route: <sip:"+ltOurHost+";lr>, <sip:p2.example.org;lr>\r\nContact:"),
			trip: func(t *testing.T, r *sip.Request, h string) *sip.Request {
				return ltNextHop(ltForward(r, h, "sip:p2.example.org;lr"), "p2.example.org")
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text := tc.received
			if text == "" {
				text = vtInvite
			}
			received := vtParse(t, text)
			hash := computeLoopHash(received)
			require.False(t, isLoop(received, hash, ltIsOurs), "fresh request")
			back := ltReparse(t, tc.trip(t, received, hash))
			assert.Equal(t, tc.wantLoop, isLoop(back, computeLoopHash(back), ltIsOurs))
		})
	}
}

func TestRFC3261_16_3_4_IsLoopGuards(t *testing.T) {
	req := vtParse(t, vtInvite)
	h := computeLoopHash(req)
	back := ltForward(req, h)
	require.True(t, isLoop(back, h, ltIsOurs))
	assert.False(t, isLoop(back, h, nil), "nil isOurs")
	assert.False(t, isLoop(back, "", ltIsOurs), "empty hash")
	assert.False(t, isLoop(back, strings.ToUpper(h), ltIsOurs), "hash in upper case is not ours")
	assert.Zero(t, testing.AllocsPerRun(100, func() { isLoop(back, h, ltIsOurs) }))
}

func TestRFC3261_16_6_8_LoopHashCoverage(t *testing.T) {
	base := computeLoopHash(vtParse(t, vtInvite))
	require.Len(t, base, 16)
	require.Regexp(t, `^[0-9a-f]{16}$`, base)
	// FNV-1a 64 over a fixed layout: the value must not change between
	// builds, or a rolling restart forgets the branches in flight.
	assert.Equal(t, "401b743443f436a5", base, "loop hash layout changed")

	withRoute := func(route string) string { return vtEdit(t, "Contact:", "Route: "+route+"\r\nContact:") }
	for _, tc := range []struct {
		name    string
		text    string
		edit    func(*sip.Request)
		changes bool
	}{
		{name: "To tag", text: vtEdit(t, "To: Bob <sip:bob@biloxi.example.com>", "To: Bob <sip:bob@biloxi.example.com>;tag=x"), changes: true},
		{name: "From tag", text: vtEdit(t, "tag=1928301774", "tag=1928301775"), changes: true},
		{name: "Call-ID", text: vtEdit(t, "a84b4c76e66710@", "a84b4c76e66711@"), changes: true},
		{name: "CSeq number", text: vtEdit(t, "314159 INVITE", "314160 INVITE"), changes: true},
		{name: "R-URI user", text: vtEdit(t, "INVITE sip:bob@", "INVITE sip:carol@"), changes: true},
		{name: "R-URI port", text: vtEdit(t, "INVITE sip:bob@biloxi.example.com", "INVITE sip:bob@biloxi.example.com:5070"), changes: true},
		{name: "R-URI parameter", text: vtEdit(t, "INVITE sip:bob@biloxi.example.com", "INVITE sip:bob@biloxi.example.com;user=phone"), changes: true},
		{name: "R-URI scheme", text: vtEdit(t, "INVITE sip:", "INVITE sips:"), changes: true},
		{name: "Route added", text: withRoute("<sip:p1.example.net;lr>"), changes: true},
		{name: "Proxy-Require added", text: vtEdit(t, "Contact:", "Proxy-Require: foo\r\nContact:"), changes: true},
		{name: "Proxy-Authorization added", text: vtEdit(t, "Contact:", "Proxy-Authorization: Digest x\r\nContact:"), changes: true},
		{name: "tag moved from From to Call-ID", edit: func(r *sip.Request) {
			r.From().Params.Add("tag", "19283017")
			id := sip.CallIDHeader("74" + r.CallID().Value())
			r.ReplaceHeader(&id)
		}, changes: true},

		{name: "CSeq method (CANCEL, ACK hash as their INVITE)", text: vtEdit(t, "INVITE sip:", "CANCEL sip:", "314159 INVITE", "314159 CANCEL")},
		{name: "top Via", text: vtEdit(t, "pc33.atlanta.example.com;branch=z9hG4bK776asdhds", "p9.example.org;branch=z9hG4bKother")},
		{name: "Via added", text: vtEdit(t, "Via:", "Via: SIP/2.0/TCP p1.example.net;branch=z9hG4bK1\r\nVia:")},
		{name: "Max-Forwards", text: vtEdit(t, "Max-Forwards: 70", "Max-Forwards: 69")},
		{name: "Contact and body", text: vtEdit(t, "Contact: <sip:alice@", "Contact: <sip:alice2@", "v=0\n", "v=1\n")},
		{name: "To display name", text: vtEdit(t, "To: Bob", "To: Robert")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			text := tc.text
			if text == "" {
				text = vtInvite
			}
			req := vtParse(t, text)
			if tc.edit != nil {
				tc.edit(req)
			}
			if tc.changes {
				assert.NotEqual(t, base, computeLoopHash(req))
			} else {
				assert.Equal(t, base, computeLoopHash(req))
			}
		})
	}

	t.Run("Route order matters, interleaving with other headers does not", func(t *testing.T) {
		ab := computeLoopHash(vtParse(t, withRoute("<sip:a.example.net;lr>, <sip:b.example.net;lr>")))
		ba := computeLoopHash(vtParse(t, withRoute("<sip:b.example.net;lr>, <sip:a.example.net;lr>")))
		assert.NotEqual(t, ab, ba)
		split := computeLoopHash(vtParse(t, vtEdit(t,
			"Via:", "Route: <sip:a.example.net;lr>\r\nProxy-Require: x\r\nVia:",
			"Contact:", "Route: <sip:b.example.net;lr>\r\nContact:")))
		together := computeLoopHash(vtParse(t, vtEdit(t,
			"Contact:", "Proxy-Require: x\r\nRoute: <sip:a.example.net;lr>\r\nRoute: <sip:b.example.net;lr>\r\nContact:")))
		assert.Equal(t, together, split)
	})
}

func TestRFC3261_16_6_8_AppendLoopHash(t *testing.T) {
	req := vtParse(t, vtInvite)
	buf := make([]byte, 0, 64)
	buf = append(buf, "x="...)
	got := appendLoopHash(buf, req)
	assert.Equal(t, "x="+computeLoopHash(req), string(got))
	assert.Zero(t, testing.AllocsPerRun(100, func() { appendLoopHash(buf[:0], req) }))
}

func TestRFC3261_16_6_8_BranchLoopHash(t *testing.T) {
	const h = "0123456789abcdef"
	for _, tc := range []struct {
		branch, want string
	}{
		{"z9hG4bK-" + h + "-1.00ff", h},
		{"z9hG4bK-" + h + "-A", h},
		{"z9hG4bK-" + h + "-", ""},
		{"z9hG4bK-" + h, ""},
		{"z9hG4bK-" + h + "-a-b", ""},
		{"z9hG4bK-" + h + "-a_b", ""},
		{"z9hG4bK-0123456789ABCDEF-1", ""},
		{"z9hG4bK-0123456789abcde-12", ""},
		{"z9hG4bK-0123456789abcdeg-1", ""},
		{"z9hG4bk-" + h + "-1", ""},
		{"z9hG4bK" + h + "-1", ""},
		{"z9hG4bK776asdhds", ""},
		{sip.GenerateBranch(), ""},
		{"", ""},
	} {
		t.Run(tc.branch, func(t *testing.T) {
			assert.Equal(t, tc.want, branchLoopHash(tc.branch))
		})
	}
}

func TestRFC3261_16_6_8_NewBranch(t *testing.T) {
	h := computeLoopHash(vtParse(t, vtInvite))
	b := newBranch(h)
	assert.Regexp(t, `^z9hG4bK-[0-9a-f]{16}-[0-9a-f]+\.[0-9a-f]{16}$`, b)
	assert.Equal(t, h, branchLoopHash(b))

	const n = 100000
	seen := make(map[string]struct{}, n)
	for i := 0; i < n; i++ {
		b := newBranch(h)
		_, dup := seen[b]
		require.False(t, dup, "duplicate branch %s after %d", b, i)
		seen[b] = struct{}{}
	}

	t.Run("unique under concurrency", func(t *testing.T) {
		const workers, each = 8, 2000
		var mu sync.Mutex
		all := make(map[string]struct{}, workers*each)
		var wg sync.WaitGroup
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				local := make([]string, 0, each)
				for i := 0; i < each; i++ {
					local = append(local, newBranch(h))
				}
				mu.Lock()
				defer mu.Unlock()
				for _, b := range local {
					all[b] = struct{}{}
				}
			}()
		}
		wg.Wait()
		assert.Len(t, all, workers*each)
	})

	t.Run("counter part increases, so one process never repeats", func(t *testing.T) {
		counter := func(b string) uint64 {
			rest := b[len("z9hG4bK-")+16+1:]
			n, err := strconv.ParseUint(rest[:strings.IndexByte(rest, '.')], 16, 64)
			require.NoError(t, err)
			return n
		}
		a, b := counter(newBranch(h)), counter(newBranch(h))
		assert.Greater(t, b, a)
	})

	t.Run("random part differs, not only the counter", func(t *testing.T) {
		a, b := newBranch(h), newBranch(h)
		assert.NotEqual(t, a[strings.LastIndexByte(a, '.'):], b[strings.LastIndexByte(b, '.'):])
	})

	for _, bad := range []string{"", "xyz", "0123456789ABCDEF", "0123456789abcdef0", "0123456789abcde\n", "0123456789abc;x="} {
		t.Run("invalid loop hash "+bad, func(t *testing.T) {
			b := newBranch(bad)
			assert.Regexp(t, `^z9hG4bK-[0-9a-f]+\.[0-9a-f]{16}$`, b, "hash left out")
			assert.Equal(t, "", branchLoopHash(b))
		})
	}
}

func TestRFC3261_16_11_StatelessBranch(t *testing.T) {
	ack := vtEdit(t, "INVITE sip:", "ACK sip:", "314159 INVITE", "314159 ACK",
		"To: Bob <sip:bob@biloxi.example.com>", "To: Bob <sip:bob@biloxi.example.com>;tag=a6c85cf")
	req := vtParse(t, ack)
	h := computeLoopHash(req)
	b := statelessBranch(req, h)
	assert.Regexp(t, `^z9hG4bK-[0-9a-f]{16}-[0-9a-f]{16}$`, b)
	assert.Equal(t, h, branchLoopHash(b), "stateless branches take part in loop detection")

	retrans := vtParse(t, ack)
	assert.Equal(t, b, statelessBranch(retrans, computeLoopHash(retrans)), "retransmission")
	assert.Equal(t, b, statelessBranch(req, h), "same call twice")

	rportAdded := vtParse(t, ack)
	rportAdded.Via().Params.Add("received", "192.0.2.1")
	rportAdded.Via().Params.Add("rport", "5062")
	assert.Equal(t, b, statelessBranch(rportAdded, computeLoopHash(rportAdded)), "received/rport do not count")

	for _, tc := range []struct{ name, from, to string }{
		{"top Via branch", "z9hG4bK776asdhds", "z9hG4bK776asdhdt"},
		{"top Via host", "pc33.atlanta.example.com", "pc34.atlanta.example.com"},
		{"top Via transport", "SIP/2.0/UDP", "SIP/2.0/TCP"},
		{"CSeq number (loop hash)", "314159 ACK", "314160 ACK"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			other := vtParse(t, strings.Replace(ack, tc.from, tc.to, 1))
			assert.NotEqual(t, b, statelessBranch(other, computeLoopHash(other)))
		})
	}

	t.Run("RFC 2543 request without branch", func(t *testing.T) {
		old := strings.Replace(ack, ";branch=z9hG4bK776asdhds", "", 1)
		r1, r2 := vtParse(t, old), vtParse(t, old)
		assert.Equal(t, statelessBranch(r1, computeLoopHash(r1)), statelessBranch(r2, computeLoopHash(r2)))
		other := vtParse(t, strings.Replace(old, "314159 ACK", "314160 ACK", 1))
		assert.NotEqual(t, statelessBranch(r1, computeLoopHash(r1)), statelessBranch(other, computeLoopHash(other)))
	})

	t.Run("invalid loop hash is left out", func(t *testing.T) {
		b := statelessBranch(req, "bad\r\n")
		assert.Regexp(t, `^z9hG4bK-[0-9a-f]{16}$`, b)
		assert.Equal(t, "", branchLoopHash(b))
	})
}

func BenchmarkLoopHash(b *testing.B) {
	req := vtParse(b, vtInvite)
	buf := make([]byte, 0, 16)
	b.ReportAllocs()
	for b.Loop() {
		buf = appendLoopHash(buf[:0], req)
	}
}

func BenchmarkNewBranch(b *testing.B) {
	h := computeLoopHash(vtParse(b, vtInvite))
	b.ReportAllocs()
	for b.Loop() {
		newBranch(h)
	}
}

// newBranch is appendBranch as a string.
func newBranch(loopHash string) string {
	var buf [maxBranchLen]byte
	return string(appendBranch(buf[:0], loopHash))
}

// statelessBranch is appendStatelessBranch as a string.
func statelessBranch(req *sip.Request, loopHash string) string {
	var buf [maxBranchLen]byte
	return string(appendStatelessBranch(buf[:0], req, loopHash))
}

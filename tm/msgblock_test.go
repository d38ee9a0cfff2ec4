package tm

import (
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/emiago/sipgo/sip"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imsdlg/imsdlg/internal/poolcheck"
	"github.com/imsdlg/imsdlg/internal/siptest"
	"github.com/imsdlg/imsdlg/tm/transport"
	"github.com/imsdlg/imsdlg/tm/txn"
)

const mbResponse = "SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-1\r\n" +
	"From: <sip:a@x>;tag=1\r\nTo: <sip:b@y>;tag=2\r\nContact: <sip:b@127.0.0.1:5070;transport=udp>\r\n" +
	"Call-ID: c@h\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"

const mbAck = "ACK sip:b@127.0.0.1:5070 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-2\r\n" +
	"From: <sip:a@x>;tag=1\r\nTo: <sip:b@y>;tag=2\r\nCall-ID: c@h\r\nCSeq: 1 ACK\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"

func mbParse(t *testing.T, p *Parser, s string) sip.Message {
	t.Helper()
	m, err := p.ParseSIP([]byte(s))
	require.NoError(t, err)
	return m
}

// Issue 14: a message the fast path parsed is known as a block; nothing
// else is, however alike: a copy carries the block's tag but not its place.
func TestIssue14_OnlyTheBlockIsTakenForIt(t *testing.T) {
	p := NewParser(0)
	res := mbParse(t, p, mbResponse).(*sip.Response)
	req := mbParse(t, p, mbAck).(*sip.Request)
	require.NotNil(t, resBlockOf(res), "the fast path's response")
	require.NotNil(t, reqBlockOf(req), "the fast path's request")

	copied := *res
	creq := *req
	slow, err := sip.NewParser().ParseSIP([]byte(mbResponse))
	require.NoError(t, err)
	for name, r := range map[string]*sip.Response{
		"value copy": &copied, "Clone": res.Clone(), "sipgo's parser": slow.(*sip.Response),
		"NewResponse": sip.NewResponse(200, "OK"), "nil": nil,
	} {
		assert.Nil(t, resBlockOf(r), name)
	}
	assert.Nil(t, reqBlockOf(&creq), "request value copy")
	assert.Nil(t, reqBlockOf(req.Clone()), "request Clone")
	assert.Nil(t, reqBlockOf(nil), "nil request")
	// reqKinds tells the kinds apart by the tag's offset alone.
	assert.Len(t, map[uintptr]bool{reqTagOffset: true, cloneTagOffset: true, derivedTagOffset: true}, 3,
		"the request blocks' tags sit at distinct offsets")
	c := shallowClone(req)
	_, cb, _ := reqKinds(c)
	assert.NotNil(t, cb, "a clone is a clone")
	assert.Nil(t, reqBlockOf(c), "a clone is not the received block")
}

// Issue 14: in production a block given back is reused by a later
// message; one still referenced is not.
func TestIssue14_ReleasedBlockIsReused(t *testing.T) {
	was := poolcheck.SetPoison(false)
	defer poolcheck.SetPoison(was)
	p := NewParser(0)

	held := mbParse(t, p, mbResponse).(*sip.Response)
	retainRes(held)
	releaseRes(held) // the reader's; the retained one keeps it
	reused := false
	// sync.Pool may drop a block (always under -race, now and then): a
	// few tries find it reused unless it never is.
	for range 50 {
		r := mbParse(t, p, mbResponse).(*sip.Response)
		require.NotSame(t, held, r, "a block still referenced was reused")
		first := r
		releaseRes(r)
		again := mbParse(t, p, mbResponse).(*sip.Response)
		reused = reused || again == first
		releaseRes(again)
	}
	assert.True(t, reused, "no released block was ever reused")
	assert.Equal(t, "Ringing", held.Reason, "the held response is intact")
	releaseRes(held)
}

// Issue 14: in the tests a released block is poisoned, so that a
// header or parameter list kept past the rule reads garbage, and a
// release without a reference panics.
func TestIssue14_ReleasedBlockIsPoisoned(t *testing.T) {
	was := poolcheck.SetPoison(true)
	defer poolcheck.SetPoison(was)
	p := NewParser(0)

	res := mbParse(t, p, strings.Replace(mbResponse, "Contact:", "Record-Route: <sip:127.0.0.1;lr>\r\nContact:", 1)).(*sip.Response)
	via, contact := res.Via(), res.Contact()
	rr := res.GetHeader("Record-Route").(*sip.RecordRouteHeader)
	params := contact.Address.UriParams
	require.Equal(t, "127.0.0.1", via.Host)
	retainRes(res)
	releaseRes(res)
	assert.Equal(t, "127.0.0.1", via.Host, "one reference left")
	releaseRes(res)
	assert.True(t, strings.Contains(via.Host, "released"), "kept Via reads %q", via.Host)
	assert.True(t, strings.Contains(params[0].K, "released"), "kept URI parameters read %q", params[0].K)
	assert.True(t, strings.Contains(rr.Address.Host, "released"), "kept Record-Route reads %q", rr.Address.Host)
	assert.Panics(t, func() { releaseRes(res) }, "released twice")

	req := mbParse(t, p, mbAck).(*sip.Request)
	from := req.From()
	releaseReq(req)
	assert.True(t, strings.Contains(from.Params[0].V, "released"), "kept From tag reads %q", from.Params[0].V)
	assert.Panics(t, func() { releaseReq(req) }, "request released twice")
}

// Issue 14: a message the fast path gives up on goes to sipgo whole; the
// block it started is given back, not left referenced.
func TestIssue14_AbandonedBlockIsGivenBack(t *testing.T) {
	was := poolcheck.SetPoison(false)
	defer poolcheck.SetPoison(was)
	p := NewParser(0)
	// Content-Length says more than the datagram holds: sipgo's to refuse.
	bad := strings.Replace(mbResponse, "Content-Length: 0", "Content-Length: 9", 1)
	reused := false
	for range 50 {
		if _, err := p.ParseSIP([]byte(bad)); err == nil {
			t.Fatal("sipgo took a short body")
		}
		r := mbParse(t, p, mbResponse).(*sip.Response)
		b := resBlockOf(r)
		require.NotNil(t, b)
		assert.EqualValues(t, 1, b.ref.refs.Load(), "a fresh block holds the reader's reference only")
		releaseRes(r)
		_, _ = p.ParseSIP([]byte(bad))
		again := mbParse(t, p, mbResponse).(*sip.Response)
		reused = reused || again == r
		releaseRes(again)
	}
	assert.True(t, reused, "the block of a message left to sipgo was never reused")
}

// Issue 14 with reuse on, over real sockets: the final a branch gave
// first is kept by the response context while the other branch's replies
// (and other calls') are parsed into reused blocks; when the last branch
// fails, the kept one goes upstream intact, on the right call. Without
// the response context's reference the block was reused and the caller
// got another message's status line, Call-ID or tag.
func TestIssue14_KeptFinalSurvivesBlockReuse(t *testing.T) {
	was := poolcheck.SetPoison(false)
	defer poolcheck.SetPoison(was)
	uac, a, b := siptest.NewUA(t), siptest.NewUA(t), siptest.NewUA(t)
	p := startProxy(t, testCfg(), toUAs(a, b))

	const calls = 30
	for range calls {
		uac.Send(p.udp, uac.Invite("sip:bob@"+p.udp))
	}
	atA, atB := map[string]*sip.Request{}, map[string]*sip.Request{}
	for range calls {
		r := a.Request(sip.INVITE)
		atA[callID(r)] = r
		r = b.Request(sip.INVITE)
		atB[callID(r)] = r
	}
	require.Len(t, atA, calls)
	for id, r := range atA {
		a.Reply(r, 486, "a-"+id, "X-Call: "+id)
	}
	for range calls {
		a.Request(sip.ACK) // the proxy has each 486 (and keeps it)
	}
	for id, r := range atB {
		b.Reply(r, 180, "b-"+id) // relayed in blocks the 486s would be reused for
	}
	for id, r := range atB {
		b.Reply(r, 503, "b-"+id)
	}
	for range calls {
		res := uac.Final()
		id := callID(res)
		require.Contains(t, atA, id, "a final of one of the calls")
		assert.Equal(t, 486, res.StatusCode, "call %s", id)
		assert.Equal(t, "a-"+id, Tag(res.To().Params), "call %s: the kept 486's To tag", id)
		if h := res.GetHeader("X-Call"); assert.NotNil(t, h, "call %s", id) {
			assert.Equal(t, id, h.Value())
		}
	}
}

// Issue 14: an ACK relayed statelessly gives its block back once its
// handler returns (here poisoned, as in every test): a router that kept
// it past Route reads garbage.
func TestIssue14_RelayedACKGivesItsBlockBack(t *testing.T) {
	was := poolcheck.SetPoison(true)
	defer poolcheck.SetPoison(was)
	uac, uas := siptest.NewUA(t), siptest.NewUA(t)
	kept := make(chan *Request, 1)
	route := toUAs(uas)
	// One reader for the socket: the second ACK is read once the first
	// one's handler returned (with two, it may come first).
	p := startProxy(t, testCfg(), RouterFunc(func(r *Request) Decision {
		if r.Method == sip.ACK {
			kept <- r
		}
		return route(r)
	}), func(o *Options) { o.Transport = transport.Options{UDPReaders: 1} })

	inv := uac.Invite("sip:bob@" + p.udp)
	uac.Send(p.udp, inv)
	uas.Reply(uas.Request(sip.INVITE), 200, "b")
	ok := uac.Response(200)
	uac.Send(p.udp, uac.AckFor(inv, ok))
	got := uas.Request(sip.ACK)
	assert.Equal(t, callID(inv), callID(got), "relayed intact")
	next := func() *Request {
		select {
		case r := <-kept:
			return r
		case <-time.After(waitFor):
			t.Fatal("the router saw no ACK")
			return nil
		}
	}
	first := next()
	from := first.From()
	// The same ACK again, on the same socket's one reader: once the
	// router has it, the first one's handler has returned (and the
	// channel orders that for the race detector).
	uac.Send(p.udp, uac.AckFor(inv, ok))
	next()
	assert.Contains(t, from.Address.Host, "released", "the first ACK's block was given back")
	assert.Contains(t, first.Source, "released", "with the router's Request, in the block")
}

// Issue 14: a request with a transaction other than an INVITE (here an
// OPTIONS) gives its block back only when the transaction is done, long
// after the reader's handler returned: the observers read it
// (t.Original()) as the outcome is told, after the branch's client
// transaction let go of it, and the 408 tm makes at fr_timeout is built
// from it. Without the transaction's reference (or the client
// transaction's) they read a poisoned block.
func TestIssue14_RequestBlockLivesWithItsTransaction(t *testing.T) {
	for _, tc := range []struct {
		name string
		code int // the callee's final; 0: none, the proxy's 408
	}{{"answered", 486}, {"timed out", 0}} {
		t.Run(tc.name, func(t *testing.T) {
			was := poolcheck.SetPoison(true)
			defer poolcheck.SetPoison(was)
			uac, uas := siptest.NewUA(t), siptest.NewUA(t)
			seen := make(chan string, 1)
			obs := ObserverFuncs{Outcome: func(tx *Transaction, o Outcome) {
				if r := tx.Original(); r != nil {
					seen <- Tag(r.From().Params) + " " + callID(r)
				}
			}}
			p := startProxy(t, testCfg(), toUAs(uas), withModules(Module{Name: "obs", Observer: obs}))

			req := uac.NewRequest("OPTIONS", "sip:bob@"+p.udp, 1)
			uac.Send(p.udp, req)
			got := uas.Request(sip.OPTIONS)
			want := 408
			if tc.code != 0 {
				uas.Reply(got, tc.code, "b")
				want = tc.code
			} else {
				p.clock.Advance(p.cfg.FrTimeout)
			}
			res := uac.Final()
			assert.Equal(t, want, res.StatusCode)
			assert.Equal(t, callID(req), callID(res), "the final's Call-ID")
			assert.Equal(t, Tag(req.From().Params), Tag(res.From().Params), "the final's From tag")
			assert.Equal(t, req.CSeq().Value(), res.CSeq().Value(), "the final's CSeq")
			select {
			case o := <-seen:
				assert.Equal(t, Tag(req.From().Params)+" "+callID(req), o, "the observer's t.Original()")
			case <-time.After(waitFor):
				t.Fatal("no outcome")
			}
		})
	}
}

// Issue 14: a shallow clone counts its own holders and holds one
// reference on the block whose headers it shares: the block outlives
// every clone, and a clone of a pooled request is given back (poisoned in
// the tests) when its last holder lets go, while a clone of a CANCEL,
// read uncounted as the CANCEL is, never is.
func TestIssue14_CloneCountsOnItselfAndItsBlock(t *testing.T) {
	was := poolcheck.SetPoison(true)
	defer poolcheck.SetPoison(was)
	p := NewParser(0)

	req := mbParse(t, p, mbAck).(*sip.Request)
	base := reqBlockOf(req)
	a, inner := shallowClone(req), shallowClone(req)
	b := shallowClone(inner)
	assert.Same(t, base, reqHead(b), "a clone of a clone counts on the received block")
	assert.EqualValues(t, 4, base.ref.refs.Load(), "the reader's and one per clone (three made)")
	releaseReq(req) // the reader's
	releaseReq(inner)
	assert.Equal(t, "b", b.Recipient.User, "a clone does not read its source's block")
	retainReq(a) // a second holder of a
	releaseReq(a)
	assert.Equal(t, "127.0.0.1", a.Recipient.Host, "a still held once")
	releaseReq(a)
	assert.True(t, strings.Contains(a.Recipient.Host, "released"), "a released reads %q", a.Recipient.Host)
	assert.Equal(t, "1", Tag(b.From().Params), "the block stays while b holds it")
	releaseReq(b)
	assert.True(t, strings.Contains(b.From().Params[0].V, "released"), "the block given back with its last clone")
	assert.Panics(t, func() { releaseReq(a) }, "a clone released twice")

	cancel := mbParse(t, p, strings.ReplaceAll(mbAck, "ACK", "CANCEL")).(*sip.Request)
	require.Equal(t, sip.CANCEL, cancel.Method)
	c := shallowClone(cancel)
	releaseReq(c)
	assert.Equal(t, "127.0.0.1", c.Recipient.Host, "a CANCEL's clone is left to the collector, unpoisoned")

	// A CANCEL or an ACK built from a branch holds the branch's request.
	inv := mbParse(t, p, strings.ReplaceAll(mbAck, "ACK", "INVITE")).(*sip.Request)
	br := shallowClone(inv)
	releaseReq(inv)
	d := newDerived(sip.CANCEL, br)
	d.req.AppendHeader(br.From())
	der := d.end()
	releaseReq(br) // the branch's holder let go: the CANCEL still holds it
	assert.Equal(t, "1", Tag(der.From().Params), "the CANCEL's From while it is held")
	assert.Equal(t, "127.0.0.1", der.Recipient.Host)
	retainReq(der)
	releaseReq(der)
	assert.Equal(t, "1", Tag(der.From().Params), "held once more")
	releaseReq(der)
	assert.True(t, strings.Contains(der.From().Params[0].V, "released"), "given back with the CANCEL: reads %q", der.From().Params[0].V)
	assert.True(t, strings.Contains(der.Recipient.Host, "released"), "the CANCEL given back itself: reads %q", der.Recipient.Host)
	assert.Panics(t, func() { releaseReq(der) }, "a CANCEL released twice")
}

// keepBranches keeps every branch's request past the hook.
type keepBranches struct{ got chan *sip.Request }

func (k keepBranches) OnBranch(_ *Transaction, b *Branch) bool {
	k.got <- b.Request
	return true
}

// Issue 14, over real sockets: the template and a branch's request of a
// transaction are given back once it is done (a router or a branch hook
// that keeps them past that reads poison), not before.
func TestIssue14_ClonesGoBackWithTheirTransaction(t *testing.T) {
	for _, method := range []string{"OPTIONS", "INVITE"} {
		t.Run(method, func(t *testing.T) {
			was := poolcheck.SetPoison(true)
			defer poolcheck.SetPoison(was)
			uac, uas := siptest.NewUA(t), siptest.NewUA(t)
			type kept struct {
				tx   *Transaction
				tmpl *sip.Request
				rq   *Request
			}
			routed := make(chan kept, 1)
			route := toUAs(uas)
			router := RouterFunc(func(r *Request) Decision {
				routed <- kept{r.Tx, r.Request, r}
				d := route(r)
				d.RecordRoute = r.Method == sip.INVITE
				return d
			})
			hook := keepBranches{got: make(chan *sip.Request, 1)}
			p := startProxy(t, testCfg(), router, withModules(Module{Name: "keep", Branch: hook}))

			uac.Send(p.udp, uac.NewRequest(method, "sip:bob@"+p.udp, 1))
			got := uas.Request(sip.RequestMethod(method))
			k := <-routed
			br := <-hook.got
			// Under the lock compact gives them back under (the race
			// detector does not see the sockets order these reads).
			k.tx.mu.Lock()
			user, buser, btag := k.tmpl.Recipient.User, br.Recipient.User, Tag(br.From().Params)
			via := br.Via() // ours, in the branch's block
			vhost := via.Host
			rr, _ := br.GetHeader("Record-Route").(*sip.RecordRouteHeader) // ours, as the Via
			rc, io := k.tx.rc, &k.tx.br[0]                                 // pooled with the transaction's end
			fr := rc.frTimeout
			rhost := ""
			if rr != nil {
				rhost = rr.Address.Host
			}
			k.tx.mu.Unlock()
			require.Equal(t, "127.0.0.1", vhost)
			if method == "INVITE" {
				require.Equal(t, "127.0.0.1", rhost)
			}
			require.Equal(t, p.cfg.FrTimeout, fr)
			require.Equal(t, "bob", user, "the template while the transaction runs")
			require.Equal(t, "bob", buser, "the branch while the transaction runs")
			require.Equal(t, Tag(got.From().Params), btag)

			uas.Reply(got, 486, "b")
			assert.Equal(t, 486, uac.Final().StatusCode)
			siptest.Eventually(t, func() bool { return k.tx.Original() == nil }, "the transaction compacted")
			k.tx.mu.Lock() // compact gives them back under it
			k.tx.mu.Unlock()
			assert.True(t, strings.Contains(via.Host, "released"), "the branch's Via, in its block, reads %q", via.Host)
			if rr != nil {
				assert.True(t, strings.Contains(rr.Address.Host, "released"), "the branch's Record-Route, in its block, reads %q", rr.Address.Host)
			}
			// The response context and the branch list go back too.
			assert.Equal(t, time.Duration(-7), rc.frTimeout, "the response context, poisoned")
			assert.Equal(t, -7, io.code, "the branch list, poisoned")
			assert.Equal(t, callID(got), k.tx.callID(), "the logs' Call-ID, the transaction's own copy (a long one)")
			assert.True(t, strings.Contains(k.rq.Source, "released"), "the router's Request, in the template's block, reads %q", k.rq.Source)
			for name, r := range map[string]*sip.Request{"template": k.tmpl, "branch": br} {
				assert.True(t, strings.Contains(r.Recipient.User, "released"),
					"%s's Request-URI user reads %q", name, r.Recipient.User)
			}
		})
	}
}

// Issue 14: a router that defers reads the request until it decides,
// even when the caller's CANCEL ended the transaction meanwhile (the
// dialog module's limits wait on Redis): the router's reference keeps the
// INVITE's memory until Decide, and only that long. A goroutine outside
// the transaction reads the request through WithOriginal.
func TestIssue14_DeferredRouterHoldsTheInviteUntilItDecides(t *testing.T) {
	was := poolcheck.SetPoison(true)
	defer poolcheck.SetPoison(was)
	uac := siptest.NewUA(t)
	type kept struct {
		tx   *Transaction
		tmpl *sip.Request
	}
	routed := make(chan kept, 1)
	p := startProxy(t, testCfg(), RouterFunc(func(r *Request) Decision {
		routed <- kept{r.Tx, r.Request}
		return Decision{Kind: Defer}
	}))

	inv := uac.Invite("sip:bob@" + p.udp)
	short := sip.CallIDHeader("short@test") // in the transaction's room
	inv.ReplaceHeader(&short)
	uac.Send(p.udp, inv)
	var k kept
	select {
	case k = <-routed:
	case <-time.After(waitFor):
		t.Fatal("not routed")
	}
	var from string
	require.True(t, k.tx.WithOriginal(func(r *sip.Request) { from = Tag(r.From().Params) }), "held while pending")
	assert.Equal(t, Tag(inv.From().Params), from)

	uac.Send(p.udp, uac.CancelFor(inv))
	assert.Equal(t, sip.INVITE, uac.Response(487).CSeq().MethodName, "the INVITE ended by its CANCEL")
	siptest.Eventually(t, func() bool { return k.tx.Original() == nil }, "the transaction compacted")
	k.tx.mu.Lock() // compact gives its references back under it
	k.tx.mu.Unlock()
	assert.False(t, k.tx.WithOriginal(func(*sip.Request) { t.Error("called once done") }), "done")
	assert.Equal(t, "short@test", k.tx.callID(), "the logs' Call-ID once the INVITE is given back")
	assert.Equal(t, "bob", k.tmpl.Recipient.User, "the deferred router still reads the INVITE")
	assert.Equal(t, Tag(inv.From().Params), Tag(k.tmpl.From().Params))

	k.tx.Decide(RelayTo())
	assert.True(t, strings.Contains(k.tmpl.Recipient.User, "released"), "given back once decided: reads %q", k.tmpl.Recipient.User)
	k.tx.Decide(RelayTo()) // a second decision releases nothing (a double release panics)
}

// Issue 14: the per-call objects stay in their size classes (a field
// more crossed one and cost 64 bytes per object; the pooled ones are what
// the pools hold and what is cleared per use).
func TestIssue14_SizeClasses(t *testing.T) {
	for _, c := range []struct {
		name     string
		size, at uintptr
	}{
		{"Transaction", unsafe.Sizeof(Transaction{}), 512},
		{"srvTx", unsafe.Sizeof(srvTx{}), 480},
		{"cliTx", unsafe.Sizeof(cliTx{}), 512},
		{"cloneBlock", unsafe.Sizeof(cloneBlock{}), 1536},
		{"derived", unsafe.Sizeof(derived{}), 768},
	} {
		assert.LessOrEqual(t, c.size, c.at, c.name)
	}
	// The key of a client transaction of ours fits the cliTx's room (no
	// allocation of its own), for the longest branch and any method of
	// RFC 3261 and its usual extensions.
	for _, m := range []string{"INVITE", "REGISTER", "SUBSCRIBE", "PUBLISH", "MESSAGE", "OPTIONS", "UPDATE"} {
		k := txn.AppendClientKey(nil, "z9hG4bK"+strings.Repeat("f", maxBranchLen-7), m)
		assert.LessOrEqual(t, len(k), cliKeyRoom, "client key of %s", m)
	}
}

// Issue 14 (Config.ReuseMessageText): the header text of a message is in
// its block's pooled buffer and goes back with the block's last
// reference; a string kept past that reads poison in a test binary. Off
// (the default, embedders' ownership rule), the strings stay valid.
func TestIssue14_ReleasedTextIsPoisoned(t *testing.T) {
	was := poolcheck.SetPoison(true)
	defer poolcheck.SetPoison(was)
	for _, reuse := range []bool{true, false} {
		p := NewParser(0)
		p.reuseText = reuse
		res := mbParse(t, p, mbResponse).(*sip.Response)
		cid, reason, method := callID(res), res.Reason, res.CSeq().MethodName
		req := mbParse(t, p, mbAck).(*sip.Request)
		branch := req.Via().Params[0].V
		retainRes(res)
		releaseRes(res)
		require.Equal(t, "c@h", cid, "one reference left")
		releaseRes(res)
		releaseReq(req)
		assert.Equal(t, sip.INVITE, method, "a method is sipgo's constant, never the text")
		if reuse {
			for what, s := range map[string]string{"Call-ID": cid, "Reason": reason, "Via branch": branch} {
				assert.True(t, readsPoison(s), "the kept %s, in the released text, reads %q", what, s)
			}
		} else {
			assert.Equal(t, "c@h", cid, "strings may be kept: the text is the message's own")
			assert.Equal(t, "Ringing", reason)
			assert.Equal(t, "z9hG4bK-2", branch)
		}
	}
}

// Issue 14 (Config.ReuseMessageText): a released block's text buffer is
// taken by a later message, so that parsing allocates nothing once the
// pools are warm: the header text was a string per message, 2 KB per
// record-routed call.
func TestIssue14_ReusedTextGoesBackWithItsBlock(t *testing.T) {
	was := poolcheck.SetPoison(false)
	defer poolcheck.SetPoison(was)
	p := NewParser(0)
	p.reuseText = true
	reused := false
	for range 50 { // -race makes sync.Pool drop a quarter of what it is given
		first := mbParse(t, p, mbResponse).(*sip.Response)
		buf := resBlockOf(first).hdrs.text
		require.NotNil(t, buf)
		releaseRes(first)
		r := mbParse(t, p, mbResponse).(*sip.Response)
		reused = reused || resBlockOf(r).hdrs.text == buf
		releaseRes(r)
	}
	assert.True(t, reused, "the text buffer taken again")

	data := []byte(mbResponse)
	n := testing.AllocsPerRun(100, func() { releaseRes(p.fast(data).(*sip.Response)) })
	assert.Less(t, n, 1.0, "allocations per parse and release: the text's string was one")
}

// readsPoison tells whether s is made of poisonedText's bytes only.
func readsPoison(s string) bool {
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(poisonedText, s[i]) < 0 {
			return false
		}
	}
	return s != ""
}

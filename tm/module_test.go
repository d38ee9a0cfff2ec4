package tm

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imsdlg/imsdlg/internal/siptest"
)

// recorder is an observer that keeps what it was told, in order.
type recorder struct {
	mu       sync.Mutex
	replies  []int
	outcomes []Outcome
	done     int
	doneCh   chan struct{}
}

func newRecorder() *recorder { return &recorder{doneCh: make(chan struct{}, 16)} }

func (r *recorder) OnReply(t *Transaction, branch int, res *sip.Response) {
	r.mu.Lock()
	r.replies = append(r.replies, res.StatusCode)
	r.mu.Unlock()
}

func (r *recorder) OnOutcome(t *Transaction, o Outcome) {
	if o.Response != nil {
		o.Response = keepRes(o.Response) // kept past the call (msgblock.go's rule)
	}
	o.Reason = strings.Clone(o.Reason) // the response's text, as the rest

	r.mu.Lock()
	r.outcomes = append(r.outcomes, o)
	r.mu.Unlock()
}

func (r *recorder) OnDone(t *Transaction) {
	r.mu.Lock()
	r.done++
	r.mu.Unlock()
	r.doneCh <- struct{}{}
}

// wait waits for the transaction's OnDone and returns its one outcome.
func (r *recorder) wait(t *testing.T) Outcome {
	t.Helper()
	select {
	case <-r.doneCh:
	case <-time.After(waitFor):
		t.Fatal("no OnDone")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	require.Len(t, r.outcomes, 1, "one outcome per transaction")
	assert.Equal(t, 1, r.done)
	return r.outcomes[0]
}

// Issue 10 §2: modules are a declared chain: the first module's
// middleware is the outermost, each sees the decision of the ones after it.
func TestIssue10_MiddlewareChainOrder(t *testing.T) {
	uac, uas := siptest.NewUA(t), siptest.NewUA(t)
	var mu sync.Mutex
	var trace []string
	mw := func(name string) Middleware {
		return func(next Router) Router {
			return RouterFunc(func(r *Request) Decision {
				mu.Lock()
				trace = append(trace, name+">")
				mu.Unlock()
				d := next.Route(r)
				d.RecordRouteParams = append(d.RecordRouteParams, sip.HeaderKV{K: name})
				mu.Lock()
				trace = append(trace, "<"+name)
				mu.Unlock()
				return d
			})
		}
	}
	p := startProxy(t, testCfg(), toUAs(uas), withModules(Module{Name: "a", Middleware: mw("a")}, Module{Name: "b", Middleware: mw("b")}))
	uac.Send(p.udp, uac.Invite("sip:bob@"+p.udp))
	got := uas.Request(sip.INVITE)
	mu.Lock()
	assert.Equal(t, []string{"a>", "b>", "<b", "<a"}, trace)
	mu.Unlock()
	rr := got.RecordRoute()
	require.NotNil(t, rr)
	assert.True(t, rr.Address.UriParams.Has("a") && rr.Address.UriParams.Has("b"), "both middlewares' parameters: %s", rr.Value())
	uas.Reply(got, 486, "x")
	uac.Final()
	_, err := New(Options{Config: testCfg(), Router: toUAs(uas), Modules: []Module{{Name: "bad", Middleware: func(Router) Router { return nil }}}})
	assert.ErrorContains(t, err, `module "bad"`)
}

// Issue 10 §2: an observer is told once how a transaction ended, without
// inference: answered by branch N, failed (relayed or made by tm),
// cancelled upstream, replied locally; and when it is done.
func TestIssue10_ObserverOutcomes(t *testing.T) {
	type tcase struct {
		name string
		run  func(t *testing.T, p *testProxy, uac *siptest.UA, a, b *siptest.UA)
		want Outcome
		// eitherBranch: two equal finals from different sockets; the first
		// one tm handles is the best, and two readers may take either first.
		eitherBranch bool
	}
	cases := []tcase{
		{"answered by the second branch", func(t *testing.T, p *testProxy, uac, a, b *siptest.UA) {
			inv := uac.Invite("sip:bob@" + p.udp)
			uac.Send(p.udp, inv)
			ia, ib := a.Request(sip.INVITE), b.Request(sip.INVITE)
			a.Reply(ia, 180, "a")
			b.Reply(ib, 200, "b")
			r200 := uac.Response(200)
			a.Reply(a.Request(sip.CANCEL), 200, "")
			a.Reply(ia, 487, "a")
			uac.Send(p.udp, uac.AckFor(inv, r200))
		}, Outcome{Kind: Answered, Code: 200, Branch: 1}, false},
		{"failed: the best of the branches", func(t *testing.T, p *testProxy, uac, a, b *siptest.UA) {
			uac.Send(p.udp, uac.Invite("sip:bob@"+p.udp))
			ia, ib := a.Request(sip.INVITE), b.Request(sip.INVITE)
			a.Reply(ia, 486, "a")
			b.Reply(ib, 404, "b")
			assert.Equal(t, 404, uac.Final().StatusCode)
		}, Outcome{Kind: Failed, Code: 404, Branch: 1}, false},
		{"failed: made by tm (503 from a branch is 500)", func(t *testing.T, p *testProxy, uac, a, b *siptest.UA) {
			uac.Send(p.udp, uac.Invite("sip:bob@"+p.udp))
			a.Reply(a.Request(sip.INVITE), 503, "a")
			b.Reply(b.Request(sip.INVITE), 503, "b")
			assert.Equal(t, 500, uac.Final().StatusCode)
		}, Outcome{Kind: Failed, Code: 500, Branch: -1, Local: true}, false},
		{"cancelled upstream", func(t *testing.T, p *testProxy, uac, a, b *siptest.UA) {
			inv := uac.Invite("sip:bob@" + p.udp)
			uac.Send(p.udp, inv)
			ia, ib := a.Request(sip.INVITE), b.Request(sip.INVITE)
			a.Reply(ia, 180, "a")
			b.Reply(ib, 180, "b")
			uac.Send(p.udp, uac.CancelFor(inv))
			a.Reply(a.Request(sip.CANCEL), 200, "")
			b.Reply(b.Request(sip.CANCEL), 200, "")
			a.Reply(ia, 487, "a")
			b.Reply(ib, 487, "b")
			uac.Response(487)
		}, Outcome{Kind: Cancelled, Code: 487, Branch: 0, AfterCancel: true}, true},
		// RFC 5407's 200 OK vs CANCEL: the callee answered before the
		// CANCEL reached it; the 2xx goes up (§16.10) and says so.
		{"answered across the caller's CANCEL", func(t *testing.T, p *testProxy, uac, a, b *siptest.UA) {
			inv := uac.Invite("sip:bob@" + p.udp)
			uac.Send(p.udp, inv)
			ia, ib := a.Request(sip.INVITE), b.Request(sip.INVITE)
			a.Reply(ia, 180, "a")
			b.Reply(ib, 180, "b")
			uac.Response(180)
			uac.Response(180)
			uac.Send(p.udp, uac.CancelFor(inv))
			uac.Response(200) // the CANCEL's
			ca, cb := a.Request(sip.CANCEL), b.Request(sip.CANCEL)
			a.Reply(ia, 200, "a") // sent before the CANCEL came
			a.Reply(ca, 200, "")
			b.Reply(cb, 200, "")
			b.Reply(ib, 487, "b")
			uac.Send(p.udp, uac.AckFor(inv, uac.Final()))
		}, Outcome{Kind: Answered, Code: 200, Branch: 0, AfterCancel: true}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			uac, a, b := siptest.NewUA(t), siptest.NewUA(t), siptest.NewUA(t)
			rec := newRecorder()
			p := startProxy(t, testCfg(), toUAs(a, b), withModules(Module{Name: "rec", Observer: rec}))
			tc.run(t, p, uac, a, b)
			o := rec.wait(t)
			assert.Equal(t, tc.want.Kind, o.Kind, "kind %s", o.Kind)
			assert.Equal(t, tc.want.Code, o.Code)
			if tc.eitherBranch {
				assert.Contains(t, []int{0, 1}, o.Branch)
			} else {
				assert.Equal(t, tc.want.Branch, o.Branch)
			}
			assert.Equal(t, tc.want.Local, o.Local)
			assert.Equal(t, tc.want.AfterCancel, o.AfterCancel, "after the caller's CANCEL")
			require.NotNil(t, o.Response)
			assert.Equal(t, tc.want.Code, o.Response.StatusCode)
		})
	}
	t.Run("replied locally", func(t *testing.T) {
		uac := siptest.NewUA(t)
		rec := newRecorder()
		p := startProxy(t, testCfg(), RouterFunc(func(*Request) Decision { return Reply(403, "Forbidden") }),
			withModules(Module{Name: "rec", Observer: rec}))
		uac.Send(p.udp, uac.Invite("sip:bob@"+p.udp))
		assert.Equal(t, 403, uac.Final().StatusCode)
		o := rec.wait(t)
		assert.Equal(t, Outcome{Kind: Replied, Code: 403, Reason: "Forbidden", Branch: -1, Local: true, Response: o.Response}, o)
		rec.mu.Lock()
		assert.Empty(t, rec.replies, "no branch, no reply")
		rec.mu.Unlock()
	})
	t.Run("every reply", func(t *testing.T) {
		uac, a := siptest.NewUA(t), siptest.NewUA(t)
		rec := newRecorder()
		p := startProxy(t, testCfg(), toUAs(a), withModules(Module{Name: "rec", Observer: rec}))
		uac.Send(p.udp, uac.Invite("sip:bob@"+p.udp))
		ia := a.Request(sip.INVITE)
		a.Reply(ia, 100, "")
		// Several readers take datagrams off the socket: a reply is
		// observed once handled, not once sent; let each one in turn.
		siptest.Eventually(t, func() bool {
			rec.mu.Lock()
			defer rec.mu.Unlock()
			return len(rec.replies) == 1
		}, "the 100 observed")
		a.Reply(ia, 183, "a")
		uac.Response(183) // keep the final last
		a.Reply(ia, 480, "a")
		uac.Final()
		rec.wait(t)
		rec.mu.Lock()
		assert.Equal(t, []int{100, 183, 480}, rec.replies)
		rec.mu.Unlock()
	})
}

// Issue 10 §3: a router that waits on the network answers Defer and
// decides later; the INVITE waits meanwhile, and a caller's CANCEL still
// ends it (the late decision is then ignored).
func TestIssue10_DeferredDecision(t *testing.T) {
	t.Run("decided later", func(t *testing.T) {
		uac, uas := siptest.NewUA(t), siptest.NewUA(t)
		txs := make(chan *Transaction, 1)
		route := toUAs(uas)
		p := startProxy(t, testCfg(), RouterFunc(func(r *Request) Decision {
			if r.Tx != nil && r.Initial {
				txs <- r.Tx
				return Decision{Kind: Defer}
			}
			return route(r)
		}))
		uac.Send(p.udp, uac.Invite("sip:bob@"+p.udp))
		tx := <-txs
		uas.Quiet(30*time.Millisecond, "INVITE before the decision", isReq(sip.INVITE))
		tx.Decide(route(&Request{Request: tx.Request(), Initial: true}))
		tx.Decide(Reply(500, "twice")) // only the first decision counts
		uas.Reply(uas.Request(sip.INVITE), 486, "x")
		assert.Equal(t, 486, uac.Final().StatusCode)
		waitInuse(t, p, 0)
	})
	t.Run("cancelled while deciding", func(t *testing.T) {
		uac, uas := siptest.NewUA(t), siptest.NewUA(t)
		txs := make(chan *Transaction, 1)
		rec := newRecorder()
		p := startProxy(t, testCfg(), RouterFunc(func(r *Request) Decision {
			txs <- r.Tx
			return Decision{Kind: Defer}
		}), withModules(Module{Name: "rec", Observer: rec}))
		inv := uac.Invite("sip:bob@" + p.udp)
		uac.Send(p.udp, inv)
		tx := <-txs
		uac.Send(p.udp, uac.CancelFor(inv))
		assert.Equal(t, Cancelled, rec.wait(t).Kind)
		tx.Decide(toUAs(uas)(&Request{Request: tx.Request(), Initial: true}))
		uas.Quiet(30*time.Millisecond, "INVITE of a cancelled call", isReq(sip.INVITE))
		waitInuse(t, p, 0)
	})
}

// RFC 3326 with RFC 3261 §25.1: the Reason text is a quoted-string, with
// '"' and '\' escaped and control characters left out.
func TestRFC3326_ReasonValue(t *testing.T) {
	for _, tc := range []struct {
		cause int
		text  string
		want  string
	}{
		{487, "", `SIP ;cause=487`},
		{200, "Call completed elsewhere", `SIP ;cause=200 ;text="Call completed elsewhere"`},
		{486, `say "no"`, `SIP ;cause=486 ;text="say \"no\""`},
		{500, `a\b`, `SIP ;cause=500 ;text="a\\b"`},
		{480, "two\r\nlines", `SIP ;cause=480 ;text="twolines"`},
		{603, "déclin", `SIP ;cause=603 ;text="déclin"`},
	} {
		assert.Equal(t, tc.want, ReasonValue("SIP", tc.cause, tc.text), fmt.Sprintf("%d %q", tc.cause, tc.text))
	}
	h := reasonHeader("Q.850", 16, "Normal")
	assert.Equal(t, "Reason", h.Name())
	assert.Equal(t, `Q.850 ;cause=16 ;text="Normal"`, h.Value())
}

// RFC 3261 §7.3.1 / RFC 4475 §3.1.1.1: parameter names are case-insensitive
// and may have spaces around them; Tag is the project's one tag reader.
func TestRFC3261_7_3_1_ParamNamesIgnoreCase(t *testing.T) {
	p := sip.HeaderParams{{K: "TAG", V: "98asjd8"}, {K: " branch ", V: " z9hG4bK1 "}}
	assert.Equal(t, "98asjd8", Tag(p))
	v, ok := Param(p, "Branch")
	assert.True(t, ok)
	assert.Equal(t, "z9hG4bK1", v)
	assert.Empty(t, Tag(sip.HeaderParams{{K: "tagx", V: "1"}}))
}

// The one "is this ours" helper: default ports by scheme and transport,
// IPv6 brackets, advertised names.
func TestIssue10_IsOurURIAndVia(t *testing.T) {
	p, err := New(Options{Config: testCfg(), Router: toUAs(), Clock: siptest.NewClock()})
	require.NoError(t, err)
	defer p.Close()
	// Advertised as sip.example.net:5060 and [::1]:5061, whatever ports
	// the sockets have.
	_, err = p.Listen("udp", "127.0.0.1:0", "sip.example.net:5060")
	require.NoError(t, err)
	_, err = p.Listen("udp", "[::1]:0", "[::1]:5061")
	require.NoError(t, err)
	for _, tc := range []struct {
		uri  string
		want bool
	}{
		{"sip:sip.example.net", true},
		{"sip:SIP.Example.NET:5060;lr", true},
		{"sip:sip.example.net;transport=tls", false}, // TLS defaults to 5061
		{"sips:[::1]", true},
		{"sip:[::1]:5061;lr", true},
		{"sip:[::1]", false},
		{"sip:127.0.0.1", true}, // the socket's own address, at the advertised port
		{"sip:other.example.net", false},
	} {
		var u sip.Uri
		require.NoError(t, sip.ParseUri(tc.uri, &u))
		assert.Equal(t, tc.want, p.IsOurURI(&u), tc.uri)
	}
	assert.True(t, p.IsOurVia(&sip.ViaHeader{Host: "sip.example.net", Transport: "UDP"}))
	assert.True(t, p.IsOurVia(&sip.ViaHeader{Host: "[::1]", Transport: "TLS"}))
	assert.False(t, p.IsOurVia(&sip.ViaHeader{Host: "::1", Transport: "UDP"}))
	assert.False(t, p.IsOurURI(nil))
	assert.False(t, p.IsOurVia(nil))
}

// Issue 15 §9 and §14: operator-given header lines cannot smuggle anything
// into a message: no control byte anywhere, a token for a name, and none
// of the headers the proxy owns.
func TestIssue15_CheckHeaderLine(t *testing.T) {
	for _, tc := range []struct {
		line, name, value, err string
	}{
		{line: "X-Charging: stop", name: "X-Charging", value: "stop"},
		{line: "  Subject :  hello  ", name: "Subject", value: "hello"},
		{line: "Reason: SIP ;cause=200", name: "Reason", value: "SIP ;cause=200"},
		{line: "X-A: b\r\nVia: SIP/2.0/UDP evil", err: "control byte 0x0d"},
		{line: "X-A: b\x00c", err: "control byte 0x00"},
		{line: "X-A: b\nc", err: "control byte 0x0a"},
		{line: "no colon", err: `want "Name: value"`},
		{line: ": value", err: `want "Name: value"`},
		{line: "X A: b", err: "is not a token"},
		{line: "Via: SIP/2.0/UDP 10.0.0.1", err: "set by the proxy"},
		{line: "call-id: x", err: "set by the proxy"},
		{line: "i: x", err: "set by the proxy"},
		{line: "CSeq: 9 BYE", err: "set by the proxy"},
		{line: "To: <sip:x@y>;tag=1", err: "set by the proxy"},
		{line: "f: <sip:x@y>;tag=1", err: "set by the proxy"},
		{line: "Content-Length: 99", err: "set by the proxy"},
	} {
		name, value, err := CheckHeaderLine(tc.line)
		if tc.err != "" {
			assert.ErrorContains(t, err, tc.err, "%q", tc.line)
			continue
		}
		require.NoError(t, err, "%q", tc.line)
		assert.Equal(t, tc.name, name)
		assert.Equal(t, tc.value, value)
	}
}

// RFC 3841 §9.1 through tm (OpenSIPS t_relay's flag allow-no-cancel): with
// the router's AllowNoCancel and the caller's Request-Disposition:
// no-cancel, the answer of one branch leaves the other ringing; its own
// 2xx is relayed too. Without either, the other branch is cancelled as
// usual (§16.7 step 10).
func TestRFC3841_9_1_RequestDispositionNoCancel(t *testing.T) {
	for _, tc := range []struct {
		name         string
		allow, byCfg bool // Decision.AllowNoCancel, Config.AllowNoCancel (tm.allow_no_cancel)
		header       string
		cancelled    bool
	}{
		{"allowed and asked", true, false, "Request-Disposition: proxy, no-cancel", false},
		{"allowed by tm.allow_no_cancel", false, true, "Request-Disposition: no-cancel", false},
		{"allowed, compact form", true, false, "d: No-Cancel", false},
		{"allowed, not asked", true, false, "", true},
		{"asked, not allowed", false, false, "Request-Disposition: no-cancel", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			uac, a, b := siptest.NewUA(t), siptest.NewUA(t), siptest.NewUA(t)
			route := toUAs(a, b)
			cfg := testCfg()
			cfg.AllowNoCancel = tc.byCfg
			p := startProxy(t, cfg, RouterFunc(func(r *Request) Decision {
				d := route(r)
				d.AllowNoCancel = tc.allow
				return d
			}))
			var extra []string
			if tc.header != "" {
				extra = append(extra, tc.header)
			}
			inv := uac.Invite("sip:bob@"+p.udp, extra...)
			uac.Send(p.udp, inv)
			ia, ib := a.Request(sip.INVITE), b.Request(sip.INVITE)
			a.Reply(ia, 180, "a")
			b.Reply(ib, 180, "b")
			a.Reply(ia, 200, "a")
			uac.Send(p.udp, uac.AckFor(inv, uac.Final()))
			a.Request(sip.ACK)
			if tc.cancelled {
				b.Reply(b.Request(sip.CANCEL), 200, "")
				b.Reply(ib, 487, "b")
				b.Request(sip.ACK)
				return
			}
			b.Quiet(100*time.Millisecond, "a CANCEL of the branch still ringing", isReq(sip.CANCEL))
			b.Reply(ib, 200, "b")
			for {
				r := uac.Final()
				if tag := Tag(r.To().Params); tag == "b" {
					break // the second answer, relayed
				}
			}
		})
	}
}

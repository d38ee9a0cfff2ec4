package tm

import (
	"errors"
	"fmt"
	"reflect"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/emiago/sipgo/sip"

	"github.com/imsdlg/imsdlg/internal/poolcheck"
	"github.com/imsdlg/imsdlg/tm/transport"
)

// ErrFinalSent is returned by operations that need a transaction still
// waiting for its final reply.
var ErrFinalSent = errors.New("tm: transaction already has its final reply")

// Transaction is the server side of one proxied request with its response
// context: the handle the hooks and the dialog module use.
type Transaction struct {
	p  *Proxy
	id uint64
	// orig is the request as received, req its pre-processed copy (the
	// template of every branch); read-only, and both dropped once the
	// transaction is done (compact): an answered INVITE transaction stays
	// 64*T1 to relay retransmitted 2xx and must not hold its messages
	// that long. Atomic because readers take them without t.mu.
	orig atomic.Pointer[sip.Request]
	req  atomic.Pointer[sip.Request]
	// routing is the router's reference on req (msgblock.go), taken
	// before a CANCEL can end the transaction and given back by Decide: a
	// router that defers reads the request until it decides.
	routing atomic.Pointer[sip.Request]
	// added are AddHeaders' headers (t_add_hdrs), replaced whole on each
	// call: the client transactions read them without t.mu.
	added atomic.Pointer[[]sip.Header]
	// cancelReason is SetCancelReason's Reason (t_add_cancel_reason).
	cancelReason atomic.Pointer[string]
	// cseq is the CSeq number of orig, kept for the replies relayed after
	// it was dropped. cid is orig's Call-ID for the logs, in cidRoom when
	// it fits, written once: read from any goroutine, orig's may be a
	// reused block's by then, and a substring of it kept the message's
	// text for as long as the transaction lingers.
	cseq     uint32
	invite   bool
	cid      string
	cidRoom  [cidRoomLen]byte
	srv      *srvTx
	key      string
	loopHash string
	upstream transport.Dest // where replies go (the server transaction's)
	created  time.Time

	mu sync.Mutex
	// rc and br are the response context and the branches: nil once the
	// transaction is done and compacted, unless a branch is still owed a
	// CANCEL. What a done transaction still needs of them is absorbed.
	rc       *respCtx
	br       []branchIO
	absorbed uint32 // bit i: a reply hook absorbed branch i's 2xx (maxBranches fits)
	rr       bool
	rrParams []sip.HeaderKV
	localRes *sip.Response // a ready response for evLocalReply (router's Respond)
	// bestBranch is the branch of the best reply the failure hook got.
	bestBranch int
	localHdrs  []sip.Header // headers for a locally built final reply
	localBody  []byte       // and its body (ReplyWithBody)
	localTag   string       // To tag of a locally built final reply ("": sipgo's)
	upFinal    int          // final code sent on srv; 0 while none
	finalCode  int
	ringing    bool // a provisional other than 100 went upstream
	decided    bool // Decide ran
	// finished is set by finish; done, made only when Done is called (few
	// callers wait on a transaction, and a channel per transaction was 96
	// bytes and an allocation of every request), is closed once finish has
	// run the OnDone observers and let go of the messages (settled): a
	// caller woken by Done sees the transaction as it stays.
	finished bool
	settled  bool
	done     chan struct{}

	vmu    sync.Mutex
	values valueList // per-transaction data of the modules above tm
	// value0 is room for the first value (the dialog's): no list to
	// allocate for most transactions.
	value0 [1]keyValue
}

// valueList holds module data by key: a transaction carries one or two
// (the dialog, a Path), so a list searched in place beats a map, which
// cost ~300 bytes per transaction held for 64*T1.
type valueList []keyValue

type keyValue struct{ k, v any }

func (l *valueList) set(k, v any) {
	for i := range *l {
		if (*l)[i].k == k {
			(*l)[i].v = v
			return
		}
	}
	*l = append(*l, keyValue{k, v})
}

func (l valueList) get(k any) any {
	for i := range l {
		if l[i].k == k {
			return l[i].v
		}
	}
	return nil
}

// SetCancelReason sets the Reason header value (e.g. `SIP;cause=200;text="Call
// completed elsewhere"`, RFC 3326) of the CANCELs tm sends down when the
// caller cancels the INVITE, in place of the caller's own Reason (OpenSIPS
// t_add_cancel_reason: the caller's CANCEL never reaches the router, so the
// router or a hook sets it on the INVITE's transaction beforehand). "" goes
// back to passing the caller's on. A value with a line break is refused.
func (t *Transaction) SetCancelReason(reason string) error {
	if strings.ContainsAny(reason, "\r\n") {
		return fmt.Errorf("tm: cancel reason %q: a header value has no line break", reason)
	}
	if reason == "" {
		t.cancelReason.Store(nil)
		return nil
	}
	t.cancelReason.Store(&reason)
	return nil
}

// callerCancelReason is the Reason of the CANCELs that pass the caller's
// on: SetCancelReason's, else the caller's.
func (t *Transaction) callerCancelReason(callers string) string {
	if r := t.cancelReason.Load(); r != nil {
		return *r
	}
	return callers
}

// AddHeaders attaches headers to the transaction (OpenSIPS t_add_hdrs):
// they are appended to every request tm sends for it from now on, the
// branches, their CANCELs and the ACKs of their non-2xx finals; a request
// already sent keeps what it had. Each call adds to the earlier ones.
func (t *Transaction) AddHeaders(hdrs ...sip.Header) {
	for {
		old := t.added.Load()
		var next []sip.Header
		if old != nil {
			next = append(next, *old...)
		}
		next = append(next, hdrs...)
		if t.added.CompareAndSwap(old, &next) {
			return
		}
	}
}

// addedHeaders are AddHeaders' headers; not to be changed.
func (t *Transaction) addedHeaders() []sip.Header {
	if p := t.added.Load(); p != nil {
		return *p
	}
	return nil
}

// SetValue attaches module data to the transaction (what OpenSIPS keeps
// in transaction AVPs), e.g. the dialog a request belongs to. Use a key
// type of your own package, as with context.WithValue.
func (t *Transaction) SetValue(key, val any) {
	t.vmu.Lock()
	t.values.set(key, val)
	t.vmu.Unlock()
}

// Value returns what SetValue attached under key, or nil; nil too once a
// transaction other than an INVITE is done (after its OnDone observers):
// nothing more happens on it, and what a module attached (a dialog) must
// not stay reachable while its client transaction absorbs retransmissions.
func (t *Transaction) Value(key any) any {
	t.vmu.Lock()
	defer t.vmu.Unlock()
	return t.values.get(key)
}

type branchIO struct {
	target Target
	req    *sip.Request // as sent; nil until sent
	tx     *cliTx
	timer  Timer
	code   int // last reply code seen
	// cancelHdrs go into the CANCEL of this branch (CancelBranch).
	cancelHdrs []sip.Header
	// values are the branch's own ($bavp): SetBranchValue.
	values valueList
}

// newTransaction creates the response context of a validated request on
// its server transaction. It returns nil when the request is already dealt
// with (a CANCEL overtook the INVITE).
func (p *Proxy) newTransaction(req *sip.Request, m *transport.Message, srv *srvTx, loopHash string) *Transaction {
	now := p.clock.Now()
	t := &Transaction{
		p:        p,
		id:       p.nextID.Add(1),
		srv:      srv,
		invite:   req.IsInvite(),
		loopHash: loopHash,
		upstream: srv.dest,
		created:  now,

		bestBranch: -1,
	}
	t.values = t.value0[:0]
	if c := callID(req); len(c) <= len(t.cidRoom) {
		t.cid = unsafe.String(unsafe.SliceData(t.cidRoom[:]), copy(t.cidRoom[:], c))
	} else {
		t.cid = strings.Clone(c)
	}
	retainReq(req) // until compact, as the template (its clone's first reference)
	t.orig.Store(req)
	tmpl := shallowClone(req)
	t.req.Store(tmpl)
	retainReq(tmpl)
	t.routing.Store(tmpl)
	if cs := req.CSeq(); cs != nil {
		t.cseq = cs.SeqNo
	}
	t.rc = newRespCtx(t.invite, p.cfg, len(p.failure) > 0)
	p.stats.inuse.Add(1)
	if !t.invite {
		return t
	}
	t.key = srv.key
	if held := p.invites.addInvite(t.key, t); held != nil {
		// The CANCEL came first: answer both and forward nothing.
		if held.timer != nil {
			held.timer.Stop()
		}
		p.replyLocal(held.srv, held.req, 200, "OK")
		p.log.Info("INVITE cancelled before it arrived", "callid", callID(req))
		t.Reply(487, "Request Terminated")
		t.releaseRouting()
		return nil
	}
	if p.cfg.Auto100Trying {
		p.replyTrying(srv, req)
	}
	return t
}

// ID is unique per proxy process.
func (t *Transaction) ID() uint64 { return t.id }

// Request is the received request after Route pre-processing; read-only
// once the router returned. Nil once the transaction is done (Done is
// closed and the observers' OnDone ran): take what you need before; tm
// reuses its memory then (issue 14).
func (t *Transaction) Request() *sip.Request { return t.req.Load() }

// Original is the request as received; nil once the transaction is done,
// as Request. From a goroutine other than the transaction's own (its
// router and hooks), use WithOriginal: the transaction may end while you
// read, and tm reuses the request's memory then.
func (t *Transaction) Original() *sip.Request { return t.orig.Load() }

// WithOriginal calls f with the request as received, held for f's run
// (and no longer: copy what you keep), and reports whether it did: false
// once the transaction is done. Safe from any goroutine (a management
// call listing transactions).
func (t *Transaction) WithOriginal(f func(r *sip.Request)) bool {
	tmpl, orig := t.hold()
	if orig == nil {
		return false
	}
	defer t.unhold(tmpl, orig)
	f(orig)
	return true
}

// callID is the Call-ID of the request, also once it was dropped.
func (t *Transaction) callID() string { return t.cid }

// cidRoomLen fits short Call-IDs (sipp's) and keeps a Transaction in the
// 512-byte size class; a longer one is a copy of its own.
const cidRoomLen = 24

// Created is when the request arrived (tm's clock).
func (t *Transaction) Created() time.Time { return t.created }

// SetLocalToTag sets the To tag of a final reply the proxy builds itself
// (t_reply's to_tag), instead of a generated one.
func (t *Transaction) SetLocalToTag(tag string) {
	t.mu.Lock()
	t.localTag = tag
	t.mu.Unlock()
}

// Done is closed once the outcome is known and every branch finished.
func (t *Transaction) Done() <-chan struct{} {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.done == nil {
		if t.settled {
			return closedChan
		}
		t.done = make(chan struct{})
	}
	return t.done
}

// closedChan is the Done of a transaction that finished before anyone
// asked.
var closedChan = func() chan struct{} {
	c := make(chan struct{})
	close(c)
	return c
}()

// FrTimeout and FrInvTimeout are the transaction's timers ($T_fr_timeout,
// $T_fr_inv_timeout): the configured ones, or what the router's Decision
// or a Set call put instead.
func (t *Transaction) FrTimeout() time.Duration {
	fr, _ := t.frTimers()
	return fr
}

func (t *Transaction) FrInvTimeout() time.Duration {
	_, inv := t.frTimers()
	return inv
}

func (t *Transaction) frTimers() (fr, inv time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.rc == nil {
		return t.p.cfg.FrTimeout, t.p.cfg.FrInvTimeout
	}
	return t.rc.frTimeout, t.rc.frInvTimeout
}

// SetFrTimeout sets fr_timeout for the branches started from now on
// (writing $T_fr_timeout); zero restores the configured one.
func (t *Transaction) SetFrTimeout(d time.Duration) { t.setFrTimer(d, false) }

// SetFrInvTimeout sets fr_inv_timeout ($T_fr_inv_timeout); zero restores
// the configured one. Called from a ReplyHook on a provisional reply (as
// in an onreply_route on 180 Ringing), it re-arms that branch's timer with
// the new value; otherwise the next provisional reply of any branch does.
func (t *Transaction) SetFrInvTimeout(d time.Duration) { t.setFrTimer(d, true) }

func (t *Transaction) setFrTimer(d time.Duration, inv bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.rc == nil {
		return
	}
	switch {
	case inv && d <= 0:
		t.rc.frInvTimeout, t.rc.frInvChanged = t.p.cfg.FrInvTimeout, true
	case inv:
		t.rc.frInvTimeout, t.rc.frInvChanged = d, true
	case d <= 0:
		t.rc.frTimeout = t.p.cfg.FrTimeout
	default:
		t.rc.frTimeout = d
	}
}

// FinalCode is the code of the final reply sent upstream (0 while none).
func (t *Transaction) FinalCode() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.finalCode
}

// BranchInfo describes one branch for the hooks and management.
type BranchInfo struct {
	Index  int
	Target Target
	// URI is the Request-URI the branch was sent with; empty once the
	// transaction is done (its requests are dropped; a branch that still
	// owes a CANCEL keeps it).
	URI      string
	LastCode int
	Done     bool
	// Started and Ended are when the branch was created and got its final
	// outcome (zero while pending).
	Started, Ended time.Time
}

// Branches returns the branches created so far; none once the transaction
// is done (an observer's OnDone still sees them): a done INVITE
// transaction lingers (wt_timer) for 2xx retransmissions and keeps nothing
// else (issue 14).
func (t *Transaction) Branches() []BranchInfo {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.br) == 0 {
		return nil
	}
	out := make([]BranchInfo, len(t.br))
	for i := range t.br {
		b := &t.br[i]
		st := &t.rc.branches[i]
		out[i] = BranchInfo{Index: i, Target: b.target, LastCode: b.code, Done: st.phase == bCompleted,
			Started: st.started, Ended: st.ended}
		if b.req != nil {
			out[i].URI = b.req.Recipient.String()
		}
	}
	return out
}

// Reply sends a final reply upstream (t_reply) and cancels every pending
// branch. The CANCELs carry the Reason header among hdrs, or one made of
// code and reason.
func (t *Transaction) Reply(code int, reason string, hdrs ...sip.Header) error {
	return t.ReplyWithBody(code, reason, nil, hdrs...)
}

// ReplyWithBody is t_reply_with_body: Reply with a body; hdrs should carry
// its Content-Type.
func (t *Transaction) ReplyWithBody(code int, reason string, body []byte, hdrs ...sip.Header) error {
	if code < 200 || code > 699 {
		return fmt.Errorf("tm: t_reply code %d is not a final reply", code)
	}
	t.mu.Lock()
	if t.rc == nil || t.rc.finalSent {
		t.mu.Unlock()
		return ErrFinalSent
	}
	t.localHdrs, t.localBody = hdrs, body
	ev := event{kind: evLocalReply, code: code, reason: reason}
	for _, h := range hdrs {
		if strings.EqualFold(h.Name(), "Reason") {
			ev.cancelReason = h.Value()
			break
		}
	}
	post := t.stepLocked(ev)
	t.mu.Unlock()
	t.runPost(post)
	return nil
}

// InjectBranches adds parallel branches to a transaction still waiting for
// its final reply (t_inject_branches).
func (t *Transaction) InjectBranches(targets ...Target) error {
	return t.InjectBranchesWith(InjectOptions{}, targets...)
}

// InjectOptions are t_inject_branches' flags.
type InjectOptions struct {
	// CancelOngoing (flag c) cancels the branches still pending before
	// the new ones go out, with Reason (a Reason header value, e.g. from
	// ReasonValue; empty: none). Their 487s rank below the new branches'
	// replies.
	CancelOngoing bool
	Reason        string
	// Last (flag l): no branch is injected after these (NoMoreBranches).
	Last bool
}

// InjectBranchesWith is InjectBranches with t_inject_branches' flags.
func (t *Transaction) InjectBranchesWith(o InjectOptions, targets ...Target) error {
	t.mu.Lock()
	if t.rc == nil || t.rc.finalSent || t.rc.cancelled || t.rc.blocked {
		t.mu.Unlock()
		return ErrFinalSent
	}
	var cancels postList
	if o.CancelOngoing {
		cancels = t.stepLocked(event{kind: evCancelBranch, branch: -1, others: true, reason: o.Reason})
	}
	post := t.stepLocked(event{kind: evInject, targets: targets})
	var last postList
	if o.Last {
		last = t.stepLocked(event{kind: evNoMoreBranches})
	}
	t.mu.Unlock()
	t.runPost(cancels)
	t.runPost(post)
	t.runPost(last)
	return nil
}

// NoMoreBranches ends a t_wait_for_new_branches wait.
func (t *Transaction) NoMoreBranches() { t.step(event{kind: evNoMoreBranches}) }

// postAct is work an action leaves for after t.mu is released: hooks
// and sends that may call back into t. A value, not a closure: a closure
// per action was a fifth of tm's allocations per call.
type postAct struct {
	kind    postKind
	branch  int
	target  Target
	req     *sip.Request
	tx      *cliTx
	reason  string
	hdrs    []sip.Header
	res     *sip.Response
	outcome Outcome
}

// postList holds the post actions of one step, the usual few in place. It
// travels by value: a buffer whose address went into exec and runPost
// escaped to the heap (they recurse through step), 1.2 KB per step.
type postList struct {
	n    int
	a    [4]postAct
	more []postAct
}

func (l *postList) add(a postAct) {
	if l.n < len(l.a) {
		l.a[l.n] = a
		l.n++
		return
	}
	l.more = append(l.more, a)
}

func (l *postList) at(i int) *postAct {
	if i < len(l.a) {
		return &l.a[i]
	}
	return &l.more[i-len(l.a)]
}

func (l *postList) len() int { return l.n + len(l.more) }

type postKind uint8

const (
	postStartBranch postKind = iota
	postCancel
	postFailure
	postOutcome
	postFinish
)

func (t *Transaction) runPost(post postList) {
	p := t.p
	for i := range post.len() {
		a := post.at(i)
		switch a.kind {
		case postStartBranch:
			t.startBranch(a.branch, a.target)
		case postCancel:
			p.sendCancel(a.req, a.tx, a.reason, append(a.hdrs[:len(a.hdrs):len(a.hdrs)], t.addedHeaders()...)...)
			releaseReq(a.req)
		case postFailure:
			var targets []Target
			for _, h := range p.failure {
				if targets = p.failureHook(h, t, a.res); len(targets) > 0 {
					break
				}
			}
			releaseRes(a.res)
			t.step(event{kind: evFailureResult, targets: targets})
		case postOutcome:
			o := a.outcome
			for _, h := range p.observers {
				p.observe(h.module, t, func() { h.h.OnOutcome(t, o) })
			}
			releaseRes(o.Response)
			releaseReq(a.req)
		case postFinish:
			t.finish()
		}
	}
}

// step feeds one event to the response context and executes its actions.
// Actions run under t.mu so replies leave in the order they were decided;
// hooks that may call back into t run after it is released.
func (t *Transaction) step(ev event) {
	t.mu.Lock()
	post := t.stepLocked(ev)
	t.mu.Unlock()
	t.runPost(post)
}

// stepLocked is step's part under t.mu: the response context's decision
// and its actions; the caller runs the returned work once it unlocked.
func (t *Transaction) stepLocked(ev event) postList {
	if t.rc == nil {
		return postList{} // done and compacted: nothing is left to happen
	}
	var abuf [6]action
	// A reply the response context stores (a branch's first final) is
	// kept until the transaction compacts: a reference on its block
	// (msgblock.go).
	var held *sip.Response
	reply := ev.kind == evReply && ev.res != nil && ev.branch >= 0 && ev.branch < len(t.rc.branches)
	if reply {
		held = t.rc.branches[ev.branch].res
	}
	acts := t.rc.Step(t.p.clock.Now(), ev, abuf[:0])
	if reply && held == nil && t.rc.branches[ev.branch].res == ev.res {
		retainRes(ev.res)
	}
	return t.exec(acts)
}

// Decide carries out the router's decision for this transaction; a router
// that returned Defer calls it once it has decided. Only the first call
// counts; a Defer decision given here drops the request. A transaction
// that ended meanwhile (the caller cancelled) ignores it.
func (t *Transaction) Decide(d Decision) {
	defer t.releaseRouting()
	t.mu.Lock()
	if t.decided || t.rc == nil {
		t.mu.Unlock()
		return
	}
	t.decided = true
	t.mu.Unlock()
	switch d.Kind {
	case Respond:
		t.mu.Lock()
		if t.rc == nil { // done meanwhile (cancelled)
			t.mu.Unlock()
			return
		}
		if d.Response != nil {
			t.localRes = d.Response
		}
		t.localHdrs = d.Headers
		code, reason := d.Code, d.Reason
		if d.Response != nil {
			code, reason = d.Response.StatusCode, d.Response.Reason
		}
		post := t.stepLocked(event{kind: evLocalReply, code: code, reason: reason})
		t.mu.Unlock()
		t.runPost(post)
	case Drop, Defer:
		// Nothing is answered; the transaction stays a while to absorb
		// the retransmissions silently.
		t.srv.dropAfter(64 * t.p.cfg.T1)
		t.finish()
	default:
		t.mu.Lock()
		if t.rc == nil { // done meanwhile (cancelled)
			t.mu.Unlock()
			return
		}
		t.rr = d.RecordRoute
		t.rrParams = d.RecordRouteParams
		if d.FrTimeout > 0 {
			t.rc.frTimeout = d.FrTimeout
		}
		if d.FrInvTimeout > 0 {
			t.rc.frInvTimeout = d.FrInvTimeout
		}
		t.rc.noCancel = (d.AllowNoCancel || t.p.cfg.AllowNoCancel) && asksNoCancel(t.req.Load())
		targets := d.Targets
		if len(targets) == 0 && !d.WaitForNewBranches {
			t.rc.def[0] = Target{Dst: d.Dst}
			targets = t.rc.def[:]
		}
		post := t.stepLocked(event{kind: evStart, targets: targets, wait: d.WaitForNewBranches, maxNew: max(d.MaxNewBranches, 0)})
		t.mu.Unlock()
		t.runPost(post)
	}
}

// releaseRouting gives back the router's reference on the request, once.
func (t *Transaction) releaseRouting() { releaseReq(t.routing.Swap(nil)) }

// growBranches makes room for every branch acts start at once: grown one
// branch at a time, the list of a forked request was an allocation per
// branch.
func (t *Transaction) growBranches(acts []action) {
	if t.br == nil {
		t.br, t.rc.spareIO = t.rc.spareIO, nil
	}
	n := len(t.br)
	for _, a := range acts {
		if a.kind == actSendBranch && a.branch >= n {
			n = a.branch + 1
		}
	}
	t.br = append(t.br, make([]branchIO, n-len(t.br))...)
}

// exec runs actions with t.mu held and returns the work that must run
// after it is released.
func (t *Transaction) exec(acts []action) (post postList) {
	p := t.p
	for _, a := range acts {
		switch a.kind {
		case actSendBranch:
			if len(t.br) <= a.branch {
				t.growBranches(acts)
			}
			tg := t.rc.branches[a.branch].target
			t.br[a.branch].target = tg
			p.stats.branches.Add(1)
			post.add(postAct{kind: postStartBranch, branch: a.branch, target: tg})
		case actArmTimer:
			p.armBranch(t, &t.br[a.branch], a.branch, a.after, a.gen)
		case actStopTimer:
			if b := &t.br[a.branch]; b.timer != nil {
				b.timer.Stop() // an Entry stays for the next arming
			}
		case actTimedOut:
			if a.local {
				p.stats.frInvTimeouts.Add(1)
			} else {
				p.stats.frTimeouts.Add(1)
			}
			timer := "fr_timeout"
			if a.local {
				timer = "fr_inv_timeout"
			}
			p.log.Info("branch timed out", "callid", t.callID(), "branch", a.branch, "timer", timer)
		case actCancelBranch:
			b := &t.br[a.branch]
			if b.req != nil && b.tx != nil {
				retainReq(b.req) // until the CANCEL is built: compact may drop the branch's
				post.add(postAct{kind: postCancel, req: b.req, tx: b.tx, reason: a.reason, hdrs: b.cancelHdrs})
			}
		case actRelay:
			t.relay(a.res)
		case actReplyFinal:
			t.replyFinal(a)
		case actRunFailure:
			t.bestBranch = a.branch
			retainRes(a.res) // until the failure hooks ran: another goroutine may compact
			post.add(postAct{kind: postFailure, res: a.res})
		case actFinal:
			code := a.code
			if a.res != nil {
				code = a.res.StatusCode
			}
			t.finalCode = code
			p.stats.finalClass[class(code)].Add(1)
			if len(p.observers) > 0 {
				o := Outcome{Kind: a.outcome, Code: code, Reason: a.reason, Branch: -1, Local: a.local, Response: a.res,
					AfterCancel: t.rc != nil && t.rc.cancelled}
				if a.res != nil {
					o.Reason = a.res.Reason
					o.Branch = a.branch
				} else {
					o.Response = sip.NewResponseFromRequest(t.orig.Load(), a.code, a.reason, nil)
				}
				// Until the observers ran (they may read t.Original()):
				// another goroutine may compact meanwhile.
				retainRes(o.Response)
				orig := t.orig.Load()
				retainReq(orig)
				post.add(postAct{kind: postOutcome, outcome: o, req: orig})
			}
		case actDone:
			for i := range t.br {
				if t.br[i].timer != nil {
					t.br[i].timer.Stop()
					t.br[i].timer = nil
				}
			}
			post.add(postAct{kind: postFinish})
		}
	}
	return post
}

// finish releases what the transaction holds in the proxy.
func (t *Transaction) finish() {
	// What only a local reply needs goes now: the transaction may stay
	// reachable for 64*T1 (its branches absorb retransmitted 2xx, RFC
	// 6026). The request template stays (a router may still be reading it
	// when a CANCEL ends the transaction), and so do the branches'
	// requests (a late provisional is still owed a CANCEL).
	t.mu.Lock()
	if t.finished {
		t.mu.Unlock()
		return
	}
	t.finished = true
	t.localRes, t.localHdrs, t.localBody = nil, nil, nil
	t.mu.Unlock()
	if t.key != "" {
		t.p.invites.removeInvite(t.key, t)
		// The key's bytes are the server transaction's (keyIn): kept, the
		// string kept the whole srvTx for as long as a branch absorbs
		// 2xx retransmissions (Timer M), after it became a record.
		t.key = ""
	}
	t.p.stats.inuse.Add(-1)
	for _, h := range t.p.observers {
		t.p.observe(h.module, t, func() { h.h.OnDone(t) })
	}
	t.compact()
	t.mu.Lock()
	t.settled = true
	if t.done != nil {
		close(t.done)
	}
	t.mu.Unlock()
}

// compact drops what a done transaction no longer needs: the requests
// and the branches' replies. Every branch has its final reply, so no
// CANCEL is owed but to a branch that timed out before its first 1xx;
// what may still come is a retransmitted 2xx, relayed with t.cseq. Without this, each answered call held its INVITE, the branch
// copy and the replies for 64*T1 (about 7 KB per call, issue 14).
func (t *Transaction) compact() {
	r := t.orig.Load()
	if r == nil {
		return // compacted already
	}
	if !t.invite {
		// No 2xx retransmission will be relayed, so no observer needs the
		// modules' values: a BYE's held the ended dialog for Timer K.
		t.vmu.Lock()
		t.values, t.value0 = nil, [1]keyValue{}
		t.vmu.Unlock()
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	// Under the lock: hold takes its references under it too.
	t.orig.Store(nil)
	releaseReq(t.req.Swap(nil))
	if t.invite && t.upFinal >= 200 && t.upFinal < 300 {
		// The server transaction is in Accepted: relay sends a 2xx to
		// t.upstream as it would, and its lookups are a lingerRec's (on
		// UDP; on TCP it stays in srvTxs). 0.5 KB of pointers per call
		// less for the collector to mark during wt_timer.
		t.srv = nil
	}
	owed := false
	for i := range t.br {
		if st := &t.rc.branches[i]; st.cancelWant && !st.cancelSent {
			// Timed out before any 1xx: a late one is still owed the
			// CANCEL (§9.1), built from the branch's request.
			owed = true
			continue
		}
		releaseReq(t.br[i].req)
		t.br[i].req, t.br[i].cancelHdrs = nil, nil
	}
	for i := range t.rc.branches {
		releaseRes(t.rc.branches[i].res)
		t.rc.branches[i].res = nil
	}
	if owed {
		return // the response context sends that CANCEL (its request stays)
	}
	releaseReq(r)
	// Nothing is left for the response context to decide: a 2xx
	// retransmission is relayed unless its branch was absorbed. The
	// branches' targets, states and I/O were ~1 KB per answered call.
	for i := range t.rc.branches {
		if t.rc.branches[i].absorbed {
			t.absorbed |= 1 << i
		}
	}
	recycleRespCtx(t.rc, t.br)
	t.rc, t.br = nil, nil
}

// respCtxs are response contexts given back with the room of their branch
// lists (recycleRespCtx): 0.75 KB per transaction less for the collector.
var respCtxs = sync.Pool{New: func() any { return new(respCtx) }}

// recycleRespCtx gives c back with io, the driver's branch list (nil: the
// one c kept), once nothing reads either: the Transaction reads both only
// under its lock, and drops both under it (compact). A context whose
// lists grew past maxPooledBranches is left to the collector; in a test
// binary each is poisoned instead (internal/poolcheck), so a reader that
// kept a branch's state reads garbage.
func recycleRespCtx(c *respCtx, io []branchIO) {
	if io == nil {
		io = c.spareIO
	}
	if poolcheck.Poison() {
		for i := range c.branches {
			poisonBlock(reflect.ValueOf(&c.branches[i]).Elem())
		}
		for i := range io {
			poisonBlock(reflect.ValueOf(&io[i]).Elem())
		}
		poisonBlock(reflect.ValueOf(c).Elem())
		return
	}
	if cap(c.branches) > maxPooledBranches || cap(io) > maxPooledBranches {
		return
	}
	bs := c.branches[:cap(c.branches)]
	clear(bs)
	io = io[:cap(io)]
	clear(io)
	*c = respCtx{branches: bs[:0], spareIO: io[:0]}
	respCtxs.Put(c)
}

// maxPooledBranches bounds the room a pooled context keeps: a rare wide
// fork's lists are not held for every later request.
const maxPooledBranches = 8

// absorbedBranch tells whether a reply hook absorbed branch i's 2xx, so
// that its retransmissions stay here too.
func (t *Transaction) absorbedBranch(i int) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.rc != nil {
		return i < len(t.rc.branches) && t.rc.branches[i].absorbed
	}
	return i < maxBranches && t.absorbed&(1<<i) != 0
}

// relay sends a branch's provisional or 2xx reply upstream. A 2xx the
// server transaction no longer takes (it sent a non-2xx final: t_reply, a
// local 487) goes statelessly (§16.7 step 5, RFC 6026 §8.5).
func (t *Transaction) relay(res *sip.Response) {
	p := t.p
	bp, up := marshalUp(res, nil, t.origCSeq())
	defer putWire(bp, up)
	code := res.StatusCode
	// The set-up times are read before the reply leaves: once it is out,
	// the caller (and a test's clock) may move on.
	var at time.Time
	if t.invite && code > 100 && ((code < 200 && !t.ringing) || (code < 300 && t.upFinal == 0)) {
		at = p.clock.Now()
	}
	if code >= 200 && code < 300 && t.invite {
		if t.srv == nil {
			// Done after a 2xx: the server transaction, in Accepted, only
			// ever sent a 2xx on (RFC 6026 §7.1); it lingers as a record.
			t.sendUp(up, code, false)
			return
		}
		if !t.srv.respondBytes(up, code) {
			t.sendUp(up, code, true)
			return
		}
		if t.upFinal == 0 {
			t.upFinal = code
			p.stats.setupAnswer.Observe(at.Sub(t.created).Seconds())
		}
		p.stats.relayed(code)
		return
	}
	if t.upFinal != 0 {
		return
	}
	if !t.srv.respondBytes(up, code) {
		return
	}
	if code >= 200 {
		t.upFinal = code
	} else if code > 100 && t.invite && !t.ringing {
		t.ringing = true
		p.stats.setupRinging.Observe(at.Sub(t.created).Seconds())
	}
	p.stats.relayed(code)
}

// origCSeq is the CSeq number the client gave the request.
func (t *Transaction) origCSeq() uint32 { return t.cseq }

// sendUp sends a 2xx upstream without the server transaction: stateless
// when the server transaction no longer takes it (it sent a non-2xx
// final), else for one that lingers as a record in Accepted.
func (t *Transaction) sendUp(up []byte, code int, stateless bool) {
	if err := t.p.send(up, t.upstream); err != nil {
		t.p.log.Info("2xx not sent upstream", "callid", t.callID(), "stateless", stateless, "error", err)
		return
	}
	if stateless {
		t.p.stats.statelessFwd.Add(1)
	}
	t.p.stats.relayed(code)
}

// replyFinal sends the selected or locally built final reply.
func (t *Transaction) replyFinal(a action) {
	p := t.p
	var res *sip.Response
	local := a.res == nil
	switch {
	case a.res != nil:
		if t.upFinal != 0 {
			return
		}
		code := a.res.StatusCode
		bp, up := marshalUp(a.res, a.auth, t.origCSeq())
		taken := t.srv.respondBytes(up, code)
		putWire(bp, up)
		if !taken {
			p.log.Info("final reply not taken by the server transaction", "callid", t.callID(), "code", code)
			return
		}
		t.upFinal = code
		p.stats.relayed(code)
		return
	case t.localRes != nil:
		res = t.localRes
	default:
		res = sip.NewResponseFromRequest(t.orig.Load(), a.code, a.reason, nil)
		for _, h := range t.localHdrs {
			res.AppendHeader(h)
		}
		if t.localBody != nil {
			res.SetBody(t.localBody)
		}
		if t.localTag != "" {
			if to := res.To(); to != nil {
				to.Params.Remove("tag")
				to.Params.Add("tag", t.localTag)
			}
		}
	}
	if t.upFinal != 0 {
		return
	}
	if !t.srv.respond(res) {
		p.log.Info("final reply not taken by the server transaction", "callid", t.callID(), "code", res.StatusCode)
		return
	}
	t.upFinal = res.StatusCode
	if local {
		p.stats.local(res.StatusCode)
		p.localReply(res)
	} else {
		p.stats.relayed(res.StatusCode)
	}
}

// Cancel cancels every pending branch of an INVITE still waiting for its
// final reply, as the caller's CANCEL would (the management API's
// t_cancel): the final reply then comes from the branches (their 487s, or
// a 2xx crossing the CANCEL). reason goes into the CANCELs' Reason header
// ("" for none of ours).
func (t *Transaction) Cancel(reason string) error {
	if t.FinalCode() != 0 {
		return ErrFinalSent
	}
	t.upstreamCancel(reason)
	return nil
}

// CancelBranch is t_cancel_branch (OpenSIPS tm, empty flags): the pending
// branch i gets a CANCEL with reason as its Reason header ("" for none)
// and hdrs, as soon as it had a provisional reply (§9.1). The transaction
// goes on: its 487 ranks below any other reply, a 2xx crossing the CANCEL
// is relayed, and the failure hook still runs. A branch already final is
// left alone.
func (t *Transaction) CancelBranch(i int, reason string, hdrs ...sip.Header) error {
	return t.cancelBranches(i, false, reason, hdrs)
}

// CancelOtherBranches is t_cancel_branch("o"): every pending branch but i;
// i -1 is t_cancel_branch("a"), all of them (unlike Cancel, the failure
// hook may still add branches).
func (t *Transaction) CancelOtherBranches(i int, reason string, hdrs ...sip.Header) error {
	return t.cancelBranches(i, true, reason, hdrs)
}

func (t *Transaction) cancelBranches(i int, others bool, reason string, hdrs []sip.Header) error {
	if !t.invite {
		return errors.New("tm: only an INVITE's branches are cancelled")
	}
	if t.FinalCode() != 0 {
		return ErrFinalSent
	}
	t.mu.Lock()
	n := len(t.br)
	if i < -1 || i >= n || (i == -1 && !others) {
		t.mu.Unlock()
		return fmt.Errorf("tm: no branch %d (the transaction has %d)", i, n)
	}
	for j := range t.br {
		if (j == i) != others && len(hdrs) > 0 {
			t.br[j].cancelHdrs = hdrs
		}
	}
	t.mu.Unlock()
	t.step(event{kind: evCancelBranch, branch: i, others: others, reason: reason})
	return nil
}

// SetBranchValue keeps a value of branch i's own ($bavp: per-branch data a
// branch, reply or failure hook reads back with BranchValue).
func (t *Transaction) SetBranchValue(i int, key, val any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if i < 0 || i >= len(t.br) {
		return
	}
	t.br[i].values.set(key, val)
}

// BranchValue reads what SetBranchValue kept for branch i; nil when none.
func (t *Transaction) BranchValue(i int, key any) any {
	t.mu.Lock()
	defer t.mu.Unlock()
	if i < 0 || i >= len(t.br) {
		return nil
	}
	return t.br[i].values.get(key)
}

// BestBranch is the branch whose reply the failure hook was given as the
// best ($T_branch_idx in a failure route); -1 before any failure hook ran.
func (t *Transaction) BestBranch() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.bestBranch
}

// upstreamCancel: the caller cancelled the request (§16.10). Its CANCEL
// was answered 200; the branches are cancelled, and the final reply to the
// INVITE comes from them (their 487s, or a 2xx crossing the CANCEL).
func (t *Transaction) upstreamCancel(reason string) {
	t.step(event{kind: evUpstreamCancel, reason: reason})
}

// branchOwner is a branch as the client transaction it rides on sees it.
type branchOwner struct {
	t *Transaction
	i int
}

func (b branchOwner) onResponse(c *cliTx, res *sip.Response, retrans bool) {
	t, p, i := b.t, b.t.p, b.i
	if retrans {
		// Each further 2xx goes upstream too (§16.7 step 5): a
		// retransmission, or another UAS behind a forking proxy; unless a
		// hook absorbed that branch's 2xx.
		if t.absorbedBranch(i) {
			return
		}
		// Observers first, as with OnReply: whoever sees the relayed 2xx
		// finds the dialog already told.
		for _, h := range p.observers {
			if ro, ok := h.h.(RetransmissionObserver); ok {
				p.observe(h.module, t, func() { ro.On2xxRetransmission(t, i, res) })
			}
		}
		t.mu.Lock()
		t.relay(res)
		t.mu.Unlock()
		return
	}
	t.mu.Lock()
	if i < len(t.br) {
		t.br[i].code = res.StatusCode
	}
	t.mu.Unlock()
	ev := event{kind: evReply, branch: i, res: res}
	for _, h := range p.observers {
		p.observe(h.module, t, func() { h.h.OnReply(t, i, res) })
	}
	for _, h := range p.reply {
		if !p.replyHook(h, t, i, res) && res.StatusCode < 300 {
			ev.noRelay = true
		}
	}
	t.step(ev)
}

func (b branchOwner) onFailure(c *cliTx, code int, err error) {
	b.t.p.log.Info("branch failed", "callid", b.t.callID(), "branch", b.i, "code", code, "error", err)
	b.t.step(event{kind: evBranchFailed, branch: b.i, code: code})
}

// startBranch builds and sends branch i. It runs without t.mu: the branch
// hooks may look at the transaction.
func (t *Transaction) startBranch(i int, tg Target) {
	p := t.p
	req, raw, d, err := t.buildBranch(i, tg)
	if err != nil {
		p.log.Info("branch not sent", "callid", t.callID(), "branch", i, "error", err)
		p.stats.sendFailures.Add(1)
		code := 503
		if errors.Is(err, errSchemeNotRoutable) {
			code = 416
		}
		t.step(event{kind: evBranchFailed, branch: i, code: code})
		return
	}
	if req == nil { // dropped by the branch hook
		t.step(event{kind: evBranchFailed, branch: i, code: 0})
		return
	}
	t.mu.Lock()
	if i >= len(t.br) {
		t.mu.Unlock()
		raw.release()
		releaseReq(req)
		return // done meanwhile (not while a branch is pending; kept safe)
	}
	t.br[i].req = req // the clone's first reference
	t.mu.Unlock()
	// Read before the send: once the branch is out, its reply (and a
	// test's clock) may move on before startCliTx returns.
	ready := p.clock.Now()
	c, err := p.newCliTx(req, raw, d, branchOwner{t, i})
	if err != nil {
		p.log.Info("branch send failed", "callid", t.callID(), "branch", i, "error", err)
		p.stats.sendFailures.Add(1)
		t.step(event{kind: evBranchFailed, branch: i, code: 503})
		return
	}
	// Known to the branch before it is sent: its 1xx may come, and the
	// caller's CANCEL be handled on another reader, before this goroutine
	// runs again, and a CANCEL owed to a branch without its transaction
	// was never sent (seen under load).
	t.mu.Lock()
	if i < len(t.br) {
		t.br[i].tx = c
	}
	t.mu.Unlock()
	c.start(false)
	if testHookBranchSent != nil {
		testHookBranchSent()
	}
	if i == 0 {
		p.stats.relayLatency.Observe(ready.Sub(t.created).Seconds())
	}
}

// testHookBranchSent, set by tests only, runs after a branch went out:
// where the goroutine that sent it may be held up.
var testHookBranchSent func()

// buildBranch makes the request of branch i (§16.6 steps 1–8), and its
// wire form when the size check made it (else nil). It returns a nil
// request and no error when the branch hook dropped the branch.
func (t *Transaction) buildBranch(i int, tg Target) (*sip.Request, wire, transport.Dest, error) {
	p := t.p
	tmpl, orig := t.hold()
	if tmpl == nil {
		return nil, wire{}, transport.Dest{}, errors.New("tm: the transaction is done")
	}
	ruri := &tmpl.Recipient
	if tg.URI.Host != "" {
		ruri = &tg.URI
	}
	cb := shallowCloneTo(tmpl, ruri)
	req := &cb.req
	setMaxForwards(req, nextMaxForwards(orig))
	t.unhold(tmpl, orig) // the branch holds the headers it shares
	built := false
	defer func() {
		if !built {
			releaseReq(req)
		}
	}()
	for _, h := range t.addedHeaders() {
		req.AppendHeader(h)
	}
	for _, h := range p.branch {
		if !p.branchHook(h, t, &Branch{Index: i, Target: tg, Request: req}) {
			return nil, wire{}, transport.Dest{}, nil
		}
	}
	h, err := routeOut(req, tg.Dst)
	if err != nil {
		return nil, wire{}, transport.Dest{}, err
	}
	out := p.pickListener(h.transport, h.host)
	if out == nil {
		return nil, wire{}, transport.Dest{}, fmt.Errorf("no %s listener to send from", h.transport)
	}
	t.prependOurs(cb, out, h.transport)
	var raw wire
	if h.transport == "UDP" && p.hasTransport("TCP") {
		// The size is known once the request is on the wire: that form is
		// kept for the send (it was made twice).
		if raw = marshalWire(req); len(raw.b) > p.cfg.UDPMaxSize {
			// RFC 3261 §18.1.1: too big for UDP without fragmentation.
			raw.release()
			h.transport = "TCP"
			tcp := p.pickListener("TCP", h.host)
			req.RemoveHeader("Via")
			if t.rr {
				req.RemoveHeader("Record-Route")
				if len(req.GetHeaders("Record-Route")) > 0 && t.doubleRR(out) {
					req.RemoveHeader("Record-Route")
				}
			}
			out = tcp
			t.prependOurs(cb, out, "TCP")
		}
	}
	d, err := p.destOf(h, out)
	if err != nil {
		raw.release()
		return nil, wire{}, transport.Dest{}, err
	}
	built = true
	return req, raw, d, nil
}

// hold returns the transaction's template and original request, with a
// reference on each that unhold gives back; nils once it is done. Taken
// under t.mu, as compact drops them: a router may decide, and a branch be
// built, while another goroutine ends the transaction.
func (t *Transaction) hold() (tmpl, orig *sip.Request) {
	t.mu.Lock()
	defer t.mu.Unlock()
	tmpl, orig = t.req.Load(), t.orig.Load()
	if tmpl == nil || orig == nil {
		return nil, nil
	}
	retainReq(tmpl)
	retainReq(orig)
	return tmpl, orig
}

func (t *Transaction) unhold(tmpl, orig *sip.Request) {
	releaseReq(tmpl)
	releaseReq(orig)
}

// prependOurs puts our Via and, when the transaction record-routes, our
// Record-Route(s) on top of a branch's request, in the room its block
// keeps for them: sipgo copies the header list on every prepend.
func (t *Transaction) prependOurs(cb *cloneBlock, out *listener, transport string) {
	var front [3]sip.Header
	hs := append(front[:0], cb.via.build(out, transport, t.loopHash, nil))
	if t.rr {
		hs = append(hs, cb.rr.build(out, t.rrParams))
		if t.doubleRR(out) {
			hs = append(hs, new(rrBlock).build(t.p.pickListenerFor(t.upstream.Transport, t.upstream.Addr.Addr()), t.rrParams))
		}
	}
	if !prependInRoom(&cb.req.MessageData, cb.order[:], hs) {
		cb.req.PrependHeader(hs...)
	}
}

// doubleRR reports whether a branch through out needs two Record-Routes:
// the two sides of the proxy differ in transport or address family (RFC
// 5658), so each side must see the address that faces it.
func (t *Transaction) doubleRR(out *listener) bool {
	in := t.p.pickListenerFor(t.upstream.Transport, t.upstream.Addr.Addr())
	return in != nil && in != out
}

// sendCancel sends a CANCEL for a branch (§9.1): same Request-URI,
// Call-ID, From, To, CSeq number, Route set and top Via as the branch's
// INVITE, in a client transaction of its own; the INVITE's transaction is
// told, so it waits 64*T1 for the final reply.
func (p *Proxy) sendCancel(inv *sip.Request, invTx *cliTx, reason string, hdrs ...sip.Header) {
	c := p.cancelRequest(inv, reason, hdrs)
	defer releaseReq(c) // its transaction holds its own
	tx, err := p.newCliTx(c, wire{}, invTx.dest, nil)
	if err != nil {
		p.stats.sendFailures.Add(1)
		p.log.Info("CANCEL not sent", "callid", callID(inv), "error", err)
		return
	}
	p.stats.cancelsSent.Add(1)
	// Told before the CANCEL leaves: the callee's answer to it (and a
	// test's clock) may come before this goroutine runs again, and the
	// INVITE's 64*T1 wait must be armed by then.
	invTx.cancelSent()
	tx.start(true)
	if testHookCancelSent != nil {
		testHookCancelSent()
	}
}

// testHookCancelSent, set by tests only, runs after a CANCEL went out.
var testHookCancelSent func()

// cancelRequest builds the CANCEL of a branch's INVITE (§9.1): the
// INVITE's Request-URI, top Via, Route set, From, To, Call-ID and CSeq
// number, then the Reason and the configured and given headers.
func (p *Proxy) cancelRequest(inv *sip.Request, reason string, hdrs []sip.Header) *sip.Request {
	d := newDerived(sip.CANCEL, inv)
	if v := inv.Via(); v != nil {
		d.req.AppendHeader(v)
	}
	d.routes(inv)
	d.maxForwards()
	// The typed accessors, not GetHeader by name: a lower-casing and a
	// scan of the list per header.
	if h := inv.From(); h != nil {
		d.req.AppendHeader(h)
	}
	if h := inv.To(); h != nil {
		d.req.AppendHeader(h)
	}
	if h := inv.CallID(); h != nil {
		d.req.AppendHeader(h)
	}
	d.cseqOf(inv)
	if reason != "" {
		d.req.AppendHeader(sip.NewHeader("Reason", reason))
	}
	for _, h := range p.cancelHdrs {
		d.req.AppendHeader(h)
	}
	for _, h := range hdrs {
		d.req.AppendHeader(h)
	}
	return d.end()
}

// shallowClone copies req for changes that add, remove or replace headers
// and set the Request-URI: the header values themselves are shared (the
// Request-URI's parameter lists are copied into the clone's block). Routers,
// middleware and branch hooks follow that rule (BranchHook); a deep clone
// per transaction and per branch was a tenth of the allocations per call.
func shallowClone(req *sip.Request) *sip.Request { return &shallowCloneTo(req, &req.Recipient).req }

// cloneBlock is a shallow clone with room for its Request-URI's
// parameters and its header list, cloneFront slots of which are kept free
// on top for our Via and Record-Routes (prependOurs): one allocation
// where sip.NewRequest, its header list and PrependHeader's copy made four.
type cloneBlock struct {
	req   sip.Request
	ukv   [2]sip.HeaderKV
	order [cloneHeaders]sip.Header
	// base is the received request's block whose headers the clone
	// shares, nil when it has none; the clone holds a reference on it.
	// ref is the clone's own tag and count (msgblock.go): its creator
	// holds the first reference.
	base *reqBlock
	ref  blockRef
	// via is a branch's Via (prependOurs): it lives as long as the
	// request it is on, and the CANCEL and ACK built from it.
	via ourViaBlock
	// rr is the room of a branch's (first) Record-Route, as via.
	rr rrBlock
	// route is what the router is handed for the transaction's template
	// (routeReq): valid as long as the template, as Router says.
	route Request
}

// rrBlock is our Record-Route with room for its usual parameters
// (transport, lr and one of the dialog's, e.g. did).
type rrBlock struct {
	h  sip.RecordRouteHeader
	kv [3]sip.HeaderKV
}

const (
	cloneFront   = 3  // our Via and up to two Record-Routes (RFC 5658)
	cloneHeaders = 20 // with the rooms, the block in the 1536-byte size class
)

// shallowCloneTo is shallowClone with ruri as the Request-URI (a branch's
// target: its parameter lists are copied once, not the template's first).
func shallowCloneTo(req *sip.Request, ruri *sip.Uri) *cloneBlock {
	base := reqHead(req)
	var b *cloneBlock
	if pooledClone(base) {
		b = cloneBlocks.Get().(*cloneBlock)
	} else {
		b = new(cloneBlock)
	}
	if base != nil {
		base.ref.refs.Add(1)
		b.base = base
	}
	c := &b.req
	initMessageData(&c.MessageData, b.order[cloneFront:])
	b.ref.tagOf(&c.MessageData)
	c.Method = req.Method
	c.Recipient = *ruri
	if ruri.UriParams != nil {
		c.Recipient.UriParams = append(b.ukv[:0], ruri.UriParams...)
	}
	if ruri.Headers != nil {
		c.Recipient.Headers = slices.Clone(ruri.Headers)
	}
	c.SipVersion = req.SipVersion
	for _, h := range req.Headers() {
		c.AppendHeader(h)
	}
	if b := req.Body(); b != nil {
		c.SetBody(b)
	}
	c.SetTransport(req.Transport())
	c.SetSource(req.Source())
	return b
}

// guard keeps a panicking hook from taking the process down: the hook's
// work is lost and logged, the transaction goes on with the default.
func (p *Proxy) guard(module, hook string, t *Transaction) {
	if r := recover(); r != nil {
		p.log.Error("panic in a tm hook", "module", module, "hook", hook, "callid", t.callID(), "panic", r,
			"stack", string(debug.Stack()))
	}
}

// branchHook runs a branch hook; a panic drops the branch.
func (p *Proxy) branchHook(h hook[BranchHook], t *Transaction, b *Branch) (send bool) {
	defer p.guard(h.module, "branch", t)
	return h.h.OnBranch(t, b)
}

// replyHook runs a reply hook; a panic relays the reply as usual.
func (p *Proxy) replyHook(h hook[ReplyHook], t *Transaction, i int, res *sip.Response) (relay bool) {
	relay = true
	defer p.guard(h.module, "reply", t)
	return h.h.OnReply(t, i, res)
}

// failureHook runs a failure hook; a panic adds no branch.
func (p *Proxy) failureHook(h hook[FailureHook], t *Transaction, best *sip.Response) []Target {
	defer p.guard(h.module, "failure", t)
	return h.h.OnFailure(t, best)
}

// observeStray runs a StrayObserver; a panic is logged, the response still
// relayed.
func (p *Proxy) observeStray(module string, so StrayObserver, res *sip.Response) {
	p.observeLocal(module, "stray", callID(res), func() { so.OnStrayResponse(res) })
}

// observeLocal runs one call of an observer outside any transaction; a
// panic costs that call only.
func (p *Proxy) observeLocal(module, hook, callid string, f func()) {
	defer func() {
		if r := recover(); r != nil {
			p.log.Error("panic in a tm hook", "module", module, "hook", hook, "callid", callid, "panic", r,
				"stack", string(debug.Stack()))
		}
	}()
	f()
}

// observe runs one observer call; a panic costs that call only.
func (p *Proxy) observe(module string, t *Transaction, f func()) {
	defer p.guard(module, "observer", t)
	f()
}

package tm

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/emiago/sipgo/sip"
)

// localOwner reports a local request's final reply to its callback.
type localOwner struct {
	onFinal func(*sip.Response, error)
	desc    string
	// inv is set for an INVITE: we are its UAC core, so its 2xx, and every
	// repeat of it, is ACKed here (RFC 3261 §13.2.2.4); the ACK of a
	// non-2xx is the transaction's (§17.1.1.3).
	inv *localInvite
}

func (o localOwner) onResponse(c *cliTx, res *sip.Response, retrans bool) {
	if o.inv != nil && res.StatusCode >= 200 {
		o.inv.p.locals.done(o.inv)
	}
	if o.inv != nil && res.StatusCode >= 200 && res.StatusCode < 300 {
		o.inv.ack(res)
		if !retrans && o.inv.abandoned.Load() {
			o.inv.bye(res)
		}
	}
	if res.StatusCode >= 200 && !retrans {
		// Whoever sent the request may keep its reply: never given back
		// (msgblock.go).
		retainRes(res)
		o.onFinal(res, nil)
	}
}

func (o localOwner) onFailure(c *cliTx, code int, err error) {
	if o.inv != nil {
		o.inv.p.locals.done(o.inv)
	}
	o.onFinal(nil, fmt.Errorf("tm: %s: %w", o.desc, err))
}

// localInvite is what the ACK (and the BYE) of a local INVITE's 2xx is
// built from.
type localInvite struct {
	p   *Proxy
	req *sip.Request
	dst string
	// from is the listener the INVITE left from when one was named
	// (SendRequestFrom): its ACK and BYE leave from it too.
	from *listener
	// abandoned: whoever sent it stopped waiting (SendRequest's context),
	// or an operator cancelled it (CancelLocalInvite): a 2xx crossing our
	// CANCEL gets ACK and BYE, as nobody holds the session.
	abandoned atomic.Bool
	// c is its client transaction; final is set (under localInvites.mu)
	// once it has its final reply.
	c     *cliTx
	final bool
}

// localInvites are the local INVITEs waiting for their final reply, by
// Call-ID and CSeq number: what t_uac_cancel names one by.
type localInvites struct {
	mu sync.Mutex
	m  map[localKey]*localInvite
}

type localKey struct {
	callID string
	cseq   uint32
}

func keyOf(req *sip.Request) localKey {
	k := localKey{callID: callID(req)}
	if cs := req.CSeq(); cs != nil {
		k.cseq = cs.SeqNo
	}
	return k
}

// add registers an INVITE just sent, unless its final reply came first.
func (l *localInvites) add(inv *localInvite) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if inv.final {
		return
	}
	if l.m == nil {
		l.m = make(map[localKey]*localInvite)
	}
	l.m[keyOf(inv.req)] = inv
}

// done forgets an INVITE that has its final reply (or never will).
func (l *localInvites) done(inv *localInvite) {
	l.mu.Lock()
	defer l.mu.Unlock()
	inv.final = true
	k := keyOf(inv.req)
	if l.m[k] == inv {
		delete(l.m, k)
	}
}

func (l *localInvites) get(k localKey) *localInvite {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.m[k]
}

// ErrNotPending: no INVITE of that Call-ID and CSeq waits for its final
// reply.
var ErrNotPending = errors.New("no pending INVITE")

// CancelLocalInvite cancels an INVITE the proxy sent itself (Send,
// SendRequest: OpenSIPS t_uac_dlg) that has no final reply yet, named by
// Call-ID and CSeq number (t_uac_cancel): a CANCEL with reason (a Reason
// header value, or none) goes out, and the INVITE's final reply (487)
// goes to whoever sent it. A 2xx that crosses the CANCEL is ACKed and
// ended with BYE. ErrNotPending when no such INVITE waits.
func (p *Proxy) CancelLocalInvite(callID string, cseq uint32, reason string) error {
	inv := p.locals.get(localKey{callID: callID, cseq: cseq})
	if inv == nil || !inv.c.pending() {
		return fmt.Errorf("tm: Call-ID %q, CSeq %d: %w", callID, cseq, ErrNotPending)
	}
	inv.abandoned.Store(true)
	p.sendCancel(inv.req, inv.c, reason)
	return nil
}

// dialogRoute is where requests within the dialog of a 2xx go: within a
// dialog already (a re-INVITE), the INVITE's Request-URI and route set;
// for an INVITE that makes one, the 2xx's Contact along its Record-Route
// reversed (§12.1.2).
func (l *localInvite) dialogRoute(res *sip.Response) (sip.Uri, []sip.Header) {
	req := l.req
	if to := req.To(); to != nil && Tag(to.Params) != "" {
		return req.Recipient, req.GetHeaders("Route")
	}
	target := req.Recipient
	if c := res.Contact(); c != nil {
		target = c.Address
	}
	var route []sip.Header
	rr := res.GetHeaders("Record-Route")
	for i := len(rr) - 1; i >= 0; i-- {
		if h, ok := rr[i].(*sip.RecordRouteHeader); ok {
			route = append(route, &sip.RouteHeader{Address: h.Address})
		}
	}
	return target, route
}

// inDialog starts a request within the dialog of a 2xx: target, route set,
// From, the 2xx's To, Call-ID, CSeq.
func (l *localInvite) inDialog(method sip.RequestMethod, res *sip.Response, cseq uint32) *sip.Request {
	req := l.req
	target, route := l.dialogRoute(res)
	out := sip.NewRequest(method, *target.Clone())
	for _, h := range route {
		out.AppendHeader(sip.HeaderClone(h))
	}
	for _, h := range []sip.Header{req.From(), res.To(), req.CallID()} {
		if h != nil {
			out.AppendHeader(sip.HeaderClone(h))
		}
	}
	out.AppendHeader(&sip.CSeqHeader{SeqNo: cseq, MethodName: method})
	setMaxForwards(out, 70)
	return out
}

// ack sends the ACK of a 2xx (§13.2.2.4), end to end, with the INVITE's
// CSeq number. Built again for each repeat of the 2xx: its Via branch
// comes from the request, so the repeats are one ACK.
func (l *localInvite) ack(res *sip.Response) {
	ack := l.inDialog(sip.ACK, res, l.req.CSeq().SeqNo)
	ack.SetBody(nil)
	if err := l.p.forwardStateless(ack, computeLoopHash(ack), l.dst, l.from); err != nil {
		l.p.log.Info("ACK of a local INVITE's 2xx not sent", "callid", callID(l.req), "error", err)
		return
	}
	l.p.localRequest(ack) // with our Via: forwardStateless adds it in place
}

// bye ends the session of a 2xx nobody waits for any more (§15).
func (l *localInvite) bye(res *sip.Response) {
	bye := l.inDialog(sip.BYE, res, l.req.CSeq().SeqNo+1)
	bye.AppendHeader(sip.NewHeader("Reason", `SIP;cause=487;text="request abandoned"`))
	bye.SetBody(nil)
	if _, _, err := l.p.sendLocal(bye, l.dst, l.from, nil); err != nil {
		l.p.log.Info("BYE of an abandoned local INVITE's 2xx not sent", "callid", callID(l.req), "error", err)
	}
}

// Send implements Sender: req goes out in a client transaction of its own
// (t_uac_dlg) with our Via, to dst when set ("udp:host:port") or else by its
// Route set or Request-URI. onFinal is called once with the final reply, or
// with an error when none came (Timer F: 64*T1, or fr_timeout for an
// INVITE) or the request could not be sent. No goroutine waits for it. We
// are the UAC core of a local INVITE: its 2xx is ACKed here.
func (p *Proxy) Send(req *sip.Request, dst string, onFinal func(*sip.Response, error)) error {
	_, _, err := p.sendLocal(req, dst, nil, onFinal)
	return err
}

func (p *Proxy) sendLocal(req *sip.Request, dst string, from *listener, onFinal func(*sip.Response, error)) (*cliTx, *localInvite, error) {
	if onFinal == nil {
		onFinal = func(*sip.Response, error) {}
	}
	if err := checkLocal(req); err != nil {
		return nil, nil, err
	}
	if req.MaxForwards() == nil {
		setMaxForwards(req, 70)
	}
	if req.ContentLength() == nil {
		req.SetBody(req.Body())
	}
	h, err := routeOut(req, dst)
	if err != nil {
		return nil, nil, err
	}
	l, err := p.listenerOut(h, from)
	if err != nil {
		return nil, nil, fmt.Errorf("tm: %s: %w", req.Method, err)
	}
	req.PrependHeader(newBranchVia(l, h.transport, computeLoopHash(req), nil))
	d, err := p.destOf(h, l)
	if err != nil {
		return nil, nil, fmt.Errorf("tm: %s: %w", req.Method, err)
	}
	desc := fmt.Sprintf("%s to %s", req.Method, d.Addr)
	var once onceFinal
	owner := localOwner{onFinal: once.wrap(onFinal), desc: desc}
	if req.IsInvite() {
		owner.inv = &localInvite{p: p, req: req, dst: dst, from: from}
	}
	c, err := p.newCliTx(req, wire{}, d, owner)
	if err != nil {
		p.stats.sendFailures.Add(1)
		return nil, nil, fmt.Errorf("tm: %s: %w", desc, err)
	}
	p.stats.localRequests.Add(1)
	// Registered before it is sent: the callee may answer, and a CANCEL
	// be asked for, before start returns.
	if owner.inv != nil {
		owner.inv.c = c
		p.locals.add(owner.inv)
	}
	c.start(true)
	return c, owner.inv, nil
}

// onceFinal makes sure a callback runs once: a transport error after the
// final reply must not call it again.
type onceFinal struct{ done atomic.Bool }

func (o *onceFinal) wrap(f func(*sip.Response, error)) func(*sip.Response, error) {
	return func(res *sip.Response, err error) {
		if o.done.Swap(true) {
			return
		}
		f(res, err)
	}
}

// SendRequest is Send waiting for the final reply, or for ctx or
// LocalTimeout to end (an error wrapping context.DeadlineExceeded).
func (p *Proxy) SendRequest(ctx context.Context, req *sip.Request, dst string) (*sip.Response, error) {
	return p.SendRequestFrom(ctx, req, dst, "")
}

// SendRequestFrom is SendRequest from the listening socket named
// "transport:ip:port" (OpenSIPS t_uac_dlg's socket): the request, its
// CANCEL, and the ACK and BYE tm sends for a local INVITE leave from it
// and carry its address in Via. "" picks the listener as SendRequest does.
// A socket that is not one, none of the proxy's listeners, or not of the
// next hop's transport, is an error wrapping ErrNoSocket; nothing is sent.
func (p *Proxy) SendRequestFrom(ctx context.Context, req *sip.Request, dst, socket string) (*sip.Response, error) {
	var from *listener
	if socket != "" {
		var err error
		if from, err = p.socketListener(socket); err != nil {
			return nil, fmt.Errorf("tm: %w", err)
		}
	}
	type result struct {
		res *sip.Response
		err error
	}
	ch := make(chan result, 1)
	c, inv, err := p.sendLocal(req, dst, from, func(res *sip.Response, err error) { ch <- result{res, err} })
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, p.cfg.LocalTimeout)
	defer cancel()
	select {
	case r := <-ch:
		return r.res, r.err
	case <-ctx.Done():
		if inv != nil {
			// Nobody will take the session: CANCEL the INVITE (§9.1), and
			// end with ACK and BYE a 2xx that crosses the CANCEL.
			inv.abandoned.Store(true)
			if c.pending() {
				p.sendCancel(req, c, `SIP;cause=487;text="request abandoned"`)
			}
		}
		return nil, fmt.Errorf("tm: %s: no final reply: %w", req.Method, ctx.Err())
	}
}

func checkLocal(req *sip.Request) error {
	if req.IsAck() {
		return errors.New("tm: ACK has no transaction; use ForwardStateless")
	}
	if req.CallID() == nil || req.CSeq() == nil || req.From() == nil || req.To() == nil {
		return errors.New("tm: local request needs Call-ID, CSeq, From and To")
	}
	return nil
}

// ForwardStateless relays a request without a transaction, as the proxy
// does with an ACK for a 2xx: it gets our Via with a branch derived from
// the request, a decremented Max-Forwards, and goes to dst or along its
// Route set / Request-URI.
func (p *Proxy) ForwardStateless(req *sip.Request, dst string) error {
	return p.forwardStateless(req, computeLoopHash(req), dst, nil)
}

// Replicate sends a copy of the transaction's request to uri (OpenSIPS
// t_replicate), e.g. a REGISTER to a second registrar or a MESSAGE to a
// recorder: the request as the router sees it (a Route of ours consumed),
// its Request-URI kept, Max-Forwards one less, our Via over the caller's,
// in a client transaction of its own that goes to the hop uri names (its
// transport parameter, else UDP; its port, else 5060). What comes back
// stays here: the caller hears only of the transaction's own branches or
// local reply. A replicated INVITE a 2xx answers is ended at once (ACK,
// BYE): nobody takes that session.
func (t *Transaction) Replicate(uri string) error {
	var u sip.Uri
	if err := sip.ParseUri(uri, &u); err != nil {
		return fmt.Errorf("tm: replicate to %q: %w", uri, err)
	}
	h, err := uriHop(&u)
	if err != nil {
		return fmt.Errorf("tm: replicate to %q: %w", uri, err)
	}
	tmpl, orig := t.hold()
	if tmpl == nil {
		return fmt.Errorf("tm: replicate to %q: %w", uri, ErrFinalSent)
	}
	// Its own header list: the template stays as it is. Its first
	// reference is never given back (a local request's holders are not
	// counted), so it and the block it shares headers with go to the
	// collector.
	c := shallowClone(tmpl)
	t.unhold(tmpl, orig)
	setMaxForwards(c, nextMaxForwards(c))
	_, inv, err := t.p.sendLocal(c, strings.ToLower(h.transport)+":"+h.addr(), nil, nil)
	if err != nil {
		return fmt.Errorf("tm: replicate to %q: %w", uri, err)
	}
	if inv != nil {
		inv.abandoned.Store(true)
	}
	t.p.stats.replicated.Add(1)
	return nil
}

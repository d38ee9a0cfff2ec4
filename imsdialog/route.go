package imsdialog

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"
	"weak"

	"github.com/emiago/sipgo/sip"

	"github.com/imsdlg/imsdlg/dlgout"
	"github.com/imsdlg/imsdlg/spiral"
	"github.com/imsdlg/imsdlg/tm"
)

// middleware is the dialog work around the routers after it.
func (m *Manager) middleware(next tm.Router) tm.Router {
	return tm.RouterFunc(func(r *tm.Request) tm.Decision {
		if r.Method == sip.INVITE && r.Initial {
			return m.routeInitial(next, r)
		}
		if !r.Initial {
			if d, fromCaller := m.match(r); d != nil {
				if dec, ok := m.onRequestWithin(d, r, fromCaller); ok {
					return dec
				}
			}
		}
		return next.Route(r)
	})
}

// IsKnown tells whether a request belongs to a dialog we hold
// (is_known_dlg).
func (m *Manager) IsKnown(r *tm.Request) bool {
	if r.Initial {
		return Current(r.Tx) != nil
	}
	d, _ := m.match(r)
	return d != nil
}

// The directions of a request within a dialog ($DLG_dir).
const (
	DirDownstream = "downstream" // sent by the caller
	DirUpstream   = "upstream"   // sent by the callee
)

// Direction tells which party sent a request within a dialog (OpenSIPS
// $DLG_dir) to the router: DirDownstream from the caller, DirUpstream from
// a callee; "" for an initial request or one of no dialog we hold. It reads
// what the dialog middleware found for the request's transaction; an ACK,
// which has none, is matched again. (A request the dialog sends to its
// leg itself, without Route, never reaches the router.)
func (m *Manager) Direction(r *tm.Request) string {
	if r.Initial {
		return ""
	}
	if r.Tx != nil {
		return DirectionOf(r.Tx)
	}
	d, fromCaller := m.match(r) // an ACK
	if d == nil {
		return ""
	}
	return direction(fromCaller)
}

// DirectionOf is Direction for the hooks that get the transaction (a
// branch or reply hook) of a request within a dialog.
func DirectionOf(t *tm.Transaction) string {
	if t == nil {
		return ""
	}
	b, ok := bindingOf(t)
	if !ok || b.initial {
		return ""
	}
	return direction(b.fromCaller)
}

func direction(fromCaller bool) string {
	if fromCaller {
		return DirDownstream
	}
	return DirUpstream
}

// match finds the dialog of a request within a dialog (dlg_match_mode).
func (m *Manager) match(r *tm.Request) (d *Dialog, fromCaller bool) {
	return m.matchMode(r, m.cfg.MatchMode)
}

// MatchDialog finds the dialog of a request within a dialog the way mode
// says (OpenSIPS match_dialog with its dlg_match_mode: MatchDIDOnly,
// MatchDIDFallback, MatchDIDNone), whatever dialog.dlg_match_mode is: for
// a router that matches a bogus request (no Route of ours) by Call-ID and
// tags, or only trusts the did cookie. nil when none matches or mode is
// not one of them.
func (m *Manager) MatchDialog(r *tm.Request, mode int) *Dialog {
	if r.Initial || mode < MatchDIDOnly || mode > MatchDIDNone {
		return nil
	}
	d, _ := m.matchMode(r, mode)
	return d
}

func (m *Manager) matchMode(r *tm.Request, mode int) (d *Dialog, fromCaller bool) {
	callID := r.CallID().Value()
	fromTag := tm.Tag(r.From().Params)
	toTag := tm.Tag(r.To().Params)
	if mode != MatchDIDNone {
		if v, ok := tm.Param(r.RouteParams, m.cfg.RRParam); ok {
			if e, id, ok := parseDID(v); ok {
				// The cookie names the dialog; the Call-ID guards against a
				// forged or stale one.
				if d := m.Lookup(e, id); d != nil && d.CallID == callID {
					return d, fromTag == d.FromTag
				}
			}
		}
		if mode == MatchDIDOnly {
			return nil, false
		}
	}
	return m.byTags(callID, fromTag, toTag)
}

// byTags finds a dialog by Call-ID and the tags of a message within it,
// in either direction (fromCaller: the From tag is the caller's).
func (m *Manager) byTags(callID, fromTag, toTag string) (d *Dialog, fromCaller bool) {
	for _, d := range m.byCallID(callID) {
		if d.matchTags(fromTag, toTag) {
			return d, true
		}
		if d.matchTags(toTag, fromTag) {
			return d, false
		}
	}
	return nil, false
}

// onRequestWithin feeds a request within the dialog to its cell. A request
// that does not follow the route set (no Route left after ours, and a
// Request-URI that is not the remote target: a UA that ignores
// Record-Route sends its ACK and BYE to the AOR) is sent to the leg of the
// dialog here, ok true: never forked again through the location service.
func (m *Manager) onRequestWithin(d *Dialog, r *tm.Request, fromCaller bool) (tm.Decision, bool) {
	req := Request{Method: string(r.Method), CSeq: r.CSeq().SeqNo, FromCaller: fromCaller,
		FromTag: tm.Tag(r.From().Params), ToTag: tm.Tag(r.To().Params), SDP: sdpOf(r.Request)}
	var (
		target sip.Uri
		route  []sip.Uri
		dst    string
		ok     bool
	)
	if req.Method == "INVITE" || req.Method == "UPDATE" {
		// A target refresh (RFC 3261 §12.2.2): the sender's new Contact.
		if c := r.Contact(); c != nil {
			req.Contact = &c.Address
		}
	}
	d.mu.Lock()
	var bad *InvalidRequestError
	if m.validate != ValidateOff {
		bad = d.cell.Validate(within(r, fromCaller), r.Sender.IsOurURI)
	}
	shift := d.cell.Shift(fromCaller, req.FromTag, req.ToTag)
	noRoute := tm.TopRoute(r.Request) == nil
	if noRoute || bad != nil {
		target, route, dst, ok = d.cell.Target(fromCaller, req.ToTag)
	}
	d.mu.Unlock()
	fix := false
	if bad != nil {
		m.stats.invalid(bad.Check)
		// A peer can send these at will: one line a second (the counters
		// have every one).
		if sup, ok := m.invalidLog.Allow(); ok {
			m.log.Warn("request does not fit its dialog", "callid", d.CallID, "did", d.did, "method", req.Method,
				"check", bad.Check.String(), "detail", bad.Detail, "source", r.Source, "mode", m.validate,
				"not_logged_since_last", sup)
		}
		switch {
		case m.validate == ValidateReject, m.validate == ValidateFix && (bad.Check == CheckCSeq || !ok):
			// Refused before the dialog sees it: a forged BYE ends nothing.
			return bad.reject(), true
		case m.validate == ValidateFix:
			fix = true
		}
	}
	if r.Tx != nil {
		r.Tx.SetValue(dialogKey{}, bindValue(d, fromCaller))
	}
	if shift != 0 {
		// r.Request is the template of every branch (an ACK: the message
		// itself); the replies are built from, or restored to, the request
		// as received (tm).
		shiftCSeq(r.Request, shift)
	}
	m.step(d, Event{Kind: EvRequest, Request: req}, CallbackParams{Request: r.Request, FromCaller: fromCaller})
	if fix {
		m.log.Info("request within the dialog sent along the dialog's route (fix_route_dialog)", "callid", d.CallID, "did", d.did,
			"method", req.Method, "target", target.String())
		return fixRoute(r, target, route, dst), true
	}
	if !noRoute || !ok || sameTarget(&r.Recipient, &target) {
		return tm.Decision{}, false
	}
	r.Recipient = *target.Clone()
	for i := len(route) - 1; i >= 0; i-- {
		r.PrependHeader(&sip.RouteHeader{Address: *route[i].Clone()})
	}
	if m.debug() {
		m.log.Debug("request within the dialog sent to its leg", "callid", d.CallID, "did", d.did,
			"method", req.Method, "target", r.Recipient.String())
	}
	return tm.Decision{Kind: tm.Relay, Dst: dst}, true
}

// shiftCSeq raises a request's CSeq number by the requests the dialog put
// into that direction itself (dlgout.Leg.Shift); tm gives the replies the
// client's number back. It replaces the header: the request as received
// keeps its own.
func shiftCSeq(req *sip.Request, shift uint32) {
	cs := req.CSeq()
	if cs == nil || uint64(cs.SeqNo)+uint64(shift) > 1<<32-1 {
		return
	}
	req.ReplaceHeader(&sip.CSeqHeader{SeqNo: cs.SeqNo + shift, MethodName: cs.MethodName})
}

// sdpOf returns a message's session description: its body when the
// Content-Type is application/sdp (parameters and case aside); nil for
// none, another type or a multipart body.
func sdpOf(m interface {
	Body() []byte
	ContentType() *sip.ContentTypeHeader
}) []byte {
	body := m.Body()
	if len(body) == 0 {
		return nil
	}
	ct := m.ContentType()
	if ct == nil {
		return nil
	}
	v := ct.Value()
	if i := strings.IndexByte(v, ';'); i >= 0 {
		v = v[:i]
	}
	if !strings.EqualFold(strings.TrimSpace(v), "application/sdp") {
		return nil
	}
	return body
}

func (m *Manager) routeInitial(next tm.Router, r *tm.Request) tm.Decision {
	if m.cfg.DetectSpirals {
		d, v := m.spiralOf(r)
		if v == spiral.Retransmission {
			// The INVITE that created a dialog, again, after its server
			// transaction ended: it was handled; a second call would be a
			// duplicate.
			m.log.Info("late INVITE retransmission dropped", "callid", d.CallID, "did", d.did)
			return tm.Decision{Kind: tm.Drop}
		}
		if d != nil {
			dec := next.Route(r)
			if dec.Kind == tm.Relay {
				m.recordRoute(&dec, d)
			}
			m.stats.spiraled.Add(1)
			m.log.Info("dialog spiraled", "callid", d.CallID, "did", d.did)
			m.step(d, Event{Kind: EvSpiral}, CallbackParams{Request: r.Request, FromCaller: true})
			return dec
		}
	}
	dec := next.Route(r)
	if dec.Kind != tm.Relay || r.Tx == nil {
		return dec
	}
	if !m.cfg.Enable && r.Tx.Value(createKey{}) == nil {
		return dec
	}
	d := m.newDialog(r)
	r.Tx.SetValue(dialogKey{}, d)
	m.recordRoute(&dec, d)
	if m.limiter == nil || !m.limiter.HasLimits() {
		return m.startNow(d, r, dec, false)
	}
	if il, ok := m.limiter.(InlineLimiter); ok && il.AdmitsInline() {
		// A Call of its own here: the one the goroutine below captures
		// lives on the heap, and this path is every call's.
		if rej := m.limiter.Admit(m.ctx, callOf(d, r)); rej != nil {
			r.Tx.SetValue(dialogKey{}, nil) // never a dialog
			return rejectDecision(rej)
		}
		return m.startNow(d, r, dec, true)
	}
	// The limit check may wait on Redis: not on tm's request path.
	d.pending = &dec
	inv, tx := r.Request, r.Tx
	call := callOf(d, r)
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		m.admitted(d, tx, inv, m.limiter.Admit(m.ctx, call))
	}()
	return tm.Decision{Kind: tm.Defer}
}

// callOf is what the call limiter is asked about a new dialog.
func callOf(d *Dialog, r *tm.Request) Call {
	return Call{DID: d.did, CallID: d.CallID, From: r.From().Address, To: r.To().Address, RURI: r.Recipient, Source: r.Source}
}

// startNow starts a dialog on tm's request path, unless its INVITE ended
// meanwhile: the caller's CANCEL, handled on another reader, may get its
// 487 while the route runs, and its outcome then either came before the
// dialog was bound to the transaction (FinalCode says so) or found it not
// started (abandoned). Either way there is no call: no dialog, and a count
// taken for it (counted) is given back.
func (m *Manager) startNow(d *Dialog, r *tm.Request, dec tm.Decision, counted bool) tm.Decision {
	final := r.Tx.FinalCode() != 0
	d.mu.Lock()
	if final || d.abandoned {
		d.mu.Unlock()
		r.Tx.SetValue(dialogKey{}, nil)
		if counted {
			m.limiter.Release(d.did)
		}
		return tm.Decision{Kind: tm.Drop}
	}
	acts := m.startLocked(d)
	d.mu.Unlock()
	m.run(d, acts, CallbackParams{Request: r.Request, FromCaller: true})
	releaseActions(acts)
	return dec
}

func (m *Manager) recordRoute(dec *tm.Decision, d *Dialog) {
	dec.RecordRoute = true
	if m.cfg.MatchMode == MatchDIDNone {
		// Matched by Call-ID and tags only: the cookie would be unused.
		return
	}
	dec.RecordRouteParams = append(dec.RecordRouteParams, sip.HeaderKV{K: m.cfg.RRParam, V: d.did})
}

// admitted finishes the creation of a dialog whose limits were checked.
// The INVITE's outcome cannot slip in between the check and the start: the
// observer looks at admitted under the same lock.
func (m *Manager) admitted(d *Dialog, tx *tm.Transaction, inv *sip.Request, rej *Rejection) {
	// A final reply already went upstream (the caller's CANCEL got its 487
	// while the count was taken): tm runs the outcome observer after the
	// reply leaves, so abandoned may not be set yet.
	final := tx.FinalCode() != 0
	d.mu.Lock()
	var dec tm.Decision
	if d.pending != nil {
		dec = *d.pending
	}
	abandoned := d.abandoned || final
	d.pending = nil
	var acts []Action
	if rej == nil && !abandoned {
		acts = m.startLocked(d)
	}
	d.mu.Unlock()
	switch {
	case rej != nil:
		// Never a dialog: no state, callbacks or statistics.
		tx.Decide(rejectDecision(rej))
	case abandoned:
		// The caller cancelled while the limits were checked: give the
		// count back, never keep it for a call that is gone.
		m.limiter.Release(d.did)
		tx.Decide(tm.Decision{Kind: tm.Drop})
	default:
		m.run(d, acts, CallbackParams{Request: inv, FromCaller: true})
		releaseActions(acts)
		tx.Decide(dec)
	}
}

// rejectDecision answers an INVITE its limits refused.
func rejectDecision(rej *Rejection) tm.Decision {
	hdrs := make([]sip.Header, 0, len(rej.Headers))
	for _, h := range rej.Headers {
		hdrs = append(hdrs, sip.NewHeader(h.Name, h.Value))
	}
	return tm.Reply(rej.Code, rej.Reason, hdrs...)
}

// newDialog builds the dialog an initial INVITE creates, not yet in the
// table.
func (m *Manager) newDialog(r *tm.Request) *Dialog {
	req := r.Request
	callID := req.CallID().Value()
	e, id := m.allocate(callID)
	did := makeDID(e, id)
	inv := Invite{CallID: callID, FromTag: tm.Tag(req.From().Params), CSeq: req.CSeq().SeqNo,
		From: *req.From(), To: *req.To(), Source: r.Source, Transport: r.Transport, SDP: sdpOf(req)}
	if v := req.Via(); v != nil {
		inv.ViaBranch, _ = tm.Param(v.Params, "branch")
	}
	if c := req.Contact(); c != nil {
		inv.Contact = c.Address
	}
	// Shared with the INVITE until NewCell detaches what the cell keeps
	// (a clone here was copied again there).
	for _, h := range req.GetHeaders("Record-Route") {
		if h, ok := h.(*sip.RecordRouteHeader); ok {
			inv.RecordRoute = append(inv.RecordRoute, h.Address)
		}
	}
	d := &Dialog{m: m, HEntry: e, HID: id, did: did, CallID: callID, FromTag: inv.FromTag, upBranch: inv.ViaBranch,
		sender: r.Sender, inviteTx: r.Tx}
	d.cell = NewCell(&m.cell, m.clock.Now(), did, inv, r.Sender.IsOurURI)
	if r.Tx.Value(endRacesKey{}) != nil {
		d.cell.endRaces = true
	}
	if t, ok := r.Tx.Value(createTimeoutKey{}).(time.Duration); ok {
		d.cell.timeout = t
	}
	// The cell's copies: the INVITE's text goes with its transaction.
	d.CallID, d.FromTag, d.upBranch = d.cell.callID, d.cell.fromTag, d.cell.upBranch
	return d
}

// startLocked puts an admitted dialog in the table and steps EvCreated,
// under the dialog's lock; the caller runs the actions after it.
func (m *Manager) startLocked(d *Dialog) []Action {
	d.admitted = true
	m.insert(d)
	m.stats.created.Add(1)
	// Debug: a call's one Info line is at its end ("call ended"), with
	// what an operator asks about a call.
	if m.log.Enabled(context.Background(), slog.LevelDebug) {
		if m.debug() {
			m.log.Debug("dialog created", "callid", d.CallID, "did", d.did)
		}
	}
	acts := d.cell.Step(m.clock.Now(), Event{Kind: EvCreated})
	m.timersLocked(d, acts)
	return acts
}

// spiralOf returns the dialog an initial INVITE spirals into, if any: it
// comes back with the did of a dialog of its Call-ID and From tag in the
// Route of ours tm consumed, or with another marker of ours (spiral).
func (m *Manager) spiralOf(r *tm.Request) (*Dialog, spiral.Verdict) {
	cands := m.byCallID(r.CallID().Value())
	if len(cands) == 0 {
		return nil, spiral.New
	}
	fromTag := tm.Tag(r.From().Params)
	var known []spiral.Known
	var ds []*Dialog
	routeDID, _ := tm.Param(r.RouteParams, m.cfg.RRParam)
	for _, d := range cands {
		if d.FromTag != fromTag {
			continue
		}
		ended := d.State() >= Terminated
		if routeDID != "" && routeDID == d.did {
			if ended {
				return nil, spiral.New
			}
			return d, spiral.Spiral
		}
		known = append(known, spiral.Known{DID: d.did, ViaBranch: d.upBranch, Terminated: ended})
		ds = append(ds, d)
	}
	if len(known) == 0 {
		return nil, spiral.New
	}
	mk := spiral.Marker{RRParam: m.cfg.RRParam, IsOurURI: r.Sender.IsOurURI, IsOurVia: r.Sender.IsOurVia}
	v, i := spiral.Classify(r.Request, known, mk)
	if (v == spiral.Spiral || v == spiral.Retransmission) && i >= 0 {
		return ds[i], v
	}
	return nil, spiral.New
}

// observer follows the transactions of the dialogs: the replies and the
// outcome of each dialog's INVITE, the replies within dialogs.
type observer struct{ m *Manager }

// OnReply takes the replies within a dialog; those of the dialog's INVITE
// go through the reply hook, which may keep a 2xx from the caller.
func (o observer) OnReply(t *tm.Transaction, branch int, res *sip.Response) {
	b, ok := bindingOf(t)
	if !ok || b.initial {
		return
	}
	method := ""
	if cs := res.CSeq(); cs != nil {
		method = string(cs.MethodName)
	}
	ev := Event{Kind: EvRequestReply, Method: method, Code: res.StatusCode, Request: Request{FromCaller: b.fromCaller, SDP: sdpOf(res)}}
	if res.StatusCode >= 200 && res.StatusCode < 300 && (method == "INVITE" || method == "UPDATE") {
		if c := res.Contact(); c != nil {
			ev.Request.Contact = &c.Address
		}
	}
	if ev.Request.SDP != nil || ev.Request.Contact != nil {
		ev.Request.FromTag, ev.Request.ToTag = tm.Tag(res.From().Params), tm.Tag(res.To().Params)
	}
	o.m.step(b.d, ev, CallbackParams{Response: res})
}

// On2xxRetransmission implements tm.RetransmissionObserver: the answering
// callee repeats its 2xx, so it has no ACK (EvAnswerRepeated).
func (o observer) On2xxRetransmission(t *tm.Transaction, branch int, res *sip.Response) {
	b, ok := bindingOf(t)
	if !ok || !b.initial {
		return
	}
	o.answerRepeated(b.d, res)
}

// answerRepeated tells a started dialog that the callee repeated a 2xx:
// no ACK reached it yet (EvAnswerRepeated; the cell checks that it is the
// answer, by To tag and the INVITE's CSeq).
func (o observer) answerRepeated(d *Dialog, res *sip.Response) {
	d.mu.Lock()
	started := d.admitted && !d.abandoned
	d.mu.Unlock()
	if !started {
		return
	}
	r := dlgout.Reply{ToTag: tm.Tag(res.To().Params), Code: res.StatusCode, Source: res.Source()}
	if cs := res.CSeq(); cs != nil {
		r.CSeq, r.Method = cs.SeqNo, cs.MethodName
	}
	o.m.step(d, Event{Kind: EvAnswerRepeated, Reply: r}, CallbackParams{})
}

// OnStrayResponse implements tm.StrayObserver: a 2xx of the dialog's
// INVITE repeated after its transactions ended (they stay wt_timer) is an
// answer without ACK all the same (EvAnswerRepeated), found by Call-ID
// and tags.
func (o observer) OnStrayResponse(res *sip.Response) {
	cs, from, to, cid := res.CSeq(), res.From(), res.To(), res.CallID()
	if res.StatusCode < 200 || res.StatusCode >= 300 || cs == nil || cs.MethodName != sip.INVITE ||
		from == nil || to == nil || cid == nil {
		return
	}
	// A 2xx of the INVITE carries the caller's tag in From.
	if d, fromCaller := o.m.byTags(cid.Value(), tm.Tag(from.Params), tm.Tag(to.Params)); d != nil && fromCaller {
		o.answerRepeated(d, res)
	}
}

func (o observer) OnOutcome(t *tm.Transaction, out tm.Outcome) {
	b, ok := bindingOf(t)
	if !ok || !b.initial {
		return
	}
	d := b.d
	d.mu.Lock()
	if !d.admitted {
		// Ended before its limits were checked: admitted() cleans up.
		d.abandoned = true
		d.mu.Unlock()
		return
	}
	d.mu.Unlock()
	o.m.step(d, Event{Kind: EvOutcome, Outcome: out.Kind, Code: out.Code, AfterCancel: out.AfterCancel},
		CallbackParams{Response: out.Response})
}

func (o observer) OnDone(t *tm.Transaction) {
	b, ok := bindingOf(t)
	if !ok || !b.initial {
		return
	}
	d := b.d
	d.mu.Lock()
	d.inviteTx = nil
	d.doneTx = weak.Make(t)
	started := d.admitted && !d.abandoned
	d.mu.Unlock()
	if started {
		o.m.step(d, Event{Kind: EvInviteDone}, CallbackParams{})
	}
}

// replyHook takes every reply of a dialog's INVITE: the cell decides, and
// a 2xx it answers with ActAbsorb is not relayed (tm.ReplyHook).
type replyHook struct{ m *Manager }

func (h replyHook) OnReply(t *tm.Transaction, branch int, res *sip.Response) bool {
	b, ok := bindingOf(t)
	if !ok || !b.initial {
		return true
	}
	d := b.d
	d.mu.Lock()
	if !d.admitted || d.abandoned {
		d.mu.Unlock()
		return true
	}
	rr := routeBufs.Get().(*[]sip.Uri)
	acts := d.cell.Step(h.m.clock.Now(), Event{Kind: EvReply, Branch: branch, Reply: replyFacts(res, (*rr)[:0])})
	h.m.timersLocked(d, acts)
	d.mu.Unlock()
	clear((*rr)[:cap(*rr)])
	routeBufs.Put(rr)
	h.m.run(d, acts, CallbackParams{Response: res})
	absorb := false
	for _, a := range acts {
		absorb = absorb || a.Kind == ActAbsorb
	}
	releaseActions(acts)
	return !absorb
}

// routeBufs lend replyFacts the room for a reply's Record-Route: the
// Event it goes into escapes (Cell.Step hands its Request on), and the
// cell copies what it keeps (dlgout's reversedClone), so the room is free
// again once Step returned. A reply's route set is a few URIs of 150
// bytes, one allocation per answered call without the pool.
var routeBufs = sync.Pool{New: func() any { b := make([]sip.Uri, 0, 4); return &b }}

// replyFacts reads what the dialog needs off a reply to its INVITE; its
// Record-Route goes into rr (appended, so a longer one grows its own).
func replyFacts(res *sip.Response, rr []sip.Uri) dlgout.Reply {
	r := dlgout.Reply{Code: res.StatusCode, Transport: res.Transport(), Source: res.Source(), SDP: sdpOf(res), RecordRoute: rr}
	gotTo := false
	for _, h := range res.Headers() {
		switch h := h.(type) {
		case *sip.ToHeader:
			if !gotTo {
				gotTo = true
				r.ToTag = tm.Tag(h.Params)
			}
		case *sip.CSeqHeader:
			if r.Method == "" {
				r.CSeq, r.Method = h.SeqNo, h.MethodName
			}
		case *sip.ContactHeader:
			if !r.HasContact && !h.Address.Wildcard {
				r.Contact, r.HasContact = h.Address, true
			}
		case *sip.RecordRouteHeader:
			r.RecordRoute = append(r.RecordRoute, h.Address)
		}
	}
	return r
}

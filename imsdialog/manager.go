package imsdialog

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/imsdlg/imsdlg/dlgout"
	"github.com/imsdlg/imsdlg/spiral"
	"github.com/imsdlg/imsdlg/tm"
)

// Sender is what the manager needs of the proxy to end calls: requests in
// their own transactions (BYE) and stateless ones (ACK). tm.Proxy is one.
type Sender interface {
	SendRequest(ctx context.Context, req *sip.Request, dst string) (*sip.Response, error)
	ForwardStateless(req *sip.Request, dst string) error
	IsOurAddress(host string, port int) bool
}

// CallbackFunc is a dialog callback (register_dlgcb). It runs on the
// goroutine that saw the event, without the dialog's lock.
type CallbackFunc func(d *Dialog, typ Callback, p CallbackParams)

// CallbackParams carry the message that caused the callback, when one did.
type CallbackParams struct {
	Request  *sip.Request
	Response *sip.Response
	// Direction is true when the message came from the caller.
	FromCaller bool
}

type callbackReg struct {
	types Callback
	f     CallbackFunc
}

type entry struct {
	mu     sync.Mutex
	nextID uint32
	byID   map[uint32]*Dialog
}

// Manager owns the dialogs: the sharded table, their timers, the tm hooks
// that feed their state machines and the I/O their actions ask for. It is
// a tm.Router wrapping the proxy's own router.
type Manager struct {
	cfg     Config
	inner   tm.Router
	sender  atomic.Pointer[senderBox]
	clock   tm.Clock
	log     *slog.Logger
	table   []entry
	global  atomic.Pointer[[]callbackReg]
	gmu     sync.Mutex
	stats   Stats
	innerBH tm.BranchHook
	innerRH tm.ReplyHook
	innerFH tm.FailureHook
	innerFi tm.FinalHook
	prof    atomic.Pointer[ProfileOptions]
	persist atomic.Pointer[persister]
	onState atomic.Pointer[StateFunc]
}

// StateFunc observes every state change of every dialog (the
// E_DLG_STATE_CHANGED event). It runs on the goroutine that made the
// change, without the dialog's lock, so it must not block.
type StateFunc func(d *Dialog, from, to State, at time.Time)

// OnStateChange sets the state observer; nil removes it.
func (m *Manager) OnStateChange(f StateFunc) {
	if f == nil {
		m.onState.Store(nil)
		return
	}
	m.onState.Store(&f)
}

type senderBox struct{ s Sender }

// dialogKey keys the dialog binding of a tm transaction.
type dialogKey struct{}

type binding struct {
	d       *Dialog
	initial bool // the INVITE that created the dialog (else a request within it)
}

// New builds a manager around the proxy's router. Call SetSender with the
// proxy once it exists.
func New(cfg Config, inner tm.Router, log *slog.Logger, clock tm.Clock) (*Manager, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("dialog config: %w", err)
	}
	if inner == nil {
		return nil, errors.New("imsdialog: inner router is required")
	}
	if log == nil {
		log = slog.Default()
	}
	if clock == nil {
		clock = realClock{}
	}
	m := &Manager{cfg: cfg, inner: inner, clock: clock, log: log, table: make([]entry, cfg.HashSize)}
	m.innerBH, _ = inner.(tm.BranchHook)
	m.innerRH, _ = inner.(tm.ReplyHook)
	m.innerFH, _ = inner.(tm.FailureHook)
	m.innerFi, _ = inner.(tm.FinalHook)
	empty := []callbackReg{}
	m.global.Store(&empty)
	return m, nil
}

type realClock struct{}

func (realClock) Now() time.Time                               { return time.Now() }
func (realClock) AfterFunc(d time.Duration, f func()) tm.Timer { return time.AfterFunc(d, f) }

// SetSender gives the manager the proxy it sends BYE/ACK through.
func (m *Manager) SetSender(s Sender) { m.sender.Store(&senderBox{s}) }

func (m *Manager) send() Sender {
	if b := m.sender.Load(); b != nil {
		return b.s
	}
	return nil
}

// Stats returns the dialog statistics.
func (m *Manager) Stats() *Stats { return &m.stats }

// RegisterCallback registers a global callback for the given types
// (CREATED is global by nature; the others apply to every dialog).
func (m *Manager) RegisterCallback(types Callback, f CallbackFunc) {
	m.gmu.Lock()
	defer m.gmu.Unlock()
	old := *m.global.Load()
	next := append(append([]callbackReg{}, old...), callbackReg{types, f})
	m.global.Store(&next)
}

// RegisterCallback registers a callback on this dialog only.
func (d *Dialog) RegisterCallback(types Callback, f CallbackFunc) {
	d.mu.Lock()
	d.cbs = append(d.cbs, callbackReg{types, f})
	d.mu.Unlock()
}

func hashCallID(callID string, size int) uint32 {
	h := fnv.New32a()
	h.Write([]byte(callID))
	return h.Sum32() & uint32(size-1)
}

func tagOf(p sip.HeaderParams) string {
	v, _ := p.Get("tag")
	return v
}

// create puts a new dialog in the table.
func (m *Manager) create(r *tm.Request) *Dialog {
	req := r.Request
	now := m.clock.Now()
	callID := req.CallID().Value()
	d := &Dialog{m: m, CallID: callID, FromTag: tagOf(req.From().Params)}
	if v := req.Via(); v != nil {
		d.upBranch, _ = v.Params.Get("branch")
	}
	d.fsm = NewFSM(now, m.cfg.DefaultTimeout, m.cfg.ByeTimeout)
	d.from = sip.HeaderClone(req.From()).(*sip.FromHeader)
	d.to = sip.HeaderClone(req.To()).(*sip.ToHeader)
	if c := req.Contact(); c != nil {
		d.callerTarget = *c.Address.Clone()
	}
	var rr []sip.Uri
	for _, h := range req.GetHeaders("Record-Route") {
		if h, ok := h.(*sip.RecordRouteHeader); ok {
			rr = append(rr, h.Address)
		}
	}
	// Our entry is not in the request yet: every entry is the caller's side.
	d.callerRoute = dlgout.CallerRouteSet(rr, func(sip.Uri) bool { return false })
	if len(d.callerRoute) == 0 {
		d.callerDst = strings.ToLower(r.Transport) + ":" + r.Source
	}
	d.inviteCSeq = req.CSeq().SeqNo
	d.callerCSeq = d.inviteCSeq
	d.inviteTx = r.Tx

	e := hashCallID(callID, len(m.table))
	en := &m.table[e]
	en.mu.Lock()
	en.nextID++
	if en.byID == nil {
		en.byID = make(map[uint32]*Dialog)
	}
	d.HEntry, d.HID = e, en.nextID
	d.did = makeDID(d.HEntry, d.HID)
	en.byID[d.HID] = d
	en.mu.Unlock()
	return d
}

func (m *Manager) remove(d *Dialog) {
	en := &m.table[d.HEntry]
	en.mu.Lock()
	if en.byID[d.HID] == d {
		delete(en.byID, d.HID)
	}
	en.mu.Unlock()
}

// Lookup finds a dialog by its table position (lookup_dlg).
func (m *Manager) Lookup(hEntry, hID uint32) *Dialog {
	if int(hEntry) >= len(m.table) {
		return nil
	}
	en := &m.table[hEntry]
	en.mu.Lock()
	defer en.mu.Unlock()
	return en.byID[hID]
}

// byCallID returns the dialogs of a Call-ID (they share a table entry).
func (m *Manager) byCallID(callID string) []*Dialog {
	en := &m.table[hashCallID(callID, len(m.table))]
	en.mu.Lock()
	defer en.mu.Unlock()
	var out []*Dialog
	for _, d := range en.byID {
		if d.CallID == callID {
			out = append(out, d)
		}
	}
	return out
}

// Get finds a dialog by Call-ID and tags (dlg_get); toTag may be empty
// for a dialog not answered yet. The tags may be given in either order.
func (m *Manager) Get(callID, fromTag, toTag string) *Dialog {
	for _, d := range m.byCallID(callID) {
		if d.matchTags(fromTag, toTag) || d.matchTags(toTag, fromTag) {
			return d
		}
	}
	return nil
}

func (d *Dialog) matchTags(fromTag, toTag string) bool {
	if fromTag != d.FromTag {
		return false
	}
	if toTag == "" {
		return true
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.outs.Get(toTag) != nil
}

// Dialogs returns every dialog in the table.
func (m *Manager) Dialogs() []*Dialog {
	var out []*Dialog
	for i := range m.table {
		en := &m.table[i]
		en.mu.Lock()
		for _, d := range en.byID {
			out = append(out, d)
		}
		en.mu.Unlock()
	}
	return out
}

// Current returns the dialog a transaction belongs to (get_current_dialog).
func Current(t *tm.Transaction) *Dialog {
	if t == nil {
		return nil
	}
	if b, ok := t.Value(dialogKey{}).(binding); ok {
		return b.d
	}
	return nil
}

// match finds the dialog of a request within a dialog (dlg_match_mode).
func (m *Manager) match(r *tm.Request) (d *Dialog, fromCaller bool) {
	callID := r.CallID().Value()
	fromTag := tagOf(r.From().Params)
	toTag := tagOf(r.To().Params)
	if m.cfg.MatchMode != MatchDIDNone {
		if v, ok := r.RouteParams.Get(m.cfg.RRParam); ok {
			if e, id, ok := parseDID(v); ok {
				// The cookie names the dialog; the Call-ID guards against a
				// forged or stale one.
				if d := m.Lookup(e, id); d != nil && d.CallID == callID {
					return d, fromTag == d.FromTag
				}
			}
		}
		if m.cfg.MatchMode == MatchDIDOnly {
			return nil, false
		}
	}
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

// Route implements tm.Router: the dialog work around the proxy's router.
func (m *Manager) Route(r *tm.Request) tm.Decision {
	if r.Method == sip.INVITE && r.Initial {
		return m.routeInitial(r)
	}
	if !r.Initial {
		if d, fromCaller := m.match(r); d != nil {
			m.onRequestWithin(d, r, fromCaller)
		}
	}
	return m.inner.Route(r)
}

// createKey marks a transaction whose INVITE must create a dialog.
type createKey struct{}

// CreateDialog asks for a dialog for this initial INVITE (dlg_flag /
// create_dialog): a router calls it when dialog.enable is off and only
// some calls are to be tracked.
func CreateDialog(r *tm.Request) {
	if r.Tx != nil {
		r.Tx.SetValue(createKey{}, true)
	}
}

func (m *Manager) routeInitial(r *tm.Request) tm.Decision {
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
			dec := m.inner.Route(r)
			if dec.Kind == tm.Relay {
				dec.RecordRoute = true
				dec.RecordRouteParams = append(dec.RecordRouteParams, sip.HeaderKV{K: m.cfg.RRParam, V: d.did})
			}
			m.stats.spiraled.Add(1)
			m.log.Info("dialog spiraled", "callid", d.CallID, "did", d.did)
			m.step(d, Event{Kind: EvSpiral}, CallbackParams{Request: r.Request, FromCaller: true})
			return dec
		}
	}
	dec := m.inner.Route(r)
	if dec.Kind != tm.Relay || r.Tx == nil {
		return dec
	}
	if !m.cfg.Enable && r.Tx.Value(createKey{}) == nil {
		return dec
	}
	d := m.create(r)
	if rej := m.admit(d, r); rej != nil {
		// Never a dialog: no state, callbacks or statistics.
		m.remove(d)
		return *rej
	}
	m.stats.created.Add(1)
	r.Tx.SetValue(dialogKey{}, binding{d: d, initial: true})
	dec.RecordRoute = true
	dec.RecordRouteParams = append(dec.RecordRouteParams, sip.HeaderKV{K: m.cfg.RRParam, V: d.did})
	m.log.Info("dialog created", "callid", d.CallID, "did", d.did)
	m.step(d, Event{Kind: EvCreated}, CallbackParams{Request: r.Request, FromCaller: true})
	tx := r.Tx
	go func() {
		// When the INVITE transaction ends, the legs that never answered
		// go (DESIGN §4: early legs are pruned).
		<-tx.Done()
		d.mu.Lock()
		pruned := d.outs.Prune()
		d.inviteTx = nil
		d.mu.Unlock()
		if len(pruned) > 0 {
			m.log.Debug("early legs pruned", "callid", d.CallID, "legs", len(pruned))
		}
	}()
	return dec
}

// spiralOf returns the dialog an initial INVITE spirals into, if any: it
// comes back with the did of a dialog of its Call-ID and From tag in the
// Route of ours tm consumed, or with another marker of ours (spiral).
func (m *Manager) spiralOf(r *tm.Request) (*Dialog, spiral.Verdict) {
	cands := m.byCallID(r.CallID().Value())
	if len(cands) == 0 {
		return nil, spiral.New
	}
	fromTag := tagOf(r.From().Params)
	var known []spiral.Known
	var ds []*Dialog
	for _, d := range cands {
		if d.FromTag != fromTag {
			continue
		}
		ended := d.State() >= Terminated
		if v, ok := r.RouteParams.Get(m.cfg.RRParam); ok && v == d.did {
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
	var isOurs func(string, int) bool
	if s := m.send(); s != nil {
		isOurs = s.IsOurAddress
	}
	v, i := spiral.Classify(r.Request, known, spiral.Marker{RRParam: m.cfg.RRParam, IsOurs: isOurs})
	if (v == spiral.Spiral || v == spiral.Retransmission) && i >= 0 {
		return ds[i], v
	}
	return nil, spiral.New
}

func (m *Manager) onRequestWithin(d *Dialog, r *tm.Request, fromCaller bool) {
	if r.Tx != nil {
		r.Tx.SetValue(dialogKey{}, binding{d: d})
	}
	cseq := r.CSeq().SeqNo
	d.mu.Lock()
	if r.Method == sip.ACK && cseq == d.inviteCSeq && fromCaller {
		d.mu.Unlock()
		m.step(d, Event{Kind: EvAck}, CallbackParams{Request: r.Request, FromCaller: true})
		return
	}
	if r.Method != sip.ACK {
		if fromCaller {
			d.callerCSeq = max(d.callerCSeq, cseq)
			// The leg the request goes to is its To tag: a PRACK or UPDATE
			// may reach an early leg before any answer.
			d.outs.ObserveRequest(tagOf(r.To().Params), false, cseq, string(r.Method))
		} else {
			d.outs.ObserveRequest(tagOf(r.From().Params), true, cseq, string(r.Method))
		}
	}
	if r.Method != sip.ACK && persistable(d.fsm.State) {
		// The CSeqs moved: a restored dialog must not reuse them.
		m.markDirty(d, d.fsm.State)
	}
	d.mu.Unlock()
	m.step(d, Event{Kind: EvRequest, Method: string(r.Method), FromCaller: fromCaller},
		CallbackParams{Request: r.Request, FromCaller: fromCaller})
}

// OnBranch implements tm.BranchHook by delegation.
func (m *Manager) OnBranch(t *tm.Transaction, b *tm.Branch) bool {
	if m.innerBH != nil {
		return m.innerBH.OnBranch(t, b)
	}
	return true
}

// OnFailure implements tm.FailureHook by delegation.
func (m *Manager) OnFailure(t *tm.Transaction, best *sip.Response) []tm.Target {
	if m.innerFH != nil {
		return m.innerFH.OnFailure(t, best)
	}
	return nil
}

// OnReply implements tm.ReplyHook: replies move the dialog.
func (m *Manager) OnReply(t *tm.Transaction, branch int, res *sip.Response) bool {
	if b, ok := t.Value(dialogKey{}).(binding); ok {
		if b.initial {
			m.onInviteReply(b.d, branch, res)
		} else {
			method := ""
			if cs := res.CSeq(); cs != nil {
				method = string(cs.MethodName)
			}
			m.step(b.d, Event{Kind: EvReply, Method: method, Code: res.StatusCode}, CallbackParams{Response: res})
		}
	}
	if m.innerRH != nil {
		return m.innerRH.OnReply(t, branch, res)
	}
	return true
}

func (m *Manager) onInviteReply(d *Dialog, branch int, res *sip.Response) {
	code := res.StatusCode
	d.mu.Lock()
	leg, created, err := d.outs.OnResponse(m.clock.Now(), branch, res, d.ourRR)
	var ev Event
	switch {
	case code < 200:
		if leg == nil {
			d.mu.Unlock()
			m.fire(d, CbResponseFwded, CallbackParams{Response: res})
			return
		}
		ev = Event{Kind: EvProvisional, NewLeg: created}
	case code < 300:
		if leg == nil {
			d.mu.Unlock()
			m.log.Warn("2xx without a To tag ignored by the dialog", "callid", d.CallID, "error", err)
			return
		}
		ev = Event{Kind: EvAnswered}
		if errors.Is(err, dlgout.ErrLateAnswer) {
			ev = Event{Kind: EvAnswered} // the FSM ends the leg if the call is over
			if d.fsm.State == ConfirmedNA || d.fsm.State == Confirmed {
				ev = Event{Kind: EvOtherLegAnswered}
			}
		} else if a := d.outs.Answered(); a == nil {
			d.outs.Answer(leg.ToTag)
		} else if a.ToTag != leg.ToTag {
			ev = Event{Kind: EvOtherLegAnswered}
		}
	default:
		d.mu.Unlock()
		m.fire(d, CbResponseFwded, CallbackParams{Response: res})
		return // the final outcome comes through OnFinal
	}
	legCopy := *leg
	acts := m.stepLocked(d, ev)
	d.mu.Unlock()
	m.run(d, acts, CallbackParams{Response: res}, &legCopy)
	m.fire(d, CbResponseFwded, CallbackParams{Response: res})
}

// OnFinal implements tm.FinalHook: a failed INVITE ends its dialog.
func (m *Manager) OnFinal(t *tm.Transaction, res *sip.Response, local bool) {
	if b, ok := t.Value(dialogKey{}).(binding); ok && b.initial && res.StatusCode >= 300 {
		ev := Event{Kind: EvFailed, Code: res.StatusCode}
		if local && res.StatusCode == 487 {
			ev.Kind = EvCancelled
		}
		m.step(b.d, ev, CallbackParams{Response: res})
	}
	if m.innerFi != nil {
		m.innerFi.OnFinal(t, res, local)
	}
}

// step runs one event through a dialog's machine and its actions.
func (m *Manager) step(d *Dialog, ev Event, p CallbackParams) error {
	d.mu.Lock()
	acts, err := d.fsm.Step(m.clock.Now(), ev)
	jobs := m.execLocked(d, acts)
	d.mu.Unlock()
	m.run(d, jobs, p, nil)
	return err
}

func (m *Manager) stepLocked(d *Dialog, ev Event) []job {
	acts, _ := d.fsm.Step(m.clock.Now(), ev)
	return m.execLocked(d, acts)
}

// job is an action left for after the dialog's lock, with what it needs.
type job struct {
	Action
	bye *sip.Request
	dst string
	tx  *tm.Transaction
}

// execLocked does the actions that only touch the dialog (timers,
// statistics, building BYEs) and returns those that need I/O or callbacks.
func (m *Manager) execLocked(d *Dialog, acts []Action) []job {
	var out []job
	for _, a := range acts {
		switch a.Kind {
		case ActArmTimeout:
			if d.timer != nil {
				d.timer.Stop()
			}
			d.deadline = m.clock.Now().Add(a.After)
			d.timer = m.clock.AfterFunc(a.After, func() { m.step(d, Event{Kind: EvTimeout}, CallbackParams{}) })
		case ActStopTimeout:
			if d.timer != nil {
				d.timer.Stop()
				d.timer = nil
			}
			d.deadline = time.Time{}
		case ActArmByeWait:
			if d.byeTimer != nil {
				d.byeTimer.Stop()
			}
			d.byeTimer = m.clock.AfterFunc(a.After, func() {
				// Whatever is still unanswered is given up on.
				m.step(d, Event{Kind: EvByeDone, Side: SideCaller}, CallbackParams{})
				m.step(d, Event{Kind: EvByeDone, Side: SideCallee}, CallbackParams{})
			})
		case ActStateChanged:
			m.stats.transition(a.From, a.To, d.fsm.End)
			if persistable(a.From) || persistable(a.To) {
				m.markDirty(d, a.To)
			}
			out = append(out, job{Action: a})
		case ActSendBye:
			req, dst, err := m.buildBye(d, a.Side, a.Reason, a.Headers)
			if err != nil {
				m.log.Warn("BYE not built", "callid", d.CallID, "side", sideName(a.Side), "error", err)
				// Nothing will answer it: do not wait for it.
				out = append(out, job{Action: Action{Kind: actByeDone, Side: a.Side}})
				continue
			}
			out = append(out, job{Action: a, bye: req, dst: dst})
		case ActCancelEarly:
			out = append(out, job{Action: a, tx: d.inviteTx})
		default:
			out = append(out, job{Action: a})
		}
	}
	return out
}

// actByeDone is a manager-internal action: feed EvByeDone for a BYE that
// could not be sent.
const actByeDone ActionKind = 200

// run does the I/O and callbacks of executed actions, without the lock.
func (m *Manager) run(d *Dialog, acts []job, p CallbackParams, leg *dlgout.Leg) {
	for _, a := range acts {
		switch a.Kind {
		case ActFire:
			m.fire(d, a.Callback, p)
		case ActStateChanged:
			m.log.Info("dialog state", "callid", d.CallID, "did", d.did, "from", a.From.String(), "to", a.To.String())
			if f := m.onState.Load(); f != nil {
				m.observeState(*f, d, a.From, a.To)
			}
		case ActSendBye:
			go m.sendBye(d, a.bye, a.dst, a.Side)
		case actByeDone:
			m.step(d, Event{Kind: EvByeDone, Side: a.Side}, CallbackParams{})
		case ActCancelEarly:
			if a.tx != nil {
				reason := a.Reason
				if reason == "" {
					reason = "Request Terminated"
				}
				hdrs := []sip.Header{sip.NewHeader("Reason", fmt.Sprintf("SIP ;cause=%d ;text=%q", a.Code, reason))}
				for _, l := range a.Headers {
					name, value, _ := strings.Cut(l, ":")
					hdrs = append(hdrs, sip.NewHeader(strings.TrimSpace(name), strings.TrimSpace(value)))
				}
				if err := a.tx.Reply(a.Code, reasonPhrase(a.Code), hdrs...); err != nil {
					m.log.Info("early termination: INVITE already answered", "callid", d.CallID, "error", err)
				}
			}
		case ActEndLeg:
			if leg != nil {
				m.endLeg(d, leg, a.Reason)
			}
		case ActDestroy:
			m.remove(d)
			m.releaseProfiles(d)
			d.mu.Lock()
			for _, tt := range []tm.Timer{d.timer, d.byeTimer} {
				if tt != nil {
					tt.Stop()
				}
			}
			d.mu.Unlock()
		}
	}
}

// observeState runs the state observer; a panic in it costs the event,
// not the call.
func (m *Manager) observeState(f StateFunc, d *Dialog, from, to State) {
	defer func() {
		if r := recover(); r != nil {
			m.log.Error("panic in the dialog state observer", "callid", d.CallID, "panic", r)
		}
	}()
	f(d, from, to, m.clock.Now())
}

// ToTag is the To tag of the leg that answered, "" before an answer.
func (d *Dialog) ToTag() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	if a := d.outs.Answered(); a != nil {
		return a.ToTag
	}
	return ""
}

func reasonPhrase(code int) string {
	switch code {
	case 408:
		return "Request Timeout"
	case 480:
		return "Temporarily Unavailable"
	case 486:
		return "Busy Here"
	case 487:
		return "Request Terminated"
	case 603:
		return "Decline"
	}
	return "Call Terminated"
}

func (m *Manager) fire(d *Dialog, c Callback, p CallbackParams) {
	for _, r := range *m.global.Load() {
		if r.types&c != 0 {
			m.call(r.f, d, c, p)
		}
	}
	d.mu.Lock()
	cbs := d.cbs
	d.mu.Unlock()
	for _, r := range cbs {
		if r.types&c != 0 {
			m.call(r.f, d, c, p)
		}
	}
}

// call runs one callback; a panicking callback is logged and skipped, as
// timers run callbacks on goroutines of their own.
func (m *Manager) call(f CallbackFunc, d *Dialog, c Callback, p CallbackParams) {
	defer func() {
		if r := recover(); r != nil {
			m.log.Error("panic in a dialog callback", "callid", d.CallID, "type", c.String(), "panic", r)
		}
	}()
	f(d, c, p)
}

// buildBye makes the BYE for one side of a confirmed dialog: that side's
// remote target and route set, the next CSeq of the sender it stands for,
// dlg_extra_hdrs and the Reason (DESIGN §4).
func (m *Manager) buildBye(d *Dialog, side Side, reason string, hdrs []string) (*sip.Request, string, error) {
	leg := d.outs.Answered()
	if leg == nil {
		return nil, "", errors.New("no answered leg")
	}
	var (
		target sip.Uri
		route  []sip.Uri
		from   *sip.FromHeader
		to     *sip.ToHeader
		cseq   uint32
		dst    string
		err    error
	)
	calleeTo := sip.HeaderClone(d.to).(*sip.ToHeader)
	calleeTo.Params = calleeTo.Params.Clone()
	calleeTo.Params.Remove("tag")
	calleeTo.Params.Add("tag", leg.ToTag)
	if side == SideCallee {
		target, route = leg.RemoteTarget, leg.RouteSet
		from = sip.HeaderClone(d.from).(*sip.FromHeader)
		to = calleeTo
		cseq, err = d.outs.NextCSeq(leg.ToTag, true)
		d.callerCSeq = max(d.callerCSeq, cseq)
		if len(route) == 0 && leg.Source != "" {
			dst = strings.ToLower(leg.Transport) + ":" + leg.Source
		}
	} else {
		target, route, dst = d.callerTarget, d.callerRoute, d.callerDst
		if len(route) > 0 {
			dst = ""
		}
		f := calleeTo.AsFrom()
		from = &f
		t := d.from.AsTo()
		to = &t
		cseq, err = d.outs.NextCSeq(leg.ToTag, false)
	}
	if err != nil {
		return nil, "", err
	}
	if target.Host == "" {
		return nil, "", errors.New("no remote target")
	}
	req := sip.NewRequest(sip.BYE, *target.Clone())
	for i := range route {
		req.AppendHeader(&sip.RouteHeader{Address: *route[i].Clone()})
	}
	req.AppendHeader(from)
	req.AppendHeader(to)
	cid := sip.CallIDHeader(d.CallID)
	req.AppendHeader(&cid)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: cseq, MethodName: sip.BYE})
	appendLines(req, m.cfg.ExtraHeaders)
	appendLines(req, hdrs)
	if reason != "" {
		req.AppendHeader(sip.NewHeader("Reason", fmt.Sprintf("SIP ;cause=200 ;text=%q", reason)))
	}
	req.SetBody(nil)
	return req, dst, nil
}

// appendLines adds "Name: value" header lines (validated by the caller).
func appendLines(req *sip.Request, lines []string) {
	for _, l := range lines {
		name, value, _ := strings.Cut(l, ":")
		req.AppendHeader(sip.NewHeader(strings.TrimSpace(name), strings.TrimSpace(value)))
	}
}

func (m *Manager) sendBye(d *Dialog, req *sip.Request, dst string, side Side) {
	s := m.send()
	if s != nil {
		ctx, cancel := context.WithTimeout(context.Background(), m.cfg.ByeTimeout)
		res, err := s.SendRequest(ctx, req, dst)
		cancel()
		if err != nil {
			m.log.Info("BYE failed", "callid", d.CallID, "side", sideName(side), "error", err)
		} else {
			m.log.Info("BYE answered", "callid", d.CallID, "side", sideName(side), "code", res.StatusCode)
		}
	}
	m.step(d, Event{Kind: EvByeDone, Side: side}, CallbackParams{})
}

func sideName(s Side) string {
	switch s {
	case SideCaller:
		return "caller"
	case SideCallee:
		return "callee"
	}
	return "both"
}

// endLeg ACKs and BYEs a callee leg whose 2xx came when the call was
// already answered by another leg or over (DESIGN §4, §8).
func (m *Manager) endLeg(d *Dialog, leg *dlgout.Leg, reason string) {
	m.log.Warn("ending a second answering leg", "callid", d.CallID, "to_tag", leg.ToTag, "why", reason)
	s := m.send()
	if s == nil {
		return
	}
	d.mu.Lock()
	to := sip.HeaderClone(d.to).(*sip.ToHeader)
	to.Params = to.Params.Clone()
	to.Params.Remove("tag")
	to.Params.Add("tag", leg.ToTag)
	from := sip.HeaderClone(d.from).(*sip.FromHeader)
	inviteCSeq := d.inviteCSeq
	d.mu.Unlock()
	mk := func(method sip.RequestMethod, cseq uint32) *sip.Request {
		req := sip.NewRequest(method, *leg.RemoteTarget.Clone())
		for i := range leg.RouteSet {
			req.AppendHeader(&sip.RouteHeader{Address: *leg.RouteSet[i].Clone()})
		}
		req.AppendHeader(sip.HeaderClone(from))
		req.AppendHeader(sip.HeaderClone(to))
		cid := sip.CallIDHeader(d.CallID)
		req.AppendHeader(&cid)
		req.AppendHeader(&sip.CSeqHeader{SeqNo: cseq, MethodName: method})
		mf := sip.MaxForwardsHeader(70)
		req.AppendHeader(&mf)
		req.SetBody(nil)
		return req
	}
	dst := ""
	if len(leg.RouteSet) == 0 && leg.Source != "" {
		dst = strings.ToLower(leg.Transport) + ":" + leg.Source
	}
	if err := s.ForwardStateless(mk(sip.ACK, inviteCSeq), dst); err != nil {
		m.log.Info("ACK of a second 2xx failed", "callid", d.CallID, "error", err)
	}
	bye := mk(sip.BYE, inviteCSeq+1)
	bye.AppendHeader(sip.NewHeader("Reason", fmt.Sprintf("SIP ;cause=200 ;text=%q", reason)))
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), m.cfg.ByeTimeout)
		defer cancel()
		if _, err := s.SendRequest(ctx, bye, dst); err != nil {
			m.log.Info("BYE of a second 2xx failed", "callid", d.CallID, "error", err)
		}
	}()
}

// SetTimeout changes one dialog's lifetime (the timeout_avp of the
// manual): the timer restarts with it from now.
func (m *Manager) SetTimeout(d *Dialog, timeout time.Duration) error {
	if timeout <= 0 {
		return fmt.Errorf("dialog timeout must be positive, got %v", timeout)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fsm.ended() {
		return ErrNotFound
	}
	d.fsm.Timeout = timeout
	m.execLocked(d, []Action{{Kind: ActArmTimeout, After: timeout}})
	if persistable(d.fsm.State) {
		m.markDirty(d, d.fsm.State)
	}
	return nil
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

// InfoCtx is the dlg.list_ctx view of a dialog: MI_CONTEXT callbacks run
// first, so a module can put its own context into the dialog variables.
func (m *Manager) InfoCtx(d *Dialog) Info {
	m.fire(d, CbMIContext, CallbackParams{})
	return d.Info(true)
}

// Terminate ends a dialog in any state (dlg_terminate): an early one with
// CANCEL down and a final reply up (code 0: early_terminate_code), a
// confirmed one with BYE to the chosen side(s). Both carry a Reason with
// reason and the extra headers. It returns ErrNotFound for an ended dialog.
func (m *Manager) Terminate(d *Dialog, side Side, code int, reason string, hdrs ...string) error {
	if code == 0 {
		code = m.cfg.EarlyTerminateCode
	}
	for i, h := range hdrs {
		if name, _, ok := strings.Cut(h, ":"); !ok || strings.TrimSpace(name) == "" || strings.ContainsAny(h, "\r\n") {
			return fmt.Errorf("header %d %q is not one \"Name: value\" line", i, h)
		}
	}
	return m.step(d, Event{Kind: EvTerminate, Side: side, Code: code, Reason: reason, Headers: hdrs}, CallbackParams{})
}

// TerminateDlg is terminate_dlg(callid, ftag, ttag, hdrs).
func (m *Manager) TerminateDlg(callID, fromTag, toTag string, side Side, reason string, hdrs ...string) error {
	d := m.Get(callID, fromTag, toTag)
	if d == nil {
		return ErrNotFound
	}
	return m.Terminate(d, side, 0, reason, hdrs...)
}

// LookupTerminateDlg is lookup_terminate_dlg(h_entry, h_id, hdrs).
func (m *Manager) LookupTerminateDlg(hEntry, hID uint32, side Side, reason string, hdrs ...string) error {
	d := m.Lookup(hEntry, hID)
	if d == nil {
		return ErrNotFound
	}
	return m.Terminate(d, side, 0, reason, hdrs...)
}

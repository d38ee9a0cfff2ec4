package imsdialog

import (
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/imsdlg/imsdlg/dlgout"
	"github.com/imsdlg/imsdlg/tm"
)

// CellConfig is what every cell of a manager shares: the module parameters
// its decisions depend on.
type CellConfig struct {
	// RRParam names the did cookie in our Record-Route (rr_param).
	RRParam string
	// Timeout is default_timeout.
	Timeout time.Duration
	// ByeWait bounds the wait for the replies to BYEs (bye_timeout).
	ByeWait time.Duration
	// EarlyTerminateCode answers an early dialog that is terminated.
	EarlyTerminateCode int
	// ExtraHeaders go into every BYE (dlg_extra_hdrs).
	ExtraHeaders []Header
}

// Invite is what the cell reads off the INVITE that creates it.
type Invite struct {
	CallID  string
	FromTag string
	// ViaBranch is the top Via branch as received: with Call-ID and From
	// tag it names the dialog (DESIGN §4).
	ViaBranch string
	// From and To are the caller's headers; To without a tag. The cell
	// keeps them: give it copies.
	From sip.FromHeader
	To   sip.ToHeader
	// Contact is the caller's remote target.
	Contact sip.Uri
	// RecordRoute is the INVITE's Record-Route, as received (every entry is
	// on the caller's side: ours is not there yet).
	RecordRoute []sip.Uri
	CSeq        uint32
	// Source and Transport are where the INVITE came from: the caller's hop
	// when it has no route set.
	Source, Transport string
}

// Cell is one dialog as a pure value: the life cycle (state, end reason,
// times), the caller leg (remote target, route set, CSeq), the callee legs
// (dlgout.Set), the INVITE's CSeq, variables and flags. Step takes the
// facts of one event and returns what the manager must do; the cell does no
// I/O, starts no goroutine and reads no clock. It is not safe for
// concurrent use: the manager steps it under the dialog's lock.
type Cell struct {
	cfg *CellConfig
	// ours tells our own Record-Route entries (with the did they carry);
	// nil counts every entry with our did as ours.
	ours func(*sip.Uri) bool

	did, callID, fromTag, upBranch string

	state    State
	end      EndReason
	created  time.Time
	start    time.Time // the 2xx
	ended    time.Time
	timeout  time.Duration
	deadline time.Time // of the lifetime timer; zero when none is armed

	byeCaller, byeCallee bool // a BYE of ours to that side awaits its reply

	from         sip.FromHeader
	to           sip.ToHeader // without tag
	callerTarget sip.Uri
	callerRoute  []sip.Uri // from us towards the caller, nearest first
	callerDst    string    // the caller's hop when it has no route set
	callerCSeq   uint32    // highest CSeq seen from the caller
	inviteCSeq   uint32
	outs         dlgout.Set

	vars  map[string]string
	flags uint32
}

// NewCell returns the cell of a dialog that an INVITE creates, in state
// UNCONFIRMED; step it with EvCreated once it is admitted. did is its
// cookie, ours tells our Record-Route entries.
func NewCell(cfg *CellConfig, now time.Time, did string, inv Invite, ours func(*sip.Uri) bool) *Cell {
	c := &Cell{cfg: cfg, ours: ours, did: did, callID: inv.CallID, fromTag: inv.FromTag, upBranch: inv.ViaBranch,
		state: Unconfirmed, created: now, timeout: cfg.Timeout,
		from: inv.From, to: inv.To, callerTarget: inv.Contact,
		inviteCSeq: inv.CSeq, callerCSeq: inv.CSeq}
	// Our entry is not in the request yet: every entry is the caller's side.
	c.callerRoute = dlgout.CallerRouteSet(inv.RecordRoute, func(sip.Uri) bool { return false })
	if len(c.callerRoute) == 0 && inv.Source != "" {
		c.callerDst = strings.ToLower(inv.Transport) + ":" + inv.Source
	}
	return c
}

// State returns the dialog state.
func (c *Cell) State() State { return c.state }

// Ended reports a state that takes no more call events.
func (c *Cell) Ended() bool { return c.state == Terminated || c.state == Deleted }

// DID is the dialog cookie.
func (c *Cell) DID() string { return c.did }

// ToTag is the To tag of the leg that answered, "" before an answer.
func (c *Cell) ToTag() string {
	if a := c.outs.Answered(); a != nil {
		return a.ToTag
	}
	return ""
}

// Deadline is when the lifetime timer fires; zero when none is armed.
func (c *Cell) Deadline() time.Time { return c.deadline }

// persistable: only confirmed dialogs outlive a restart; an early one's
// INVITE transaction dies with the process anyway.
func persistable(s State) bool { return s == ConfirmedNA || s == Confirmed }

// Step applies one event at time now and returns the manager's actions, in
// the order they must be carried out.
func (c *Cell) Step(now time.Time, ev Event) []Action {
	switch ev.Kind {
	case EvCreated:
		return c.arm(fire(nil, CbCreated), now, TimerLifetime, c.timeout)
	case EvSpiral:
		if c.Ended() {
			return nil
		}
		return fire(nil, CbSpiraled)
	case EvReply:
		return c.onReply(now, ev.Branch, &ev.Reply)
	case EvOutcome:
		return c.onOutcome(now, ev.Outcome, ev.Code)
	case EvInviteDone:
		if pruned := c.outs.Prune(); len(pruned) > 0 {
			return []Action{logAction(slog.LevelDebug, "early legs pruned", "", "")}
		}
		return nil
	case EvRequest:
		return c.onRequest(now, ev.Request)
	case EvRequestReply:
		out := fire(nil, CbRplWithin)
		if ev.Method == "BYE" && ev.Code >= 200 && c.state == Terminated && !c.byeCaller && !c.byeCallee {
			// The answer to the BYE that ended the dialog.
			return c.deleted(out, now)
		}
		return out
	case EvTimeout:
		if !c.deadline.IsZero() && now.Before(c.deadline) {
			return nil // a timer armed before the last re-arm
		}
		return c.onTimeout(now)
	case EvByeWaitOver:
		c.byeCaller, c.byeCallee = false, false
		if c.state != Terminated {
			return nil
		}
		return c.deleted(nil, now)
	case EvTerminate:
		return c.onTerminate(now, ev)
	case EvByeDone:
		if ev.Side == SideCaller {
			c.byeCaller = false
		} else {
			c.byeCallee = false
		}
		if c.state != Terminated || c.byeCaller || c.byeCallee {
			return nil
		}
		return c.deleted(nil, now)
	case EvSetTimeout:
		if c.Ended() || ev.Timeout <= 0 {
			return nil
		}
		c.timeout = ev.Timeout
		out := c.arm(nil, now, TimerLifetime, ev.Timeout)
		if persistable(c.state) {
			out = append(out, Action{Kind: ActPersist})
		}
		return out
	}
	return nil
}

func (c *Cell) move(out []Action, now time.Time, to State) []Action {
	if c.state == to {
		return out
	}
	from := c.state
	c.state = to
	if to == Terminated {
		c.ended = now
	}
	out = append(out, Action{Kind: ActStateChanged, From: from, To: to})
	if persistable(from) || persistable(to) {
		out = append(out, Action{Kind: ActPersist})
	}
	return out
}

func (c *Cell) arm(out []Action, now time.Time, t Timer, after time.Duration) []Action {
	if t == TimerLifetime {
		c.deadline = now.Add(after)
	}
	return append(out, Action{Kind: ActArmTimer, Timer: t, After: after})
}

func (c *Cell) stop(out []Action, t Timer) []Action {
	if t == TimerLifetime {
		c.deadline = time.Time{}
	}
	return append(out, Action{Kind: ActStopTimer, Timer: t})
}

// destroy ends the dialog's existence: its counts go, it leaves the table.
func destroy(out []Action) []Action {
	return append(out, Action{Kind: ActRelease}, Action{Kind: ActDestroy})
}

// deleted is the end of a dialog terminated by BYE, once the BYEs are
// answered or given up on.
func (c *Cell) deleted(out []Action, now time.Time) []Action {
	out = fire(out, CbTerminatedConfirmed)
	out = c.move(out, now, Deleted)
	out = fire(out, CbDestroy)
	out = c.stop(out, TimerByeWait)
	return destroy(out)
}

// ourRR tells our Record-Route entry of this dialog: it carries our did
// and names one of our addresses. The did alone is not enough: another
// proxy of the same call running this module (a P-CSCF in front of this
// S-CSCF) derives the same did from the same Call-ID, and its entries must
// stay in the route sets.
func (c *Cell) ourRR(u sip.Uri) bool {
	v, ok := tm.Param(u.UriParams, c.cfg.RRParam)
	if !ok || v != c.did {
		return false
	}
	return c.ours == nil || c.ours(&u)
}

func (c *Cell) onReply(now time.Time, branch int, r *dlgout.Reply) []Action {
	leg, created, err := c.outs.OnReply(now, branch, *r, c.ourRR)
	var out []Action
	switch code := r.Code; {
	case code >= 300, leg == nil && code < 200:
		// A failed branch (its early legs end) or an untagged 1xx.
	case code < 200:
		if c.state == Unconfirmed || c.state == Early {
			out = c.move(out, now, Early)
			if created {
				out = fire(out, CbEarly)
			}
		}
	case leg == nil:
		out = append(out, logAction(slog.LevelWarn, "2xx without a To tag ignored by the dialog", "", ""))
	case errors.Is(err, dlgout.ErrLateAnswer):
		// The INVITE transaction is over: the call goes on with another
		// leg, or has ended.
		why := "call completed elsewhere"
		if c.Ended() {
			why = "call already ended"
		}
		out = c.endLeg(out, leg, why)
	default:
		switch a := c.outs.Answered(); {
		case a == nil:
			c.outs.Answer(leg.ToTag)
			out = c.answered(out, now, leg)
		case a.ToTag != leg.ToTag:
			// Two forked callees answered: the call goes on with the
			// first; the second gets ACK then BYE.
			out = c.endLeg(out, leg, "call completed elsewhere")
		}
	}
	return fire(out, CbResponseFwded)
}

// answered is the first 2xx of the dialog, on leg.
func (c *Cell) answered(out []Action, now time.Time, leg *dlgout.Leg) []Action {
	if c.Ended() {
		// The callee answered as we ended the call: it has a session
		// nobody will use (DESIGN §8: handled, not mixed up).
		return c.endLeg(out, leg, "call already ended")
	}
	if c.state != Unconfirmed && c.state != Early {
		return out
	}
	c.start = now
	out = c.move(out, now, ConfirmedNA)
	out = fire(out, CbConfirmedNA)
	return c.arm(out, now, TimerLifetime, c.timeout)
}

func (c *Cell) onOutcome(now time.Time, kind tm.OutcomeKind, code int) []Action {
	if kind == tm.Answered || code < 300 || (c.state != Unconfirmed && c.state != Early) {
		// An answer did its work as a reply; a 2xx that won against a
		// CANCEL keeps the dialog; an ended dialog is past this.
		return nil
	}
	c.end = EndFailed
	if kind == tm.Cancelled {
		c.end = EndCancelled
	}
	out := c.move(nil, now, Terminated)
	out = fire(out, CbFailed)
	out = c.stop(out, TimerLifetime)
	return destroy(out)
}

func (c *Cell) onRequest(now time.Time, r Request) []Action {
	if c.Ended() {
		return nil
	}
	var out []Action
	if r.Method == "ACK" && r.CSeq == c.inviteCSeq && r.FromCaller {
		switch c.state {
		case ConfirmedNA:
			out = c.move(out, now, Confirmed)
			out = fire(out, CbConfirmed)
		case Confirmed:
			out = fire(out, CbReqWithin)
		}
		return out
	}
	if r.Method != "ACK" {
		if r.FromCaller {
			c.callerCSeq = max(c.callerCSeq, r.CSeq)
			// The leg the request goes to is its To tag: a PRACK or
			// UPDATE may reach an early leg before any answer.
			c.outs.ObserveRequest(r.ToTag, false, r.CSeq, r.Method)
		} else {
			c.outs.ObserveRequest(r.FromTag, true, r.CSeq, r.Method)
		}
		if persistable(c.state) {
			// The CSeqs moved: a restored dialog must not reuse them.
			out = append(out, Action{Kind: ActPersist})
		}
	}
	out = fire(out, CbReqWithin)
	if r.Method != "BYE" {
		return out
	}
	// A BYE ends the dialog at once, ACK seen or not (a BYE may overtake
	// the ACK); its reply confirms the end, the wait bounds it.
	c.end = EndByeCallee
	if r.FromCaller {
		c.end = EndByeCaller
	}
	out = c.move(out, now, Terminated)
	out = fire(out, CbTerminated)
	out = c.stop(out, TimerLifetime)
	return c.arm(out, now, TimerByeWait, c.cfg.ByeWait)
}

func (c *Cell) onTimeout(now time.Time) []Action {
	switch c.state {
	case Unconfirmed, Early:
		// An early dialog expires too: it is cancelled.
		c.end = EndExpired
		out := c.move(nil, now, Terminated)
		out = fire(out, CbExpired)
		c.deadline = time.Time{}
		out = append(out, earlyReply(408, "dialog expired", nil))
		return destroy(out)
	case ConfirmedNA, Confirmed:
		c.end = EndExpired
		out := c.move(nil, now, Terminated)
		out = fire(out, CbExpired)
		return c.byes(out, now, SideBoth, "dialog expired", nil)
	}
	return nil
}

func (c *Cell) onTerminate(now time.Time, ev Event) []Action {
	switch c.state {
	case Unconfirmed, Early:
		code := ev.Code
		if code == 0 {
			code = c.cfg.EarlyTerminateCode
		}
		c.end = EndTerminated
		out := c.move(nil, now, Terminated)
		out = fire(out, CbTerminated)
		out = fire(out, CbFailed)
		out = c.stop(out, TimerLifetime)
		out = append(out, earlyReply(code, ev.Reason, ev.Headers))
		return destroy(out)
	case ConfirmedNA, Confirmed:
		c.end = EndTerminated
		out := c.move(nil, now, Terminated)
		out = fire(out, CbTerminated)
		return c.byes(out, now, ev.Side, ev.Reason, ev.Headers)
	}
	return nil
}

// earlyReply is the final reply upstream that ends an early dialog; tm
// CANCELs every branch that rang with the same Reason.
func earlyReply(code int, text string, hdrs []Header) Action {
	if text == "" {
		text = "Request Terminated"
	}
	all := make([]Header, 0, len(hdrs)+1)
	all = append(all, reasonHeader(code, text))
	all = append(all, hdrs...)
	return Action{Kind: ActReplyUpstream, Code: code, Reason: reasonPhrase(code), Headers: all}
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

// byes sends BYE to the chosen sides of a confirmed dialog and bounds the
// wait for their replies.
func (c *Cell) byes(out []Action, now time.Time, side Side, reason string, hdrs []Header) []Action {
	out = c.stop(out, TimerLifetime)
	for _, s := range [...]Side{SideCaller, SideCallee} {
		if side != SideBoth && side != s {
			continue
		}
		req, err := c.bye(s, reason, hdrs)
		if err != nil {
			// Nothing will answer it: do not wait for it.
			out = append(out, logAction(slog.LevelWarn, "BYE not built", "", sideName(s)+": "+err.Error()))
			continue
		}
		if s == SideCaller {
			c.byeCaller = true
		} else {
			c.byeCallee = true
		}
		out = append(out, Action{Kind: ActSend, Send: req})
	}
	if !c.byeCaller && !c.byeCallee {
		return c.deleted(out, now)
	}
	return c.arm(out, now, TimerByeWait, c.cfg.ByeWait)
}

// toWithTag is the dialog's To with the tag of a callee leg.
func (c *Cell) toWithTag(tag string) sip.ToHeader {
	to := c.to
	to.Params = make(sip.HeaderParams, 0, len(c.to.Params)+1)
	for _, kv := range c.to.Params {
		if !strings.EqualFold(kv.K, "tag") {
			to.Params = append(to.Params, kv)
		}
	}
	to.Params = append(to.Params, sip.HeaderKV{K: "tag", V: tag})
	return to
}

// legDst is the callee's hop when its leg has no route set.
func legDst(l *dlgout.Leg) string {
	if len(l.RouteSet) == 0 && l.Source != "" {
		return strings.ToLower(l.Transport) + ":" + l.Source
	}
	return ""
}

// bye makes the BYE for one side of a confirmed dialog: that side's remote
// target and route set, the next CSeq of the party it stands for,
// dlg_extra_hdrs, the call's headers and the Reason (DESIGN §4).
func (c *Cell) bye(side Side, reason string, hdrs []Header) (*OutRequest, error) {
	leg := c.outs.Answered()
	if leg == nil {
		return nil, errors.New("no answered leg")
	}
	calleeTo := c.toWithTag(leg.ToTag)
	req := &OutRequest{Method: sip.BYE, CallID: c.callID, Await: true, Side: side}
	var err error
	if side == SideCallee {
		req.Target, req.Route, req.Dst = leg.RemoteTarget, leg.RouteSet, legDst(leg)
		req.From, req.To = c.from, calleeTo
		req.CSeq, err = leg.NextCSeq(true)
		c.callerCSeq = max(c.callerCSeq, req.CSeq)
	} else {
		req.Target, req.Route = c.callerTarget, c.callerRoute
		if len(req.Route) == 0 {
			req.Dst = c.callerDst
		}
		req.From, req.To = calleeTo.AsFrom(), c.from.AsTo()
		req.CSeq, err = leg.NextCSeq(false)
	}
	if err != nil {
		return nil, err
	}
	if req.Target.Host == "" {
		return nil, errors.New("no remote target")
	}
	req.Headers = make([]Header, 0, len(c.cfg.ExtraHeaders)+len(hdrs)+1)
	req.Headers = append(req.Headers, c.cfg.ExtraHeaders...)
	req.Headers = append(req.Headers, hdrs...)
	if reason != "" {
		req.Headers = append(req.Headers, reasonHeader(200, reason))
	}
	return req, nil
}

// endLeg ACKs and BYEs a callee leg whose 2xx came when the call was
// already answered by another leg or over (DESIGN §4, §8).
func (c *Cell) endLeg(out []Action, leg *dlgout.Leg, why string) []Action {
	out = append(out, logAction(slog.LevelWarn, "ending a second answering leg", leg.ToTag, why))
	if leg.RemoteTarget.Host == "" {
		return append(out, logAction(slog.LevelWarn, "second answering leg has no Contact: not ended", leg.ToTag, why))
	}
	to := c.toWithTag(leg.ToTag)
	dst := legDst(leg)
	ack := &OutRequest{Method: sip.ACK, Target: leg.RemoteTarget, Route: leg.RouteSet, Dst: dst,
		From: c.from, To: to, CallID: c.callID, CSeq: c.inviteCSeq}
	bye := *ack
	bye.Method, bye.CSeq = sip.BYE, c.inviteCSeq+1
	bye.Headers = []Header{reasonHeader(200, why)}
	return append(out, Action{Kind: ActSend, Send: ack}, Action{Kind: ActSend, Send: &bye})
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

// SetVar sets a dialog variable (set_dlg_var); an empty value removes it.
// It returns what the manager must do (persist a confirmed dialog).
func (c *Cell) SetVar(key, val string) []Action {
	if val == "" {
		delete(c.vars, key)
	} else {
		if c.vars == nil {
			c.vars = make(map[string]string)
		}
		c.vars[key] = val
	}
	return c.changed()
}

// Var returns a dialog variable (get_dlg_var).
func (c *Cell) Var(key string) (string, bool) {
	v, ok := c.vars[key]
	return v, ok
}

// SetFlag sets or resets flag n (0..31: dlg_setflag, dlg_resetflag).
func (c *Cell) SetFlag(n uint, on bool) []Action {
	bit := uint32(1) << (n & 31)
	if on == (c.flags&bit != 0) {
		return nil
	}
	c.flags ^= bit
	return c.changed()
}

// IsFlagSet is dlg_isflagset.
func (c *Cell) IsFlagSet(n uint) bool { return c.flags&(1<<(n&31)) != 0 }

func (c *Cell) changed() []Action {
	if persistable(c.state) {
		return []Action{{Kind: ActPersist}}
	}
	return nil
}

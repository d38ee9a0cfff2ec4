package imsdialog

import (
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/imsdlg/imsdlg/dlgout"
	"github.com/imsdlg/imsdlg/internal/sipstr"
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
	// Ping is who every confirmed dialog pings (dialog.ping) every
	// PingInterval (options_ping_interval).
	Ping         Ping
	PingInterval time.Duration
	// ReinvitePing is who every confirmed dialog pings with re-INVITEs
	// (the create_dialog flags R and r) every ReinvitePingInterval
	// (reinvite_ping_interval); a side pinged so gets no OPTIONS ping.
	ReinvitePing         Ping
	ReinvitePingInterval time.Duration
	// KeepSDP: every dialog keeps the parties' SDP (keep_sdp).
	KeepSDP bool
	// AckWait is ack_timeout: an answer not ACKed by then ends the dialog.
	AckWait time.Duration
	// TimeoutRefresh: a re-INVITE or UPDATE re-arms the lifetime
	// (timeout_refresh).
	TimeoutRefresh bool
	// EndRaces (create_dialog's E for every dialog; Manager.SetEndRaces
	// per call) ends a call answered across the caller's CANCEL
	// RaceTimeout after the answer (race_condition_timeout).
	EndRaces    bool
	RaceTimeout time.Duration
	// AbsorbSecond2xx keeps a second answer (a 2xx from another callee once
	// one answered) from the caller and ends it both ways, instead of
	// relaying it for the caller to end (RFC 5407 §3.1.2, the default).
	AbsorbSecond2xx bool
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
	// SDP is the INVITE's session description (nil when none).
	SDP []byte
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

	// byeCaller, byeCallee count our BYEs to that side awaiting their reply
	// (one per answered leg).
	byeCaller, byeCallee int
	// invitePending: the INVITE transaction still has branches.
	invitePending bool
	// failure is how the INVITE failed upstream, applied once its last
	// branch is done unless a 2xx crosses first.
	failure EndReason
	// ownEnd: we ended the call before an answer (a command, a timeout).
	ownEnd bool
	// endRaces is the call's flag E; raced: answered across the caller's
	// CANCEL with it, so that its lifetime timer ends it as a race
	// (EndRace).
	endRaces, raced bool

	from         sip.FromHeader
	to           sip.ToHeader // without tag
	callerTarget sip.Uri
	callerRoute  []sip.Uri // from us towards the caller, nearest first
	callerDst    string    // the caller's hop when it has no route set
	// legHop is legDst's last answer: requests within the dialog ask per
	// request, and it changes only with the leg's source.
	legHop struct {
		leg                 *dlgout.Leg
		transport, src, dst string
	}
	callerCSeq uint32 // highest CSeq seen from the caller
	inviteCSeq uint32
	outs       dlgout.Set

	vars  map[string]string
	flags uint32

	// ping is who this dialog pings; pingOut who has a ping unanswered.
	ping, pingOut Ping
	// reping is who this dialog pings with re-INVITEs, repingOut who has
	// one unanswered.
	reping, repingOut Ping
	// callerSDP is the caller's last session description: the offer a
	// re-INVITE ping towards the callee repeats (the callee's is on its
	// leg). Kept until the answer, and after it only while reping is set.
	callerSDP []byte
	// reinviteOpen is when a re-INVITE within the dialog passed that has
	// no final reply yet: a ping now would collide with it (RFC 3261
	// §14.1, 491).
	reinviteOpen time.Time
	// ackWanted: the callee repeated its answer after the caller's ACK
	// (the ACK got lost on the way to it): an ACK must follow, or the
	// session is dead at the callee.
	ackWanted bool
	// lastAnswer is when the answering callee last sent its 2xx (first or
	// repeated): a callee without an ACK repeats it until 64*T1.
	lastAnswer time.Time
	// probing: the ACK wait ended with the callee silent, and OPTIONS went
	// to both parties to learn whether the call is still up (see probe).
	probing bool
}

// NewCell returns the cell of a dialog that an INVITE creates, in state
// UNCONFIRMED; step it with EvCreated once it is admitted. did is its
// cookie, ours tells our Record-Route entries.
func NewCell(cfg *CellConfig, now time.Time, did string, inv Invite, ours func(*sip.Uri) bool) *Cell {
	c := &Cell{cfg: cfg, ours: ours, did: did, callID: inv.CallID, fromTag: inv.FromTag, upBranch: inv.ViaBranch,
		state: Unconfirmed, created: now, timeout: cfg.Timeout,
		from: inv.From, to: inv.To, callerTarget: inv.Contact,
		inviteCSeq: inv.CSeq, callerCSeq: inv.CSeq, ping: cfg.Ping, reping: cfg.ReinvitePing, callerSDP: inv.SDP,
		endRaces: cfg.EndRaces}
	// Our entry is not in the request yet: every entry is the caller's side.
	c.callerRoute = dlgout.CallerRouteSet(inv.RecordRoute, func(*sip.Uri) bool { return false })
	if len(c.callerRoute) == 0 && inv.Source != "" {
		c.callerDst = hopDst(inv.Transport, inv.Source)
	}
	c.detach()
	return c
}

// detach makes what the cell keeps of the INVITE its own, strings
// included (sipstr.Detach): the message's header block goes with its
// transaction, not with the call. The SDP is already its own (tm copies
// every body out of the message's text).
func (c *Cell) detach() {
	c.from.Address = dlgout.CloneURI(c.from.Address)
	c.from.Params = slices.Clone(c.from.Params)
	c.to.Address = dlgout.CloneURI(c.to.Address)
	c.to.Params = slices.Clone(c.to.Params)
	c.callerTarget = dlgout.CloneURI(c.callerTarget)
	var buf [64]*string
	keep := append(buf[:0], &c.callID, &c.fromTag, &c.upBranch, &c.from.DisplayName, &c.to.DisplayName)
	for _, u := range []*sip.Uri{&c.from.Address, &c.to.Address, &c.callerTarget} {
		keep = sipstr.URIStrings(keep, u)
	}
	for i := range c.from.Params {
		keep = append(keep, &c.from.Params[i].K, &c.from.Params[i].V)
	}
	for i := range c.to.Params {
		keep = append(keep, &c.to.Params[i].K, &c.to.Params[i].V)
	}
	for i := range c.callerRoute {
		keep = sipstr.URIStrings(keep, &c.callerRoute[i]) // CallerRouteSet's own copies
	}
	sipstr.Detach(keep)
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
		c.invitePending = true
		return c.arm(fire(nil, CbCreated), now, TimerLifetime, c.timeout)
	case EvSpiral:
		if c.Ended() {
			return nil
		}
		return fire(nil, CbSpiraled)
	case EvReply:
		return c.onReply(now, ev.Branch, &ev.Reply)
	case EvOutcome:
		return c.onOutcome(now, ev.Outcome, ev.Code, ev.AfterCancel)
	case EvInviteDone:
		return c.onInviteDone(now)
	case EvRequest:
		return c.onRequest(now, ev.Request)
	case EvRequestReply:
		var out []Action
		if c.onRequestReply(&ev) && persistable(c.state) {
			out = add(out, Action{Kind: ActPersist})
		}
		out = fire(out, CbRplWithin)
		if ev.Method == "BYE" && ev.Code >= 200 && c.state == Terminated && c.byeCaller == 0 && c.byeCallee == 0 {
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
		c.byeCaller, c.byeCallee = 0, 0
		if c.state != Terminated {
			return nil
		}
		return c.deleted(nil, now)
	case EvTerminate:
		return c.onTerminate(now, ev)
	case EvByeDone:
		if ev.Side == SideCaller {
			c.byeCaller = max(c.byeCaller-1, 0)
		} else {
			c.byeCallee = max(c.byeCallee-1, 0)
		}
		if c.state != Terminated || c.byeCaller > 0 || c.byeCallee > 0 {
			return nil
		}
		return c.deleted(nil, now)
	case EvAnswerRepeated:
		a := c.outs.Answered()
		if a == nil || a.ToTag != ev.Reply.ToTag || ev.Reply.CSeq != c.inviteCSeq {
			return nil // not the answer (a re-INVITE's 2xx)
		}
		if a.Source != "" && ev.Reply.Source != "" && ev.Reply.Source != a.Source {
			// Anyone who learnt the Call-ID and tags could send it (a
			// stray 2xx matches by those alone), and enough repeats end
			// the call (no_ack): the callee repeats from where it
			// answered.
			return add(nil, logAction(slog.LevelWarn, "a repeat of the answer from another address than the answer's: ignored",
				a.ToTag, ev.Reply.Source))
		}
		c.lastAnswer = now
		if c.state != Confirmed || c.ackWanted || c.cfg.AckWait <= 0 {
			return nil
		}
		c.ackWanted = true
		return c.arm(nil, now, TimerAck, c.cfg.AckWait)
	case EvAckTimeout:
		if c.state != ConfirmedNA && !(c.state == Confirmed && c.ackWanted) {
			return nil // ACKed meanwhile (a timer stopped too late), or over
		}
		if now.Sub(c.lastAnswer) >= c.cfg.AckWait/2 {
			// The callee stopped repeating its 2xx long ago: either it
			// got an ACK that did not pass us (a caller that ignores
			// Record-Route sends it straight to the callee), and the
			// call is up, or it is gone (it died after answering, and the
			// caller may never have had the 2xx). Only the parties can
			// tell: ask both with an OPTIONS; no answer, 408 or 481 from
			// either ends the call (onPingDone), any other keeps it.
			c.ackWanted = false
			return c.probe()
		}
		c.end = EndNoACK
		out := add(nil, logAction(slog.LevelInfo, "answered but never ACKed: ended both ways", "", ""))
		out = c.move(out, now, Terminated)
		out = fire(out, CbTerminated)
		return c.byes(out, now, SideBoth, "no ACK for the answer", nil)
	case EvPingTimer:
		return c.onPingTimer(now)
	case EvPingDone:
		return c.onPingDone(now, ev.Side, ev.Code, ev.Method == "INVITE")
	case EvReinvitePingTimer:
		return c.onReinvitePingTimer(now)
	case EvSetReinvitePing:
		out := c.setPing(now, &c.reping, &c.repingOut, ev.Ping, TimerReinvitePing, c.cfg.ReinvitePingInterval)
		if c.reping == PingNone && !c.cfg.KeepSDP {
			c.dropSDP()
		}
		return out
	case EvSetEndRaces:
		c.endRaces = ev.On
		return nil
	case EvSetPing:
		return c.setPing(now, &c.ping, &c.pingOut, ev.Ping, TimerPing, c.cfg.PingInterval)
	case EvSetTimeout:
		if c.Ended() || ev.Timeout <= 0 {
			return nil
		}
		c.timeout = ev.Timeout
		out := c.arm(nil, now, TimerLifetime, ev.Timeout)
		if persistable(c.state) {
			out = add(out, Action{Kind: ActPersist})
		}
		return out
	}
	return nil
}

// setPing changes who a keepalive pings (cur; out are the pings still
// unanswered): its timer stops with the last side and starts with the
// first one of a confirmed dialog.
func (c *Cell) setPing(now time.Time, cur, out *Ping, p Ping, t Timer, every time.Duration) []Action {
	if c.Ended() || p == *cur {
		return nil
	}
	was := *cur
	*cur, *out = p, *out&p
	switch {
	case p == PingNone:
		return c.stop(nil, t)
	case was == PingNone && persistable(c.state):
		return c.arm(nil, now, t, every)
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
	changed := Action{Kind: ActStateChanged, From: from, To: to}
	if to == Terminated && persistable(from) && !c.start.IsZero() {
		changed.After = now.Sub(c.start) // the call's duration
	}
	out = add(out, changed)
	if persistable(from) || persistable(to) {
		out = add(out, Action{Kind: ActPersist})
	}
	switch {
	case !persistable(from) && persistable(to) && c.ping != PingNone:
		out = c.arm(out, now, TimerPing, c.cfg.PingInterval)
	case persistable(from) && !persistable(to) && c.ping != PingNone:
		out = c.stop(out, TimerPing)
	}
	switch {
	case !persistable(from) && persistable(to) && c.reping != PingNone:
		out = c.arm(out, now, TimerReinvitePing, c.cfg.ReinvitePingInterval)
	case persistable(from) && !persistable(to) && c.reping != PingNone:
		out = c.stop(out, TimerReinvitePing)
	}
	if to == Terminated || (c.reping == PingNone && !c.cfg.KeepSDP && persistable(to)) {
		c.dropSDP()
	}
	switch {
	case to == ConfirmedNA && c.cfg.AckWait > 0:
		out = c.arm(out, now, TimerAck, c.cfg.AckWait)
	case from == ConfirmedNA:
		out = c.stop(out, TimerAck)
	}
	return out
}

func (c *Cell) arm(out []Action, now time.Time, t Timer, after time.Duration) []Action {
	if t == TimerLifetime {
		c.deadline = now.Add(after)
	}
	return add(out, Action{Kind: ActArmTimer, Timer: t, After: after})
}

func (c *Cell) stop(out []Action, t Timer) []Action {
	if t == TimerLifetime {
		c.deadline = time.Time{}
	}
	return add(out, Action{Kind: ActStopTimer, Timer: t})
}

// destroy ends the dialog's existence on every path (a failed, cancelled,
// early-ended or expired call as well as one ended by BYE): DESTROY runs,
// its counts go, it leaves the table.
func destroy(out []Action) []Action {
	return add(out, Action{Kind: ActFire, Callback: CbDestroy}, Action{Kind: ActRelease}, Action{Kind: ActDestroy})
}

// deleted is the end of a dialog terminated by BYE, once the BYEs are
// answered or given up on.
func (c *Cell) deleted(out []Action, now time.Time) []Action {
	out = fire(out, CbTerminatedConfirmed)
	out = c.move(out, now, Deleted)
	out = c.stop(out, TimerByeWait)
	return destroy(out)
}

// ourRR tells our Record-Route entry of this dialog: it carries our did
// and names one of our addresses. The did alone is not enough: another
// proxy of the same call running this module (a P-CSCF in front of this
// S-CSCF) derives the same did from the same Call-ID, and its entries must
// stay in the route sets.
func (c *Cell) ourRR(u *sip.Uri) bool {
	v, ok := tm.Param(u.UriParams, c.cfg.RRParam)
	if !ok || v != c.did {
		return false
	}
	return c.ours == nil || c.ours(u)
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
		// A router may set them from a received message, whose text is
		// reused once its call returns.
		c.vars[strings.Clone(key)] = strings.Clone(val)
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

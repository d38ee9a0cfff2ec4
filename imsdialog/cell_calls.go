package imsdialog

import (
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/imsdlg/imsdlg/dlgout"
	"github.com/imsdlg/imsdlg/internal/sipstr"
	"github.com/imsdlg/imsdlg/tm"
)

func (c *Cell) onReply(now time.Time, branch int, r *dlgout.Reply) []Action {
	if !c.keepSDP() {
		r.SDP = nil
	}
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
		out = add(out, logAction(slog.LevelWarn, "2xx ignored by the dialog", "", err.Error()))
	default:
		var absorb bool
		out, absorb = c.on2xx(out, now, leg, errors.Is(err, dlgout.ErrLateAnswer))
		if absorb {
			// Kept from the caller: no RESPONSE_FWDED.
			return add(out, Action{Kind: ActAbsorb})
		}
	}
	return fire(out, CbResponseFwded)
}

// on2xx decides what a 2xx of the INVITE on leg means for the call, and
// whether the proxy keeps it from the caller (absorb) to end that session
// itself. Never both: a 2xx the caller gets is the caller's to end (RFC
// 3261 §16.7 step 5, RFC 5407 §3.1.2); one it does not get, the proxy ACKs
// and BYEs.
func (c *Cell) on2xx(out []Action, now time.Time, leg *dlgout.Leg, late bool) ([]Action, bool) {
	a := c.outs.Answered()
	switch {
	case c.ownEnd || c.Ended():
		// We ended the call (a command, a timeout) before this answer, or
		// it is over: the caller must not get a session nobody will use.
		c.outs.End(leg.ToTag)
		return c.endLeg(out, leg, "call already ended"), true
	case a == nil && !late:
		// The first answer; it also wins against a CANCEL it crossed.
		c.outs.Answer(leg.ToTag)
		c.failure = NotEnded
		return c.answered(out, now), false
	case a != nil && a.ToTag == leg.ToTag:
		return out, false // the answer again, on another branch
	case c.cfg.AbsorbSecond2xx:
		c.outs.End(leg.ToTag)
		return c.endLeg(out, leg, "call completed elsewhere"), true
	}
	// Relayed like every 2xx: the caller ACKs it and ends what it does not
	// want; the dialog keeps the leg until then, so that the caller's ACK
	// and BYE find it.
	if late {
		c.outs.Adopt(leg)
	}
	return add(out, logAction(slog.LevelInfo, "another callee answered: relayed, the caller ends the session it does not keep", leg.ToTag, "")), false
}

// answered is the first 2xx of the dialog.
func (c *Cell) answered(out []Action, now time.Time) []Action {
	if c.state != Unconfirmed && c.state != Early {
		return out
	}
	c.start, c.lastAnswer = now, now
	out = c.move(out, now, ConfirmedNA)
	out = fire(out, CbConfirmedNA)
	return c.arm(out, now, TimerLifetime, c.timeout)
}

// onOutcome takes the INVITE's end upstream. A failure only ends the
// dialog once every branch is done (EvInviteDone): until then a 2xx may
// still cross the CANCEL, and wins (RFC 5407 §3.1.2).
func (c *Cell) onOutcome(now time.Time, kind tm.OutcomeKind, code int, afterCancel bool) []Action {
	if kind == tm.Answered && afterCancel {
		return c.raceAnswered(now)
	}
	if kind == tm.Answered || code < 300 || (c.state != Unconfirmed && c.state != Early) {
		// An answer did its work as a reply; an ended dialog is past this.
		return nil
	}
	c.failure = EndFailed
	if kind == tm.Cancelled {
		c.failure = EndCancelled
	}
	if c.invitePending {
		return nil
	}
	return c.fail(now)
}

// raceAnswered: the answer crossed the caller's CANCEL and went up all the
// same. With the flag E the call is given that long from now (never longer
// than it had), and its lifetime timer then ends it as a race.
func (c *Cell) raceAnswered(now time.Time) []Action {
	if !c.endRaces || c.cfg.RaceTimeout <= 0 || (c.state != ConfirmedNA && c.state != Confirmed) {
		return nil
	}
	c.raced = true
	out := add(nil, logAction(slog.LevelInfo, "answered across the caller's CANCEL: the call ends after race_condition_timeout", "", ""))
	if end := now.Add(c.cfg.RaceTimeout); c.deadline.IsZero() || end.Before(c.deadline) {
		out = c.arm(out, now, TimerLifetime, c.cfg.RaceTimeout)
	}
	if persistable(c.state) {
		out = add(out, Action{Kind: ActPersist}) // its deadline and end are the race's
	}
	return out
}

// onInviteDone: every branch of the INVITE has finished.
func (c *Cell) onInviteDone(now time.Time) []Action {
	c.invitePending = false
	var out []Action
	if c.outs.Trim() > 0 {
		out = add(out, logAction(slog.LevelDebug, "early legs pruned", "", ""))
	}
	if c.failure != NotEnded && (c.state == Unconfirmed || c.state == Early) {
		out = append(out, c.fail(now)...)
	}
	return out
}

// fail ends a dialog whose INVITE failed or was cancelled.
func (c *Cell) fail(now time.Time) []Action {
	c.end = c.failure
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
	legTag := r.ToTag
	if !r.FromCaller {
		legTag = r.FromTag
	}
	if r.SDP != nil && c.keepSDP() && c.keptSDP(r.FromCaller, legTag, r.SDP) && persistable(c.state) {
		out = add(out, Action{Kind: ActPersist})
	}
	if r.Method == "INVITE" {
		c.reinviteOpen = now
	}
	if r.Contact != nil && c.refreshTarget(r.FromCaller, legTag, r.Contact) && persistable(c.state) {
		out = add(out, Action{Kind: ActPersist})
	}
	if r.Method == "ACK" && r.CSeq == c.inviteCSeq && r.FromCaller {
		if a := c.outs.Answered(); a == nil || a.ToTag != legTag {
			return nil // the ACK of another answering leg's 2xx
		}
		switch c.state {
		case ConfirmedNA:
			out = c.move(out, now, Confirmed)
			out = fire(out, CbConfirmed)
		case Confirmed:
			if c.ackWanted {
				c.ackWanted = false
				out = c.stop(out, TimerAck)
			}
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
			out = add(out, Action{Kind: ActPersist})
		}
	}
	out = fire(out, CbReqWithin)
	if c.cfg.TimeoutRefresh && c.state == Confirmed && (r.Method == "INVITE" || r.Method == "UPDATE") && c.timeout > 0 &&
		!c.raced {
		out = c.arm(out, now, TimerLifetime, c.timeout) // persisted with the CSeq above
	}
	if r.Method != "BYE" {
		return out
	}
	if len(c.outs.Confirmed()) > 1 && c.outs.Get(legTag) != nil {
		// One of several answering callees is hung up: the call goes on
		// with the others.
		if promoted := c.outs.End(legTag); promoted != nil && persistable(c.state) {
			out = add(out, Action{Kind: ActPersist})
		}
		return add(out, logAction(slog.LevelInfo, "an answering leg ended by BYE; the call goes on", legTag, ""))
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

// Shift is what the CSeq of a request within the dialog gains on its way:
// from the caller towards the callee of leg toTag, or from the callee of
// leg fromTag towards the caller (dlgout.Leg.Shift); 0 for an unknown leg.
func (c *Cell) Shift(fromCaller bool, fromTag, toTag string) uint32 {
	tag := toTag
	if !fromCaller {
		tag = fromTag
	}
	if l := c.outs.Get(tag); l != nil {
		return l.Shift(fromCaller)
	}
	return 0
}

// refreshTarget makes contact the remote target of a party (fromCaller, or
// the callee of leg legTag) after a target refresh; false when nothing
// changed. BYEs, pings and validate_dialog follow it.
func (c *Cell) refreshTarget(fromCaller bool, legTag string, contact *sip.Uri) bool {
	if contact.Host == "" {
		return false
	}
	if fromCaller {
		if sameTarget(&c.callerTarget, contact) {
			return false
		}
		c.callerTarget = sipstr.URI(*contact)
		return true
	}
	l := c.outs.Get(legTag)
	if l == nil || sameTarget(&l.RemoteTarget, contact) {
		return false
	}
	l.RemoteTarget = sipstr.URI(*contact) // a new value: copies of the leg share the old one
	return true
}

// keptSDP stores a session description a party sent (fromCaller, or the
// callee of leg legTag); false when the leg is unknown.
func (c *Cell) keptSDP(fromCaller bool, legTag string, sdp []byte) bool {
	if fromCaller {
		c.callerSDP = sdp
		return true
	}
	if l := c.outs.Get(legTag); l != nil {
		l.SDP = sdp
		return true
	}
	return false
}

// onRequestReply takes what a reply within the dialog tells the cell: the
// end of a re-INVITE, and the session description of the party replying
// (kept: true).
func (c *Cell) onRequestReply(ev *Event) bool {
	if ev.Method == "INVITE" && ev.Code >= 200 {
		c.reinviteOpen = time.Time{}
	}
	r := &ev.Request
	if ev.Code >= 300 || (r.SDP == nil && r.Contact == nil) {
		return false
	}
	// The party replying is the one the request went to.
	legTag := r.ToTag
	if !r.FromCaller {
		legTag = r.FromTag
	}
	changed := false
	if r.Contact != nil && ev.Code >= 200 {
		changed = c.refreshTarget(!r.FromCaller, legTag, r.Contact)
	}
	if r.SDP != nil && c.keepSDP() {
		changed = c.keptSDP(!r.FromCaller, legTag, r.SDP) || changed
	}
	return changed
}

// Target says where a request within the dialog goes: to the callee leg
// its To tag names (from the caller) or to the caller, at that side's
// remote target along its route set, or straight to that side's hop when
// it has none. ok is false when the dialog does not know the leg. The
// dialog module uses it for requests that do not follow the route set (a
// UA that ignores Record-Route sends its ACK and BYE to the AOR): they must
// reach the leg of the dialog, never go through the location service again.
func (c *Cell) Target(fromCaller bool, toTag string) (target sip.Uri, route []sip.Uri, dst string, ok bool) {
	if !fromCaller {
		return c.callerTarget, c.callerRoute, c.callerDst, c.callerTarget.Host != ""
	}
	leg := c.outs.Get(toTag)
	if leg == nil {
		// A leg ended by a BYE that overtook this request (an ACK the caller
		// sent first): it still goes where the leg was, never to wherever
		// its Request-URI points.
		leg = c.outs.Gone(toTag)
	}
	if leg == nil || leg.RemoteTarget.Host == "" {
		return sip.Uri{}, nil, "", false
	}
	return leg.RemoteTarget, leg.RouteSet, c.legDst(leg), true
}

// sameTarget tells a Request-URI that already names the remote target (a
// UA that follows the dialog's route set) from one that does not.
func sameTarget(a, b *sip.Uri) bool {
	return strings.EqualFold(a.Host, b.Host) && a.Port == b.Port && a.User == b.User
}

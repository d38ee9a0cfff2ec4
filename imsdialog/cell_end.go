package imsdialog

import (
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/imsdlg/imsdlg/dlgout"
)

func (c *Cell) onTimeout(now time.Time) []Action {
	switch c.state {
	case Unconfirmed, Early:
		// An early dialog expires too: it is cancelled.
		c.end, c.ownEnd = EndExpired, true
		out := c.move(nil, now, Terminated)
		out = fire(out, CbExpired)
		c.deadline = time.Time{}
		out = append(out, earlyReply(408, "dialog expired", nil))
		return destroy(out)
	case ConfirmedNA, Confirmed:
		if c.raced {
			c.end = EndRace
			out := c.move(nil, now, Terminated)
			out = fire(out, CbTerminated)
			return c.byes(out, now, SideBoth, "SIP race condition", nil)
		}
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
		c.end, c.ownEnd = EndTerminated, true
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
	return Action{Kind: ActReplyUpstream, Detail: &Detail{Code: code, Reason: reasonPhrase(code), Headers: all}}
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

// byes sends BYE to the chosen sides of a confirmed dialog, for every
// callee leg that answered (the caller holds one session per answer), and
// bounds the wait for their replies.
func (c *Cell) byes(out []Action, now time.Time, side Side, reason string, hdrs []Header) []Action {
	out = c.stop(out, TimerLifetime)
	for _, leg := range c.outs.Confirmed() {
		for _, s := range [...]Side{SideCaller, SideCallee} {
			if side != SideBoth && side != s {
				continue
			}
			req, err := c.bye(leg, s, reason, hdrs)
			if err != nil {
				// Nothing will answer it: do not wait for it.
				out = add(out, logAction(slog.LevelWarn, "BYE not built", leg.ToTag, sideName(s)+": "+err.Error()))
				continue
			}
			if s == SideCaller {
				c.byeCaller++
			} else {
				c.byeCallee++
			}
			out = add(out, Action{Kind: ActSend, Send: req})
		}
	}
	if c.byeCaller == 0 && c.byeCallee == 0 {
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
func (c *Cell) legDst(l *dlgout.Leg) string {
	if len(l.RouteSet) != 0 || l.Source == "" {
		return ""
	}
	h := &c.legHop
	if h.leg != l || h.src != l.Source || h.transport != l.Transport {
		h.leg, h.src, h.transport, h.dst = l, l.Source, l.Transport, hopDst(l.Transport, l.Source)
	}
	return h.dst
}

// hopDst is "transport:source" with the transport in lower case, built in
// one allocation (ToLower and a concatenation were two of every request
// within a dialog).
func hopDst(transport, source string) string {
	var b [64]byte
	buf := b[:0]
	for i := 0; i < len(transport); i++ {
		c := transport[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf = append(buf, c)
	}
	buf = append(buf, ':')
	return string(append(buf, source...))
}

// bye makes the BYE for one side of a confirmed dialog's leg: that side's
// remote target and route set, the next CSeq of the party it stands for,
// dlg_extra_hdrs, the call's headers and the Reason (DESIGN §4).
func (c *Cell) bye(leg *dlgout.Leg, side Side, reason string, hdrs []Header) (*OutRequest, error) {
	req, err := c.inDialog(sip.BYE, leg, side)
	if err != nil {
		return nil, err
	}
	req.Headers = make([]Header, 0, len(c.cfg.ExtraHeaders)+len(hdrs)+1)
	req.Headers = append(req.Headers, c.cfg.ExtraHeaders...)
	req.Headers = append(req.Headers, hdrs...)
	if reason == "" {
		// Every BYE says why, as TS 24.229 §5.4.5 asks of an S-CSCF.
		reason = "terminated by the proxy"
	}
	req.Headers = append(req.Headers, reasonHeader(200, reason))
	return req, nil
}

// inDialog addresses a request we send to one side of a leg (BYE, a
// ping): that side's remote target and route set, tags the right way
// round, and the next CSeq of the party we stand for, taken for good
// (dlgout.Leg.NextCSeq: that party's later requests are shifted above it).
func (c *Cell) inDialog(method sip.RequestMethod, leg *dlgout.Leg, side Side) (*OutRequest, error) {
	calleeTo := c.toWithTag(leg.ToTag)
	req := &OutRequest{Method: method, CallID: c.callID, Await: true, Side: side}
	var err error
	if side == SideCallee {
		req.Target, req.Route, req.Dst = leg.RemoteTarget, leg.RouteSet, c.legDst(leg)
		req.From, req.To = c.from, calleeTo
		req.CSeq, err = leg.NextCSeq(true)
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
	return req, nil
}

// onPingTimer pings the chosen parties of a confirmed dialog, or ends the
// dialog when a party left the last ping unanswered (OpenSIPS checks at
// each tick too: a ping that is still out a whole interval later failed).
func (c *Cell) onPingTimer(now time.Time) []Action {
	if !persistable(c.state) || c.ping == PingNone {
		return nil
	}
	if c.pingOut&c.ping != 0 {
		return c.pingFailed(now, "no answer to an OPTIONS ping")
	}
	leg := c.outs.Answered()
	if leg == nil {
		return nil
	}
	// A side pinged with re-INVITEs gets no OPTIONS (OpenSIPS: "PR" is "R").
	out, sent := c.sendPings(nil, leg, c.ping&^c.reping)
	if sent {
		out = add(out, Action{Kind: ActPersist}) // the CSeqs moved
	}
	return c.arm(out, now, TimerPing, c.cfg.PingInterval)
}

// onReinvitePingTimer pings the chosen parties of a confirmed dialog with a
// re-INVITE that offers again, unchanged, the session description the
// other party last sent (RFC 3264 §8: same version, no change), or ends the
// dialog when a party left the last one unanswered.
func (c *Cell) onReinvitePingTimer(now time.Time) []Action {
	if !persistable(c.state) || c.reping == PingNone {
		return nil
	}
	if c.repingOut&c.reping != 0 {
		return c.pingFailed(now, "no answer to a re-INVITE ping")
	}
	leg := c.outs.Answered()
	if leg == nil {
		return nil
	}
	var out []Action
	if !c.reinviteOpen.IsZero() && now.Sub(c.reinviteOpen) < c.cfg.ReinvitePingInterval {
		// The parties are renegotiating: a second INVITE would get 491 or
		// make them retry theirs (RFC 3261 §14.1). Next tick.
		out = add(out, logAction(slog.LevelDebug, "re-INVITE ping skipped: a re-INVITE of the parties is pending", leg.ToTag, ""))
		return c.arm(out, now, TimerReinvitePing, c.cfg.ReinvitePingInterval)
	}
	c.reinviteOpen = time.Time{}
	sent := false
	for _, s := range [...]Side{SideCaller, SideCallee} {
		if c.reping&pingOf(s) == 0 {
			continue
		}
		offer := c.callerSDP
		if s == SideCaller {
			offer = leg.SDP
		}
		if offer == nil {
			// Pinging was switched on after the answer, or the parties
			// never exchanged SDP: an OPTIONS still tells whether the
			// party holds the dialog.
			var ok bool
			out, ok = c.sendPings(out, leg, pingOf(s))
			sent = sent || ok
			continue
		}
		req, err := c.inDialog(sip.INVITE, leg, s)
		if err != nil {
			out = add(out, logAction(slog.LevelWarn, "re-INVITE ping not built", leg.ToTag, sideName(s)+": "+err.Error()))
			continue
		}
		// The Contact is the other party's: we speak for it, and the
		// pinged party must keep sending to it (a target refresh).
		contact := c.callerTarget
		if s == SideCaller {
			contact = leg.RemoteTarget
		}
		req.Headers = []Header{{"Contact", "<" + contact.String() + ">"}, {"Content-Type", "application/sdp"}}
		req.Body = offer
		c.repingOut |= pingOf(s)
		out = add(out, Action{Kind: ActSend, Send: req})
		sent = true
	}
	if sent {
		out = add(out, Action{Kind: ActPersist}) // the CSeqs moved
	}
	return c.arm(out, now, TimerReinvitePing, c.cfg.ReinvitePingInterval)
}

// sendPings sends an in-dialog OPTIONS to each party in who and marks it
// out; onPingDone reads the replies. sent says whether any went.
func (c *Cell) sendPings(out []Action, leg *dlgout.Leg, who Ping) ([]Action, bool) {
	sent := false
	for _, s := range [...]Side{SideCaller, SideCallee} {
		if who&pingOf(s) == 0 {
			continue
		}
		req, err := c.inDialog(sip.OPTIONS, leg, s)
		if err != nil {
			out = add(out, logAction(slog.LevelWarn, "OPTIONS ping not built", leg.ToTag, sideName(s)+": "+err.Error()))
			continue
		}
		c.pingOut |= pingOf(s)
		out = add(out, Action{Kind: ActSend, Send: req})
		sent = true
	}
	return out, sent
}

// onPingDone reads a ping's reply: 408 (tm's timeout included), 481 (the
// party forgot the dialog) or none at all end the dialog; any other reply
// (200, 405, 501, a re-INVITE's 491 or 488...) shows the party is there.
func (c *Cell) onPingDone(now time.Time, side Side, code int, reinvite bool) []Action {
	what := "OPTIONS ping"
	if reinvite {
		what = "re-INVITE ping"
		c.repingOut &^= pingOf(side)
	} else {
		c.pingOut &^= pingOf(side)
	}
	if !persistable(c.state) {
		return nil
	}
	switch code {
	case 0, 408, 481:
		why := what + " answered " + strconv.Itoa(code)
		if code == 0 {
			why = what + " not answered"
		}
		return c.pingFailed(now, why+" by the "+sideName(side))
	}
	return nil
}

// probe asks both parties of an answered call whose ACK we never saw
// whether they still hold it: an in-dialog OPTIONS each, read by
// onPingDone like a keepalive's.
func (c *Cell) probe() []Action {
	leg := c.outs.Answered()
	if leg == nil {
		return nil
	}
	out, sent := c.sendPings(nil, leg, PingBoth)
	if sent {
		c.probing = true
		out = add(out, logAction(slog.LevelInfo, "no ACK seen and the callee stopped repeating its answer: asking both parties", leg.ToTag, ""))
		out = add(out, Action{Kind: ActPersist})
	}
	return out
}

// pingFailed ends a confirmed dialog whose party is gone: BYE both ways
// (the gone party's may fail; the other one's ends its session), end reason
// ping_timeout, or no_ack for the probe of an answer never ACKed.
func (c *Cell) pingFailed(now time.Time, why string) []Action {
	c.end = EndPingTimeout
	if c.probing {
		c.end = EndNoACK
	}
	c.pingOut, c.repingOut = 0, 0
	msg := "dialog ended by its keepalive"
	if c.probing {
		msg = "answered call never ACKed ended: a party does not hold it"
	}
	out := add(nil, logAction(slog.LevelInfo, msg, "", why))
	out = c.move(out, now, Terminated)
	out = fire(out, CbTerminated)
	return c.byes(out, now, SideBoth, "keepalive failed", nil)
}

// dropSDP forgets the session descriptions once no re-INVITE ping can need
// them: they are the largest part of a dialog.
func (c *Cell) dropSDP() {
	c.callerSDP = nil
	if a := c.outs.Answered(); a != nil {
		a.SDP = nil
	}
}

// keepSDP: a session description passing now may be needed later.
func (c *Cell) keepSDP() bool {
	return !c.Ended() && (c.reping != PingNone || c.cfg.KeepSDP || !persistable(c.state))
}

func pingOf(s Side) Ping {
	switch s {
	case SideCaller:
		return PingCaller
	case SideCallee:
		return PingCallee
	}
	return PingBoth
}

// endLeg ACKs and BYEs a callee leg whose 2xx came when the call was
// already answered by another leg or over (DESIGN §4, §8).
func (c *Cell) endLeg(out []Action, leg *dlgout.Leg, why string) []Action {
	out = add(out, logAction(slog.LevelWarn, "ending a second answering leg", leg.ToTag, why))
	if leg.RemoteTarget.Host == "" {
		return add(out, logAction(slog.LevelWarn, "second answering leg has no Contact: not ended", leg.ToTag, why))
	}
	to := c.toWithTag(leg.ToTag)
	dst := c.legDst(leg)
	ack := &OutRequest{Method: sip.ACK, Target: leg.RemoteTarget, Route: leg.RouteSet, Dst: dst,
		From: c.from, To: to, CallID: c.callID, CSeq: c.inviteCSeq}
	bye := *ack
	bye.Method, bye.CSeq = sip.BYE, c.inviteCSeq+1
	bye.Headers = []Header{reasonHeader(200, why)}
	return add(out, Action{Kind: ActSend, Send: ack}, Action{Kind: ActSend, Send: &bye})
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

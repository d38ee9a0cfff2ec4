package imsdialog

import (
	"errors"
	"log/slog"
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
func legDst(l *dlgout.Leg) string {
	if len(l.RouteSet) == 0 && l.Source != "" {
		return strings.ToLower(l.Transport) + ":" + l.Source
	}
	return ""
}

// bye makes the BYE for one side of a confirmed dialog's leg: that side's
// remote target and route set, the next CSeq of the party it stands for,
// dlg_extra_hdrs, the call's headers and the Reason (DESIGN §4).
func (c *Cell) bye(leg *dlgout.Leg, side Side, reason string, hdrs []Header) (*OutRequest, error) {
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
	if reason == "" {
		// Every BYE says why, as TS 24.229 §5.4.5 asks of an S-CSCF.
		reason = "terminated by the proxy"
	}
	req.Headers = append(req.Headers, reasonHeader(200, reason))
	return req, nil
}

// endLeg ACKs and BYEs a callee leg whose 2xx came when the call was
// already answered by another leg or over (DESIGN §4, §8).
func (c *Cell) endLeg(out []Action, leg *dlgout.Leg, why string) []Action {
	out = add(out, logAction(slog.LevelWarn, "ending a second answering leg", leg.ToTag, why))
	if leg.RemoteTarget.Host == "" {
		return add(out, logAction(slog.LevelWarn, "second answering leg has no Contact: not ended", leg.ToTag, why))
	}
	to := c.toWithTag(leg.ToTag)
	dst := legDst(leg)
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

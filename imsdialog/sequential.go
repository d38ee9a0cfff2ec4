package imsdialog

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
)

// Errors of SendSequential.
var (
	// ErrNotConfirmed: requests within a dialog are sent once it is
	// answered and until it ends.
	ErrNotConfirmed = errors.New("dialog not confirmed")
	// ErrNoSDP: a re-INVITE needs an offer, and none was given nor kept
	// (dialogs keep the parties' SDP only for re-INVITE pings).
	ErrNoSDP = errors.New("no SDP to offer")
	// ErrInviteInProgress: another INVITE is pending in the dialog (RFC
	// 3261 §14.1).
	ErrInviteInProgress = errors.New("an INVITE is in progress in the dialog")
)

// sequentialMethods are the requests SendSequential sends: a session
// refresh or renegotiation, a keepalive, mid-call information. BYE is
// TerminateDlg's; ACK, CANCEL and PRACK belong to other transactions.
var sequentialMethods = map[string]bool{"INVITE": true, "UPDATE": true, "OPTIONS": true, "INFO": true}

// inviteGuard is how long a re-INVITE of the parties keeps ours back
// without its final reply (64*T1 by default).
const inviteGuard = 32 * time.Second

// Sequential builds a request within a confirmed dialog towards one side
// (dlg_send_sequential), as the other party would send it: that side's
// target and route set, the next CSeq of the party we speak for (taken for
// good, as with pings), that party's Contact on a target refresh request.
// A re-INVITE without a body offers the other party's last SDP, when the
// dialog keeps it.
func (c *Cell) Sequential(now time.Time, side Side, method string, body []byte, contentType string, hdrs []Header) (*OutRequest, []Action, error) {
	method = strings.ToUpper(method)
	if !sequentialMethods[method] {
		return nil, nil, fmt.Errorf("method %q: want INVITE, UPDATE, OPTIONS or INFO", method)
	}
	if side != SideCaller && side != SideCallee {
		return nil, nil, fmt.Errorf("side %s: want caller or callee", sideName(side))
	}
	leg := c.outs.Answered()
	if !persistable(c.state) || leg == nil {
		return nil, nil, ErrNotConfirmed
	}
	if method == "INVITE" {
		if (!c.reinviteOpen.IsZero() && now.Sub(c.reinviteOpen) < inviteGuard) || c.repingOut != 0 {
			return nil, nil, ErrInviteInProgress
		}
		if len(body) == 0 {
			body = c.callerSDP
			if side == SideCaller {
				body = leg.SDP
			}
			if body == nil {
				return nil, nil, fmt.Errorf("re-INVITE to the %s: %w (give a body, or set dialog.keep_sdp)", sideName(side), ErrNoSDP)
			}
			contentType = "application/sdp"
		}
	}
	req, err := c.inDialog(sip.RequestMethod(method), leg, side)
	if err != nil {
		return nil, nil, err
	}
	req.Await = false
	if method == "INVITE" || method == "UPDATE" {
		contact := c.callerTarget
		if side == SideCaller {
			contact = leg.RemoteTarget
		}
		req.Headers = append(req.Headers, Header{"Contact", "<" + contact.String() + ">"})
	}
	req.Headers = append(req.Headers, hdrs...)
	if len(body) > 0 {
		if contentType == "" {
			contentType = "application/sdp"
		}
		req.Headers = append(req.Headers, Header{"Content-Type", contentType})
		req.Body = body
	}
	if method == "INVITE" {
		c.reinviteOpen = now
	}
	return req, []Action{{Kind: ActPersist}}, nil // the CSeqs moved
}

// SendSequential sends a request within a confirmed dialog to one side
// (dlg_send_sequential; see Cell.Sequential) and waits for its final reply,
// or for ctx. The proxy ACKs a 2xx to a re-INVITE itself. hdrs are extra
// header lines ("Name: value").
func (m *Manager) SendSequential(ctx context.Context, d *Dialog, side Side, method string, body []byte, contentType string, hdrs ...string) (*sip.Response, error) {
	for _, h := range hdrs {
		if len(headerLines([]string{h})) == 0 {
			return nil, fmt.Errorf("header %q: not a header line", h)
		}
	}
	d.mu.Lock()
	req, acts, err := d.cell.Sequential(m.clock.Now(), side, method, body, contentType, headerLines(hdrs))
	sender := d.sender
	d.mu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("dialog %s: %w", d.did, err)
	}
	m.run(d, acts, CallbackParams{})
	type result struct {
		res *sip.Response
		err error
	}
	done := make(chan result, 1)
	msg := buildRequest(req)
	// The final reply ends our re-INVITE for the dialog whether or not the
	// caller still waits for it.
	if err := sender.Send(msg, req.Dst, func(res *sip.Response, err error) {
		m.sequentialDone(d, req)
		done <- result{res, err}
	}); err != nil {
		m.sequentialDone(d, req)
		return nil, fmt.Errorf("dialog %s: %s to the %s: %w", d.did, req.Method, sideName(side), err)
	}
	m.log.Info("request sent within the dialog", "callid", d.CallID, "did", d.did, "method", string(req.Method),
		"side", sideName(side), "cseq", req.CSeq)
	select {
	case r := <-done:
		if r.err != nil {
			return nil, fmt.Errorf("dialog %s: %s to the %s: %w", d.did, req.Method, sideName(side), r.err)
		}
		return r.res, nil
	case <-ctx.Done():
		// The transaction goes on and ends by itself; the caller stops
		// waiting.
		return nil, fmt.Errorf("dialog %s: %s to the %s: %w", d.did, req.Method, sideName(side), ctx.Err())
	}
}

// sequentialDone lets pings and the parties' re-INVITEs go again once our
// re-INVITE has its final reply.
func (m *Manager) sequentialDone(d *Dialog, req *OutRequest) {
	if req.Method != sip.INVITE {
		return
	}
	d.mu.Lock()
	d.cell.reinviteOpen = time.Time{}
	d.mu.Unlock()
}

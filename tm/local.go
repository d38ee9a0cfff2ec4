package tm

import (
	"context"
	"errors"
	"fmt"

	"github.com/emiago/sipgo/sip"
)

// SendRequest sends a request originated by the proxy itself (t_uac_dlg):
// a BYE or CANCEL ending a call, an OPTIONS ping. It gets its own client
// transaction and our Via; it goes to dst when set ("udp:host:port"),
// else by its Route set or Request-URI. Provisional replies are skipped;
// the final reply is returned. Without a final reply within ctx or
// LocalTimeout it returns an error wrapping context.DeadlineExceeded or
// sip.ErrTransactionTimeout.
func (p *Proxy) SendRequest(ctx context.Context, req *sip.Request, dst string) (*sip.Response, error) {
	if err := checkLocal(req); err != nil {
		return nil, err
	}
	if req.MaxForwards() == nil {
		SetMaxForwards(req, 70)
	}
	if req.ContentLength() == nil {
		req.SetBody(req.Body())
	}
	h, err := routeOut(req, dst)
	if err != nil {
		return nil, err
	}
	l := p.pickListener(h.transport, h.host)
	if l == nil {
		return nil, fmt.Errorf("tm: no %s listener to send from", h.transport)
	}
	req.PrependHeader(newVia(l, h.transport, NewBranch(LoopHash(req))))
	route(req, h, l)

	ctx, cancel := context.WithTimeout(ctx, p.cfg.LocalTimeout)
	defer cancel()
	dctx, dcancel := context.WithTimeout(ctx, dialTimeout)
	tx, err := p.txl.Request(dctx, req)
	dcancel()
	if err != nil {
		p.stats.sendFailures.Add(1)
		return nil, fmt.Errorf("tm: %s to %s: %w", req.Method, h.addr(), err)
	}
	p.stats.localRequests.Add(1)
	p.stats.uacTransactions.Add(1)
	defer tx.Terminate()
	for {
		select {
		case res := <-tx.Responses():
			p.stats.receivedReplies.Add(1)
			if res.StatusCode >= 200 {
				return res, nil
			}
		case <-tx.Done():
			err := tx.Err()
			if err == nil {
				err = sip.ErrTransactionTerminated
			}
			return nil, fmt.Errorf("tm: %s to %s: %w", req.Method, h.addr(), err)
		case <-ctx.Done():
			return nil, fmt.Errorf("tm: %s to %s: no final reply: %w", req.Method, h.addr(), ctx.Err())
		}
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
	return p.forwardStateless(req, LoopHash(req), dst)
}

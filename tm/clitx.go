package tm

import (
	"errors"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/imsdlg/imsdlg/tm/transport"
	"github.com/imsdlg/imsdlg/tm/txn"
	"github.com/imsdlg/imsdlg/tm/wheel"
)

// cliOwner is who a client transaction reports to: a branch of a proxied
// request, a local request (Sender.Send), or nobody (a CANCEL we send).
// It is called outside the transaction's lock.
type cliOwner interface {
	// onResponse is told of every response the FSM passes up: a 1xx, the
	// final, and in Accepted every further 2xx (retrans true).
	onResponse(c *cliTx, res *sip.Response, retrans bool)
	// onFailure is told once when no final response will come: 408 for a
	// timeout (Timer B/F), 503 for a transport error.
	onFailure(c *cliTx, code int, err error)
}

// errTimeout and errTransport say why a client transaction failed.
var (
	errTimeout   = errors.New("tm: no final response (transaction timeout)")
	errTransport = errors.New("tm: the request could not be sent")
)

// cliTx is a client transaction (RFC 3261 §17.1).
type cliTx struct {
	p       *Proxy
	key     string // in keyRoom when it fits
	keyRoom [cliKeyRoom]byte
	dest    transport.Dest
	owner   cliOwner

	mu  sync.Mutex
	fsm txn.Tx
	req *sip.Request // as sent; the CANCEL and the ACK of a non-2xx are built from it
	raw wire         // its bytes, for retransmissions (a pooled buffer)
	// ack is the ACK of a non-2xx final: a pooled buffer of c's, or (bp
	// nil) its linger record's bytes.
	ack    wire
	timers [2]Timer
	// entries back timers on tm's wheel, with c as their Firer.
	entries [2]wheel.Entry
}

// Fire is a timer of c firing on tm's wheel (armTx).
func (c *cliTx) Fire(arg uint64) { c.step(txArg(arg), nil) }

// txKey is the transaction's table key.
func (c *cliTx) txKey() string { return c.key }

// cliPost is what a step leaves for the owner, after the lock.
type cliPost struct {
	pass    bool
	retrans bool
	fail    int
	err     error
	done    bool
	sendErr bool         // the request could not be sent: the FSM must hear of it
	ack     *sip.Request // the ACK of a non-2xx built, for the LocalObservers
}

func (p cliPost) run(c *cliTx, res *sip.Response) {
	if p.done {
		c.p.cliTxs.remove(c.key, func(v *cliTx) bool { return v == c })
	}
	if p.ack != nil {
		c.p.localRequest(p.ack)
		releaseReq(p.ack)
	}
	if c.owner == nil {
		return
	}
	if p.pass && res != nil {
		c.owner.onResponse(c, res, p.retrans)
	}
	if p.fail != 0 {
		c.owner.onFailure(c, p.fail, p.err)
	}
}

// step feeds the FSM one event; res is the response of an EvRecvResponse.
func (c *cliTx) step(ev txn.Event, res *sip.Response) {
	c.mu.Lock()
	var buf [txn.MaxActions]txn.Action
	acts := c.fsm.Step(ev, buf[:0])
	post := c.exec(acts, res)
	if st := c.fsm.State(); st >= txn.Completed && c.raw.b != nil {
		// A final response went by: the request is never sent again (an
		// ACK of a non-2xx is built by now), yet the transaction stays to
		// absorb retransmissions (Timer K, M: up to 64*T1). Holding the
		// request that long cost as much memory as the calls in progress.
		c.raw.release()
		releaseReq(c.req)
		c.req = nil
	}
	c.mu.Unlock()
	post.run(c, res)
	if post.sendErr {
		c.step(txn.Event{Kind: txn.EvTransportError}, nil)
	}
}

func (c *cliTx) exec(acts []txn.Action, res *sip.Response) cliPost {
	var post cliPost
	p := c.p
	// Timers first: once a message is out, its retransmission timer is
	// armed (whoever sees the message may act on it at once). Timers D
	// and K are not: the transaction becomes a lingerRec below.
	var linger txn.Action
	for _, a := range acts {
		if a.Kind == txn.ActArmTimer && cliLingersFor(a.Timer, c.owner) {
			linger = a
			continue
		}
		c.timer(a)
	}
	// The record of a lingering transaction starts at the step's time,
	// read before the ACK leaves (as in srvTx.exec), and only for one.
	var now time.Time
	if linger.Kind != 0 {
		now = p.clock.Now()
	}
	for _, a := range acts {
		switch a.Kind {
		case txn.ActSendRequest:
			if err := p.send(c.raw.b, c.dest); err != nil {
				p.log.Info("request not sent", "dst", c.dest.Addr.String(), "transport", c.dest.Transport, "error", err)
				post.sendErr = true
			}
		case txn.ActResendRequest:
			p.stats.retransmittedRequest(int(a.N))
			p.send(c.raw.b, c.dest)
		case txn.ActSendACK:
			if c.ack.b == nil && res != nil {
				ack := hopACK(c.req, res)
				if o, ok := c.owner.(branchOwner); ok {
					for _, h := range o.t.addedHeaders() {
						ack.AppendHeader(h)
					}
				}
				c.ack = marshalWire(ack)
				if len(p.localObs) > 0 {
					post.ack = ack // its reference given back once they saw it
				} else {
					releaseReq(ack)
				}
			}
			p.send(c.ack.b, c.dest)
		case txn.ActResendACK:
			p.stats.retransAbsorbed.Add(1)
			if c.ack.b != nil {
				p.send(c.ack.b, c.dest)
			}
		case txn.ActPassProvisional, txn.ActPassFinal:
			post.pass = true
		case txn.ActPass2xxRetransmission:
			post.pass, post.retrans = true, true
		case txn.ActArmTimer, txn.ActStopTimer:
			// Done first, below.
		case txn.ActTimeout:
			post.fail, post.err = 408, errTimeout
		case txn.ActTransportError:
			if post.fail == 0 {
				post.fail, post.err = 503, errTransport
			}
		case txn.ActTerminated:
			post.done = true
			c.raw.release()
			c.ack.release()
			for _, t := range c.timers {
				if t != nil {
					t.Stop()
				}
			}
		}
	}
	c.linger(now, linger, &post)
	return post
}

// linger turns a completed transaction whose FSM armed linger (Timer D
// or K; M for a branch) into a lingerRec, or arms the timer when the
// record cannot be kept. Called with c.mu held, once the actions (the
// ACK) went out.
func (c *cliTx) linger(now time.Time, linger txn.Action, post *cliPost) {
	if linger.Kind == 0 || post.done {
		return
	}
	var kept bool
	switch {
	case linger.Timer == txn.TimerM:
		kept = c.p.cliLinger.addForward(now, linger.After, c.key, c.owner.(branchOwner), c.dest)
	case c.fsm.Kind() == txn.ClientInvite:
		var rec []byte
		if rec, kept = c.p.cliLinger.add(now, linger.After, c.key, lingerACK, c.ack.b, c.dest); kept && c.ack.b != nil {
			// A retransmission that found c before it left the table is
			// answered with the record's copy (never written again); the
			// pooled bytes go back.
			c.ack.release()
			c.ack.b = rec
		}
	default:
		_, kept = c.p.cliLinger.add(now, linger.After, c.key, lingerAbsorb, nil, c.dest)
	}
	if kept {
		// The record answers from here on; a retransmission that found c
		// in the table before it left is answered by c (its ACK stays).
		post.done = true
		return
	}
	c.timer(linger) // the key's hash is another's: stay whole
}

// hopACK is the ACK of a non-2xx final (§17.1.1.3): the request's
// Request-URI, its top Via only, its Route set, From, Call-ID, CSeq number,
// and the response's To (with the tag).
func hopACK(req *sip.Request, res *sip.Response) *sip.Request {
	d := newDerived(sip.ACK, req)
	if v := req.Via(); v != nil {
		d.req.AppendHeader(v)
	}
	d.routes(req)
	if f := req.From(); f != nil {
		d.req.AppendHeader(f)
	}
	if to := res.To(); to != nil {
		d.req.AppendHeader(to) // only marshalled: the response is not kept
	}
	if cid := req.CallID(); cid != nil {
		d.req.AppendHeader(cid)
	}
	d.cseqOf(req)
	d.maxForwards()
	return d.end()
}

// startCliTx registers a client transaction for req (its top Via is ours)
// and sends it; raw, when set, is req's wire form already made, which the
// transaction then owns. The owner hears of every response and of a
// failure. local: tm made the request (a CANCEL, a request of its own),
// as opposed to a branch it relays; the LocalObservers see it.
func (p *Proxy) startCliTx(req *sip.Request, raw wire, dest transport.Dest, owner cliOwner, local bool) (*cliTx, error) {
	c, err := p.newCliTx(req, raw, dest, owner)
	if err != nil {
		return nil, err
	}
	c.start(local)
	return c, nil
}

// newCliTx is startCliTx up to the send: the transaction is in cliTxs, so
// its replies find it, but nothing went out yet. What must be in place
// before a reply can come (a local INVITE's entry that CANCELs look up)
// goes in between; then start.
func (p *Proxy) newCliTx(req *sip.Request, raw wire, dest transport.Dest, owner cliOwner) (*cliTx, error) {
	via := req.Via()
	cseq := req.CSeq()
	if via == nil || cseq == nil {
		raw.release()
		return nil, errors.New("tm: request without Via or CSeq")
	}
	branch, _ := Param(via.Params, "branch")
	kind := txn.ClientNonInvite
	if req.IsInvite() {
		kind = txn.ClientInvite
	}
	if raw.b == nil {
		// Kept until the final reply, in a pooled buffer: an exact copy
		// was an allocation of every INVITE and BYE relayed.
		raw = marshalWire(req)
	}
	c := &cliTx{p: p, dest: dest, owner: owner, req: req, raw: raw,
		fsm: txn.New(kind, dest.Transport == transport.TCP, p.timers)}
	var kb [96]byte // the key is built here and copied once into c.key
	c.key = keyIn(c.keyRoom[:], txn.AppendClientKey(kb[:0], branch, string(cseq.MethodName)))
	retainReq(req) // until the final reply: the CANCEL and the ACK of a non-2xx read it
	if _, added := p.cliTxs.add(c.key, c); !added {
		c.raw.release()
		releaseReq(req)
		return nil, errors.New("tm: a client transaction with this branch exists")
	}
	p.stats.uacTransactions.Add(1)
	return c, nil
}

// start sends the request of a transaction newCliTx made; local: tm made
// it (no raw bytes were given), and the LocalObservers see it.
func (c *cliTx) start(local bool) {
	req := c.req // read before the send: a fast final reply clears it
	c.step(txn.Event{Kind: txn.EvSendRequest}, nil)
	if local {
		c.p.localRequest(req)
	}
}

// cancelSent tells an INVITE client transaction that its CANCEL went out
// (§9.1: a final response is still awaited 64*T1).
func (c *cliTx) cancelSent() { c.step(txn.Event{Kind: txn.EvCancelSent}, nil) }

// pending: no final reply yet (a CANCEL still makes sense).
func (c *cliTx) pending() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	st := c.fsm.State()
	return st == txn.Calling || st == txn.Proceeding
}

// timer carries out a timer action of the FSM (others are ignored).
func (c *cliTx) timer(a txn.Action) {
	switch a.Kind {
	case txn.ActArmTimer:
		slot := timerSlot(a.Timer)
		if c.timers[slot] != nil {
			c.timers[slot].Stop()
		}
		c.timers[slot] = c.p.armTx(&c.entries[slot], c, a.After, a.Timer, a.Gen)
	case txn.ActStopTimer:
		if t := c.timers[timerSlot(a.Timer)]; t != nil {
			t.Stop()
		}
	}
}

package tm

import (
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/imsdlg/imsdlg/tm/transport"
	"github.com/imsdlg/imsdlg/tm/txn"
	"github.com/imsdlg/imsdlg/tm/wheel"
)

// srvTx is a server transaction (RFC 3261 §17.2): the pure txn.Tx with what
// its actions need around it. A completed one keeps its key, its
// destination and the last response's bytes, which is all that absorbing
// retransmissions needs.
type srvTx struct {
	p       *Proxy
	key     string // in keyRoom when it fits
	keyRoom [txKeyRoom]byte
	dest    transport.Dest // where its responses go (§18.2.2)

	mu  sync.Mutex
	fsm txn.Tx
	// last is the last response sent, what a retransmitted request is
	// answered with: a pooled buffer of s's own (last.bp set: a
	// provisional, an INVITE's non-2xx final), its linger record's bytes,
	// or, during respondBytes only, the caller's.
	last   wire
	timers [2]Timer // [0] retransmission (G), [1] lifetime (H, I, J, L)
	// entries back timers on tm's wheel, with s as their Firer.
	entries [2]wheel.Entry
}

// Fire is a timer of s firing on tm's wheel (armTx).
func (s *srvTx) Fire(arg uint64) { s.step(txArg(arg)) }

// txKey is the transaction's table key.
func (s *srvTx) txKey() string { return s.key }

func timerSlot(id txn.TimerID) int {
	if id.Retransmission() {
		return 0
	}
	return 1
}

// respond sends a response on the transaction. It returns false when the
// transaction no longer takes one (a 2xx after a non-2xx final, RFC 6026
// §8.5: the caller forwards it statelessly).
func (s *srvTx) respond(res *sip.Response) bool {
	bp := wireBuf()
	data := appendMessage((*bp)[:0], res)
	ok := s.respondBytes(data, res.StatusCode)
	putWire(bp, data)
	return ok
}

// respondBytes is respond with the response already on the wire form.
// data is only borrowed (the caller's pooled buffer): it is sent before
// respondBytes returns, and what the transaction keeps to answer a
// retransmitted request with, it copies; a 2xx of an INVITE (Accepted) or
// a final in a lingering record keeps no copy of its own.
func (s *srvTx) respondBytes(data []byte, code int) bool {
	s.mu.Lock()
	var buf [txn.MaxActions]txn.Action
	acts := s.fsm.Step(txn.Event{Kind: txn.EvSendResponse, Code: code}, buf[:0])
	sent := false
	for _, a := range acts {
		if a.Kind == txn.ActSendResponse {
			s.setLast(data)
			sent = true
		}
	}
	post := s.exec(acts)
	s.forget()
	s.keepLast(data)
	s.mu.Unlock()
	post.run(s)
	return sent
}

// setLast makes b the last response, giving back the buffer of a copy s
// kept of the one before.
func (s *srvTx) setLast(b []byte) {
	s.last.release()
	s.last.b = b
}

// keepLast copies last into a pooled buffer of s's when it is data, the
// caller's borrowed bytes (a 100 Trying's and a 180's copies were two
// allocations per call). Called with s.mu held; every read of last is
// under it.
func (s *srvTx) keepLast(data []byte) {
	if s.last.bp == nil && len(s.last.b) > 0 && len(data) > 0 && &s.last.b[0] == &data[0] {
		bp := wireBuf()
		s.last = wire{bp: bp, b: append((*bp)[:0], data...)}
	}
}

// forget drops the last response once the FSM will never send it again:
// an INVITE transaction in Accepted (the 2xx is the TU's to repeat, RFC
// 6026 §7.1) or Confirmed stays 64*T1 (Timer L) or T4 (Timer I) with only
// its key (issue 14: a completed transaction keeps what absorbing
// retransmissions needs). Called with s.mu held, after exec sent it.
func (s *srvTx) forget() {
	if st := s.fsm.State(); st == txn.Accepted || st == txn.Confirmed {
		s.setLast(nil)
	}
}

// step feeds an event (a retransmitted request, an ACK, a timer) to the
// FSM; the caller reads passACK off the result.
func (s *srvTx) step(ev txn.Event) srvPost {
	s.mu.Lock()
	var buf [txn.MaxActions]txn.Action
	acts := s.fsm.Step(ev, buf[:0])
	post := s.exec(acts)
	s.forget()
	s.mu.Unlock()
	post.run(s)
	return post
}

// srvPost is what a step leaves for after the lock.
type srvPost struct {
	passACK    bool
	terminated bool
	ackTimeout bool
}

func (p srvPost) run(s *srvTx) {
	if p.terminated {
		s.p.srvTxs.remove(s.key, func(v *srvTx) bool { return v == s })
	}
}

// testHookReplySent, when set (tests only, before the proxy starts), runs
// after a server transaction sent a response, with s.mu held.
var testHookReplySent func(code int)

// exec carries out the FSM's actions under s.mu: sends and timers.
func (s *srvTx) exec(acts []txn.Action) srvPost {
	var post srvPost
	p := s.p
	// Timers first: once a message is out, its retransmission timer is
	// armed (whoever sees the message may act on it at once). The timer
	// of a completed transaction that only absorbs retransmissions (I, J, L)
	// is not armed: the transaction becomes a lingerRec below.
	var linger txn.Action
	for _, a := range acts {
		if a.Kind == txn.ActArmTimer && srvLingers(a.Timer) {
			linger = a
			continue
		}
		s.timer(a)
	}
	// The record of a lingering transaction starts at the step's time,
	// also read before the send: whoever answers the message (and a test's
	// clock) may move on before the record is made. Only then: a clock
	// read per step is ~1 % of the CPU.
	var now time.Time
	if linger.Kind != 0 {
		now = p.clock.Now()
	}
	for _, a := range acts {
		switch a.Kind {
		case txn.ActSendResponse:
			p.send(s.last.b, s.dest)
			if testHookReplySent != nil {
				testHookReplySent(a.Code)
			}
		case txn.ActResendResponse:
			p.stats.retransmittedReply()
			p.send(s.last.b, s.dest)
		case txn.ActArmTimer, txn.ActStopTimer:
			// Done first, below.
		case txn.ActPassACK:
			post.passACK = true
		case txn.ActTimeout:
			post.ackTimeout = true
		case txn.ActTerminated:
			post.terminated = true
			s.setLast(nil)
			for _, t := range s.timers {
				if t != nil {
					t.Stop()
				}
			}
		}
	}
	s.linger(now, linger, &post)
	return post
}

// linger turns a completed transaction whose FSM armed linger (Timer I,
// J or L) into a lingerRec, or arms the timer when the record cannot be
// kept. Called with s.mu held, once the actions went out.
func (s *srvTx) linger(now time.Time, linger txn.Action, post *srvPost) {
	if linger.Kind == 0 || post.terminated {
		return
	}
	act, wire := lingerAbsorb, []byte(nil)
	switch {
	case s.fsm.Kind() == txn.ServerNonInvite:
		act, wire = lingerResend, s.last.b
	case s.fsm.State() == txn.Accepted:
		act = lingerAccepted
	}
	if kept, ok := s.p.srvLinger.add(now, linger.After, s.key, act, wire, s.dest); ok {
		// The record answers from here on. s.last stays, as the record's
		// copy (never written again): a retransmission that found s in
		// the table before it left is still answered by s, with those
		// bytes.
		if wire != nil {
			s.setLast(kept)
		}
		post.terminated = true
		return
	}
	s.timer(linger) // the key's hash is another's: stay whole
}

// newSrvTx creates and registers the server transaction of a new request;
// it returns the one already there when a retransmission raced it in.
func (p *Proxy) newSrvTx(key []byte, req *sip.Request, dest transport.Dest, reliable bool) (*srvTx, bool) {
	kind := txn.ServerNonInvite
	if req.IsInvite() {
		kind = txn.ServerInvite
	}
	s := &srvTx{p: p, dest: dest, fsm: txn.New(kind, reliable, p.timers)}
	s.key = keyIn(s.keyRoom[:], key)
	got, added := p.srvTxs.add(s.key, s)
	if added {
		p.stats.uasTransactions.Add(1)
	}
	return got, added
}

// dropAfter removes a transaction that will never answer (a dropped
// request) once its retransmissions have stopped.
func (s *srvTx) dropAfter(d time.Duration) {
	s.p.clock.AfterFunc(d, func() { s.p.srvTxs.remove(s.key, func(v *srvTx) bool { return v == s }) })
}

// timer carries out a timer action of the FSM (others are ignored).
func (s *srvTx) timer(a txn.Action) {
	switch a.Kind {
	case txn.ActArmTimer:
		slot := timerSlot(a.Timer)
		if s.timers[slot] != nil {
			s.timers[slot].Stop()
		}
		s.timers[slot] = s.p.armTx(&s.entries[slot], s, a.After, a.Timer, a.Gen)
	case txn.ActStopTimer:
		if t := s.timers[timerSlot(a.Timer)]; t != nil {
			t.Stop()
		}
	}
}

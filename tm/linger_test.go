package tm

import (
	"fmt"
	"hash/maphash"
	"math/rand/v2"
	"net/netip"
	"runtime"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"weak"

	"github.com/emiago/sipgo/sip"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imsdlg/imsdlg/internal/siptest"
	"github.com/imsdlg/imsdlg/tm/transport"
	"github.com/imsdlg/imsdlg/tm/txn"
	"github.com/imsdlg/imsdlg/tm/wheel"
)

var lingerDest = transport.Dest{Transport: transport.UDP, Addr: netip.MustParseAddrPort("127.0.0.1:5070"),
	Local: netip.MustParseAddrPort("127.0.0.1:5060")}

func newTestLinger() *lingerTable { return newLingerTable(new(atomic.Int64)) }

// at is a clock stopped at a time, for lingerTable.get.
type at time.Time

func (a at) Now() time.Time { return time.Time(a) }

// liveAt counts the records that still answer at now.
func (t *lingerTable) liveAt(now time.Time) int {
	n := 0
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		for k := s.head; k < s.tail; k++ {
			if r := s.at(k); r.expires > now.UnixNano() {
				if m, ok := s.idx.get(r.hash); ok && m == k {
					n++
				}
			}
		}
		s.mu.Unlock()
	}
	return n
}

// Issue 14, the RFC 3261 §17 timers D, I, J and K: a record answers
// until its timer would have ended the transaction, not a moment longer,
// and keeps the bytes it answers with.
func TestRFC3261_17_LingeringRecordLastsItsTimer(t *testing.T) {
	t0 := time.Unix(1000, 0)
	tab := newTestLinger()
	wire := []byte("SIP/2.0 200 OK\r\n\r\n")
	kept, ok := tab.add(t0, 5*time.Second, "key-1", lingerResend, wire, lingerDest)
	require.True(t, ok)
	assert.Equal(t, string(wire), string(kept), "the copy kept, which a srvTx answers from too")
	wire[0] = 'X' // the table kept a copy
	assert.Equal(t, byte('S'), kept[0])
	cases := []struct {
		name  string
		at    time.Duration
		key   string
		found bool
	}{
		{"§17.2.2 Timer J: at once", 0, "key-1", true},
		{"just before the timer", 5*time.Second - time.Nanosecond, "key-1", true},
		{"when the timer fires", 5 * time.Second, "key-1", false},
		{"another key", time.Second, "key-2", false},
		{"a prefix of the key", time.Second, "key-", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, ok := tab.get(at(t0.Add(c.at)), []byte(c.key))
			require.Equal(t, c.found, ok)
			if ok {
				assert.Equal(t, "SIP/2.0 200 OK\r\n\r\n", string(r.wire()))
				assert.Equal(t, c.key, string(r.key()))
				assert.Equal(t, lingerResend, r.act)
				assert.Equal(t, lingerDest, r.dest())
			}
		})
	}
}

// A record only stands for a UDP transaction: reliable transports end
// the transaction at once (Timers D, I, J, K are zero), and a connection
// is not something to keep in a record.
func TestLingerTableTakesUDPOnly(t *testing.T) {
	tab := newTestLinger()
	now := time.Unix(1000, 0)
	tcp := lingerDest
	tcp.Transport = transport.TCP
	assert.False(t, added(tab.add(now, time.Second, "k", lingerAbsorb, nil, tcp)))
	conn := lingerDest
	conn.Conn = &transport.Conn{}
	assert.False(t, added(tab.add(now, time.Second, "k", lingerAbsorb, nil, conn)))
	assert.Zero(t, tab.len())
	lower := lingerDest
	lower.Transport = "udp"
	assert.True(t, added(tab.add(now, time.Second, "k", lingerAbsorb, nil, lower)))
	assert.Equal(t, 1, tab.len())
}

// Two keys of one hash (forced: mask 0): the second is refused while the
// first is live, so that its transaction stays whole; once the first
// expired the hash is free again.
func TestLingerTableKeysCollide(t *testing.T) {
	tab := newTestLinger()
	tab.mask = 0
	t0 := time.Unix(1000, 0)
	require.True(t, added(tab.add(t0, time.Second, "first", lingerAbsorb, nil, lingerDest)))
	assert.False(t, added(tab.add(t0, time.Second, "second", lingerAbsorb, nil, lingerDest)))
	_, ok := tab.get(at(t0), []byte("second"))
	assert.False(t, ok, "a key found under another's hash")
	_, ok = tab.get(at(t0), []byte("first"))
	assert.True(t, ok)
	later := t0.Add(time.Second)
	require.True(t, added(tab.add(later, time.Second, "second", lingerAbsorb, nil, lingerDest)))
	_, ok = tab.get(at(later), []byte("second"))
	assert.True(t, ok)
	_, ok = tab.get(at(later), []byte("first"))
	assert.False(t, ok)
}

// The table against a map model: random keys lingering random times
// (two durations, as T4 and wt_timer may differ), random lookups, time
// moving on, sweeps; rings grow and shrink under it.
func TestLingerTableAgainstAMap(t *testing.T) {
	for _, mask := range []uint64{^uint64(0), 3} {
		t.Run(fmt.Sprintf("mask %#x", mask), func(t *testing.T) {
			tab := newTestLinger()
			tab.mask = mask
			rng := rand.New(rand.NewPCG(1, uint64(mask)))
			model := map[string]time.Time{} // key -> expiry
			// Most data fit the shards' chunks; every seventh key's is
			// larger than a quarter chunk and gets its own allocation.
			wireOf := func(key string) string {
				if len(key)%7 == 0 || key[len(key)-1] == '7' {
					return strings.Repeat(key, lingerChunk/4/len(key)+1)
				}
				return key
			}
			now := time.Unix(1000, 0)
			for i := range 30000 {
				now = now.Add(time.Duration(rng.IntN(3)) * time.Millisecond)
				key := fmt.Sprintf("k%d", rng.IntN(4000))
				switch op := rng.IntN(10); {
				case op < 4:
					d := []time.Duration{5 * time.Second, 2 * time.Second}[rng.IntN(2)]
					if exp, live := model[key]; live && exp.After(now) {
						continue // a transaction lingers once
					}
					if added(tab.add(now, d, key, lingerAbsorb, []byte(wireOf(key)), lingerDest)) {
						model[key] = now.Add(d)
					} else {
						// Refused only for a live record of the same hash.
						collides := false
						for k, exp := range model {
							if exp.After(now) && maphash.String(tab.seed, k)&tab.mask == maphash.String(tab.seed, key)&tab.mask {
								collides = true
							}
						}
						require.True(t, collides, "op %d: %s refused without a collision", i, key)
					}
				case op < 9:
					r, ok := tab.get(at(now), []byte(key))
					exp, known := model[key]
					require.Equal(t, known && exp.After(now), ok, "op %d: get %s", i, key)
					if ok {
						require.Equal(t, wireOf(key), string(r.wire()), "op %d: %s's bytes", i, key)
						require.Equal(t, key, string(r.key()))
					}
				default:
					tab.sweep(now)
				}
			}
			// Everything expires; a sweep frees it and gives the room back.
			now = now.Add(time.Minute)
			tab.sweep(now)
			tab.sweep(now)
			assert.Zero(t, tab.len())
			for i := range tab.shards {
				s := &tab.shards[i]
				assert.Zero(t, s.idx.len())
				assert.LessOrEqual(t, len(s.idx.slots), lingerIdxMin, "shard %d kept its peak's index", i)
				assert.LessOrEqual(t, len(s.segs), 1, "shard %d kept its peak's segments", i)
				assert.LessOrEqual(t, cap(s.segs), 16, "shard %d kept its peak's segment list", i)
			}
		})
	}
}

// RFC 3261 §17.2.2 (Figure 8) and §17.1.2.2 (Figure 6), issue 14: once a
// non-INVITE request is answered, its server and client transactions
// linger as records. A retransmitted request gets the same final again
// and never reaches the callee; a retransmitted final from the callee is
// absorbed; after Timer J a retransmission is a new transaction.
func TestRFC3261_17_2_2_CompletedNonInviteLingersAsARecord(t *testing.T) {
	uac, uas := siptest.NewUA(t), siptest.NewUA(t)
	p := startProxy(t, testCfg(), toUAs(uas))
	req := uac.NewRequest("OPTIONS", "sip:bob@"+p.udp, 1)
	uac.Send(p.udp, req)
	got := uas.Request(sip.OPTIONS)
	uas.Reply(got, 200, "b")
	first := uac.Response(200)
	siptest.Eventually(t, func() bool { return p.srvLinger.len() == 1 && p.cliLinger.len() == 1 },
		"the OPTIONS transactions lingering as records")
	assert.Zero(t, p.srvTxs.len(), "the server transaction stayed whole")
	assert.Zero(t, p.cliTxs.len(), "the client transaction stayed whole")
	assert.Equal(t, uint64(2), p.Stats().Snapshot()["lingering_transactions"])

	absorbed := p.Stats().Snapshot()["retransmissions_absorbed"]
	uac.Send(p.udp, req)
	again := uac.Response(200)
	assert.Equal(t, first.String(), again.String(), "Figure 8: the final is sent again as it was")
	uas.Reply(got, 200, "b") // the callee repeats its final: absorbed
	uac.Quiet(100*time.Millisecond, "a relayed retransmission", func(sip.Message) bool { return true })
	uas.Quiet(10*time.Millisecond, "the retransmitted request", func(sip.Message) bool { return true })
	assert.Equal(t, absorbed+1, p.Stats().Snapshot()["retransmissions_absorbed"])

	// Timer J (T4 and wt_timer: 5 s) ends it: the next copy is new.
	require.Equal(t, 5*time.Second, p.cfg.WtTimer)
	p.clock.Advance(5*time.Second - time.Millisecond)
	uac.Send(p.udp, req)
	uac.Response(200)
	p.clock.Advance(time.Millisecond)
	uac.Send(p.udp, req)
	uas.Request(sip.OPTIONS)
}

// inviteAnswered sends an INVITE over UDP through a proxy to one callee,
// which answers code with To tag "b".
func inviteAnswered(t *testing.T, code int) (p *testProxy, uac, uas *siptest.UA, inv, got *sip.Request) {
	uac, uas = siptest.NewUA(t), siptest.NewUA(t)
	p = startProxy(t, testCfg(), toUAs(uas))
	inv = uac.Invite("sip:bob@" + p.udp)
	uac.Send(p.udp, inv)
	got = uas.Request(sip.INVITE)
	uas.Reply(got, code, "b")
	return p, uac, uas, inv, got
}

// RFC 3261 §17.1.1.2 (Figure 5) and §17.2.1 (Figure 7), issue 14: a
// rejected INVITE's client transaction lingers as a record that
// acknowledges each retransmitted final again (Timer D), and the server
// transaction, once the caller's ACK came (Confirmed, Timer I), as one
// that absorbs the caller's repeated ACK.
func TestRFC3261_17_1_1_2_RejectedInviteLingersAsARecord(t *testing.T) {
	p, uac, uas, inv, got := inviteAnswered(t, 486)
	ack := uas.Request(sip.ACK)
	res := uac.Response(486)
	siptest.Eventually(t, func() bool { return p.cliLinger.len() == 1 }, "the client INVITE lingering in Completed")
	assert.Zero(t, p.cliTxs.len())
	uac.Send(p.udp, uac.AckNon2xx(inv, res))
	siptest.Eventually(t, func() bool { return p.srvLinger.len() == 1 }, "the server INVITE lingering in Confirmed")
	assert.Zero(t, p.srvTxs.len())

	// The callee missed the ACK: it repeats the 486 and gets the same ACK.
	uas.Reply(got, 486, "b")
	again := uas.Request(sip.ACK)
	assert.Equal(t, ack.String(), again.String())
	uac.Quiet(50*time.Millisecond, "the retransmitted 486", func(sip.Message) bool { return true })
	// The caller repeats its ACK: absorbed, not relayed as an ACK of a 2xx.
	uac.Send(p.udp, uac.AckNon2xx(inv, res))
	uas.Quiet(100*time.Millisecond, "the caller's repeated ACK", isReq(sip.ACK))

	// After Timer D (wt_timer) the record is gone: no more ACKs.
	p.clock.Advance(p.cfg.WtTimer)
	uas.Reply(got, 486, "b")
	uas.Quiet(100*time.Millisecond, "an ACK after Timer D", isReq(sip.ACK))
}

// RFC 6026 §7.1 (Figure 7's Accepted) with issue 14: the answered
// INVITE's server transaction lingers as a record for Timer L. A
// retransmitted INVITE is absorbed (the callee sees it once); an ACK of
// the 2xx that reuses the INVITE's branch (as some UAs do) matches it and
// still goes on to the callee; a 2xx the callee repeats is still relayed
// with the server transaction gone.
func TestRFC6026_7_1_AcceptedInviteLingersAsARecord(t *testing.T) {
	p, uac, uas, inv, got := inviteAnswered(t, 200)
	ok := uac.Response(200)
	siptest.Eventually(t, func() bool { return p.srvLinger.liveAt(p.clock.Now()) == 1 }, "the server INVITE lingering in Accepted")
	assert.Zero(t, p.srvTxs.len())

	uac.Send(p.udp, inv)
	uas.Quiet(100*time.Millisecond, "the retransmitted INVITE", isReq(sip.INVITE))

	ack := uac.AckFor(inv, ok)
	ack.Via().Params = inv.Via().Params.Clone() // the INVITE's branch
	uac.Send(p.udp, ack)
	relayed := uas.Request(sip.ACK)
	assert.Equal(t, inv.CallID().Value(), relayed.CallID().Value())

	uas.Reply(got, 200, "b")
	again := uac.Response(200)
	assert.Equal(t, inv.CSeq().SeqNo, again.CSeq().SeqNo)
}

// retransWatch is a module that hears of each further 2xx a branch relays.
type retransWatch struct {
	ObserverFuncs
	got chan string // the To tag of each
}

func (w retransWatch) On2xxRetransmission(_ *Transaction, branch int, res *sip.Response) {
	w.got <- fmt.Sprintf("%d:%s", branch, Tag(res.To().Params))
}

// RFC 6026 §7.2 (issue 14): an answered branch's client INVITE
// transaction lingers in Accepted as a record that passes each further 2xx
// to its branch: a retransmission, or another fork's answer, relayed
// upstream after the RetransmissionObservers heard of it. A provisional or
// a non-2xx final that comes late is absorbed.
func TestRFC6026_7_2_AcceptedClientInviteLingersAsARecord(t *testing.T) {
	uac, uas := siptest.NewUA(t), siptest.NewUA(t)
	w := retransWatch{got: make(chan string, 4)}
	p := startProxy(t, testCfg(), toUAs(uas), withModules(Module{Name: "watch", Observer: w}))
	inv := uac.Invite("sip:bob@" + p.udp)
	uac.Send(p.udp, inv)
	got := uas.Request(sip.INVITE)
	uas.Reply(got, 200, "b")
	assert.Equal(t, "b", Tag(uac.Response(200).To().Params))
	siptest.Eventually(t, func() bool { return p.cliLinger.liveAt(p.clock.Now()) == 1 }, "the client INVITE lingering in Accepted")
	assert.Zero(t, p.cliTxs.len())
	assert.Empty(t, w.got, "the first 2xx is not a retransmission")

	for _, tag := range []string{"b", "c"} { // repeated; another fork's
		uas.Reply(got, 200, tag)
		again := uac.Response(200)
		assert.Equal(t, tag, Tag(again.To().Params))
		assert.Equal(t, inv.CSeq().SeqNo, again.CSeq().SeqNo)
		select {
		case g := <-w.got:
			assert.Equal(t, "0:"+tag, g)
		case <-time.After(waitFor):
			t.Fatalf("the observer did not hear of the 2xx tagged %s", tag)
		}
	}
	uas.Reply(got, 180, "d")
	uas.Reply(got, 486, "d")
	uac.Quiet(100*time.Millisecond, "a late 180 or 486", func(m sip.Message) bool {
		r, ok := m.(*sip.Response)
		return ok && Tag(r.To().Params) == "d"
	})
	assert.Empty(t, w.got)
}

// Issue 14: once an INVITE is answered, neither its server transaction
// (a record in Accepted) nor its client one (a record for Timer M) is
// kept alive by what stays: the Transaction the client record passes 2xx
// retransmissions to held the server transaction's key, whose bytes are in
// the srvTx (keyIn), and with it the whole srvTx for Timer M. Real wheel:
// the fake clock keeps the callbacks of stopped timers.
func TestIssue14_AnsweredInviteKeepsNoTransactionObject(t *testing.T) {
	var srv weak.Pointer[srvTx]
	var cli weak.Pointer[cliTx]
	watch := Module{Name: "watch", Observer: ObserverFuncs{Outcome: func(tx *Transaction, _ Outcome) {
		tx.mu.Lock()
		defer tx.mu.Unlock()
		srv, cli = weak.Make(tx.srv), weak.Make(tx.br[0].tx)
	}}}
	uac, uas := siptest.NewUA(t), siptest.NewUA(t)
	p := startProxy(t, testCfg(), toUAs(uas), withModules(watch), func(o *Options) { o.Clock = nil })
	inv := uac.Invite("sip:bob@" + p.udp)
	uac.Send(p.udp, inv)
	got := uas.Request(sip.INVITE)
	uas.Reply(got, 200, "b")
	uac.Response(200)
	siptest.Eventually(t, func() bool {
		return p.cliLinger.liveAt(time.Now()) == 1 && p.srvLinger.liveAt(time.Now()) == 1 && p.Stats().Snapshot()["inuse_transactions"] == 0
	}, "both transactions lingering, the proxy transaction done")
	require.NotEqual(t, weak.Pointer[srvTx]{}, srv, "the observer ran")
	runtime.GC()
	runtime.GC()
	assert.Nil(t, srv.Value(), "the server transaction is still held")
	assert.Nil(t, cli.Value(), "the client transaction is still held")

	uas.Reply(got, 200, "b") // the record still relays it
	assert.Equal(t, "b", Tag(uac.Response(200).To().Params))
}

// Issue 14 (memory once the load stops): the records of the last calls
// are freed by the sweep on tm's wheel, without new records to push them
// out; not before their timers (J and K: 5 s). The wheel runs on a manual
// clock (the fake clock's proxy does not sweep).
func TestIssue14_LingeringRecordsFreedAfterTheLoad(t *testing.T) {
	uac, uas := siptest.NewUA(t), siptest.NewUA(t)
	start := time.Unix(1000, 0)
	w := wheel.NewAt(start, 10*time.Millisecond, 4096)
	p := startProxy(t, testCfg(), toUAs(uas), func(o *Options) { o.Clock = w })
	require.Same(t, w, p.wheel)
	require.Equal(t, 5*time.Second, p.cfg.WtTimer)
	uac.Send(p.udp, uac.NewRequest("OPTIONS", "sip:bob@"+p.udp, 1))
	uas.Reply(uas.Request(sip.OPTIONS), 200, "b")
	uac.Response(200)
	lingering := func() uint64 { return p.Stats().Snapshot()["lingering_transactions"] }
	siptest.Eventually(t, func() bool { return lingering() == 2 }, "two records")
	w.Advance(start.Add(4 * time.Second)) // four sweeps
	assert.Equal(t, uint64(2), lingering(), "a sweep freed records before their timers")
	w.Advance(start.Add(6 * time.Second))
	assert.Zero(t, lingering(), "the records outlive their timers")
	assert.Zero(t, p.srvLinger.len()+p.cliLinger.len())
}

// RFC 6026 §7.1 over TCP (issue 14): a reliable transport has nothing
// to resend, and a record keeps no connection: the answered INVITE's
// server transaction stays whole in Accepted, and a 2xx the callee
// repeats after the proxy transaction is done goes back on the caller's
// connection.
func TestRFC6026_7_1_AcceptedOverTCPStaysWhole(t *testing.T) {
	uas := siptest.NewUA(t)
	done := make(chan *Transaction, 1)
	watch := Module{Name: "watch", Observer: ObserverFuncs{Done: func(tx *Transaction) { done <- tx }}}
	p := startProxy(t, testCfg(), toUAs(uas), withModules(watch))
	c := dialTCP(t, p.tcp)
	c.send(c.request("INVITE", "sip:bob@"+p.tcp, "tcp-accepted@test", "1 INVITE"))
	got := uas.Request(sip.INVITE)
	uas.Reply(got, 200, "b")
	for {
		m, err := c.next()
		require.NoError(t, err)
		if code, _ := statusAndCallID(t, m); code == 200 {
			break
		}
	}
	tx := <-done
	siptest.Eventually(t, func() bool {
		tx.mu.Lock()
		defer tx.mu.Unlock()
		return tx.srv == nil
	}, "compacted")
	assert.Equal(t, 1, p.srvTxs.len(), "the TCP server transaction in Accepted")
	assert.Zero(t, p.srvLinger.len(), "a TCP transaction kept as a record")

	uas.Reply(got, 200, "b")
	m, err := c.next()
	require.NoError(t, err, "the repeated 200 on the caller's connection")
	code, callID := statusAndCallID(t, m)
	assert.Equal(t, 200, code)
	assert.Equal(t, "tcp-accepted@test", callID)
}

// added is add's verdict alone.
func added(_ []byte, ok bool) bool { return ok }

// RFC 3261 §17.2.1: a retransmitted INVITE is answered with the last
// response the server transaction sent, a provisional in Proceeding and a
// non-2xx final in Completed, byte for byte as it went the first time.
// Relayed replies are written into pooled buffers that other replies reuse
// at once (issue 14): what the transaction keeps is its own copy.
func TestRFC3261_17_2_1_RetransmittedInviteGetsTheLastResponseAgain(t *testing.T) {
	uac, other, uas := siptest.NewUA(t), siptest.NewUA(t), siptest.NewUA(t)
	p := startProxy(t, testCfg(), toUAs(uas))
	inv := uac.Invite("sip:bob@" + p.udp)
	uac.Send(p.udp, inv)
	got := uas.Request(sip.INVITE)
	uas.Reply(got, 180, "b", "X-First: "+strings.Repeat("a", 40))
	first := uac.Response(180).String()
	// Another call's replies go through the pool meanwhile.
	churn := func() {
		inv2 := other.Invite("sip:bob@" + p.udp)
		other.Send(p.udp, inv2)
		g2 := uas.Request(sip.INVITE)
		for range 3 {
			uas.Reply(g2, 183, "c", "X-Churn: "+strings.Repeat("z", 200))
			other.Response(183)
		}
		uas.Reply(g2, 486, "c")
		other.Final()
		uas.Request(sip.ACK)
	}
	churn()
	uac.Send(p.udp, inv) // the caller's retransmission
	assert.Equal(t, first, uac.Response(180).String(), "the 180 again, as it was")
	uas.Reply(got, 486, "b", "X-Final: "+strings.Repeat("f", 40))
	final := uac.Final().String()
	uas.Request(sip.ACK)
	churn()
	uac.Send(p.udp, inv)
	assert.Equal(t, final, uac.Final().String(), "the 486 again, as it was")
}

// Issue 14: respondBytes only borrows the bytes it sends. A non-INVITE
// final that lingers keeps, for a retransmission that found the server
// transaction before it left the table, the record's copy; a provisional
// keeps a copy of its own. Neither is the caller's buffer, which the pool
// hands to the next reply at once.
func TestIssue14_ServerTransactionKeepsNoBorrowedBytes(t *testing.T) {
	uac := siptest.NewUA(t)
	p := startProxy(t, testCfg(), toUAs(uac))
	dest := transport.Dest{Transport: transport.UDP, Addr: netip.MustParseAddrPort(uac.HostPort())}
	for _, tc := range []struct {
		method string
		code   int
		record bool // the transaction is a linger record after the reply
	}{
		{"OPTIONS", 200, true},
		{"INVITE", 180, false},
		{"INVITE", 486, false},
	} {
		t.Run(fmt.Sprint(tc.method, " ", tc.code), func(t *testing.T) {
			req := uac.NewRequest(tc.method, "sip:bob@"+p.udp, 1)
			key := []byte("borrowed-" + tc.method + strconv.Itoa(tc.code))
			s, added := p.newSrvTx(key, req, dest, false)
			require.True(t, added)
			if tc.code >= 200 && tc.method == "INVITE" {
				s.respondBytes([]byte("SIP/2.0 100 Trying\r\n\r\n"), 100)
			}
			borrowed := []byte(fmt.Sprintf("SIP/2.0 %d Whatever\r\nX: 1\r\n\r\n", tc.code))
			want := string(borrowed)
			require.True(t, s.respondBytes(borrowed, tc.code))
			for i := range borrowed {
				borrowed[i] = 'X' // the pool's next reply
			}
			s.mu.Lock()
			last := s.last.b
			s.mu.Unlock()
			assert.Equal(t, want, string(last), "what the transaction answers a retransmission with")
			if tc.record {
				rec, ok := p.srvLinger.get(p.clock, key)
				require.True(t, ok, "lingering as a record")
				assert.Equal(t, want, string(rec.wire()))
				assert.Same(t, &rec.wire()[0], &last[0], "the record's copy, not one more")
			}
		})
	}
}

// Issue 14: the copy a server INVITE transaction keeps of its last
// response is in a pooled buffer of its own, given back as soon as that
// response can no longer be asked for: replaced by a later one, or the
// transaction past Completed (a 2xx's Accepted, an ACKed non-2xx's
// Confirmed). A 100 and a 180 per call were two allocations.
func TestIssue14_ServerTransactionGivesItsCopyBack(t *testing.T) {
	uac := siptest.NewUA(t)
	p := startProxy(t, testCfg(), toUAs(uac))
	dest := transport.Dest{Transport: transport.UDP, Addr: netip.MustParseAddrPort(uac.HostPort())}
	held := func(s *srvTx) (string, bool) {
		s.mu.Lock()
		defer s.mu.Unlock()
		return string(s.last.b), s.last.bp != nil
	}
	for _, final := range []int{200, 486} {
		t.Run(strconv.Itoa(final), func(t *testing.T) {
			req := uac.Invite("sip:bob@" + p.udp)
			s, added := p.newSrvTx([]byte("copy-back-"+strconv.Itoa(final)), req, dest, false)
			require.True(t, added)
			for _, code := range []int{100, 180} {
				wire := fmt.Sprintf("SIP/2.0 %d P\r\n\r\n", code)
				require.True(t, s.respondBytes([]byte(wire), code))
				last, own := held(s)
				assert.Equal(t, wire, last)
				assert.True(t, own, "%d kept in the transaction's pooled buffer", code)
			}
			wire := fmt.Sprintf("SIP/2.0 %d F\r\n\r\n", final)
			require.True(t, s.respondBytes([]byte(wire), final))
			if final >= 300 {
				last, own := held(s)
				assert.Equal(t, wire, last, "Completed: kept for a retransmitted INVITE")
				assert.True(t, own)
				s.step(txn.Event{Kind: txn.EvRecvACK})
			}
			s.mu.Lock()
			defer s.mu.Unlock()
			assert.Nil(t, s.last.b, "past Completed: nothing to answer with")
			assert.Nil(t, s.last.bp, "the buffer given back")
		})
	}
}

// Issue 14: the ACK of a non-2xx final is written into a pooled buffer;
// once the client transaction lingers as a record, the transaction
// answers a racing retransmission with the record's copy and gives the
// buffer back.
func TestIssue14_ClientTransactionGivesItsACKBack(t *testing.T) {
	uac, uas := siptest.NewUA(t), siptest.NewUA(t)
	p := startProxy(t, testCfg(), toUAs(uas))
	dest := transport.Dest{Transport: transport.UDP, Addr: netip.MustParseAddrPort(uas.HostPort())}
	req := uac.Invite("sip:bob@" + uas.HostPort())
	c, err := p.newCliTx(req, wire{}, dest, nil)
	require.NoError(t, err)
	c.start(false)
	uas.Request(sip.INVITE)
	res := resp(486, sip.HeaderClone(req.Via()), sip.HeaderClone(req.From()), sip.HeaderClone(req.CallID()),
		sip.HeaderClone(req.CSeq()), sip.NewHeader("To", "<sip:bob@x>;tag=b"))
	c.step(txn.Event{Kind: txn.EvRecvResponse, Code: 486}, res)
	ack := uas.Request(sip.ACK)
	rec, ok := p.cliLinger.get(p.clock, []byte(c.key))
	require.True(t, ok, "lingering as a record (Timer D)")
	assert.Equal(t, ack.String(), string(rec.wire()))
	c.mu.Lock()
	defer c.mu.Unlock()
	assert.Nil(t, c.ack.bp, "the pooled ACK given back")
	require.NotEmpty(t, c.ack.b)
	assert.Same(t, &rec.wire()[0], &c.ack.b[0], "the transaction answers with the record's copy")
}

// BenchmarkLingerTableSteady: the table at a steady 40 000 records (8 000
// a second for 5 s: forked calls at ~2000 cps), each iteration one record
// in, one expired record out, a lookup that misses (a new request) and one
// that hits (a retransmission).
func BenchmarkLingerTableSteady(b *testing.B) {
	tab := newTestLinger()
	const live, perSec = 40000, 8000
	keys := make([]string, 2*live)
	for i := range keys {
		keys[i] = fmt.Sprintf("z9hG4bK-%08x-%d|INVITE", i*7919, i)
	}
	step := time.Second / perSec
	now := time.Unix(1000, 0)
	wire := []byte("SIP/2.0 200 OK\r\n\r\n")
	for i := range live {
		now = now.Add(step)
		tab.add(now, 5*time.Second, keys[i], lingerResend, wire, lingerDest)
	}
	miss := []byte("z9hG4bK-miss-0000000000|INVITE")
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		now = now.Add(step)
		k := keys[(live+i)%len(keys)]
		tab.add(now, 5*time.Second, k, lingerResend, wire, lingerDest)
		miss[len(miss)-8] = byte(i)
		tab.get(at(now), miss)
		tab.get(at(now), []byte(keys[(live+i-100)%len(keys)]))
	}
}

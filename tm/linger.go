package tm

import (
	"hash/maphash"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/imsdlg/imsdlg/tm/transport"
	"github.com/imsdlg/imsdlg/tm/txn"
)

// lingerAct is what a lingering transaction does with a retransmission
// that matches it.
type lingerAct uint8

const (
	// lingerAbsorb drops it: a client non-INVITE transaction in Completed
	// (Timer K), a server INVITE transaction in Confirmed (Timer I).
	lingerAbsorb lingerAct = iota + 1
	// lingerResend answers a retransmitted request with the final response
	// kept: a server non-INVITE transaction in Completed (Timer J).
	lingerResend
	// lingerACK answers a retransmitted non-2xx final with the ACK kept,
	// and drops anything else: a client INVITE transaction in Completed
	// (Timer D).
	lingerACK
	// lingerAccepted absorbs a retransmitted INVITE and passes an ACK on
	// as the ACK of a 2xx: a server INVITE transaction in Accepted (RFC
	// 6026 Timer L). Its 2xx responses go through the Transaction, which
	// keeps the srvTx until it is done, then sends them itself.
	lingerAccepted
	// lingerForward passes a 2xx on to the branch it is of, as a further
	// 2xx (a retransmission, or another fork's answer): a client INVITE
	// transaction of a proxied branch in Accepted (RFC 6026 Timer M).
	// Anything else is absorbed.
	lingerForward
)

// srvLingers and cliLingers tell the timers that end a transaction's
// absorbing of retransmissions: when the FSM arms one, the transaction
// becomes a lingerRec. Timer M is not among them: a client INVITE
// transaction in Accepted passes each 2xx retransmission to its
// Transaction, whose RetransmissionObservers hear of it (RFC 6026).
func srvLingers(id txn.TimerID) bool {
	return id == txn.TimerI || id == txn.TimerJ || id == txn.TimerL
}

func cliLingers(id txn.TimerID) bool { return id == txn.TimerD || id == txn.TimerK }

// cliLingersFor is cliLingers for a client transaction of owner: a branch
// of a proxied request lingers in Accepted too (Timer M), its record
// holding the branch that each further 2xx goes to. A 2xx relayed there
// needs nothing of the transaction but its key: kept whole, the cliTx
// (0.5 KB) stayed in cliTxs for Timer M, and left it from a cold cache
// when the timer fired (issue 14).
func cliLingersFor(id txn.TimerID, owner cliOwner) bool {
	if id == txn.TimerM {
		_, ok := owner.(branchOwner)
		return ok
	}
	return cliLingers(id)
}

// lingerRec is a transaction that completed and only absorbs
// retransmissions until its last timer (D, I, J, K, L, M) would end it: its
// key and the bytes it answers with (in its shard's byte chunk, which the
// collector does not scan), and where they go. A completed srvTx or cliTx
// kept that long with its FSM, timers, owner and wheel entries was 0.5 KB
// of pointers per transaction, three to five per call, that every
// collection marked: half of the live heap at 2500 forked calls/s (issue
// 14).
type lingerRec struct {
	hash    uint64
	expires int64  // clock time, Unix nanoseconds
	data    []byte // the key, then the wire bytes
	keyLen  uint32
	act     lingerAct
	branch  uint8 // lingerForward's branch of tx
	// superseded: a later record with the same hash took the index entry
	// while this one waited, expired, behind a longer one: freeing it
	// leaves the entry alone (without the flag, a lookup per free).
	superseded bool
	tx         *Transaction // lingerForward's; nil for every other act
	// remote and local of the UDP destination (transport.Dest): only
	// unreliable transports linger with something to send (RFC 3261
	// Timers D, I, J, K are zero on reliable ones).
	remote, local netip.AddrPort
}

func (r *lingerRec) dest() transport.Dest {
	return transport.Dest{Transport: transport.UDP, Addr: r.remote, Local: r.local}
}

func (r *lingerRec) key() []byte  { return r.data[:r.keyLen] }
func (r *lingerRec) wire() []byte { return r.data[r.keyLen:] }

// lingerShards splits the table's locks as txShards does the
// transaction tables'.
const lingerShards = 16

// lingerTable holds lingering transactions. Each shard keeps them in a
// ring in the order they started to linger, which is the order they
// expire in when every linger lasts as long (wt_timer, T4: 5 s by
// default); the expiry read on a lookup is what decides, so a shorter
// one behind a longer one is only freed later, never answered longer.
// Lookups go through an index from the key's hash to the record's
// sequence number (lingerIndex), which holds no pointer: the collector does
// not scan it (the ring it does: three pointers per record).
type lingerTable struct {
	seed   maphash.Seed
	mask   uint64        // all ones; tests narrow it to force collisions
	live   *atomic.Int64 // the records kept, counted with other tables' (Stats.lingering)
	shards [lingerShards]lingerShard
}

type lingerShard struct {
	mu  sync.Mutex
	idx lingerIndex // hash -> sequence number
	// segs hold the records from sequence number base on, lingerSegLen
	// to a segment: the ring grows by a segment and never moves a record.
	// A ring doubled in one slice copied every record under the lock as
	// the table filled, and its growth was a twentieth of the bytes
	// allocated per call (issue 14).
	segs []*lingerSeg
	base uint64 // sequence number of segs[0][0], a multiple of lingerSegLen
	head uint64 // sequence number of the oldest record kept
	tail uint64 // of the next record
	// spare is a segment freed at the head, kept for the next one the
	// tail needs: at a steady rate the ring takes no allocation.
	spare *lingerSeg
	// chunk is where the next records' data go, one after the other: an
	// allocation per record was three more per call. A chunk is freed
	// once the last record in it is.
	chunk []byte
}

// lingerSegLen is the number of records in a segment of a shard's ring
// (15 KB).
const lingerSegLen = 128

type lingerSeg [lingerSegLen]lingerRec

// lingerChunk is the size of a shard's data chunks; data larger than a
// quarter of it get an allocation of their own.
const lingerChunk = 16 << 10

// alloc returns n bytes for a record's data.
func (s *lingerShard) alloc(n int) []byte {
	if n > lingerChunk/4 {
		return make([]byte, n)
	}
	if cap(s.chunk)-len(s.chunk) < n {
		s.chunk = make([]byte, 0, lingerChunk)
	}
	at := len(s.chunk)
	s.chunk = s.chunk[:at+n]
	return s.chunk[at : at+n : at+n]
}

func newLingerTable(live *atomic.Int64) *lingerTable {
	return &lingerTable{seed: maphash.MakeSeed(), mask: ^uint64(0), live: live}
}

func (t *lingerTable) shard(h uint64) *lingerShard { return &t.shards[h%lingerShards] }

// add keeps a lingering transaction under key until now+d: its act, the
// bytes it answers with (copied: kept is the copy, never written again)
// and where they go. It returns false when another live record has the
// key's hash (the caller keeps the whole transaction instead) or when dest
// is not a UDP one.
func (t *lingerTable) add(now time.Time, d time.Duration, key string, act lingerAct, wire []byte, dest transport.Dest) (kept []byte, ok bool) {
	return t.put(now, d, key, wire, dest, lingerRec{act: act})
}

// addForward keeps the client INVITE transaction of branch o.i of o.t,
// in Accepted, under key until now+d (lingerForward); as add otherwise.
func (t *lingerTable) addForward(now time.Time, d time.Duration, key string, o branchOwner, dest transport.Dest) bool {
	if o.i < 0 || o.i >= maxBranches {
		return false
	}
	_, ok := t.put(now, d, key, nil, dest, lingerRec{act: lingerForward, tx: o.t, branch: uint8(o.i)})
	return ok
}

// put is add with the record's act and owner in r.
func (t *lingerTable) put(now time.Time, d time.Duration, key string, wire []byte, dest transport.Dest, r lingerRec) ([]byte, bool) {
	if dest.Conn != nil || !strings.EqualFold(dest.Transport, transport.UDP) {
		return nil, false
	}
	h := maphash.String(t.seed, key) & t.mask
	nowNs := now.UnixNano()
	s := t.shard(h)
	s.mu.Lock()
	defer s.mu.Unlock()
	t.expire(s, nowNs)
	if n, ok := s.idx.get(h); ok && n >= s.head {
		r := s.at(n)
		if r.expires > nowNs {
			return nil, false
		}
		r.superseded = true // the entry is the new record's
	}
	if s.tail == s.base+uint64(len(s.segs))*lingerSegLen {
		s.grow()
	}
	data := s.alloc(len(key) + len(wire))
	copy(data, key)
	copy(data[len(key):], wire)
	n := s.tail
	s.tail++
	r.hash, r.expires, r.data, r.keyLen = h, nowNs+int64(d), data, uint32(len(key))
	r.remote, r.local = dest.Addr, dest.Local
	*s.at(n) = r
	s.idx.set(h, n)
	t.live.Add(1)
	return data[len(key):], true
}

// nower is what get reads the time from: a Clock.
type nower interface{ Now() time.Time }

// get returns a copy of the live record kept under key. The clock is read
// only when a record has the key's hash: every new request is looked up
// here first and misses, and a clock read is ~100 ns on a VM. It is read
// outside the shard's lock (a test clock may hold its own lock while its
// timers' callbacks add records).
func (t *lingerTable) get(clk nower, key []byte) (lingerRec, bool) {
	h := maphash.Bytes(t.seed, key) & t.mask
	s := t.shard(h)
	s.mu.Lock()
	n, ok := s.idx.get(h)
	if !ok || n < s.head {
		s.mu.Unlock()
		return lingerRec{}, false
	}
	r := *s.at(n) // its data stay: a chunk's bytes are never written again
	s.mu.Unlock()
	if string(r.key()) != string(key) || r.expires <= clk.Now().UnixNano() {
		return lingerRec{}, false
	}
	return r, true
}

// sweep frees the records that expired by now, and the room of a ring a
// peak left mostly empty.
func (t *lingerTable) sweep(now time.Time) {
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		t.expire(s, now.UnixNano())
		if c := cap(s.segs); c > 16 && len(s.segs) < c/8 {
			s.segs = append([]*lingerSeg(nil), s.segs...)
		}
		s.idx.trim()
		s.mu.Unlock()
	}
}

// len counts the records kept (expired ones until a sweep frees them).
func (t *lingerTable) len() int {
	n := 0
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		n += int(s.tail - s.head)
		s.mu.Unlock()
	}
	return n
}

func (s *lingerShard) at(n uint64) *lingerRec {
	i := n - s.base
	return &s.segs[i/lingerSegLen][i%lingerSegLen]
}

// expire frees records from the ring's head of s while they are expired.
func (t *lingerTable) expire(s *lingerShard, now int64) {
	for s.head < s.tail {
		r := s.at(s.head)
		if r.expires > now {
			return
		}
		if !r.superseded {
			s.idx.del(r.hash) // the entry is r's: put marks a record it overrides
		}
		*r = lingerRec{}
		s.head++
		t.live.Add(-1)
		if s.head-s.base == lingerSegLen {
			s.shift()
		}
	}
}

// shift drops the ring's first segment, all of whose records are freed.
func (s *lingerShard) shift() {
	seg := s.segs[0]
	n := copy(s.segs, s.segs[1:])
	s.segs[n] = nil
	s.segs = s.segs[:n]
	s.base += lingerSegLen
	if s.spare == nil {
		s.spare = seg
	}
}

// grow adds a segment at the ring's tail.
func (s *lingerShard) grow() {
	seg := s.spare
	s.spare = nil
	if seg == nil {
		seg = new(lingerSeg)
	}
	s.segs = append(s.segs, seg)
}

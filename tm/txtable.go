package tm

import (
	"hash/maphash"
	"strings"
	"sync"
	"unsafe"

	"github.com/emiago/sipgo/sip"

	"github.com/imsdlg/imsdlg/tm/txn"
)

// txShards splits the transaction tables so that no global lock sits on
// the per-message path.
const txShards = 64

// keyed is what a transaction table holds: a transaction that knows its
// key.
type keyed interface {
	comparable
	txKey() string
}

// txTable maps transaction keys (txn.AppendServerKey / AppendClientKey) to
// transactions. A key is hashed once (maphash): the hash picks the shard
// and is the shard map's key, the transaction's own key confirms the
// match. A string-keyed map hashed the 60-90 byte key a second time and
// compared it: the tables' lookups were 4 % of the proxy's CPU on a
// forked call (issue 14). Two keys of one 64-bit hash (about one in 10^10
// with 100 000 transactions in the table) are kept apart in spill.
type txTable[T keyed] struct {
	seed   maphash.Seed
	mask   uint64 // all ones; tests narrow it to force collisions
	shards [txShards]struct {
		mu    sync.Mutex
		m     map[uint64]T
		spill map[string]T // keys whose hash another key in m has
	}
}

func newTxTable[T keyed]() *txTable[T] {
	t := &txTable[T]{seed: maphash.MakeSeed(), mask: ^uint64(0)}
	for i := range t.shards {
		t.shards[i].m = make(map[uint64]T)
	}
	return t
}

func (t *txTable[T]) hash(key string) uint64 { return maphash.String(t.seed, key) & t.mask }

// get looks a key up without allocating.
func (t *txTable[T]) get(key []byte) (T, bool) {
	h := maphash.Bytes(t.seed, key) & t.mask // the same as hash(string(key))
	s := &t.shards[h%txShards]
	s.mu.Lock()
	v, ok := s.m[h]
	if !ok || v.txKey() != string(key) {
		v, ok = s.spill[string(key)]
	}
	s.mu.Unlock()
	return v, ok
}

// add stores v under key unless the key is taken; it returns what is
// stored and whether v was.
func (t *txTable[T]) add(key string, v T) (T, bool) {
	h := t.hash(key)
	s := &t.shards[h%txShards]
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.spill[key]; ok {
		return old, false
	}
	old, ok := s.m[h]
	switch {
	case !ok:
		s.m[h] = v
	case old.txKey() == key:
		return old, false
	default:
		if s.spill == nil {
			s.spill = make(map[string]T)
		}
		s.spill[key] = v
	}
	return v, true
}

// remove deletes key when it still maps to a value same says is v.
func (t *txTable[T]) remove(key string, same func(T) bool) {
	h := t.hash(key)
	s := &t.shards[h%txShards]
	s.mu.Lock()
	if v, ok := s.m[h]; ok && v.txKey() == key {
		if same(v) {
			delete(s.m, h)
		}
	} else if v, ok := s.spill[key]; ok && same(v) {
		delete(s.spill, key)
	}
	s.mu.Unlock()
}

func (t *txTable[T]) len() int {
	n := 0
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		n += len(s.m) + len(s.spill)
		s.mu.Unlock()
	}
	return n
}

// requestFields reads what transaction matching needs off a request; the
// Request-URI and top Via of an RFC 2543 request only when ruri and via1
// (ruri_matching, via1_matching) say so.
func requestFields(req *sip.Request, ruri, via1 bool) (txn.RequestFields, bool) {
	via := req.Via()
	cseq := req.CSeq()
	if via == nil || cseq == nil {
		return txn.RequestFields{}, false
	}
	f := txn.RequestFields{Method: string(req.Method), SentByHost: trimBrackets(via.Host), SentByPort: via.Port,
		CSeq: cseq.SeqNo}
	f.Branch, _ = Param(via.Params, "branch")
	if f.SentByPort == 0 {
		f.SentByPort = defaultPort(strings.EqualFold(via.Transport, "TLS"))
	}
	if !txn.HasMagicCookie(f.Branch) {
		// RFC 2543 matching (§17.2.3) needs the rest of the request.
		if ruri {
			f.RequestURI = req.Recipient.String()
		}
		if to := req.To(); to != nil {
			f.ToTag = Tag(to.Params)
		}
		if from := req.From(); from != nil {
			f.FromTag = Tag(from.Params)
		}
		if cid := req.CallID(); cid != nil {
			f.CallID = cid.Value()
		}
		if via1 {
			f.TopVia = via.Value()
		}
	}
	return f, true
}

// txKeyRoom is the room a server transaction has for its key: a caller's
// branch with its sent-by and method fit. cliKeyRoom is a client
// transaction's: a branch of ours (at most maxBranchLen) and the method,
// in a cliTx of the 512-byte size class.
const (
	txKeyRoom  = 96
	cliKeyRoom = 80
)

// keyIn returns k as a string kept in room when it fits, else a copy of
// its own: a transaction's key lives exactly as long as the transaction,
// so the string's bytes can be part of it (one allocation, not two, per
// transaction). Nothing writes to room again.
func keyIn(room []byte, k []byte) string {
	if len(k) > len(room) || len(k) == 0 {
		return string(k)
	}
	n := copy(room[:], k)
	return unsafe.String(&room[0], n)
}

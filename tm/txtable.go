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

// txTable maps transaction keys (txn.AppendServerKey / AppendClientKey) to
// transactions.
type txTable[T any] struct {
	seed   maphash.Seed
	shards [txShards]struct {
		mu sync.Mutex
		m  map[string]T
	}
}

func newTxTable[T any]() *txTable[T] {
	t := &txTable[T]{seed: maphash.MakeSeed()}
	for i := range t.shards {
		t.shards[i].m = make(map[string]T)
	}
	return t
}

func (t *txTable[T]) shard(key []byte) int { return int(maphash.Bytes(t.seed, key) % txShards) }

// shardOf is shard for a key held as a string: a []byte conversion there
// copied every key of every add and remove (issue 14).
func (t *txTable[T]) shardOf(key string) int { return int(maphash.String(t.seed, key) % txShards) }

// get looks a key up without allocating.
func (t *txTable[T]) get(key []byte) (T, bool) {
	s := &t.shards[t.shard(key)]
	s.mu.Lock()
	v, ok := s.m[string(key)]
	s.mu.Unlock()
	return v, ok
}

// add stores v under key unless the key is taken; it returns what is
// stored and whether v was.
func (t *txTable[T]) add(key string, v T) (T, bool) {
	s := &t.shards[t.shardOf(key)]
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.m[key]; ok {
		return old, false
	}
	s.m[key] = v
	return v, true
}

// remove deletes key when it still maps to a value same says is v.
func (t *txTable[T]) remove(key string, same func(T) bool) {
	s := &t.shards[t.shardOf(key)]
	s.mu.Lock()
	if v, ok := s.m[key]; ok && same(v) {
		delete(s.m, key)
	}
	s.mu.Unlock()
}

func (t *txTable[T]) len() int {
	n := 0
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		n += len(s.m)
		s.mu.Unlock()
	}
	return n
}

// requestFields reads what transaction matching needs off a request.
func requestFields(req *sip.Request) (txn.RequestFields, bool) {
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
		f.RequestURI = req.Recipient.String()
		if to := req.To(); to != nil {
			f.ToTag = Tag(to.Params)
		}
		if from := req.From(); from != nil {
			f.FromTag = Tag(from.Params)
		}
		if cid := req.CallID(); cid != nil {
			f.CallID = cid.Value()
		}
		f.TopVia = via.Value()
	}
	return f, true
}

// txKeyRoom is the room a transaction has for its key: a branch of ours
// (about 60 bytes) or a caller's with its sent-by and method fit.
const txKeyRoom = 96

// keyIn returns k as a string kept in room when it fits, else a copy of
// its own: a transaction's key lives exactly as long as the transaction,
// so the string's bytes can be part of it (one allocation, not two, per
// transaction). Nothing writes to room again.
func keyIn(room *[txKeyRoom]byte, k []byte) string {
	if len(k) > len(room) || len(k) == 0 {
		return string(k)
	}
	n := copy(room[:], k)
	return unsafe.String(&room[0], n)
}

package tm

import (
	"hash/maphash"
	"sync"

	"github.com/emiago/sipgo/sip"
)

const tableShards = 64

// inviteTable matches CANCELs to INVITE transactions (RFC 3261 §9.2: same
// top Via branch and sent-by) and holds CANCELs that arrived before their
// INVITE. Sharded so that no global lock sits on the per-request path.
type inviteTable struct {
	seed   maphash.Seed
	shards [tableShards]inviteShard
}

type inviteShard struct {
	mu sync.Mutex
	m  map[string]*inviteEntry
}

type inviteEntry struct {
	tx   *Transaction
	held *heldCancel
}

type heldCancel struct {
	req    *sip.Request
	srv    *srvTx
	reason string
	timer  Timer
}

func newInviteTable() *inviteTable {
	t := &inviteTable{seed: maphash.MakeSeed()}
	for i := range t.shards {
		t.shards[i].m = make(map[string]*inviteEntry)
	}
	return t
}

func (t *inviteTable) shard(key string) *inviteShard {
	return &t.shards[maphash.String(t.seed, key)%tableShards]
}

// addInvite registers an INVITE transaction. It returns the CANCEL that was
// waiting for it, if one overtook it.
func (t *inviteTable) addInvite(key string, tx *Transaction) *heldCancel {
	s := t.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.m[key]; ok && e.held != nil {
		h := e.held
		delete(s.m, key)
		return h
	}
	s.m[key] = &inviteEntry{tx: tx}
	return nil
}

func (t *inviteTable) removeInvite(key string, tx *Transaction) {
	s := t.shard(key)
	s.mu.Lock()
	if e, ok := s.m[key]; ok && e.tx == tx {
		delete(s.m, key)
	}
	s.mu.Unlock()
}

// holdCancel finds the INVITE of a CANCEL, or else holds the CANCEL; arm is
// called under the shard lock to start the hold timer.
func (t *inviteTable) holdCancel(key string, h *heldCancel, arm func()) *Transaction {
	s := t.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.m[key]; ok {
		if e.tx != nil {
			return e.tx
		}
		return nil // a retransmitted CANCEL: the first one is already held
	}
	s.m[key] = &inviteEntry{held: h}
	arm()
	return nil
}

// releaseCancel removes a held CANCEL whose wait is over; false when its
// INVITE took it meanwhile.
func (t *inviteTable) releaseCancel(key string, h *heldCancel) bool {
	s := t.shard(key)
	s.mu.Lock()
	defer s.mu.Unlock()
	if e, ok := s.m[key]; ok && e.held == h {
		delete(s.m, key)
		return true
	}
	return false
}

// pending returns the INVITE transactions still in the table.
func (t *inviteTable) pending() []*Transaction {
	var out []*Transaction
	for i := range t.shards {
		s := &t.shards[i]
		s.mu.Lock()
		for _, e := range s.m {
			if e.tx != nil {
				out = append(out, e.tx)
			}
		}
		s.mu.Unlock()
	}
	return out
}

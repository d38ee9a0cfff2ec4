package cachedb

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// Memory is the in-memory Store: one node, no sharing, for single-node
// deployments and tests. One mutex guards everything because every operation
// is a few map look-ups and must be atomic as a whole, like the Redis script.
// Expiry is lazy: an entry past its expiry reads as absent and is dropped
// when seen.
type Memory struct {
	keys Keys
	ttl  time.Duration
	now  func() time.Time

	// Keys are built in stack buffers and looked up as string(buf), a
	// string made only for a key stored the first time: built as strings
	// (concatenation, base64) they were ten allocations of every call
	// through a local profile (issue 14). A counter back at zero stays,
	// with its TTL, as a Redis key does (the conformance suite checks it).
	mu       sync.Mutex
	counters map[string]*counter
	members  map[string]map[string]time.Time // node -> memberID -> expiry
}

type counter struct {
	n   int64
	exp time.Time
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty Memory. A nil now means time.Now; ttl <= 0
// means the OpenSIPS default of 86400 s.
func NewMemory(keys Keys, ttl time.Duration, now func() time.Time) *Memory {
	if now == nil {
		now = time.Now
	}
	if ttl <= 0 {
		ttl = DefaultTTL
	}
	return &Memory{
		keys:     keys,
		ttl:      ttl,
		now:      now,
		counters: map[string]*counter{},
		members:  map[string]map[string]time.Time{},
	}
}

// DefaultTTL is OpenSIPS' profile_timeout default.
const DefaultTTL = 86400 * time.Second

// get reads a live counter; the caller holds mu.
func (s *Memory) get(key []byte, now time.Time) int64 {
	c := s.counters[string(key)]
	if c == nil {
		return 0
	}
	if !now.Before(c.exp) {
		delete(s.counters, string(key))
		return 0
	}
	return c.n
}

// add changes a counter by d with a floor at zero and refreshes its TTL; the
// caller holds mu.
func (s *Memory) add(key []byte, d int64, now time.Time) int64 {
	// A negative count written by another party reads as 0, as in the
	// Redis script.
	n := max(max(s.get(key, now), 0)+d, 0)
	c := s.counters[string(key)]
	if c == nil {
		c = &counter{}
		s.counters[string(key)] = c
	}
	c.n, c.exp = n, now.Add(s.ttl)
	return n
}

// touch refreshes the TTL of a key that exists, as EXPIRE does.
func (s *Memory) touch(key []byte, now time.Time) {
	if c := s.counters[string(key)]; c != nil && now.Before(c.exp) {
		c.exp = now.Add(s.ttl)
	}
}

// member returns whether id is a live membership of node, dropping it if it
// expired; the caller holds mu.
func (s *Memory) member(node string, id []byte, now time.Time) bool {
	exp, ok := s.members[node][string(id)]
	if !ok {
		return false
	}
	if !now.Before(exp) {
		s.dropMember(node, id)
		return false
	}
	return true
}

// dropMember deletes a membership record. A node's map stays when it
// empties: nodes are few, and one made again for each call of an idle
// node was an allocation per call.
func (s *Memory) dropMember(node string, id []byte) {
	delete(s.members[node], string(id))
}

// keyBufs are the stack buffers of one operation's keys.
type keyBufs struct{ primary, size, id [128]byte }

// Add implements Store.
func (s *Memory) Add(_ context.Context, p Profile, value string, m Member, limit int64) (int64, error) {
	if err := check(p, &m); err != nil {
		return 0, fmt.Errorf("cachedb: add to %s: %w", describe(p, value), err)
	}
	var b keyBufs
	primary, size := s.keys.appendCounters(b.primary[:0], b.size[:0], p, value)
	id := appendMemberID(b.id[:0], p, value, m.Dialog)

	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	exp := now.Add(s.ttl)
	if s.member(m.Node, id, now) {
		s.members[m.Node][string(id)] = exp
		s.touch(primary, now)
		if size != nil {
			s.touch(size, now)
		}
		return s.get(primary, now), nil
	}
	cur := s.get(primary, now)
	if limit > 0 && cur+1 > limit {
		return cur, fmt.Errorf("cachedb: add dialog %s to %s: %w (limit %d)", m.Dialog, describe(p, value), ErrLimit, limit)
	}
	if s.members[m.Node] == nil {
		s.members[m.Node] = map[string]time.Time{}
	}
	s.members[m.Node][string(id)] = exp
	n := s.add(primary, 1, now)
	if size != nil {
		s.add(size, 1, now)
	}
	return n, nil
}

// Remove implements Store.
func (s *Memory) Remove(_ context.Context, p Profile, value string, m Member) (int64, error) {
	if err := check(p, &m); err != nil {
		return 0, fmt.Errorf("cachedb: remove from %s: %w", describe(p, value), err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n, _ := s.remove(p, value, m, s.now())
	return n, nil
}

// remove undoes a live membership; the caller holds mu. It reports whether
// there was one.
func (s *Memory) remove(p Profile, value string, m Member, now time.Time) (int64, bool) {
	var b keyBufs
	primary, size := s.keys.appendCounters(b.primary[:0], b.size[:0], p, value)
	id := appendMemberID(b.id[:0], p, value, m.Dialog)
	if !s.member(m.Node, id, now) {
		return s.get(primary, now), false
	}
	s.dropMember(m.Node, id)
	n := s.add(primary, -1, now)
	if size != nil {
		s.add(size, -1, now)
	}
	return n, true
}

// Size implements Store.
func (s *Memory) Size(_ context.Context, p Profile, value string) (int64, error) {
	if err := check(p, nil); err != nil {
		return 0, fmt.Errorf("cachedb: size of %s: %w", describe(p, value), err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.get([]byte(s.keys.sizeKey(p, value)), s.now()), nil
}

// Values implements Store.
func (s *Memory) Values(_ context.Context, p Profile) (map[string]int64, error) {
	if err := check(p, nil); err != nil {
		return nil, fmt.Errorf("cachedb: values of profile %s: %w", p.Name, err)
	}
	if !p.WithValue {
		return nil, fmt.Errorf("cachedb: values of profile %s: profile has no value", p.Name)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	out := map[string]int64{}
	for key := range s.counters {
		v, ok := s.keys.valueOf(p.Name, key)
		if !ok {
			continue
		}
		if n := s.get([]byte(key), now); n > 0 {
			out[v] = n
		}
	}
	return out, nil
}

// Reconcile implements Store.
func (s *Memory) Reconcile(_ context.Context, node string, keep func(dialog string) bool) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	done := 0
	for id := range s.members[node] {
		p, value, dialog, err := parseMemberID(id)
		if err != nil {
			// Cannot happen: only memberID writes here.
			s.dropMember(node, []byte(id))
			continue
		}
		if keep != nil && keep(dialog) {
			continue
		}
		if _, ok := s.remove(p, value, Member{Node: node, Dialog: dialog}, now); ok {
			done++
		}
	}
	return done, nil
}

// Close implements Store; there is nothing to release.
func (s *Memory) Close() error { return nil }

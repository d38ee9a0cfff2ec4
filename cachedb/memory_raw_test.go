package cachedb

import "time"

// rawTTL reports a key's remaining TTL, for the conformance suite, which
// checks key names and expiries the way it reads Redis directly.
func (s *Memory) rawTTL(key string) (time.Duration, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if c, ok := s.counters[key]; ok && now.Before(c.exp) {
		return c.exp.Sub(now), true
	}
	return 0, false
}

// rawGet reads a counter by key name, for tests.
func (s *Memory) rawGet(key string) (int64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.now()
	if c, ok := s.counters[key]; ok && now.Before(c.exp) {
		return c.n, true
	}
	return 0, false
}

// rawSet writes a counter by key name, for tests that simulate another
// writer (an OpenSIPS node, an operator) resetting it.
func (s *Memory) rawSet(key string, n int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.counters[key] = &counter{n: n, exp: s.now().Add(s.ttl)}
}

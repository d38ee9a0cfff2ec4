package location

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
)

// Binding is one contact an AOR is reachable at. Values returned by the
// Store are copies; changing them does not change the Store.
type Binding struct {
	AOR      string    // normalised AOR key (NormalizeAOR)
	Contact  sip.Uri   // contact URI as registered (its own params kept, q/expires removed)
	Q        float64   // 0..1, default 1.0 when absent
	Expires  time.Time // zero for static bindings (never expire)
	CallID   string
	CSeq     uint32
	Path     []string // Path header values (RFC 3327), kept for the P-CSCF role
	Received string   // source "host:port" of the REGISTER (for NAT'd UEs)
	Static   bool
}

// Options tunes the registrar. Zero fields take the defaults documented on
// each field.
type Options struct {
	// MinExpires is the shortest non-zero lifetime accepted; shorter requests
	// get 423 Interval Too Brief. Default 60s.
	MinExpires time.Duration
	// MaxExpires caps granted lifetimes. Default 3600s.
	MaxExpires time.Duration
	// DefaultExpires applies when neither the Contact nor the request says.
	// Default 3600s; clamped into [MinExpires, MaxExpires] so that a UE that
	// omits expires can never be told its default is too brief.
	DefaultExpires time.Duration
	// MaxContacts limits dynamic bindings per AOR. Default 10.
	MaxContacts int
	// Now is the clock; tests inject a fake one. Default time.Now.
	Now func() time.Time
}

// shardCount spreads AORs over independent locks so that Lookups for
// different users never contend and a REGISTER only blocks its own shard.
const shardCount = 64

// Store is the in-memory binding table. It is safe for concurrent use.
type Store struct {
	opts Options
	// Stored binding slices are copy-on-write: writers build a new slice
	// and swap it in, so readers may use a slice after dropping the read
	// lock.
	shards [shardCount]shard
}

type shard struct {
	mu   sync.RWMutex
	aors map[string][]Binding // in registration order
}

// New returns an empty Store.
func New(o Options) *Store {
	if o.MinExpires <= 0 {
		o.MinExpires = 60 * time.Second
	}
	if o.MaxExpires <= 0 {
		o.MaxExpires = 3600 * time.Second
	}
	if o.MaxExpires < o.MinExpires {
		o.MaxExpires = o.MinExpires
	}
	if o.DefaultExpires <= 0 {
		o.DefaultExpires = 3600 * time.Second
	}
	o.DefaultExpires = min(max(o.DefaultExpires, o.MinExpires), o.MaxExpires)
	if o.MaxContacts <= 0 {
		o.MaxContacts = 10
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	s := &Store{opts: o}
	for i := range s.shards {
		s.shards[i].aors = make(map[string][]Binding)
	}
	return s
}

// shardFor hashes with inline FNV-1a so the per-INVITE Lookup does not
// allocate a hash.Hash.
func (s *Store) shardFor(aor string) *shard {
	const (
		offset32 = 2166136261
		prime32  = 16777619
	)
	h := uint32(offset32)
	for i := 0; i < len(aor); i++ {
		h ^= uint32(aor[i])
		h *= prime32
	}
	return &s.shards[h%shardCount]
}

func (b *Binding) live(now time.Time) bool {
	return b.Static || b.Expires.IsZero() || now.Before(b.Expires)
}

// clone deep-copies the parts that share backing arrays with the stored
// binding, so callers can modify what Lookup returns without racing.
func (b Binding) clone() Binding {
	b.Contact = *b.Contact.Clone()
	b.Path = slices.Clone(b.Path)
	return b
}

// byQDesc orders by preference (§10.2.1.2); used with a stable sort so equal
// q keeps registration order.
func byQDesc(a, b Binding) int { return cmp.Compare(b.Q, a.Q) }

// liveSorted returns copies of the unexpired bindings in Lookup order.
func liveSorted(bs []Binding, now time.Time) []Binding {
	var out []Binding
	for i := range bs {
		if bs[i].live(now) {
			if out == nil {
				out = make([]Binding, 0, len(bs))
			}
			out = append(out, bs[i].clone())
		}
	}
	slices.SortStableFunc(out, byQDesc)
	return out
}

// Lookup returns the unexpired bindings of aor, which must be a key produced
// by NormalizeAOR, highest q first. It returns nil when there are none.
func (s *Store) Lookup(aor string) []Binding {
	sh := s.shardFor(aor)
	sh.mu.RLock()
	bs := sh.aors[aor]
	sh.mu.RUnlock()
	if len(bs) == 0 {
		return nil
	}
	return liveSorted(bs, s.opts.Now())
}

// EachLiveURI calls f with each unexpired binding of u's AOR (normalised
// as LookupURI does), in registration order, and of, the number of
// bindings the AOR holds: at least the number of calls, to size what f
// fills. It copies nothing, so f must copy what it keeps, and must not
// change the binding. Unlike Lookup it does not order by q: a router
// handing the bindings to tm as targets needs no order (tm forks by q).
func (s *Store) EachLiveURI(u sip.Uri, f func(b *Binding, of int)) {
	aor := NormalizeAOR(u)
	if aor == "" {
		return
	}
	sh := s.shardFor(aor)
	sh.mu.RLock()
	bs := sh.aors[aor] // never changed in place: a change stores a new slice
	sh.mu.RUnlock()
	now := s.opts.Now()
	for i := range bs {
		if bs[i].live(now) {
			f(&bs[i], len(bs))
		}
	}
}

// LookupURI is Lookup for a URI that still needs normalising, such as a
// Request-URI.
func (s *Store) LookupURI(u sip.Uri) []Binding {
	aor := NormalizeAOR(u)
	if aor == "" {
		return nil
	}
	return s.Lookup(aor)
}

// Expire drops expired bindings and returns how many it dropped. Lookup
// already hides expired bindings; Expire only reclaims memory.
func (s *Store) Expire() int {
	now := s.opts.Now()
	dropped := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		for aor, bs := range sh.aors {
			n := 0
			for j := range bs {
				if bs[j].live(now) {
					n++
				}
			}
			if n == len(bs) {
				continue
			}
			dropped += len(bs) - n
			if n == 0 {
				delete(sh.aors, aor)
				continue
			}
			kept := make([]Binding, 0, n)
			for j := range bs {
				if bs[j].live(now) {
					kept = append(kept, bs[j])
				}
			}
			sh.aors[aor] = kept
		}
		sh.mu.Unlock()
	}
	return dropped
}

// Len returns the number of AORs with at least one unexpired binding.
func (s *Store) Len() int {
	now := s.opts.Now()
	n := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.RLock()
		for _, bs := range sh.aors {
			if slices.ContainsFunc(bs, func(b Binding) bool { return b.live(now) }) {
				n++
			}
		}
		sh.mu.RUnlock()
	}
	return n
}

// Bindings returns a snapshot of every unexpired binding, ordered by AOR and
// then as Lookup orders them, so management listings are stable.
func (s *Store) Bindings() []Binding {
	type entry struct {
		aor string
		bs  []Binding
	}
	var all []entry
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.RLock()
		for aor, bs := range sh.aors {
			all = append(all, entry{aor, bs})
		}
		sh.mu.RUnlock()
	}
	slices.SortFunc(all, func(a, b entry) int { return strings.Compare(a.aor, b.aor) })
	now := s.opts.Now()
	var out []Binding
	for _, e := range all {
		out = append(out, liveSorted(e.bs, now)...)
	}
	return out
}

// AddStatic adds operator-configured bindings that never expire and that
// REGISTER cannot remove. Contacts are "sip:" or "sips:" URIs, optionally in
// angle brackets, and may carry ";q=". Nothing is added unless every contact
// is valid. Adding a contact that is already static for the AOR updates its
// q; adding one that is currently registered dynamically replaces that
// registration.
func (s *Store) AddStatic(aor string, contacts []string) error {
	var au sip.Uri
	if err := sip.ParseUri(strings.TrimSpace(aor), &au); err != nil {
		return fmt.Errorf("location: static AOR %q: %w", aor, err)
	}
	key := NormalizeAOR(au)
	if key == "" {
		return fmt.Errorf("location: static AOR %q: not a usable address-of-record", aor)
	}

	add := make([]Binding, 0, len(contacts))
	for _, c := range contacts {
		b, err := parseStaticContact(c)
		if err != nil {
			return fmt.Errorf("location: static contact %q for %s: %w", c, key, err)
		}
		b.AOR = key
		add = append(add, b)
	}
	if len(add) == 0 {
		return nil
	}

	sh := s.shardFor(key)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	next := slices.Clone(sh.aors[key])
	for _, b := range add {
		i := slices.IndexFunc(next, func(x Binding) bool { return uriEqual(&x.Contact, &b.Contact) })
		if i >= 0 {
			next[i] = b
		} else {
			next = append(next, b)
		}
	}
	sh.aors[key] = next
	return nil
}

// ParseStaticContact parses one entry of location.static: a contact URI,
// in <> when it has URI parameters, optionally followed by ";q=0..1". It is
// what AddStatic accepts, exported so a configuration can be checked
// before the store exists.
func ParseStaticContact(c string) (uri sip.Uri, q float64, err error) {
	b, err := parseStaticContact(c)
	return b.Contact, b.Q, err
}

func parseStaticContact(c string) (Binding, error) {
	var (
		u      sip.Uri
		params sip.HeaderParams
	)
	c = strings.TrimSpace(c)
	if _, err := sip.ParseAddressValue(c, &u, &params); err != nil {
		return Binding{}, fmt.Errorf("parse: %w", err)
	}
	if u.Wildcard {
		return Binding{}, fmt.Errorf("wildcard is not a contact")
	}
	if u.Scheme != "sip" && u.Scheme != "sips" {
		return Binding{}, fmt.Errorf("scheme %q is not sip or sips", u.Scheme)
	}
	if u.Host == "" {
		return Binding{}, fmt.Errorf("no host")
	}
	b := Binding{Contact: u, Q: 1, Static: true}
	for _, kv := range params {
		if !strings.EqualFold(kv.K, "q") {
			// Without <> a ";transport=tcp" is a Contact header parameter
			// (RFC 3261 §20.10) and would silently vanish from the URI.
			return Binding{}, fmt.Errorf("unsupported parameter %q (only q; put URI parameters inside <>)", kv.K)
		}
		q, ok := parseQ(kv.V)
		if !ok {
			return Binding{}, fmt.Errorf("invalid q value %q", kv.V)
		}
		b.Q = q
	}
	return b, nil
}

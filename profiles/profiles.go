package profiles

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/imsdlg/imsdlg/cachedb"
)

// SharedSuffix marks a declared profile name as shared through the cache DB.
const SharedSuffix = "/s"

// Config declares the profiles.
type Config struct {
	WithValue []string // profiles_with_value; "name/s" is shared
	NoValue   []string // profiles_no_value; "name/s" is shared
}

// Info describes a declared profile (list_all_profiles).
type Info struct {
	Name      string // bare name, without "/s"
	WithValue bool
	Shared    bool
}

// Membership is one (profile, value) a dialog is in; Value is "" for a
// profile without value.
type Membership struct {
	Profile, Value string
}

var (
	// ErrUnknownProfile is returned (wrapped) for a profile not declared.
	ErrUnknownProfile = errors.New("profiles: unknown profile")
	// ErrValue is returned (wrapped) when a value is missing for a profile
	// with value, or given for a profile without value.
	ErrValue = errors.New("profiles: bad value for profile")
)

type profile struct {
	info  Info
	cp    cachedb.Profile
	store cachedb.Store
	kind  storeKind
}

// dialog is the record of one dialog. mu serializes its store calls;
// members, uncertain and dropped are written with both mu and Set.mu held,
// so readers holding either see a consistent value.
type dialog struct {
	mu      sync.Mutex
	members memberSet
	// uncertain holds the memberships whose Add failed on a store error:
	// the store may have counted them, so the end of the dialog removes
	// them too, but they are not reported as memberships. A membership is
	// in at most one of members and uncertain.
	uncertain memberSet
	dropped   bool // removed from Set.dialogs; acquire must look again
}

// memberSet is a set of a dialog's memberships: one or two in practice,
// so a slice searched in place. Two maps per dialog were ~300 bytes of
// every held call and three allocations of every call (issue 14).
type memberSet []Membership

func (s memberSet) has(m Membership) bool {
	for _, x := range s {
		if x == m {
			return true
		}
	}
	return false
}

func (s *memberSet) add(m Membership) {
	if !s.has(m) {
		*s = append(*s, m)
	}
}

func (s *memberSet) del(m Membership) {
	for i, x := range *s {
		if x == m {
			last := len(*s) - 1
			(*s)[i] = (*s)[last]
			(*s)[last] = Membership{}
			*s = (*s)[:last]
			return
		}
	}
}

// empty reports whether nothing is left to remove for the dialog.
func (d *dialog) empty() bool { return len(d.members) == 0 && len(d.uncertain) == 0 }

// Set is the set of declared profiles and this node's record of who is in
// them. It is safe for concurrent use.
type Set struct {
	node     string
	profiles map[string]*profile // by bare name

	mu      sync.RWMutex
	dialogs map[string]*dialog                        // dialog id -> record
	index   map[string]map[string]map[string]struct{} // profile -> value -> dialog ids

	// pending are the dialogs whose release failed; see Release. pmu
	// guards only this map so that the hot path does not wait on the
	// record lock to update it.
	pmu      sync.Mutex
	pending  map[string]struct{}
	npending atomic.Int64 // len(pending), read without pmu on the call path

	// settling is the pass over pending releases that admissions wait for
	// (see settle); smu guards it.
	smu      sync.Mutex
	settling *settleCall

	shared cachedb.Store // the store of the "/s" profiles; nil without one
	// generation is the shared store's data set last seen; gmu serializes
	// CheckGeneration.
	gmu        sync.Mutex
	generation string

	probe  *profile // the shared profile Ping reads; nil without one
	health [numKinds]health
	logger atomic.Pointer[slog.Logger]
	now    func() time.Time // for the outage duration; a test may stub it
	stats  Stats
}

// New validates cfg and returns the Set. local counts the node-local
// profiles (nil means a fresh cachedb.NewMemory with the default keys and
// TTL); shared counts the "/s" profiles and may be nil only when none is
// declared. node identifies this node in the shared store's membership
// records. All configuration errors are returned together, each naming its
// profile.
func New(cfg Config, local, shared cachedb.Store, node string) (*Set, error) {
	if node == "" {
		return nil, errors.New("profiles: empty node id")
	}
	if local == nil {
		local = cachedb.NewMemory(cachedb.DefaultKeys(), 0, nil)
	}
	s := &Set{
		node:     node,
		profiles: map[string]*profile{},
		dialogs:  map[string]*dialog{},
		index:    map[string]map[string]map[string]struct{}{},
		pending:  map[string]struct{}{},
		now:      time.Now,
	}
	var errs []error
	declared := map[string]string{} // bare name -> list it was declared in
	add := func(decl string, withValue bool) {
		list := "profiles_no_value"
		if withValue {
			list = "profiles_with_value"
		}
		name, shared0, err := parseName(decl)
		if err != nil {
			errs = append(errs, fmt.Errorf("profiles: %s: %w", list, err))
			return
		}
		if prev, ok := declared[name]; ok {
			if prev == list {
				errs = append(errs, fmt.Errorf("profiles: %s: profile %q declared twice", list, name))
			} else {
				errs = append(errs, fmt.Errorf("profiles: profile %q declared in both profiles_with_value and profiles_no_value", name))
			}
			return
		}
		declared[name] = list
		st, kind := local, kindLocal
		if shared0 {
			if shared == nil {
				errs = append(errs, fmt.Errorf("profiles: %s: profile %q is shared (/s) but no cachedb_url is configured", list, decl))
				return
			}
			st, kind = shared, kindShared
			s.shared = shared
		}
		s.profiles[name] = &profile{
			info:  Info{Name: name, WithValue: withValue, Shared: shared0},
			cp:    cachedb.Profile{Name: name, WithValue: withValue},
			store: st,
			kind:  kind,
		}
	}
	for _, n := range cfg.WithValue {
		add(n, true)
	}
	for _, n := range cfg.NoValue {
		add(n, false)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	for _, info := range s.Declared() {
		if info.Shared {
			s.probe = s.profiles[info.Name]
			break
		}
	}
	s.stats.init(s)
	return s, nil
}

// parseName splits a declared name into the bare name and whether it is
// shared, and checks that the bare name can be part of a Redis key.
func parseName(decl string) (string, bool, error) {
	name, shared := strings.CutSuffix(decl, SharedSuffix)
	if b, ok := strings.CutSuffix(decl, "/b"); ok {
		return "", false, fmt.Errorf("profile %q: clusterer sharing (/b) is not supported, use /s", b)
	}
	if name == "" {
		return "", false, fmt.Errorf("empty profile name %q", decl)
	}
	if !utf8.ValidString(name) {
		return "", false, fmt.Errorf("profile %q: name is not valid UTF-8", decl)
	}
	for _, r := range name {
		if unicode.IsSpace(r) || unicode.IsControl(r) || !unicode.IsPrint(r) || r == '/' {
			return "", false, fmt.Errorf("profile %q: name contains %q (spaces, control characters and '/' are not allowed)", decl, r)
		}
	}
	return name, shared, nil
}

// lookup finds a declared profile by bare name or, for a shared one, by its
// declared name.
func (s *Set) lookup(name string) (*profile, error) {
	bare, suffixed := strings.CutSuffix(name, SharedSuffix)
	p := s.profiles[bare]
	if p == nil || (suffixed && !p.info.Shared) {
		return nil, fmt.Errorf("%w %q", ErrUnknownProfile, name)
	}
	return p, nil
}

// Declared lists the declared profiles sorted by name.
func (s *Set) Declared() []Info {
	out := make([]Info, 0, len(s.profiles))
	for _, p := range s.profiles {
		out = append(out, p.info)
	}
	slices.SortFunc(out, func(a, b Info) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// checkValue enforces value given for a profile with value and absent for
// one without.
func checkValue(p *profile, value string) error {
	if p.info.WithValue && value == "" {
		return fmt.Errorf("%w %s: profile has values, value is empty", ErrValue, p.info.Name)
	}
	if !p.info.WithValue && value != "" {
		return fmt.Errorf("%w %s: profile has no value, got %q", ErrValue, p.info.Name, value)
	}
	return nil
}

// acquire returns the locked record of dialogID, creating it if create is
// set; nil (unlocked) when absent and create is not set.
func (s *Set) acquire(dialogID string, create bool) *dialog {
	if !create {
		// Every dialog end looks here, most with no membership: a shared
		// lock keeps them from queueing behind each other.
		s.mu.RLock()
		d := s.dialogs[dialogID]
		s.mu.RUnlock()
		if d == nil {
			return nil
		}
	}
	for {
		s.mu.Lock()
		d := s.dialogs[dialogID]
		if d == nil {
			if !create {
				s.mu.Unlock()
				return nil
			}
			d = &dialog{}
			s.dialogs[dialogID] = d
		}
		s.mu.Unlock()
		d.mu.Lock()
		if !d.dropped {
			return d
		}
		d.mu.Unlock()
	}
}

// release unlocks d, dropping its record when it has nothing left to remove.
func (s *Set) release(dialogID string, d *dialog) {
	if d.empty() {
		s.mu.Lock()
		if s.dialogs[dialogID] == d {
			delete(s.dialogs, dialogID)
		}
		d.dropped = true
		s.mu.Unlock()
	}
	d.mu.Unlock()
}

// record adds or removes one membership in the record; d.mu is held. Either
// way the membership is no longer uncertain: added, the store has counted
// it; removed, the store no longer does.
func (s *Set) record(dialogID string, d *dialog, m Membership, in bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	d.uncertain.del(m)
	if in {
		d.members.add(m)
		byValue := s.index[m.Profile]
		if byValue == nil {
			byValue = map[string]map[string]struct{}{}
			s.index[m.Profile] = byValue
		}
		ids := byValue[m.Value]
		if ids == nil {
			ids = map[string]struct{}{}
			byValue[m.Value] = ids
		}
		ids[dialogID] = struct{}{}
		return
	}
	d.members.del(m)
	if byValue := s.index[m.Profile]; byValue != nil {
		if ids := byValue[m.Value]; ids != nil {
			delete(ids, dialogID)
			if len(ids) == 0 {
				delete(byValue, m.Value)
			}
		}
		// A profile's map stays when it empties: profiles are few, and
		// one made again for each call of an idle profile was two
		// allocations per call.
	}
}

// markUncertain records m as possibly counted by the store, or (in false)
// as certainly not; d.mu is held. A membership already recorded as counted
// stays as it is: a failed refresh does not make it less counted.
func (s *Set) markUncertain(d *dialog, m Membership, in bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !in {
		d.uncertain.del(m)
		return
	}
	if !d.members.has(m) {
		d.uncertain.add(m)
	}
}

// SetProfile puts the dialog in the profile with value (set_dlg_profile) and
// returns the count after the change: the value's count for a profile with
// value, the profile's count otherwise. With limit > 0 the check and the
// increment are one atomic step in the store; past the limit nothing is
// counted and the error wraps cachedb.ErrLimit, with the current count.
// Setting a (profile, value) the dialog is already in counts once (it
// refreshes the TTL and is not limited).
//
// Any other error (timeout, connection refused) leaves it unknown whether
// the store counted the dialog: the membership is then kept as uncertain,
// invisible to IsInProfile, Memberships and Dialogs, and removed by
// EndDialog, Release or UnsetProfile like a recorded one, so that a count
// the store did apply is not leaked until the TTL.
func (s *Set) SetProfile(ctx context.Context, dialogID, profile, value string, limit int64) (int64, error) {
	p, err := s.lookup(profile)
	if err != nil {
		return 0, err
	}
	if err := checkValue(p, value); err != nil {
		return 0, err
	}
	if dialogID == "" {
		return 0, fmt.Errorf("profiles: set profile %s: empty dialog id", p.info.Name)
	}
	// The store rejects a NUL in a dialog id; rejecting it here keeps that
	// deterministic refusal from being taken for a store failure (and
	// recorded as uncertain, to be retried for ever).
	if strings.ContainsRune(dialogID, 0) {
		return 0, fmt.Errorf("profiles: set profile %s: dialog id %q contains NUL", p.info.Name, dialogID)
	}
	if limit > 0 && p.kind == kindShared {
		if err := s.settle(ctx); err != nil {
			return 0, fmt.Errorf("profiles: set dialog %s in %s: %w", dialogID, describe(p, value), err)
		}
	}
	// The value is kept (the record, the index's keys): one of its own, as
	// a caller's may be cut from a received message, whose text is reused
	// once the call that handed it over returns (calllimit's source_ip and
	// host-only from_uri/to_uri are).
	value = strings.Clone(value)
	m := Membership{Profile: p.info.Name, Value: value}
	d := s.acquire(dialogID, true)
	defer s.release(dialogID, d)
	var start time.Time
	if limit > 0 {
		start = s.now()
	}
	n, err := p.store.Add(ctx, p.cp, value, cachedb.Member{Node: s.node, Dialog: dialogID}, limit)
	if limit > 0 {
		s.stats.limitCheck[p.kind].Observe(s.now().Sub(start).Seconds())
	}
	s.observe(ctx, p.kind, err)
	if err != nil {
		if errors.Is(err, cachedb.ErrLimit) {
			s.stats.limitRejected[p.info.Name].Add(1)
			// The store refuses only a member it does not count, so an
			// earlier uncertain Add of this membership did not happen.
			s.markUncertain(d, m, false)
		} else {
			s.stats.uncertainAdds.Add(1)
			s.markUncertain(d, m, true)
		}
		return n, fmt.Errorf("profiles: set dialog %s in %s: %w", dialogID, describe(p, value), err)
	}
	s.record(dialogID, d, m, true)
	return n, nil
}

// UnsetProfile takes the dialog out of the profile (unset_dlg_profile). For
// a profile with value, value "" removes every value the dialog has in it.
// Unsetting what the dialog is not in does nothing. On a store error the
// membership stays recorded (and counted) and the first error is returned.
// Uncertain memberships of the profile (see SetProfile) are removed too.
func (s *Set) UnsetProfile(ctx context.Context, dialogID, profile, value string) error {
	p, err := s.lookup(profile)
	if err != nil {
		return err
	}
	if !p.info.WithValue && value != "" {
		return checkValue(p, value)
	}
	d := s.acquire(dialogID, false)
	if d == nil {
		return nil
	}
	defer s.release(dialogID, d)
	var todo []Membership
	s.mu.RLock()
	for _, set := range []memberSet{d.members, d.uncertain} {
		for _, m := range set {
			if m.Profile == p.info.Name && (value == "" || m.Value == value) {
				todo = append(todo, m)
			}
		}
	}
	s.mu.RUnlock()
	_, err = s.remove(ctx, dialogID, d, todo)
	return err
}

// removal is what remove did: how many memberships it took out of the
// store and which stores failed.
type removal struct {
	removed int
	failed  [numKinds]bool
}

// remove takes the given memberships (recorded or uncertain) out of the
// store and the record; d.mu is held. It tries all and returns the first
// error. Removing an uncertain membership the store never counted is
// harmless: cachedb's Remove of a member never added changes nothing.
func (s *Set) remove(ctx context.Context, dialogID string, d *dialog, todo []Membership) (removal, error) {
	var r removal
	var first error
	for _, m := range todo {
		p := s.profiles[m.Profile]
		_, err := p.store.Remove(ctx, p.cp, m.Value, cachedb.Member{Node: s.node, Dialog: dialogID})
		s.observe(ctx, p.kind, err)
		if err != nil {
			r.failed[p.kind] = true
			if first == nil {
				first = fmt.Errorf("profiles: unset dialog %s from %s: %w", dialogID, describe(p, m.Value), err)
			}
			continue
		}
		r.removed++
		s.record(dialogID, d, m, false)
	}
	return r, first
}

// EndDialog removes every membership of the dialog, uncertain ones
// included; call it (or Release) whenever a dialog ends, however it ends.
// It tries each one, returns the first error (the failed ones stay
// recorded, so calling again retries them) and does nothing for a dialog
// with no membership, so it is idempotent.
func (s *Set) EndDialog(ctx context.Context, dialogID string) error {
	_, err := s.endDialog(ctx, dialogID)
	return err
}

// endDialog is EndDialog reporting what it removed and which stores failed.
// A dialog left with nothing to remove is no longer pending.
func (s *Set) endDialog(ctx context.Context, dialogID string) (removal, error) {
	d := s.acquire(dialogID, false)
	if d == nil {
		s.dropPending(dialogID)
		return removal{}, nil
	}
	defer s.release(dialogID, d)
	s.mu.RLock()
	todo := make([]Membership, 0, len(d.members)+len(d.uncertain))
	todo = append(append(todo, d.members...), d.uncertain...)
	s.mu.RUnlock()
	sortMemberships(todo)
	r, err := s.remove(ctx, dialogID, d, todo)
	if err == nil {
		s.dropPending(dialogID)
	}
	return r, err
}

// IsInProfile reports from the local record whether the dialog is in the
// profile (is_in_profile); value "" means with any value. As in OpenSIPS a
// value given for a profile without value is ignored. An undeclared profile
// is false.
func (s *Set) IsInProfile(dialogID, profile, value string) bool {
	p, err := s.lookup(profile)
	if err != nil {
		return false
	}
	if !p.info.WithValue {
		value = ""
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	d := s.dialogs[dialogID]
	if d == nil {
		return false
	}
	if value != "" || !p.info.WithValue {
		return d.members.has(Membership{Profile: p.info.Name, Value: value})
	}
	for _, m := range d.members {
		if m.Profile == p.info.Name {
			return true
		}
	}
	return false
}

// Size is get_profile_size: the count of the value, or with value "" the
// profile's total. For a shared profile it is the cluster-wide count. As in
// OpenSIPS a value given for a profile without value is ignored.
func (s *Set) Size(ctx context.Context, profile, value string) (int64, error) {
	p, err := s.lookup(profile)
	if err != nil {
		return 0, err
	}
	if !p.info.WithValue {
		value = ""
	}
	n, err := p.store.Size(ctx, p.cp, value)
	s.observe(ctx, p.kind, err)
	if err != nil {
		return 0, fmt.Errorf("profiles: size of %s: %w", describe(p, value), err)
	}
	return n, nil
}

// Values is profile_get_values: each value with its count (values counted 0
// left out). For a profile without value it is the total under the key "",
// as OpenSIPS returns a total count. Unlike OpenSIPS it works for shared
// profiles (cluster-wide counts).
func (s *Set) Values(ctx context.Context, profile string) (map[string]int64, error) {
	p, err := s.lookup(profile)
	if err != nil {
		return nil, err
	}
	if !p.info.WithValue {
		n, err := p.store.Size(ctx, p.cp, "")
		s.observe(ctx, p.kind, err)
		if err != nil {
			return nil, fmt.Errorf("profiles: values of %s: %w", describe(p, ""), err)
		}
		return map[string]int64{"": n}, nil
	}
	v, err := p.store.Values(ctx, p.cp)
	s.observe(ctx, p.kind, err)
	if err != nil {
		return nil, fmt.Errorf("profiles: values of %s: %w", describe(p, ""), err)
	}
	return v, nil
}

// Dialogs is profile_list_dlgs: the ids of this node's dialogs in the
// profile (with value "" any value; a value given for a profile without
// value is ignored), sorted. Unknown profile: nil.
func (s *Set) Dialogs(profile, value string) []string {
	p, err := s.lookup(profile)
	if err != nil {
		return nil
	}
	if !p.info.WithValue {
		value = ""
	}
	s.mu.RLock()
	byValue := s.index[p.info.Name]
	var out []string
	if value != "" || !p.info.WithValue {
		for id := range byValue[value] {
			out = append(out, id)
		}
	} else {
		seen := map[string]struct{}{}
		for _, ids := range byValue {
			for id := range ids {
				if _, ok := seen[id]; !ok {
					seen[id] = struct{}{}
					out = append(out, id)
				}
			}
		}
	}
	s.mu.RUnlock()
	slices.Sort(out)
	return out
}

// Memberships lists the dialog's memberships sorted by profile then value
// (dlg.list_ctx).
func (s *Set) Memberships(dialogID string) []Membership {
	s.mu.RLock()
	d := s.dialogs[dialogID]
	var out []Membership
	if d != nil {
		out = append(make([]Membership, 0, len(d.members)), d.members...)
	}
	s.mu.RUnlock()
	sortMemberships(out)
	return out
}

func sortMemberships(ms []Membership) {
	slices.SortFunc(ms, func(a, b Membership) int {
		if c := strings.Compare(a.Profile, b.Profile); c != 0 {
			return c
		}
		return strings.Compare(a.Value, b.Value)
	})
}

func describe(p *profile, value string) string {
	if p.info.WithValue && value != "" {
		return fmt.Sprintf("profile %s value %q", p.info.Name, value)
	}
	return "profile " + p.info.Name
}

package cachedb

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// Profile names a dialog profile as the Store sees it.
type Profile struct {
	Name      string
	WithValue bool
}

// ErrLimit is returned (wrapped with the profile and value) by Add when the
// count after adding would exceed the limit.
var ErrLimit = errors.New("cachedb: profile limit reached")

// Member is who counted: the node id and the dialog id (e.g. "h_entry.h_id").
type Member struct {
	Node, Dialog string
}

// Store is the shared profile store. See the package doc for key names,
// TTL and atomicity.
type Store interface {
	// Add counts member in the profile (with value: value counter and size
	// counter; without: the no-value counter), sets the TTL on every key it
	// touches and records the membership with the same TTL. With limit > 0,
	// when the count after adding would exceed limit nothing changes and an
	// error wrapping ErrLimit is returned with the current count. Adding the
	// same member twice counts once (and refreshes the TTL). It returns the
	// count after the change: the value counter with value, the no-value
	// counter without.
	Add(ctx context.Context, p Profile, value string, m Member, limit int64) (int64, error)
	// Remove undoes Add for that member. Removing a member never added (or
	// already expired) changes nothing; counters never go below zero.
	Remove(ctx context.Context, p Profile, value string, m Member) (int64, error)
	// Size reads a counter: with value and value != "" the value counter,
	// with value and value == "" the size counter, without value the
	// no-value counter. A missing key is 0.
	Size(ctx context.Context, p Profile, value string) (int64, error)
	// Values maps value to count for a profile with value; values whose
	// counter is 0 are left out.
	Values(ctx context.Context, p Profile) (map[string]int64, error)
	// Reconcile removes every live membership recorded for node, each
	// exactly once even if several callers reconcile at the same time, and
	// returns how many this call removed. Memberships of the dialogs keep
	// reports true for (dialogs a restarted node restored) stay; nil keep
	// removes all.
	Reconcile(ctx context.Context, node string, keep func(dialog string) bool) (int, error)
	Close() error
}

// kind tags a membership record so Reconcile knows which counters to undo.
func kind(p Profile) string {
	if p.WithValue {
		return "v"
	}
	return "n"
}

// memberID is the membership record of one (profile, value, dialog).
func memberID(p Profile, value, dialog string) string {
	return string(appendMemberID(nil, p, value, dialog))
}

// appendMemberID appends the record memberID returns to dst.
func appendMemberID(dst []byte, p Profile, value, dialog string) []byte {
	dst = append(dst, kind(p)...)
	dst = append(dst, 0)
	dst = append(dst, p.Name...)
	dst = append(dst, 0)
	dst = base64.StdEncoding.AppendEncode(dst, []byte(value))
	dst = append(dst, 0)
	return append(dst, dialog...)
}

// parseMemberID is the inverse of memberID.
func parseMemberID(id string) (Profile, string, string, error) {
	parts := strings.SplitN(id, "\x00", 4)
	if len(parts) != 4 || (parts[0] != "v" && parts[0] != "n") {
		return Profile{}, "", "", fmt.Errorf("malformed membership record %q", id)
	}
	v, err := base64.StdEncoding.DecodeString(parts[2])
	if err != nil {
		return Profile{}, "", "", fmt.Errorf("membership record %q: value: %w", id, err)
	}
	return Profile{Name: parts[1], WithValue: parts[0] == "v"}, string(v), parts[3], nil
}

// check rejects what would make a key or membership record ambiguous.
func check(p Profile, m *Member) error {
	if p.Name == "" {
		return errors.New("empty profile name")
	}
	if strings.ContainsRune(p.Name, 0) {
		return fmt.Errorf("profile name %q contains NUL", p.Name)
	}
	if m != nil {
		if m.Node == "" || m.Dialog == "" {
			return fmt.Errorf("member %+v: node and dialog must be set", *m)
		}
		if strings.ContainsRune(m.Dialog, 0) {
			return fmt.Errorf("dialog id %q contains NUL", m.Dialog)
		}
	}
	return nil
}

// counters returns the primary counter (the one a limit applies to and Add
// returns) and, for a profile with value, the size counter.
func (k Keys) counters(p Profile, value string) (primary, size string) {
	if p.WithValue {
		return k.Value(p.Name, value), k.Size(p.Name)
	}
	return k.NoValue(p.Name), ""
}

// appendCounters is counters into caller's buffers (size nil for a
// profile without value).
func (k Keys) appendCounters(pb, sb []byte, p Profile, value string) (primary, size []byte) {
	if p.WithValue {
		return k.appendValue(pb, p.Name, value), append(append(sb, k.SizePrefix...), p.Name...)
	}
	return append(append(pb, k.NoValuePrefix...), p.Name...), nil
}

// sizeKey is the key Size reads.
func (k Keys) sizeKey(p Profile, value string) string {
	switch {
	case !p.WithValue:
		return k.NoValue(p.Name)
	case value == "":
		return k.Size(p.Name)
	default:
		return k.Value(p.Name, value)
	}
}

// describe names a profile and value in errors.
func describe(p Profile, value string) string {
	if p.WithValue {
		return fmt.Sprintf("profile %s value %q", p.Name, value)
	}
	return "profile " + p.Name
}

// Generationer is a Store whose data can be lost behind its clients' backs:
// a Redis restarted without persistence, flushed, or replaced by a replica
// that lagged. Generation names the data set the store holds now; a change
// between two calls means changes made before may be gone, and a node
// re-publishes its live memberships (see profiles.Set.CheckGeneration). A
// change may also be a false alarm (a restart that kept its data): the
// re-publishing is idempotent, so that costs only round trips.
type Generationer interface {
	Generation(ctx context.Context) (string, error)
}

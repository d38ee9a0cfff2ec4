package cachedb

import (
	"encoding/base64"
	"strings"
)

// Keys holds the key prefixes; they are configurable because OpenSIPS lets
// operators change them (profile_value_prefix, profile_no_value_prefix,
// profile_size_prefix) and a shared Redis must use the same ones.
type Keys struct {
	ValuePrefix, NoValuePrefix, SizePrefix string
}

// MembershipPrefix starts the per-node membership key. It is not an OpenSIPS
// key, so it is not configurable.
const MembershipPrefix = "imsdlg_member_"

// DefaultKeys returns the OpenSIPS defaults.
func DefaultKeys() Keys {
	return Keys{ValuePrefix: "dlg_val_", NoValuePrefix: "dlg_noval_", SizePrefix: "dlg_size_"}
}

// Value is the counter of dialogs in profile name with value. Standard padded
// base64 because that is what OpenSIPS writes.
func (k Keys) Value(name, value string) string {
	return string(k.appendValue(make([]byte, 0, len(k.ValuePrefix)+len(name)+1+base64.StdEncoding.EncodedLen(len(value))), name, value))
}

// appendValue appends the key Value returns to dst.
func (k Keys) appendValue(dst []byte, name, value string) []byte {
	dst = append(dst, k.ValuePrefix...)
	dst = append(dst, name...)
	dst = append(dst, '_')
	return base64.StdEncoding.AppendEncode(dst, []byte(value))
}

// Size is the total of a profile with value.
func (k Keys) Size(name string) string { return k.SizePrefix + name }

// NoValue is the counter of a profile without value.
func (k Keys) NoValue(name string) string { return k.NoValuePrefix + name }

// Membership is the sorted set recording what node has counted.
func (k Keys) Membership(node string) string { return MembershipPrefix + node }

// valueOf recovers the value from a value-counter key of profile name. The
// suffix must be valid standard base64, which also rejects keys of a profile
// whose name merely starts with name + "_" ('_' is not in the alphabet).
func (k Keys) valueOf(name, key string) (string, bool) {
	rest, ok := strings.CutPrefix(key, k.ValuePrefix+name+"_")
	if !ok {
		return "", false
	}
	b, err := base64.StdEncoding.DecodeString(rest)
	if err != nil {
		return "", false
	}
	return string(b), true
}

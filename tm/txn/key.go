package txn

import (
	"encoding/binary"
	"math"
)

// MagicCookie begins the branch of every request sent by an RFC 3261
// client transaction (§8.1.1.7); without it the sender is an RFC 2543
// element and the branch is not known to be unique.
const MagicCookie = "z9hG4bK"

// HasMagicCookie reports whether branch begins with the magic cookie.
// Parameter values are case-insensitive (§7.3.1), so is the cookie.
func HasMagicCookie(branch string) bool {
	return len(branch) >= len(MagicCookie) && equalFold(branch[:len(MagicCookie)], MagicCookie)
}

// RequestFields are what §17.2.3 reads of a received request, as strings
// and numbers so this package needs no message type. Method, Branch,
// SentByHost and SentByPort are always used; the others only for RFC 2543
// requests (no magic cookie).
type RequestFields struct {
	Method     string // request method; case-sensitive (§7.1)
	Branch     string // branch parameter of the top Via; "" when absent
	SentByHost string // sent-by host of the top Via
	SentByPort int    // sent-by port of the top Via; 0 when absent

	RequestURI string // as received
	ToTag      string // To tag of the request
	FromTag    string
	CallID     string
	CSeq       uint32 // CSeq number
	TopVia     string // the whole top Via value, as received
}

// Key kinds: the first byte of every key, so keys of different rules never
// collide.
const (
	keyClient     = 'c'
	keyServer     = 's' // §17.2.3, magic cookie
	keyServer2543 = 'o' // §17.2.3, RFC 2543 fallback
)

// AppendClientKey appends the key of a client transaction (§17.1.3): the
// branch of the top Via and the method. Use it with the branch and method
// of the request sent, and with the top Via branch and the CSeq method of a
// response received: the response matches the transaction with that key. A
// CANCEL shares its INVITE's branch; the method tells them apart.
func AppendClientKey(dst []byte, branch, method string) []byte {
	dst = append(dst, keyClient)
	dst = appendFolded(dst, branch)
	return appendField(dst, method)
}

// AppendServerKey appends the key of the server transaction that a
// received request belongs to (§17.2.3): with a magic cookie, the branch,
// the sent-by and the method, an ACK taking INVITE as method so that the
// ACK of a non-2xx final finds the INVITE transaction. A CANCEL gets a key
// of its own; AppendCancelTargetKey finds the INVITE it cancels.
//
// Without the magic cookie (RFC 2543), the key is the Request-URI, From
// tag, Call-ID, CSeq number and top Via, plus the To tag and the method
// for requests other than INVITE and ACK. The INVITE key leaves the To tag
// out because the ACK carries the tag of the response (§17.2.3): the owner
// that finds an INVITE transaction with an RFC 2543 ACK checks that the
// ACK's To tag equals the To tag of the response the transaction sent.
// These fields are compared byte for byte, as received: an RFC 2543 element
// retransmits the same headers.
//
// Branch, sent-by host and tags are compared case-insensitively; methods
// and Call-ID case-sensitively (§7.3.1, §20.16, §8.1.1.4).
func AppendServerKey(dst []byte, r *RequestFields) []byte {
	return appendServerKey(dst, r, r.Method)
}

// AppendCancelTargetKey appends the key of the transaction a CANCEL
// cancels: §9.2 applies the §17.2.3 rules as if the CANCEL's method were
// that of the original request, which for anything a CANCEL can end is
// INVITE.
func AppendCancelTargetKey(dst []byte, r *RequestFields) []byte {
	return appendServerKey(dst, r, "INVITE")
}

func appendServerKey(dst []byte, r *RequestFields, method string) []byte {
	if method == "ACK" {
		method = "INVITE"
	}
	if HasMagicCookie(r.Branch) {
		dst = append(dst, keyServer)
		dst = appendField(dst, method)
		dst = appendFolded(dst, r.Branch)
		dst = appendFolded(dst, r.SentByHost)
		return binary.BigEndian.AppendUint32(dst, port32(r.SentByPort))
	}
	// The method comes first: it decides whether a To tag follows, so the
	// layout of a key is known from its start and no two requests with
	// different fields share one.
	dst = append(dst, keyServer2543)
	dst = appendField(dst, method)
	dst = appendField(dst, r.RequestURI)
	if method != "INVITE" {
		dst = appendFolded(dst, r.ToTag)
	}
	dst = appendFolded(dst, r.FromTag)
	dst = appendField(dst, r.CallID)
	dst = binary.BigEndian.AppendUint32(dst, r.CSeq)
	return appendField(dst, r.TopVia)
}

func port32(p int) uint32 {
	if p < 0 || uint64(p) > math.MaxUint32 {
		return 0
	}
	return uint32(p)
}

// appendField appends s with its length in front, so that fields cannot
// run into each other whatever bytes they hold.
func appendField(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// appendFolded is appendField with ASCII letters lowered.
func appendFolded(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	n := len(dst)
	dst = append(dst, s...)
	b := dst[n:]
	for i := range b {
		if c := b[i]; 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return dst
}

func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

package tm

import (
	"crypto/rand"
	"encoding/binary"
	"strings"
	"sync/atomic"

	"github.com/emiago/sipgo/sip"
)

// Our Via branch is
//
//	z9hG4bK-<16 lowercase hex: loop hash>-<unique part: [0-9a-zA-Z.]+>
//
// The first part satisfies §8.1.1.7 through the magic cookie and the unique
// part; the loop hash is the second part §16.6 step 8 asks a loop-detecting
// proxy to make separable.
const (
	loopBranchPrefix = sip.RFC3261BranchMagicCookie + "-"
	loopHashLen      = 16
	loopHexDigits    = "0123456789abcdef"
)

// FNV-1a 64: stable across processes and builds, unlike hash/maphash, so a
// request that loops through a restarted instance is still recognised.
const (
	loopFNVOffset = 14695981039346656037
	loopFNVPrime  = 1099511628211
)

type loopFNV uint64

func (h loopFNV) str(s string) loopFNV {
	for i := 0; i < len(s); i++ {
		h ^= loopFNV(s[i])
		h *= loopFNVPrime
	}
	return h
}

func (h loopFNV) num(n uint64) loopFNV {
	for i := 0; i < 8; i++ {
		h ^= loopFNV(byte(n))
		h *= loopFNVPrime
		n >>= 8
	}
	return h
}

// field length-prefixes s so that moving bytes from one field to the next
// (tag "ab" + Call-ID "c" against "a" + "bc") changes the hash.
func (h loopFNV) field(s string) loopFNV {
	return h.num(uint64(len(s))).str(s)
}

func (h loopFNV) params(p sip.HeaderParams) loopFNV {
	h = h.num(uint64(len(p)))
	for _, kv := range p {
		h = h.field(kv.K).field(kv.V)
	}
	return h
}

// uri hashes the parsed fields, as URI.String would allocate.
func (h loopFNV) uri(u *sip.Uri) loopFNV {
	var flags uint64
	if u.Wildcard {
		flags |= 1
	}
	if u.HierarhicalSlashes {
		flags |= 2
	}
	h = h.field(u.Scheme).field(u.Raw()).field(u.User).field(u.Password).field(u.Host)
	return h.num(uint64(int64(u.Port))).num(flags).params(u.UriParams).params(u.Headers)
}

func loopAppendHex(dst []byte, v uint64) []byte {
	for shift := 60; shift >= 0; shift -= 4 {
		dst = append(dst, loopHexDigits[(v>>uint(shift))&0xf])
	}
	return dst
}

// loopHashOf covers what §16.6 step 8 lists as affecting the processing of
// a request: To tag, From tag, Call-ID, CSeq number (never the method, so a
// CANCEL or non-2xx ACK hashes like its INVITE), the Request-URI, and every
// Route, Proxy-Require and Proxy-Authorization value.
//
// It must see the request as received, before §16.4 strips our Route entry
// or rewrites the Request-URI: isLoop runs in §16.3 step 4, before §16.4, on
// the received request, and a hash taken after pre-processing would never
// equal the one taken before it.
//
// Route is in because an application server reached through a Route we
// pushed sends the request back with the same Request-URI but a different
// Route (e.g. an IMS ODI parameter); without Route that spiral would be
// taken for a loop.
//
// The top Via is deliberately left out, although §16.6 step 8 names it: a
// request coming back to us always carries the previous hop's Via on top, so
// including it would make every loop look like a spiral. The Via that was on
// top when we first received the request is the one right below our own Via
// in the returning request, which no later hop may change, so it adds
// nothing to the comparison. Uniqueness of branches comes from the unique
// part, not from this hash.
func loopHashOf(req *sip.Request) uint64 {
	h := loopFNV(loopFNVOffset)
	if to := req.To(); to != nil {
		tag, _ := valParam(to.Params, "tag")
		h = h.num(1).field(tag)
	} else {
		h = h.num(0)
	}
	if from := req.From(); from != nil {
		tag, _ := valParam(from.Params, "tag")
		h = h.num(1).field(tag)
	} else {
		h = h.num(0)
	}
	if callID := req.CallID(); callID != nil {
		h = h.num(1).field(string(*callID))
	} else {
		h = h.num(0)
	}
	if cseq := req.CSeq(); cseq != nil {
		h = h.num(1).num(uint64(cseq.SeqNo))
	} else {
		h = h.num(0)
	}
	h = h.uri(&req.Recipient)

	// Separate sums per header name so that interleaving of different
	// headers, which proxies may change (§7.3.1), does not matter; the order
	// of values of one name does.
	route, proxyRequire, proxyAuth := loopFNV(loopFNVOffset), loopFNV(loopFNVOffset), loopFNV(loopFNVOffset)
	for _, hdr := range req.Headers() {
		if r, ok := hdr.(*sip.RouteHeader); ok {
			route = route.uri(&r.Address)
			continue
		}
		name := hdr.Name()
		switch len(name) {
		case 5:
			// A custom parser may leave Route generic.
			if strings.EqualFold(name, "Route") {
				route = route.field(hdr.Value())
			}
		case 13:
			if strings.EqualFold(name, "Proxy-Require") {
				proxyRequire = proxyRequire.field(hdr.Value())
			}
		case 19:
			if strings.EqualFold(name, "Proxy-Authorization") {
				proxyAuth = proxyAuth.field(hdr.Value())
			}
		}
	}
	return uint64(h.num(uint64(route)).num(uint64(proxyRequire)).num(uint64(proxyAuth)))
}

// computeLoopHash returns 16 lowercase hex characters identifying req for loop
// detection (RFC 3261 §16.3 step 4, §16.6 step 8); loopHashOf says what it
// covers. Compute it once, on the request as received, and pass it to
// isLoop, appendBranch and appendStatelessBranch.
func computeLoopHash(req *sip.Request) string {
	var buf [loopHashLen]byte
	return string(appendLoopHash(buf[:0], req))
}

// appendLoopHash appends computeLoopHash(req) to dst without allocating when dst
// has room.
func appendLoopHash(dst []byte, req *sip.Request) []byte {
	return loopAppendHex(dst, loopHashOf(req))
}

func loopValidHash(s string) bool {
	if len(s) != loopHashLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func loopUniqueChar(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '.'
}

// branchLoopHash extracts the loop hash from one of our branches, or returns
// "" when branch is not in our format.
func branchLoopHash(branch string) string {
	const hashEnd = len(loopBranchPrefix) + loopHashLen
	if len(branch) < hashEnd+2 || branch[:len(loopBranchPrefix)] != loopBranchPrefix || branch[hashEnd] != '-' {
		return ""
	}
	hash := branch[len(loopBranchPrefix):hashEnd]
	if !loopValidHash(hash) {
		return ""
	}
	for i := hashEnd + 1; i < len(branch); i++ {
		if !loopUniqueChar(branch[i]) {
			return ""
		}
	}
	return hash
}

// loopBranchSeq makes branches of one process distinct without relying on
// chance; the random part makes them distinct across restarts and
// unguessable. Guessable branches would let an off-path attacker forge
// responses to our client transactions, which are matched on branch and
// CSeq method alone (§17.1.3).
var loopBranchSeq atomic.Uint64

// loopAppendBranchStart appends the magic cookie and the loop hash part. A
// loopHash not in our format (empty, or anything that could break the Via
// header) is left out, which branchLoopHash then reports as "".
func loopAppendBranchStart(dst []byte, loopHash string) []byte {
	dst = append(dst, loopBranchPrefix...)
	if loopValidHash(loopHash) {
		dst = append(dst, loopHash...)
		dst = append(dst, '-')
	}
	return dst
}

// maxBranchLen bounds what appendBranch and appendStatelessBranch write
// (cookie, hash, counter, random part).
const maxBranchLen = 64

// appendBranch appends the branch for one client transaction forwarding a
// request with the given computeLoopHash: magic cookie, loop hash and a
// unique part made of a per-process counter and 64 random bits.
func appendBranch(dst []byte, loopHash string) []byte {
	var random [8]byte
	// crypto/rand.Read never fails since Go 1.24; it aborts the process
	// instead.
	_, _ = rand.Read(random[:])
	b := loopAppendBranchStart(dst, loopHash)
	seq := loopBranchSeq.Add(1)
	// Counter in hex without leading zeros keeps the branch short.
	n := 60
	for n > 0 && seq>>uint(n)&0xf == 0 {
		n -= 4
	}
	for ; n >= 0; n -= 4 {
		b = append(b, loopHexDigits[seq>>uint(n)&0xf])
	}
	b = append(b, '.')
	return loopAppendHex(b, binary.BigEndian.Uint64(random[:]))
}

// appendStatelessBranch appends the branch for a request forwarded without
// a client transaction (ACK for 2xx, §16.11): a retransmission must get the
// same branch, so it is a hash of what stays the same across
// retransmissions: the top Via as received (sent-by, transport, branch; not
// received or rport, which depend on the path back) and the loop hash, which
// covers the tags, Call-ID, CSeq number and Request-URI §16.11 lists for
// requests whose branch lacks the magic cookie. Call it before our own Via is
// added.
func appendStatelessBranch(dst []byte, req *sip.Request, loopHash string) []byte {
	h := loopFNV(loopFNVOffset).str("stateless")
	if top := req.Via(); top != nil {
		branch, _ := top.Params.Get("branch")
		h = h.num(1).field(top.Transport).field(top.Host).num(uint64(int64(top.Port))).field(branch)
	} else {
		h = h.num(0)
	}
	h = h.field(loopHash)
	return loopAppendHex(loopAppendBranchStart(dst, loopHash), uint64(h))
}

// isLoop reports whether req, as received, has been through us before with
// nothing that affects its processing changed (§16.3 step 4): one of its
// Vias was put there by us (isOurs decides from sent-by, transport and the
// like) and carries loopHash, the computeLoopHash of req computed now. A Via of ours
// with another hash is a spiral, which proceeds. Only Vias sipgo parsed are
// looked at.
func isLoop(req *sip.Request, loopHash string, isOurs func(v *sip.ViaHeader) bool) bool {
	if isOurs == nil || !loopValidHash(loopHash) {
		return false
	}
	for _, h := range req.Headers() {
		via, ok := h.(*sip.ViaHeader)
		if !ok {
			continue
		}
		branch, _ := via.Params.Get("branch")
		// The string compare is cheaper than most isOurs implementations.
		if branchLoopHash(branch) == loopHash && isOurs(via) {
			return true
		}
	}
	return false
}

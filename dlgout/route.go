package dlgout

import (
	"slices"

	"github.com/emiago/sipgo/sip"
)

// Route sets at a proxy (RFC 3261 §12.1.2, §16.6 step 4, §16.12).
//
// Each proxy prepends its Record-Route entry to the request, so a 1xx/2xx
// carries the list with the proxy nearest the callee on top and the one
// nearest the caller at the bottom; our entry splits it into the callee side
// (above) and the caller side (below).
//
// A run of adjacent entries of ours counts as one: we record-route twice when
// the two sides differ in transport or address family (RFC 5658). When the
// request spiralled through us, our entries appear more than once; the
// lowest run is the one the dialog was created on (every later pass prepends
// above it), and the hops above it, our later passes and the application
// servers between them included, are on the callee side: a BYE we generate
// towards the callee must go through the AS again.

// CalleeRouteSet returns the route set from this proxy towards the callee:
// the Record-Route entries above ours, reversed, so that the hop nearest to
// us comes first. Without an entry of ours (ourRR nil or matching none) every
// entry is taken for the callee side, all of them reversed: a 1xx/2xx
// without our entry cannot be split, and is read from the callee's end. The
// URIs are copies; nil when empty.
func CalleeRouteSet(recordRoute []sip.Uri, ourRR func(*sip.Uri) bool) []sip.Uri {
	lo, _ := ourRun(recordRoute, ourRR)
	return reversedClone(recordRoute[:lo])
}

// CallerRouteSet returns the route set from this proxy towards the caller:
// the Record-Route entries below ours, in order (nearest to us first).
// Without an entry of ours (ourRR nil or matching none) every entry is on
// the caller side, in order: that is the INVITE as received, before tm adds
// our entry, which is where the dialog module reads it; an empty answer
// there would leave every dialog without a route back to its caller. The
// URIs are copies; nil when empty.
func CallerRouteSet(recordRoute []sip.Uri, ourRR func(*sip.Uri) bool) []sip.Uri {
	lo, hi := ourRun(recordRoute, ourRR)
	rest := recordRoute[hi:]
	if lo == len(recordRoute) {
		rest = recordRoute
	}
	if len(rest) == 0 {
		return nil
	}
	out := make([]sip.Uri, len(rest))
	for i := range rest {
		out[i] = CloneURI(rest[i])
	}
	return out
}

// ourRun returns the bounds [lo, hi) of the lowest run of our entries; both
// are len(rr) when none is ours.
func ourRun(rr []sip.Uri, ourRR func(*sip.Uri) bool) (lo, hi int) {
	hi = len(rr)
	if ourRR == nil {
		return hi, hi
	}
	for hi > 0 && !ourRR(&rr[hi-1]) {
		hi--
	}
	if hi == 0 {
		return len(rr), len(rr)
	}
	lo = hi - 1
	for lo > 0 && ourRR(&rr[lo-1]) {
		lo--
	}
	return lo, hi
}

func reversedClone(rr []sip.Uri) []sip.Uri {
	if len(rr) == 0 {
		return nil
	}
	out := make([]sip.Uri, len(rr))
	for i := range rr {
		out[len(rr)-1-i] = CloneURI(rr[i])
	}
	return out
}

// routeEqualReversed reports whether set is rr reversed, so that a 2xx
// carrying the route set its 1xx did costs no copy.
func routeEqualReversed(set, rr []sip.Uri) bool {
	if len(set) != len(rr) {
		return false
	}
	for i := range set {
		if !uriEqual(&set[i], &rr[len(rr)-1-i]) {
			return false
		}
	}
	return true
}

// CloneURI copies the parameter slices, which would otherwise alias the
// message the URI came from; the strings stay shared (Detach them when the
// copy is kept).
func CloneURI(u sip.Uri) sip.Uri {
	u.UriParams = slices.Clone(u.UriParams)
	u.Headers = slices.Clone(u.Headers)
	return u
}

// uriEqual is field-by-field identity, not RFC 3261 §19.1.4 equivalence: it
// only decides whether a stored copy can be kept, and a false "different"
// costs one copy.
func uriEqual(a, b *sip.Uri) bool {
	return a.Scheme == b.Scheme && a.Raw() == b.Raw() && a.Wildcard == b.Wildcard &&
		a.HierarhicalSlashes == b.HierarhicalSlashes && a.User == b.User &&
		a.Password == b.Password && a.Host == b.Host && a.Port == b.Port &&
		slices.Equal(a.UriParams, b.UriParams) && slices.Equal(a.Headers, b.Headers)
}

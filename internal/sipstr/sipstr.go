package sipstr

import (
	"slices"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// URI is a copy of u that shares nothing with it, its strings
// included (see Detach).
func URI(u sip.Uri) sip.Uri {
	u.UriParams = slices.Clone(u.UriParams)
	u.Headers = slices.Clone(u.Headers)
	var buf [24]*string
	Detach(URIStrings(buf[:0], &u))
	return u
}

// URIStrings appends pointers to the strings of u, for Detach; u's
// parameter lists must be its own (slices.Clone). A non-SIP URI (tel:,
// urn:) keeps its scheme-specific part in a field no pointer reaches
// (Uri.Raw): u is parsed again from its own String(), a string of its own.
func URIStrings(ptrs []*string, u *sip.Uri) []*string {
	if u.Raw() != "" {
		var own sip.Uri
		if sip.ParseUri(u.String(), &own) == nil && own.Raw() != "" {
			*u = own
		}
	}
	ptrs = append(ptrs, &u.Scheme, &u.User, &u.Password, &u.Host)
	for i := range u.UriParams {
		ptrs = append(ptrs, &u.UriParams[i].K, &u.UriParams[i].V)
	}
	for i := range u.Headers {
		ptrs = append(ptrs, &u.Headers[i].K, &u.Headers[i].V)
	}
	return ptrs
}

// Detach gives the strings at ptrs one backing array of their own, in one
// allocation. tm's parser hands out slices of a message's whole header
// block: a value a dialog keeps for hours would keep the block alive with
// it.
func Detach(ptrs []*string) {
	n := 0
	for _, p := range ptrs {
		n += len(*p)
	}
	if n == 0 {
		return
	}
	var b strings.Builder
	b.Grow(n)
	for _, p := range ptrs {
		b.WriteString(*p)
	}
	s := b.String()
	off := 0
	for _, p := range ptrs {
		l := len(*p)
		*p = s[off : off+l]
		off += l
	}
}

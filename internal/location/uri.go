package location

import (
	"net/url"
	"strconv"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// NormalizeAOR returns the binding-table key for an address-of-record:
// "scheme:user@host[:port]" with the host lower-cased, the user
// percent-decoded but otherwise case-sensitive, URI parameters, headers and
// password removed (RFC 3261 §10.3 step 5), and a default port (5060 for
// sip, 5061 for sips) dropped. Non-SIP URIs such as tel: keep their
// scheme-specific part up to the first parameter; tel: numbers also lose
// their visual separators (RFC 3966 §5.1.1). It returns "" for URIs that
// cannot name a user (wildcard, no host).
func NormalizeAOR(u sip.Uri) string {
	if u.Wildcard {
		return ""
	}
	scheme := strings.ToLower(u.Scheme)
	if scheme == "" {
		scheme = "sip"
	}
	if scheme != "sip" && scheme != "sips" {
		return normalizeOther(scheme, u.Raw())
	}
	if u.Host == "" {
		return ""
	}

	var b strings.Builder
	b.Grow(len(scheme) + len(u.User) + len(u.Host) + 8)
	b.WriteString(scheme)
	b.WriteByte(':')
	if u.User != "" {
		b.WriteString(unescape(u.User))
		b.WriteByte('@')
	}
	b.WriteString(strings.ToLower(u.Host))
	if u.Port > 0 && u.Port != defaultPort(scheme) {
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(u.Port))
	}
	return b.String()
}

func normalizeOther(scheme, raw string) string {
	if i := strings.IndexAny(raw, ";?"); i >= 0 {
		raw = raw[:i]
	}
	if scheme == "tel" {
		raw = strings.Map(func(r rune) rune {
			if strings.ContainsRune("-.()", r) {
				return -1
			}
			return r
		}, raw)
	}
	if raw == "" {
		return ""
	}
	return scheme + ":" + raw
}

func defaultPort(scheme string) int {
	if scheme == "sips" {
		return 5061
	}
	return 5060
}

// unescape leaves an invalid escape as written: rejecting it here would make
// the AOR unreachable rather than merely unnormalised.
func unescape(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	if d, err := url.PathUnescape(s); err == nil {
		return d
	}
	return s
}

// uriEqual compares contact URIs by RFC 3261 §19.1.4, which decides whether
// a REGISTER refers to an existing binding (§10.3 step 7).
func uriEqual(a, b *sip.Uri) bool {
	sa, sb := strings.ToLower(a.Scheme), strings.ToLower(b.Scheme)
	if sa == "" {
		sa = "sip"
	}
	if sb == "" {
		sb = "sip"
	}
	if sa != sb {
		return false
	}
	if sa != "sip" && sa != "sips" {
		return a.Raw() == b.Raw()
	}
	if a.Wildcard != b.Wildcard ||
		unescape(a.User) != unescape(b.User) ||
		unescape(a.Password) != unescape(b.Password) ||
		!strings.EqualFold(a.Host, b.Host) ||
		a.Port != b.Port {
		return false
	}

	// These parameters change how the URI is resolved, so having one on
	// only one side makes the URIs different.
	for _, k := range [...]string{"user", "ttl", "method", "maddr", "transport"} {
		va, oka := paramFold(a.UriParams, k)
		vb, okb := paramFold(b.UriParams, k)
		if oka != okb || !strings.EqualFold(va, vb) {
			return false
		}
	}
	for _, kv := range a.UriParams {
		if vb, ok := paramFold(b.UriParams, kv.K); ok && !strings.EqualFold(kv.V, vb) {
			return false
		}
	}

	if len(a.Headers) != len(b.Headers) {
		return false
	}
	for _, kv := range a.Headers {
		if vb, ok := paramFold(b.Headers, kv.K); !ok || unescape(kv.V) != unescape(vb) {
			return false
		}
	}
	return true
}

// paramFold looks a parameter up by case-insensitive name; sipgo's Get is
// case-sensitive but SIP parameter names are not.
func paramFold(p sip.HeaderParams, name string) (string, bool) {
	for _, kv := range p {
		if strings.EqualFold(kv.K, name) {
			return kv.V, true
		}
	}
	return "", false
}

// parseQ accepts exactly the RFC 3261 §25.1 qvalue grammar:
// "0" [ "." 0*3DIGIT ] / "1" [ "." 0*3("0") ].
func parseQ(s string) (float64, bool) {
	if s == "" || len(s) > 5 || (s[0] != '0' && s[0] != '1') {
		return 0, false
	}
	if len(s) > 1 {
		if s[1] != '.' {
			return 0, false
		}
		for _, c := range s[2:] {
			if c < '0' || c > '9' || (s[0] == '1' && c != '0') {
				return 0, false
			}
		}
	}
	q, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return 0, false
	}
	return q, true
}

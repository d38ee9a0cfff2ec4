package location

import (
	"fmt"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// PathRoute returns the route set a request to this binding must follow
// (RFC 3327 §5.3): the Path values of the REGISTER in the order they were
// received, each as the URI of a Route entry. It is nil for a binding
// registered without Path. A Path value that does not parse is an error:
// sending the request straight to the contact would bypass the proxy
// (a P-CSCF) the UE can only be reached through.
func (b *Binding) PathRoute() ([]sip.Uri, error) {
	return ParsePath(b.Path)
}

// ParsePath parses Path header values, one name-addr or addr-spec each (as
// Binding.Path holds them), into URIs. Header parameters after the URI are
// ignored; URI parameters such as lr are kept.
func ParsePath(values []string) ([]sip.Uri, error) {
	if len(values) == 0 {
		return nil, nil
	}
	out := make([]sip.Uri, 0, len(values))
	for _, v := range values {
		var (
			u      sip.Uri
			params sip.HeaderParams
		)
		if _, err := sip.ParseAddressValue(strings.TrimSpace(v), &u, &params); err != nil {
			return nil, fmt.Errorf("path %q: %w", v, err)
		}
		if u.Host == "" || (u.Scheme != "sip" && u.Scheme != "sips") {
			return nil, fmt.Errorf("path %q: not a SIP URI", v)
		}
		out = append(out, u)
	}
	return out, nil
}

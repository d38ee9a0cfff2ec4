package tm

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// Sender is what a module may do on the proxy's behalf: requests of its own
// (t_uac_dlg: a BYE ending a call, an OPTIONS ping), stateless forwarding
// (an ACK for a 2xx), and telling which addresses are ours. The hooks get
// it from the transaction or request at hand (Transaction.Sender,
// Request.Sender), so a module never needs the proxy itself.
type Sender interface {
	// Send sends req in a client transaction of its own, with our Via, to
	// dst when set ("udp:host:port") or else by its Route set or
	// Request-URI. onFinal is called once, on another goroutine, with the
	// final reply, or with an error when none came within local_timeout or
	// the request could not be sent. A non-nil error from Send itself means
	// onFinal will not be called.
	Send(req *sip.Request, dst string, onFinal func(*sip.Response, error)) error
	// ForwardStateless relays a request without a transaction, as an ACK
	// for a 2xx is relayed.
	ForwardStateless(req *sip.Request, dst string) error
	// IsOurURI tells whether a URI designates this proxy (a Route or
	// Record-Route entry we put there): its host and port, the port
	// defaulting to 5061 for sips or transport=tls and 5060 otherwise.
	IsOurURI(u *sip.Uri) bool
	// IsOurVia tells whether a Via was put there by this proxy.
	IsOurVia(v *sip.ViaHeader) bool
}

var _ Sender = (*Proxy)(nil)

// Sender returns what a hook may send through: the proxy of the
// transaction.
func (t *Transaction) Sender() Sender { return t.p }

// Param returns a header parameter by name, ignoring the case of the name
// (RFC 3261 §7.3.1) and the spaces a sender may put around it (RFC 4475
// §3.1.1.1): the one parameter reader of the project.
func Param(params sip.HeaderParams, name string) (string, bool) {
	return valParam(params, name)
}

// Tag returns the tag parameter of a From or To header's parameters; ""
// when there is none.
func Tag(params sip.HeaderParams) string {
	v, _ := valParam(params, "tag")
	return v
}

// defaultPort is the port a URI or Via without one designates.
func defaultPort(secure bool) int {
	if secure {
		return 5061
	}
	return 5060
}

// IsOurURI implements Sender.
func (p *Proxy) IsOurURI(u *sip.Uri) bool {
	if u == nil || u.Host == "" {
		return false
	}
	tp, _ := valParam(u.UriParams, "transport")
	return p.isOurHostPort(u.Host, u.Port, defaultPort(u.IsEncrypted() || strings.EqualFold(tp, "tls")))
}

// IsOurVia implements Sender.
func (p *Proxy) IsOurVia(v *sip.ViaHeader) bool {
	if v == nil {
		return false
	}
	return p.isOurHostPort(v.Host, v.Port, defaultPort(strings.EqualFold(v.Transport, "TLS")))
}

// ReasonValue is the value of a Reason header (RFC 3326): protocol ("SIP"
// or "Q.850"), cause and, when text is not empty, the text as a
// quoted-string (RFC 3261 §25.1: '"' and '\' escaped, line breaks and other
// control characters dropped). Every Reason the project sends is built
// here.
func ReasonValue(protocol string, cause int, text string) string {
	var b strings.Builder
	b.Grow(len(protocol) + len(text) + 24)
	b.WriteString(protocol)
	b.WriteString(" ;cause=")
	b.WriteString(strconv.Itoa(cause))
	if text != "" {
		b.WriteString(` ;text="`)
		for _, r := range text {
			switch {
			case r == '"' || r == '\\':
				b.WriteByte('\\')
				b.WriteRune(r)
			case r < 0x20 || r == 0x7f:
				// A quoted-string cannot carry them, not even escaped
				// (quoted-pair excludes CR and LF).
			default:
				b.WriteRune(r)
			}
		}
		b.WriteByte('"')
	}
	return b.String()
}

// reasonHeader is a Reason header made by ReasonValue.
func reasonHeader(protocol string, cause int, text string) sip.Header {
	return sip.NewHeader("Reason", ReasonValue(protocol, cause, text))
}

// SystemClock is the wall clock, for code that takes a Clock.
func SystemClock() Clock { return realClock{} }

// coreHeaders are the headers a proxy or a UA stack owns: a caller-supplied
// extra header line must not add or replace them (a second Via, Call-ID or
// CSeq would change which transaction or dialog the request belongs to).
var coreHeaders = []string{"via", "v", "call-id", "i", "cseq", "from", "f", "to", "t", "max-forwards",
	"content-length", "l", "record-route"}

// CheckHeaderLine reads one "Name: value" header line given by an operator
// or a module (dlg_extra_hdrs, dlg.terminate_dlg headers, tm.uac_dlg
// headers): the name must be a token and not a core header, and no control
// byte (NUL, CR, LF, ...) may appear anywhere, so nothing can be smuggled
// into the message.
func CheckHeaderLine(line string) (name, value string, err error) {
	for i := 0; i < len(line); i++ {
		if c := line[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return "", "", fmt.Errorf("control byte 0x%02x at offset %d", c, i)
		}
	}
	name, value, ok := strings.Cut(line, ":")
	name, value = strings.TrimSpace(name), strings.TrimSpace(value)
	if !ok || name == "" {
		return "", "", errors.New(`want "Name: value"`)
	}
	for i := 0; i < len(name); i++ {
		if !tokenChar(name[i]) {
			return "", "", fmt.Errorf("header name %q is not a token", name)
		}
	}
	for _, h := range coreHeaders {
		if strings.EqualFold(name, h) {
			return "", "", fmt.Errorf("%s is set by the proxy, not by an extra header", name)
		}
	}
	return name, value, nil
}

// tokenChar is RFC 3261 §25.1's token alphabet.
func tokenChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("-.!%*_+`'~", c) >= 0
}

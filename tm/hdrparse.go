package tm

import (
	"maps"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// headerParsers are sipgo's header parsers with tm's for the headers every
// call carries: Via, From, To, Contact, Route and Record-Route. They build
// the same sipgo header values as sipgo's own parsers, but each header and
// its parameter lists in one allocation instead of four to eight (the
// parameter slices grow one Add at a time in sipgo): parsing was a third
// of the proxy's allocations per call (issue 14).
//
// Each takes the plain form that real traffic uses (no comma list, no
// quoted parameter, no escape, no line whitespace inside the value, no URI
// headers, sip: or sips: URIs) and hands anything else to sipgo's parser
// unchanged, so that what is accepted and how is sipgo's in every case; a
// fuzz test checks that both give the same value wherever the fast path
// answers.
func headerParsers() map[string]sip.HeaderParser {
	def := sip.DefaultHeadersParser()
	m := maps.Clone(def)
	set := func(fast func(string) sip.Header, names ...string) {
		for _, n := range names {
			slow := def[n]
			m[n] = func(name []byte, value string) (sip.Header, error) {
				if h := fast(value); h != nil {
					return h, nil
				}
				return slow(name, value)
			}
		}
	}
	set(fastVia, "via", "v")
	set(fastFrom, "from", "f")
	set(fastTo, "to", "t")
	set(fastContact, "contact", "m")
	set(fastRoute, "route")
	set(fastRecordRoute, "record-route")
	return m
}

// The blocks hold a header and room for the parameters it usually has
// (branch, rport, received; tag; lr and a did), in one allocation.
type viaBlock struct {
	h  sip.ViaHeader
	kv [3]sip.HeaderKV
}

// fastVia parses "SIP/2.0/TRANSPORT host[:port][;params]".
func fastVia(v string) sip.Header {
	b := &viaBlock{}
	if !parseVia(b, v) {
		return nil
	}
	return &b.h
}

// parseVia fills b from a Via value; false when it is not plain (then b
// holds garbage). The parse* functions are the fast* ones writing into a
// block the caller owns: the message block of Parser.fast.
func parseVia(b *viaBlock, v string) bool {
	rest, ok := strings.CutPrefix(v, "SIP/2.0/")
	if !ok {
		return false
	}
	sp := strings.IndexByte(rest, ' ')
	if sp <= 0 || strings.IndexByte(rest[:sp], '/') >= 0 {
		return false
	}
	transport := rest[:sp]
	rest = rest[sp+1:]
	if !plain(transport) || !viaRest.clean(rest) {
		return false
	}
	h := &b.h
	h.ProtocolName, h.ProtocolVersion, h.Transport = "SIP", "2.0", transport
	hostport, params, hasParams := strings.Cut(rest, ";")
	if len(hostport) > 0 && hostport[0] == '[' {
		j := strings.IndexByte(hostport, ']')
		if j < 2 {
			return false
		}
		h.Host = hostport[1:j]
		if after := hostport[j+1:]; after != "" {
			if after[0] != ':' {
				return false
			}
			if h.Port, ok = digits(after[1:]); !ok {
				return false
			}
		}
	} else {
		switch i := strings.LastIndexByte(hostport, ':'); {
		case i == 0:
			return false
		case i > 0:
			if h.Port, ok = digits(hostport[i+1:]); !ok {
				return false
			}
			h.Host = hostport[:i]
		default:
			h.Host = hostport
		}
		if strings.IndexByte(h.Host, '[') >= 0 || strings.IndexByte(h.Host, ']') >= 0 {
			return false
		}
	}
	if h.Host == "" {
		return false
	}
	if hasParams {
		if h.Params, ok = fastParams(params, ';', b.kv[:0]); !ok {
			return false
		}
	}
	return true
}

type fromBlock struct {
	h   sip.FromHeader
	kv  [1]sip.HeaderKV
	ukv [1]sip.HeaderKV
}

func fastFrom(v string) sip.Header {
	b := &fromBlock{}
	if !parseFrom(b, v) {
		return nil
	}
	return &b.h
}

func parseFrom(b *fromBlock, v string) (ok bool) {
	b.h.DisplayName, ok = fastNameAddr(v, &b.h.Address, b.ukv[:0], &b.h.Params, b.kv[:0])
	return ok
}

type toBlock struct {
	h   sip.ToHeader
	kv  [1]sip.HeaderKV
	ukv [1]sip.HeaderKV
}

func fastTo(v string) sip.Header {
	b := &toBlock{}
	if !parseTo(b, v) {
		return nil
	}
	return &b.h
}

func parseTo(b *toBlock, v string) (ok bool) {
	b.h.DisplayName, ok = fastNameAddr(v, &b.h.Address, b.ukv[:0], &b.h.Params, b.kv[:0])
	return ok
}

// contactBlock has room for one parameter of each kind (a UA's
// transport=, an expires or +sip.instance); more go to a slice of their
// own. Two of each made a request's message block (reqBlock) 16 bytes too
// big for the 1536-byte size class: 256 bytes more per request.
type contactBlock struct {
	h   sip.ContactHeader
	kv  [1]sip.HeaderKV
	ukv [1]sip.HeaderKV
}

func fastContact(v string) sip.Header {
	b := &contactBlock{}
	if !parseContact(b, v) {
		return nil
	}
	return &b.h
}

func parseContact(b *contactBlock, v string) (ok bool) {
	b.h.DisplayName, ok = fastNameAddr(v, &b.h.Address, b.ukv[:0], &b.h.Params, b.kv[:0])
	return ok
}

type routeBlock struct {
	h   sip.RouteHeader
	ukv [3]sip.HeaderKV
}

func fastRoute(v string) sip.Header {
	b := &routeBlock{}
	if !parseRoute(b, v) {
		return nil
	}
	return &b.h
}

func parseRoute(b *routeBlock, v string) bool {
	_, ok := fastNameAddr(v, &b.h.Address, b.ukv[:0], nil, nil)
	return ok
}

type recordRouteBlock struct {
	h   sip.RecordRouteHeader
	ukv [3]sip.HeaderKV
}

func fastRecordRoute(v string) sip.Header {
	b := &recordRouteBlock{}
	if !parseRecordRoute(b, v) {
		return nil
	}
	return &b.h
}

func parseRecordRoute(b *recordRouteBlock, v string) bool {
	_, ok := fastNameAddr(v, &b.h.Address, b.ukv[:0], nil, nil)
	return ok
}

// fastNameAddr parses `["display"] <uri>[;params]`, `display <uri>[;params]`
// or `uri[;params]` (then the parameters are the header's, §20.10). With
// params nil the header parameters are dropped (Route, Record-Route: what
// sipgo does).
func fastNameAddr(v string, u *sip.Uri, ukv []sip.HeaderKV, params *sip.HeaderParams, kv []sip.HeaderKV) (display string, ok bool) {
	if v == "" || !noListNoEscape.clean(v) {
		return "", false
	}
	var uri, after string
	switch lt := strings.IndexByte(v, '<'); {
	case v[0] == '"':
		q := strings.IndexByte(v[1:], '"')
		if q < 0 {
			return "", false
		}
		display = v[1 : 1+q]
		for i := 0; i < len(display); i++ {
			if display[i] < 0x20 || display[i] == 0x7f {
				return "", false
			}
		}
		rest := strings.TrimLeft(v[2+q:], " ")
		if rest == "" || rest[0] != '<' {
			return "", false
		}
		if uri, after, ok = bracketed(rest); !ok {
			return "", false
		}
	case lt >= 0:
		if !displayName.clean(v[:lt]) {
			return "", false
		}
		display = strings.TrimSpace(v[:lt])
		if uri, after, ok = bracketed(v[lt:]); !ok {
			return "", false
		}
	default:
		if !bareURI.clean(v) {
			return "", false
		}
		uri, after = v, ""
		if i := strings.IndexByte(v, ';'); i >= 0 {
			uri, after = v[:i], v[i:]
		}
	}
	if !fastURI(uri, u, ukv) {
		return "", false
	}
	if after == "" {
		return display, true
	}
	if after[0] != ';' || !hdrParams.clean(after) {
		return "", false
	}
	if params == nil {
		return display, true
	}
	if *params, ok = fastParams(after[1:], ';', kv); !ok {
		return "", false
	}
	return display, true
}

// bracketed splits "<uri>rest".
func bracketed(s string) (uri, after string, ok bool) {
	gt := strings.IndexByte(s, '>')
	if gt < 2 {
		return "", "", false
	}
	uri, after = s[1:gt], s[gt+1:]
	if !bracketedURI.clean(uri) {
		return "", "", false
	}
	return uri, after, true
}

// fastURI parses sip:[user[:password]@]host[:port][;params] (no URI
// headers, no "//", lower-case scheme).
func fastURI(s string, u *sip.Uri, kv []sip.HeaderKV) bool {
	c := strings.IndexByte(s, ':')
	if c < 0 {
		return false
	}
	switch s[:c] {
	case "sip", "sips":
		u.Scheme = s[:c]
	default:
		return false // tel:, urn:, an upper-case scheme: sipgo's own path
	}
	rest := s[c+1:]
	if strings.HasPrefix(rest, "//") || strings.IndexByte(rest, '?') >= 0 {
		return false
	}
	hostport, params, hasParams := strings.Cut(rest, ";")
	if hasParams && strings.IndexByte(params, '@') >= 0 {
		return false
	}
	if at := strings.IndexByte(hostport, '@'); at >= 0 {
		userinfo := hostport[:at]
		if at == 0 || strings.IndexByte(userinfo, '[') >= 0 || strings.IndexByte(hostport[at+1:], '@') >= 0 {
			return false
		}
		switch i := strings.LastIndexByte(userinfo, ':'); {
		case i == 0:
			return false
		case i > 0:
			u.User, u.Password = userinfo[:i], userinfo[i+1:]
		default:
			u.User = userinfo
		}
		hostport = hostport[at+1:]
	}
	if hostport == "" {
		return false
	}
	var ok bool
	if hostport[0] == '[' {
		j := strings.IndexByte(hostport, ']')
		if j < 2 || j > 41 {
			return false
		}
		u.Host = hostport[:j+1]
		if after := hostport[j+1:]; after != "" {
			if after[0] != ':' {
				return false
			}
			if u.Port, ok = digits(after[1:]); !ok {
				return false
			}
		}
	} else {
		host, port, hasPort := strings.Cut(hostport, ":")
		if host == "" || host == "*" || !squareBracket.clean(host) {
			return false
		}
		u.Host = host
		if hasPort {
			if u.Port, ok = digits(port); !ok {
				return false
			}
		}
	}
	if hasParams {
		if u.UriParams, ok = fastParams(params, ';', kv); !ok {
			return false
		}
	}
	return true
}

// fastParams parses "k[=v]" items separated by sep into dst: plain items
// only (no empty item, no quote, no space, one '=' at most, no repeated
// key), where sipgo's three parameter parsers all agree.
func fastParams(s string, sep byte, dst sip.HeaderParams) (sip.HeaderParams, bool) {
	if s == "" || !spaceTabQuote.clean(s) {
		return nil, false
	}
	for s != "" {
		item := s
		if i := strings.IndexByte(s, sep); i >= 0 {
			item, s = s[:i], s[i+1:]
			if s == "" {
				return nil, false // a trailing separator
			}
		} else {
			s = ""
		}
		k, v, _ := strings.Cut(item, "=")
		if k == "" || strings.IndexByte(v, '=') >= 0 {
			return nil, false
		}
		for _, kv := range dst {
			if kv.K == k {
				return nil, false
			}
		}
		dst = append(dst, sip.HeaderKV{K: k, V: v})
	}
	return dst, true
}

// plain: printable ASCII without spaces. sipgo trims Unicode white space
// (form feed, NEL, no-break space) where this code would not: such values
// take sipgo's path.
func plain(s string) bool { return plainBytes.clean(s) }

// byteSet marks the bytes a piece of header may not hold: one pass over
// it instead of plain() plus strings.ContainsAny (which builds its set
// per call: 2 % of the proxy's CPU).
type byteSet [256]bool

// newByteSet refuses controls, DEL and 8-bit bytes, the space unless
// spaced, and the bytes of extra.
func newByteSet(spaced bool, extra string) *byteSet {
	var b byteSet
	for c := range b {
		b[c] = c < ' ' || c >= 0x7f || (c == ' ' && !spaced)
	}
	for i := 0; i < len(extra); i++ {
		b[extra[i]] = true
	}
	return &b
}

func (b *byteSet) clean(s string) bool {
	for i := 0; i < len(s); i++ {
		if b[s[i]] {
			return false
		}
	}
	return true
}

var (
	plainBytes   = newByteSet(false, "")
	viaRest      = newByteSet(false, ",\"")
	displayName  = newByteSet(true, ";\"")
	bareURI      = newByteSet(false, "\">")
	hdrParams    = newByteSet(false, "<>\"")
	bracketedURI = newByteSet(false, "<\"")
	// Only the list separator and the escape: anything else is checked
	// piece by piece afterwards.
	noListNoEscape = onlyBytes(",\\")
	// strings.ContainsAny's sets, made once (it builds its set per call).
	spaceTabQuote = onlyBytes(" \t\"")
	spaceTab      = onlyBytes(" \t")
	squareBracket = onlyBytes("[]")
)

// onlyBytes is the set of the (ASCII) bytes of chars: !onlyBytes(c).clean(s)
// is strings.ContainsAny(s, c).
func onlyBytes(chars string) *byteSet {
	var b byteSet
	for i := 0; i < len(chars); i++ {
		b[chars[i]] = true
	}
	return &b
}

// digits parses a port: 1 to 5 decimal digits.
func digits(s string) (int, bool) {
	if s == "" || len(s) > 5 {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int(c-'0')
	}
	return n, true
}

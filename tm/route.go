package tm

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// hop is where a message goes next.
type hop struct {
	transport string // "UDP", "TCP"
	host      string
	port      int
}

func (h hop) addr() string { return net.JoinHostPort(h.host, strconv.Itoa(h.port)) }

// ParseDst parses an outbound destination "udp:host:port", "tcp:host:port"
// or "host:port" (UDP), IPv6 hosts in brackets.
func ParseDst(s string) (transport, host string, port int, err error) {
	transport = "UDP"
	rest := s
	if i := strings.IndexByte(s, ':'); i > 0 {
		switch strings.ToLower(s[:i]) {
		case "udp":
			transport, rest = "UDP", s[i+1:]
		case "tcp":
			transport, rest = "TCP", s[i+1:]
		case "tls", "sctp", "ws", "wss":
			return "", "", 0, fmt.Errorf("destination %q: transport %s is not supported", s, s[:i])
		}
	}
	h, p, err := net.SplitHostPort(rest)
	if err != nil {
		return "", "", 0, fmt.Errorf("destination %q: %w", s, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil || n <= 0 || n > 65535 {
		return "", "", 0, fmt.Errorf("destination %q: bad port %q", s, p)
	}
	if h == "" {
		return "", "", 0, fmt.Errorf("destination %q: empty host", s)
	}
	return transport, h, n, nil
}

// uriHop is the next hop a URI designates (RFC 3263 without NAPTR/SRV: the
// transport parameter, else UDP; the port, else the scheme's default).
func uriHop(u *sip.Uri) (hop, error) {
	if u.Scheme != "" && !strings.EqualFold(u.Scheme, "sip") && !strings.EqualFold(u.Scheme, "sips") {
		// tel:, urn: ... name no host: only a route (a gateway, ENUM) can
		// take them further.
		return hop{}, fmt.Errorf("uri %s: %w", u.String(), errSchemeNotRoutable)
	}
	h := hop{transport: "UDP", host: trimBrackets(u.Host), port: u.Port}
	if u.UriParams != nil {
		if tp, ok := u.UriParams.Get("transport"); ok && tp != "" {
			switch strings.ToLower(tp) {
			case "udp":
				h.transport = "UDP"
			case "tcp":
				h.transport = "TCP"
			default:
				return hop{}, fmt.Errorf("uri %s: transport %q is not supported", u.String(), tp)
			}
		}
	}
	if u.IsEncrypted() {
		return hop{}, fmt.Errorf("uri %s: sips/TLS is not supported: %w", u.String(), errSchemeNotRoutable)
	}
	if h.host == "" {
		return hop{}, fmt.Errorf("uri %s has no host", u.String())
	}
	if h.port == 0 {
		h.port = 5060
	}
	return h, nil
}

// errSchemeNotRoutable: the proxy has no way to the URI's scheme; the
// branch fails with 416 (RFC 3261 §16.3 step 2), not a 5xx.
var errSchemeNotRoutable = errors.New("the proxy cannot route this URI scheme")

// nextHop decides where a request goes: an explicit destination, else the
// top Route, else the Request-URI (RFC 3261 §16.6 step 7, §8.1.2).
func nextHop(req *sip.Request, dst string) (hop, error) {
	if dst != "" {
		tp, host, port, err := ParseDst(dst)
		if err != nil {
			return hop{}, err
		}
		return hop{transport: tp, host: host, port: port}, nil
	}
	if r := TopRoute(req); r != nil {
		return uriHop(&r.Address)
	}
	return uriHop(&req.Recipient)
}

// routeOut prepares a request for its next hop and returns that hop
// (§16.6 steps 6 and 7). Headers escaped in the Request-URI
// ("?Route=...") are dropped: they are for the UAC that builds a request
// from the URI (§19.1.5), never part of a Request-URI on the wire. When the
// next hop is a strict router (its Route URI has no lr), the Request-URI
// goes to the end of the route set and the strict router's URI becomes the
// Request-URI, and the request goes to that router.
func routeOut(req *sip.Request, dst string) (hop, error) {
	req.Recipient.Headers = nil
	h, err := nextHop(req, dst)
	if err != nil {
		return hop{}, err
	}
	if r := TopRoute(req); r != nil {
		if _, loose := Param(r.Address.UriParams, "lr"); !loose {
			last := &sip.RouteHeader{Address: *req.Recipient.Clone()}
			req.Recipient = *r.Address.Clone()
			req.RemoveHeader("Route")
			req.AppendHeader(last)
		}
	}
	return h, nil
}

// preprocessRoute applies §16.4 to a request and reports whether it
// consumed a Route of ours, with the parameters of that Route's URI.
func (p *Proxy) preprocessRoute(req *sip.Request) (consumed bool, params sip.HeaderParams) {
	// A strict router before us put our Record-Route URI into the
	// Request-URI: the real one is the last Route.
	if p.IsOurURI(&req.Recipient) && req.Recipient.User == "" && req.Recipient.UriParams.Has("lr") {
		routes := req.GetHeaders("Route")
		if len(routes) > 0 {
			if last, ok := routes[len(routes)-1].(*sip.RouteHeader); ok {
				params = req.Recipient.UriParams
				req.Recipient = *last.Address.Clone()
				removeLastRoute(req)
				consumed = true
			}
		}
	}
	// Pop every leading Route of ours: two when we double record-routed
	// (different transports or address families on the two sides).
	for {
		r := TopRoute(req)
		if r == nil || !p.IsOurURI(&r.Address) {
			break
		}
		if params == nil {
			params = r.Address.UriParams
		}
		req.RemoveHeader("Route")
		consumed = true
	}
	return consumed, params
}

func removeLastRoute(req *sip.Request) {
	routes := req.GetHeaders("Route")
	keep := append([]sip.Header(nil), routes[:len(routes)-1]...)
	for req.RemoveHeader("Route") {
	}
	for _, h := range keep {
		req.AppendHeader(h)
	}
}

// build makes b our Record-Route for the side a listener faces. b lives
// as long as the request it goes on (a branch's clone block holds one).
func (b *rrBlock) build(l *listener, params []sip.HeaderKV) *sip.RecordRouteHeader {
	*b = rrBlock{}
	u := &b.h.Address
	*u = sip.Uri{Scheme: "sip", Host: l.host, Port: l.port, UriParams: b.kv[:0]}
	if l.transport != "UDP" {
		u.UriParams.Add("transport", l.network) // its name in lower case
	}
	u.UriParams.Add("lr", "")
	for _, kv := range params {
		u.UriParams.Add(kv.K, kv.V)
	}
	return &b.h
}

// TopRoute returns the first Route header of req, or nil. Unlike sipgo's
// req.Route(), it allocates nothing when there is none: the proxy asks on
// every request, and most have no Route.
func TopRoute(req *sip.Request) *sip.RouteHeader {
	for _, h := range req.Headers() {
		if r, ok := h.(*sip.RouteHeader); ok {
			return r
		}
		if strings.EqualFold(h.Name(), "Route") {
			return req.Route() // added as a generic header: sipgo parses it
		}
	}
	return nil
}

// asksNoCancel: req carries RFC 3841's Request-Disposition (compact "d")
// with the directive no-cancel.
func asksNoCancel(req *sip.Request) bool {
	if req == nil {
		return false
	}
	for _, h := range req.Headers() {
		if n := h.Name(); !strings.EqualFold(n, "Request-Disposition") && !strings.EqualFold(n, "d") {
			continue
		}
		for _, d := range strings.Split(h.Value(), ",") {
			if strings.EqualFold(strings.TrimSpace(d), "no-cancel") {
				return true
			}
		}
	}
	return false
}

package routing

import (
	"log/slog"
	"net"
	"strings"

	"github.com/emiago/sipgo/sip"
	"github.com/imsdlg/imsdlg/internal/location"
	"github.com/imsdlg/imsdlg/tm"
)

// Config is what the router needs from the daemon's configuration.
type Config struct {
	// Domains are the domains we are registrar and location service for.
	Domains []string
	// NextHop ("udp:host:port"), when set, receives requests for other
	// domains; otherwise they go to the Request-URI host.
	NextHop string
	// RecordRoute keeps us in the path of the dialogs we help create.
	RecordRoute bool
}

// Router implements tm.Router for the standalone proxy role.
type Router struct {
	domains map[string]struct{}
	cfg     Config
	loc     *location.Store
	log     *slog.Logger
}

// New builds a router over a location store.
func New(cfg Config, loc *location.Store, log *slog.Logger) *Router {
	r := &Router{domains: make(map[string]struct{}, len(cfg.Domains)), cfg: cfg, loc: loc, log: log}
	for _, d := range cfg.Domains {
		r.domains[strings.ToLower(strings.Trim(d, "[]"))] = struct{}{}
	}
	if r.log == nil {
		r.log = slog.Default()
	}
	return r
}

// Module: the standalone router has no hook of its own.
func (r *Router) Module() tm.Module { return tm.Module{Name: "router"} }

// Role is a role's request route with the hooks it plugs into tm.
type Role interface {
	tm.Router
	Module() tm.Module
}

var (
	_ Role = (*Router)(nil)
	_ Role = (*PCSCF)(nil)
	_ Role = (*SCSCF)(nil)
)

// IsOurDomain reports whether host is one of our domains.
func (r *Router) IsOurDomain(host string) bool {
	h := strings.ToLower(strings.Trim(host, "[]"))
	if _, ok := r.domains[h]; ok {
		return true
	}
	// An IPv6 literal may be written in several ways.
	if ip := net.ParseIP(h); ip != nil {
		for d := range r.domains {
			if dip := net.ParseIP(d); dip != nil && dip.Equal(ip) {
				return true
			}
		}
	}
	return false
}

// dialogForming lists the methods that create dialogs and so get our
// Record-Route (RFC 3261 §16.6 step 4; RFC 6665 for SUBSCRIBE/NOTIFY; RFC
// 3515 for REFER).
func dialogForming(m sip.RequestMethod) bool {
	switch m {
	case sip.INVITE, sip.SUBSCRIBE, sip.NOTIFY, sip.REFER:
		return true
	}
	return false
}

// Route implements tm.Router.
func (r *Router) Route(req *tm.Request) tm.Decision {
	if !req.Initial {
		// In-dialog: the route set (what is left after our own Route) or
		// the remote target in the Request-URI decides (§16.12). A dialog
		// we did not record-route may still name one of our users: find
		// the user's contact as for a new request.
		if !req.RouteConsumed && tm.TopRoute(req.Request) == nil && req.Recipient.User != "" && r.IsOurDomain(req.Recipient.Host) {
			if d, ok := r.lookup(req); ok {
				return d
			}
		}
		return tm.RelayTo()
	}
	if tm.TopRoute(req.Request) != nil {
		// A pre-loaded route (an AS or an outbound proxy): follow it.
		return r.relay(req)
	}
	uri := &req.Recipient
	ours := r.IsOurDomain(uri.Host)
	switch {
	case req.Method == sip.REGISTER && ours:
		return tm.Decision{Kind: tm.Respond, Response: r.loc.Register(req.Request)}
	case req.Method == sip.OPTIONS && ours && uri.User == "":
		// A ping addressed to the proxy itself.
		return tm.Reply(200, "OK")
	case ours:
		d, ok := r.lookup(req)
		if !ok {
			return tm.Reply(404, "Not Found")
		}
		d.RecordRoute = r.cfg.RecordRoute && dialogForming(req.Method)
		return d
	default:
		return r.relay(req)
	}
}

// lookup forks a request for one of our users to all the user's
// contacts; false when the user has none.
func (r *Router) lookup(req *tm.Request) (tm.Decision, bool) {
	// The port of a Request-URI in our domain names the proxy we are, not
	// a different user: the AOR has none.
	aor := req.Recipient
	aor.Port = 0
	var targets []tm.Target
	r.loc.EachLiveURI(aor, func(b *location.Binding, of int) {
		if targets == nil {
			targets = make([]tm.Target, 0, of)
		}
		// The target's URI is the branch's own: tm and the branch hooks
		// may change its parameters, never the stored binding's.
		targets = append(targets, tm.Target{URI: *b.Contact.Clone(), Q: b.Q})
	})
	if len(targets) == 0 {
		return tm.Decision{}, false
	}
	return tm.RelayTo(targets...), true
}

// relay forwards a request for another domain, through the next hop when
// one is configured.
func (r *Router) relay(req *tm.Request) tm.Decision {
	d := tm.RelayTo()
	if r.cfg.NextHop != "" && tm.TopRoute(req.Request) == nil {
		d.Dst = r.cfg.NextHop
	}
	d.RecordRoute = r.cfg.RecordRoute && dialogForming(req.Method)
	return d
}

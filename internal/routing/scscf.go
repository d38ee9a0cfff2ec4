package routing

import (
	"log/slog"
	"regexp"
	"slices"
	"strconv"

	"github.com/emiago/sipgo/sip"

	"github.com/imsdlg/imsdlg/internal/location"
	"github.com/imsdlg/imsdlg/tm"
)

// ASNextParam is the URI parameter of the S-CSCF's own Route entry pushed
// under an application server's: the index of the first AS rule still to
// try when the AS sends the request back. It plays the part of the IMS
// "original dialog identifier" of 3GPP TS 24.229 §5.4.3.2.
const ASNextParam = "asnext"

// ASRule is one filter of the S-CSCF's application server routing (a
// much simplified initial filter criterion): a request matching Method,
// RURI and From is sent to AS before it goes on.
type ASRule struct {
	// Method the rule applies to; "" means INVITE.
	Method sip.RequestMethod
	// RURI and From, when set, must match the Request-URI and the From
	// URI (as URI strings, e.g. "sip:bob@ims.example.com").
	RURI, From *regexp.Regexp
	// AS is the application server: pushed as the top Route (with lr,
	// added when missing). The AS acts as a proxy and sends the request
	// back to us along the rest of the route set.
	AS sip.Uri
}

// Matches reports whether the rule applies to req.
func (a *ASRule) Matches(req *sip.Request) bool {
	m := a.Method
	if m == "" {
		m = sip.INVITE
	}
	return requestMatches(req, m, a.RURI, a.From)
}

// SCSCFConfig is what the S-CSCF role adds to Config.
type SCSCFConfig struct {
	// Self is the URI an AS sends a request back to us at (host, port and,
	// unless UDP, transport); tm must take it as ours.
	Self sip.Uri
	// Rules are tried in order on every initial request except REGISTER.
	Rules []ASRule
}

// SCSCF is the request route of an S-CSCF (3GPP TS 24.229 §5.4): the
// registrar and location service of its domains, which stores the Path of
// each registration and sends requests to a contact along that Path; it
// routes initial requests through application servers by Rules, and then
// forks them in parallel to every contact of the callee. The dialog module
// wrapping it joins the request coming back from an AS to the dialog of its
// first pass (a spiral), so one call is one dialog, which the management
// API can terminate.
//
// AS routing: for the first rule (from index n) that matches, the request
// gets the Route set <AS;lr>, <Self;lr;asnext=k> where k is the rule's
// index plus one. When the AS sends it back, tm consumes our Route and
// hands its asnext to the router, which goes on with rule k. A request that
// arrives without asnext starts at rule 0; one that matches no further rule
// is terminating.
type SCSCF struct {
	base  *Router
	self  sip.Uri
	rules []ASRule
	log   *slog.Logger
}

// NewSCSCF builds the S-CSCF router over the location store.
func NewSCSCF(cfg Config, s SCSCFConfig, loc *location.Store, log *slog.Logger) *SCSCF {
	r := &SCSCF{base: New(cfg, loc, log), self: withParam(s.Self, "lr", ""), rules: slices.Clone(s.Rules)}
	r.log = r.base.log
	for i := range r.rules {
		r.rules[i].AS = withParam(r.rules[i].AS, "lr", "")
	}
	return r
}

// pathKey is the transaction value with the route set (the Path) of each
// contact a request is forked to, by contact URI.
type pathKey struct{}

// Route implements tm.Router.
func (r *SCSCF) Route(req *tm.Request) tm.Decision {
	if !req.Initial || req.Method == sip.REGISTER || tm.TopRoute(req.Request) != nil {
		// Within a dialog, a REGISTER (registrar), or a route set beyond
		// us: as any proxy.
		return r.base.Route(req)
	}
	rr := r.base.cfg.RecordRoute && dialogForming(req.Method)
	for i := r.resumeAt(req); i < len(r.rules); i++ {
		if !r.rules[i].Matches(req.Request) {
			continue
		}
		// The request comes back to us through the AS: our entry below
		// the AS's says where to go on. Prepended in reverse: the last
		// prepended is the top one.
		back := withParam(r.self, ASNextParam, strconv.Itoa(i+1))
		req.PrependHeader(&sip.RouteHeader{Address: back})
		req.PrependHeader(&sip.RouteHeader{Address: *r.rules[i].AS.Clone()})
		r.log.Debug("request sent to an application server", "callid", callIDOf(req.Request),
			"rule", i, "as", r.rules[i].AS.String())
		d := tm.RelayTo()
		d.RecordRoute = rr
		return d
	}
	uri := &req.Recipient
	if !r.base.IsOurDomain(uri.Host) || (req.Method == sip.OPTIONS && uri.User == "") {
		return r.base.Route(req)
	}
	// Terminating: every contact of the callee, in parallel (equal q), each
	// along the Path it registered with.
	d, ok := r.lookup(req)
	if !ok {
		return tm.Reply(404, "Not Found")
	}
	d.RecordRoute = rr
	return d
}

// resumeAt is the first AS rule to try: asnext of our consumed Route, or 0.
// A value that is not a rule index ends AS routing rather than risking a
// loop through the same AS.
func (r *SCSCF) resumeAt(req *tm.Request) int {
	if !req.RouteConsumed {
		return 0
	}
	v, ok := req.RouteParams.Get(ASNextParam)
	if !ok {
		return 0
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		r.log.Info("bad "+ASNextParam+" in our Route: no more AS", "callid", callIDOf(req.Request), "value", v)
		return len(r.rules)
	}
	return n
}

// lookup forks to the callee's contacts and remembers their Paths for
// OnBranch.
func (r *SCSCF) lookup(req *tm.Request) (tm.Decision, bool) {
	aor := req.Recipient
	aor.Port = 0
	bindings := r.base.loc.LookupURI(aor)
	targets := make([]tm.Target, 0, len(bindings))
	var paths map[string][]sip.Uri
	for _, b := range bindings {
		route, err := b.PathRoute()
		if err != nil {
			// Straight to the contact would bypass the P-CSCF the UE can
			// only be reached through.
			r.log.Warn("contact skipped: its Path does not parse", "aor", b.AOR,
				"contact", b.Contact.String(), "error", err)
			continue
		}
		if len(route) > 0 {
			if paths == nil {
				paths = make(map[string][]sip.Uri, len(bindings))
			}
			paths[b.Contact.String()] = route
		}
		targets = append(targets, tm.Target{URI: b.Contact, Q: b.Q})
	}
	if len(targets) == 0 {
		return tm.Decision{}, false
	}
	if paths != nil && req.Tx != nil {
		req.Tx.SetValue(pathKey{}, paths)
	}
	return tm.RelayTo(targets...), true
}

// Module plugs the S-CSCF's branch hook into tm.
func (r *SCSCF) Module() tm.Module { return tm.Module{Name: "scscf", Branch: r} }

// OnBranch implements tm.BranchHook: a branch to a contact registered with
// a Path gets that Path as its route set (RFC 3327 §5.3).
func (r *SCSCF) OnBranch(t *tm.Transaction, b *tm.Branch) bool {
	paths, ok := t.Value(pathKey{}).(map[string][]sip.Uri)
	if !ok {
		return true
	}
	route := paths[b.Target.URI.String()]
	for i := len(route) - 1; i >= 0; i-- {
		b.Request.PrependHeader(&sip.RouteHeader{Address: *route[i].Clone()})
	}
	return true
}

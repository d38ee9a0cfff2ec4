package routing

import (
	"log/slog"
	"strings"

	"github.com/emiago/sipgo/sip"

	"github.com/imsdlg/imsdlg/internal/location"
	"github.com/imsdlg/imsdlg/tm"
)

// TermParam is the URI parameter of the P-CSCF's Path entry: a request that
// arrives with that Route of ours consumed was sent by the S-CSCF along the
// Path, so it is terminating (towards a UE), never originating.
const TermParam = "term"

// PCSCFConfig is what the P-CSCF role adds to Config.
type PCSCFConfig struct {
	// SCSCF is the S-CSCF originating requests and REGISTERs are sent to:
	// it is pushed as the top Route (with lr, added when missing).
	SCSCF sip.Uri
	// Path adds "Path: <Self;lr;term>" and "Supported: path" to every
	// REGISTER (RFC 3327), so that the S-CSCF sends terminating requests
	// back through us.
	Path bool
	// Self is the URI the S-CSCF reaches us at (host, port and, unless UDP,
	// transport): the URI of our Path entry. tm must take it as ours, so
	// that it consumes the Route the S-CSCF builds from the Path.
	Self sip.Uri
}

// PCSCF is the request route of a P-CSCF (3GPP TS 24.229 §5.2): the first
// hop of the UEs. Originating requests go to the configured S-CSCF,
// REGISTERs with our Path, and terminating requests, which the S-CSCF
// sends back along that Path, go to the UE's contact. Dialog-forming
// requests are record-routed (when Config.RecordRoute). The dialog module
// wrapping it creates the dialogs and applies the per-UE limits.
//
// A request is terminating when it arrives with our Path entry (TermParam)
// as the Route tm consumed, or when its Request-URI is a UE contact learned
// from a REGISTER and its 2xx passing through us; anything else initial is
// originating.
type PCSCF struct {
	base  *Router
	scscf sip.Uri
	path  string // the Path header value, "" when Path is off
	ues   *location.Learned
	log   *slog.Logger
}

// NewPCSCF builds the P-CSCF router. ues is the table the contacts of the
// UEs registered through us are learned into (a new one when nil).
func NewPCSCF(cfg Config, p PCSCFConfig, ues *location.Learned, log *slog.Logger) *PCSCF {
	if ues == nil {
		ues = location.NewLearned(nil)
	}
	r := &PCSCF{base: New(cfg, nil, log), scscf: withParam(p.SCSCF, "lr", ""), ues: ues}
	r.log = r.base.log
	if p.Path {
		self := withParam(withParam(p.Self, "lr", ""), TermParam, "")
		r.path = "<" + self.String() + ">"
	}
	return r
}

// Learned is the table of UE contacts learned from REGISTERs.
func (r *PCSCF) Learned() *location.Learned { return r.ues }

// Route implements tm.Router.
func (r *PCSCF) Route(req *tm.Request) tm.Decision {
	if !req.Initial {
		// Within a dialog: the route set we record-routed, or the remote
		// target.
		return tm.RelayTo()
	}
	if req.Method == sip.REGISTER {
		return r.register(req)
	}
	if req.Method == sip.OPTIONS && req.Recipient.User == "" && tm.TopRoute(req.Request) == nil && r.base.IsOurDomain(req.Recipient.Host) {
		return tm.Reply(200, "OK")
	}
	d := tm.RelayTo()
	d.RecordRoute = r.base.cfg.RecordRoute && dialogForming(req.Method)
	if r.Terminating(req) {
		// The S-CSCF put the UE's contact in the Request-URI; what is left
		// of the route set (normally nothing) still comes first.
		return d
	}
	if tm.TopRoute(req.Request) == nil {
		// A route the UE pre-loaded beyond us (e.g. its Service-Route) is
		// followed; otherwise the S-CSCF is the next hop.
		req.PrependHeader(&sip.RouteHeader{Address: *r.scscf.Clone()})
	}
	return d
}

// Terminating reports whether an initial request goes towards a UE.
func (r *PCSCF) Terminating(req *tm.Request) bool {
	if req.RouteConsumed && req.RouteParams.Has(TermParam) {
		return true
	}
	_, ok := r.ues.Lookup(req.Recipient)
	return ok
}

// register sends a UE's REGISTER to the S-CSCF with our Path.
func (r *PCSCF) register(req *tm.Request) tm.Decision {
	if tm.TopRoute(req.Request) == nil {
		req.PrependHeader(&sip.RouteHeader{Address: *r.scscf.Clone()})
	}
	if r.path != "" {
		// RFC 3327 §5.2: our value goes before any Path already there.
		req.PrependHeader(sip.NewHeader("Path", r.path))
		if !hasOption(req.Request, "Supported", "path") {
			req.AppendHeader(sip.NewHeader("Supported", "path"))
		}
	}
	return tm.RelayTo()
}

// Module plugs the P-CSCF's observer into tm: the registrar's 2xx to a
// REGISTER tells which contacts of the UE are registered, and for how long.
func (r *PCSCF) Module() tm.Module {
	return tm.Module{Name: "pcscf", Observer: tm.ObserverFuncs{Outcome: r.onOutcome}}
}

func (r *PCSCF) onOutcome(t *tm.Transaction, o tm.Outcome) {
	req := t.Original() // nil only once the transaction is done, after OnOutcome
	if o.Kind != tm.Answered || o.Response == nil || req == nil || req.Method != sip.REGISTER {
		return
	}
	n := r.ues.Save(req, o.Response)
	r.log.Debug("UE contacts learned from REGISTER", "callid", callIDOf(req), "contacts", n)
}

func callIDOf(m *sip.Request) string {
	if h := m.CallID(); h != nil {
		return h.Value()
	}
	return ""
}

// hasOption reports whether a Supported/Require-style header lists option.
func hasOption(req *sip.Request, header, option string) bool {
	for _, h := range req.GetHeaders(header) {
		for tok := range strings.SplitSeq(h.Value(), ",") {
			if strings.EqualFold(strings.TrimSpace(tok), option) {
				return true
			}
		}
	}
	return false
}

// withParam returns a copy of u with the URI parameter k set (kept when
// already there).
func withParam(u sip.Uri, k, v string) sip.Uri {
	c := *u.Clone()
	if c.UriParams == nil {
		c.UriParams = sip.NewParams()
	}
	if !c.UriParams.Has(k) {
		c.UriParams.Add(k, v)
	}
	return c
}

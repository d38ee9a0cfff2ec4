package imsdialog

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/emiago/sipgo/sip"

	"github.com/imsdlg/imsdlg/dlgout"
	"github.com/imsdlg/imsdlg/tm"
)

// The modes of validate_dialog: what the dialog module does with a request
// within a dialog that does not fit it.
const (
	// ValidateAuto is ValidateOff here; the imsproxy daemon makes it
	// ValidateFix when its role is pcscf (untrusted UEs in front).
	ValidateAuto = "auto"
	// ValidateOff checks nothing.
	ValidateOff = "off"
	// ValidateLog counts and logs a request that does not fit, and relays
	// it as it is.
	ValidateLog = "log"
	// ValidateReject refuses it (400 naming the check): it never reaches
	// the other party and changes nothing in the dialog.
	ValidateReject = "reject"
	// ValidateFix sends it along the dialog's own route set to the
	// dialog's remote target (fix_route_dialog); a CSeq out of order
	// cannot be fixed and is refused.
	ValidateFix = "fix"
)

// Check names what validate_dialog found wrong; the numbers are the
// seed's return codes.
type Check int

const (
	CheckCSeq         Check = -1 // invalid cseq
	CheckRemoteTarget Check = -2 // invalid remote target
	CheckRouteSet     Check = -3 // invalid route set
	CheckOther        Check = -4 // no dialog, unknown leg
)

var checkNames = map[Check]string{CheckCSeq: "cseq", CheckRemoteTarget: "remote_target", CheckRouteSet: "route_set", CheckOther: "other"}

func (c Check) String() string { return checkNames[c] }

// InvalidRequestError says why a request does not fit its dialog.
type InvalidRequestError struct {
	Check  Check
	Detail string
}

func (e *InvalidRequestError) Error() string {
	return "request does not fit its dialog: " + e.Check.String() + ": " + e.Detail
}

// Within is what validate_dialog reads off a request within a dialog, after
// tm removed our own Route.
type Within struct {
	Method     string
	CSeq       uint32
	FromCaller bool
	// FromTag and ToTag as in Request.
	FromTag, ToTag string
	// RURI is the Request-URI, Route the Route entries left (nearest
	// first).
	RURI  sip.Uri
	Route []sip.Uri
}

// Validate is validate_dialog on the cell: the CSeq must be above what the
// sender used before on its leg (RFC 3261 §12.2.2; ACK and CANCEL carry
// their INVITE's and are not checked); the Request-URI must be the remote
// target of the side it goes to, and the Route left must be the dialog's
// route set towards it (our own entries aside: a spiral puts more of ours
// in). A request that follows no route set (no Route left; a UA that
// ignores Record-Route) passes the route check and fails the target one
// unless it names the target. nil when it fits.
func (c *Cell) Validate(w *Within, ours func(*sip.Uri) bool) *InvalidRequestError {
	tag := w.ToTag
	if !w.FromCaller {
		tag = w.FromTag
	}
	leg := c.outs.Get(tag)
	if leg == nil {
		return &InvalidRequestError{CheckOther, "no leg with tag " + strconv.Quote(tag)}
	}
	if w.Method != "ACK" && w.Method != "CANCEL" {
		seen := leg.LocalCSeq
		if !w.FromCaller {
			seen = leg.RemoteCSeq
		}
		if seen != 0 && w.CSeq <= seen {
			return &InvalidRequestError{CheckCSeq, fmt.Sprintf("CSeq %d is not above %d, the last from the %s", w.CSeq, seen, sideName(sideOf(w.FromCaller)))}
		}
	}
	target, route := c.towards(w.FromCaller, leg)
	if target.Host != "" && !sameTarget(&w.RURI, &target) {
		return &InvalidRequestError{CheckRemoteTarget, "Request-URI " + w.RURI.String() + " is not the remote target " + target.String()}
	}
	if len(w.Route) > 0 && !routeFits(w.Route, c.hops(w.FromCaller, leg), ours) {
		return &InvalidRequestError{CheckRouteSet, "Route " + joinURIs(w.Route) + " is not the route set " + joinURIs(route)}
	}
	return nil
}

// towards is the remote target and route set of the side a request from
// the caller (to leg) or from leg's callee goes to.
func (c *Cell) towards(fromCaller bool, leg *dlgout.Leg) (sip.Uri, []sip.Uri) {
	if fromCaller {
		return leg.RemoteTarget, leg.RouteSet
	}
	return c.callerTarget, c.callerRoute
}

// hops is every hop between the two parties in the direction of a
// request: the sender's side of the route (src, nearest to us first, read
// backwards), our entry of the pass that made the dialog (nil), then the
// other side (dst). A spiral (through an AS and back) puts more entries of
// ours on it: the request passes us once per entry, and the Route left at
// each pass is what follows that entry. Read in place: a validated
// request costs no copy of the route sets.
type hops struct{ src, dst []sip.Uri }

func (c *Cell) hops(fromCaller bool, leg *dlgout.Leg) hops {
	if fromCaller {
		return hops{c.callerRoute, leg.RouteSet}
	}
	return hops{leg.RouteSet, c.callerRoute}
}

func (h hops) len() int { return len(h.src) + 1 + len(h.dst) }

func (h hops) at(k int) *sip.Uri {
	switch {
	case k < len(h.src):
		return &h.src[len(h.src)-1-k]
	case k == len(h.src):
		return nil
	}
	return &h.dst[k-len(h.src)-1]
}

// routeFits tells whether got, the Route left after our entry, is what
// follows one of our entries on the path, hop by hop (user, host, port; an
// entry of ours matches an entry of ours).
func routeFits(got []sip.Uri, path hops, ours func(*sip.Uri) bool) bool {
	isOurs := func(u *sip.Uri) bool { return u == nil || (ours != nil && ours(u)) }
	for len(got) > 0 && isOurs(&got[0]) {
		got = got[1:]
	}
	n := path.len()
	for k := 0; k < n; k++ {
		if !isOurs(path.at(k)) {
			continue
		}
		j := k + 1
		for j < n && isOurs(path.at(j)) {
			j++
		}
		if n-j != len(got) {
			continue
		}
		same := true
		for i := range got {
			want := path.at(j + i)
			if !(isOurs(&got[i]) && isOurs(want)) && (want == nil || !sameTarget(&got[i], want)) {
				same = false
				break
			}
		}
		if same {
			return true
		}
	}
	return false
}

func joinURIs(us []sip.Uri) string {
	if len(us) == 0 {
		return "(none)"
	}
	var b strings.Builder
	for i := range us {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString("<" + us[i].String() + ">")
	}
	return b.String()
}

// within reads what Validate needs off a request.
func within(r *tm.Request, fromCaller bool) *Within {
	w := &Within{Method: string(r.Method), FromCaller: fromCaller, RURI: r.Recipient,
		FromTag: tm.Tag(r.From().Params), ToTag: tm.Tag(r.To().Params)}
	if cs := r.CSeq(); cs != nil {
		w.CSeq = cs.SeqNo
	}
	for _, h := range r.Headers() {
		if rh, ok := h.(*sip.RouteHeader); ok {
			w.Route = append(w.Route, rh.Address)
		}
	}
	return w
}

// ValidateDialog is validate_dialog: whether a request within a dialog
// fits the dialog it belongs to. The error is an *InvalidRequestError
// (its Check is the seed's return code).
func (m *Manager) ValidateDialog(r *tm.Request) error {
	d, fromCaller := m.match(r)
	if d == nil {
		return &InvalidRequestError{CheckOther, "no dialog"}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if e := d.cell.Validate(within(r, fromCaller), r.Sender.IsOurURI); e != nil {
		return e
	}
	return nil
}

// FixRouteDialog is fix_route_dialog: the request goes to the dialog's
// remote target along the dialog's route set, whatever its Request-URI and
// Route said. The returned decision relays it there; false when the
// request belongs to no dialog the manager holds.
func (m *Manager) FixRouteDialog(r *tm.Request) (tm.Decision, bool) {
	d, fromCaller := m.match(r)
	if d == nil {
		return tm.Decision{}, false
	}
	d.mu.Lock()
	target, route, dst, ok := d.cell.Target(fromCaller, tm.Tag(r.To().Params))
	d.mu.Unlock()
	if !ok {
		return tm.Decision{}, false
	}
	return fixRoute(r, target, route, dst), true
}

// fixRoute rewrites a request to go to target along route (dst when the
// route set is empty).
func fixRoute(r *tm.Request, target sip.Uri, route []sip.Uri, dst string) tm.Decision {
	for r.RemoveHeader("Route") {
	}
	r.Recipient = *target.Clone()
	for i := len(route) - 1; i >= 0; i-- {
		r.PrependHeader(&sip.RouteHeader{Address: *route[i].Clone()})
	}
	return tm.Decision{Kind: tm.Relay, Dst: dst}
}

// reject is the reply to a request that does not fit its dialog.
func (e *InvalidRequestError) reject() tm.Decision {
	reason := "Bad Request - Not In Its Dialog's "
	switch e.Check {
	case CheckCSeq:
		reason = "Bad Request - CSeq Out Of Order For The Dialog"
	case CheckRemoteTarget:
		reason += "Remote Target"
	case CheckRouteSet:
		reason += "Route Set"
	default:
		reason = "Bad Request - Not Within A Known Dialog"
	}
	return tm.Reply(400, reason)
}

func sideOf(fromCaller bool) Side {
	if fromCaller {
		return SideCaller
	}
	return SideCallee
}

package spiral

import (
	"strconv"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// Verdict is what an initial request is to the dialogs with its Call-ID and
// From-tag.
type Verdict uint8

const (
	// New: the request creates a dialog of its own.
	New Verdict = iota
	// Spiral: the request came back to us and joins a known dialog
	// (DLGCB_SPIRALED, no second dialog).
	Spiral
	// Retransmission: the request is the INVITE that created a known dialog,
	// received again (same top Via branch). tm normally absorbs those; a
	// retransmission neither creates nor joins a dialog.
	Retransmission
)

func (v Verdict) String() string {
	switch v {
	case New:
		return "NEW"
	case Spiral:
		return "SPIRAL"
	case Retransmission:
		return "RETRANSMISSION"
	}
	return "Verdict(" + strconv.Itoa(int(v)) + ")"
}

// DefaultRRParam is the default name of the did cookie parameter (seed 002
// §5.3 rr_param).
const DefaultRRParam = "did"

// Known is what the dialog module holds about one existing dialog with the
// request's Call-ID and From-tag.
type Known struct {
	// DID is the did cookie value of the dialog, as put in our Record-Route
	// under Marker.RRParam. Empty never matches.
	DID string
	// ViaBranch is the top Via branch of the INVITE that created the
	// dialog, as received. Empty never matches.
	ViaBranch  string
	Terminated bool
}

// Marker is what shows that a request went through us before.
type Marker struct {
	// RRParam names the did cookie parameter; empty means DefaultRRParam.
	RRParam string
	// IsOurURI and IsOurVia tell our Route/Record-Route entries and Vias:
	// tm.Sender's, which know our listen addresses, advertised names and
	// the default ports. nil: nothing is ours, so only retransmissions are
	// recognised.
	IsOurURI func(*sip.Uri) bool
	IsOurVia func(*sip.ViaHeader) bool
}

// Classify tells whether an initial request (no To tag; the dialog module
// calls it before creating a dialog) is new, a spiral of one of known, or a
// retransmission of the INVITE that created one. known holds the dialogs
// with the request's Call-ID and From-tag, matched by the caller. The int is
// an index into known for Spiral and Retransmission, -1 for New.
//
// The rules, first that applies:
//
//  1. No known dialog: New.
//  2. Top Via branch equal to a Known.ViaBranch: Retransmission of that
//     dialog, even a terminated one (a duplicate creates nothing).
//  3. A did of ours: in the Request-URI (a strict router before us put our
//     Route there) or a Route entry (a route pre-loaded back to us, as an
//     AS does with the S-CSCF's ODI), then in a Record-Route entry (ours,
//     from our earlier pass). The first of ours carrying the did of a known
//     dialog decides: Spiral of it, or New when that dialog is terminated. A
//     did of ours that no known dialog has is passed over.
//  4. A Via of ours below the top (the top one is the previous hop's): the
//     Via just below ours is the one that was on top when we received the
//     request before, so its branch picks the dialog by Known.ViaBranch:
//     Spiral of it, or New when that dialog is terminated. When no branch
//     matches, a single live known dialog is the one (Spiral); with several
//     it cannot be told which, and it is New.
//  5. Otherwise New: same Call-ID and From-tag without a marker of ours is
//     an upstream fork, a replayed INVITE or a UE reusing its Call-ID.
//
// So a did beats a Via when they disagree: the did names the dialog, a Via
// only shows that the request passed through us. Terminated dialogs are
// never joined.
//
// tm pops our Route entries (§16.4) before its hooks see the request: a
// caller that classifies after that must check the did tm reports from the
// consumed Route itself, as Classify can no longer see it.
//
// Classify reads the request without writing to it and does not allocate.
// It looks at typed headers only; a header sipgo left unparsed counts as
// absent.
func Classify(req *sip.Request, known []Known, m Marker) (Verdict, int) {
	if req == nil || len(known) == 0 {
		return New, -1
	}
	rrParam := m.RRParam
	var (
		vias        int
		viaMatch    = -1 // branch below one of our Vias matches known[viaMatch]
		ourVia      bool
		belowOurVia bool
		routeDID    = -1 // first did of ours in R-URI/Route that a known dialog has
		rrDID       = -1 // same in Record-Route
	)
	if m.ours(&req.Recipient) {
		routeDID = matchDID(&req.Recipient, rrParam, known)
	}
	for _, h := range req.Headers() {
		switch h := h.(type) {
		case *sip.ViaHeader:
			branch := paramOf(h.Params, "branch")
			vias++
			if vias == 1 {
				if i := matchBranch(branch, known); i >= 0 {
					return Retransmission, i
				}
				continue
			}
			if belowOurVia && viaMatch < 0 {
				viaMatch = matchBranch(branch, known)
			}
			belowOurVia = m.IsOurVia != nil && m.IsOurVia(h)
			ourVia = ourVia || belowOurVia
		case *sip.RouteHeader:
			if routeDID < 0 && m.ours(&h.Address) {
				routeDID = matchDID(&h.Address, rrParam, known)
			}
		case *sip.RecordRouteHeader:
			if rrDID < 0 && m.ours(&h.Address) {
				rrDID = matchDID(&h.Address, rrParam, known)
			}
		}
	}

	for _, i := range [...]int{routeDID, rrDID, viaMatch} {
		if i < 0 {
			continue
		}
		if known[i].Terminated {
			return New, -1
		}
		return Spiral, i
	}
	if ourVia {
		live := -1
		for i := range known {
			if known[i].Terminated {
				continue
			}
			if live >= 0 {
				return New, -1
			}
			live = i
		}
		if live >= 0 {
			return Spiral, live
		}
	}
	return New, -1
}

// DIDOf returns the did cookie of a URI: the value of its rrParam parameter
// (DefaultRRParam when empty), the name compared case-insensitively (RFC
// 3261 §19.1.4). A parameter without a value is no did.
func DIDOf(u sip.Uri, rrParam string) (string, bool) {
	return didOf(&u, rrParam)
}

func didOf(u *sip.Uri, rrParam string) (string, bool) {
	if rrParam == "" {
		rrParam = DefaultRRParam
	}
	v := paramOf(u.UriParams, rrParam)
	return v, v != ""
}

// matchDID returns the index of the known dialog whose did u carries,
// preferring a live one, or -1.
func matchDID(u *sip.Uri, rrParam string, known []Known) int {
	did, ok := didOf(u, rrParam)
	if !ok {
		return -1
	}
	found := -1
	for i := range known {
		if known[i].DID != did {
			continue
		}
		if !known[i].Terminated {
			return i
		}
		if found < 0 {
			found = i
		}
	}
	return found
}

// matchBranch is matchDID for a Via branch against Known.ViaBranch.
func matchBranch(branch string, known []Known) int {
	if branch == "" {
		return -1
	}
	found := -1
	for i := range known {
		if known[i].ViaBranch != branch {
			continue
		}
		if !known[i].Terminated {
			return i
		}
		if found < 0 {
			found = i
		}
	}
	return found
}

func paramOf(p sip.HeaderParams, name string) string {
	for _, kv := range p {
		if strings.EqualFold(kv.K, name) {
			return kv.V
		}
	}
	return ""
}

func (m Marker) ours(u *sip.Uri) bool {
	return m.IsOurURI != nil && u.Host != "" && m.IsOurURI(u)
}

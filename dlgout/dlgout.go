package dlgout

import (
	"errors"
	"strconv"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/imsdlg/imsdlg/internal/sipstr"
)

// State is the state of one callee leg.
type State uint8

const (
	// Early: a tagged 1xx was seen, no 2xx yet. The zero State is not
	// Early on purpose, so that a Leg nobody filled in is not taken for a
	// live early leg.
	Early State = iota + 1
	// Confirmed: a 2xx was seen on the leg.
	Confirmed
	// Terminated: failed (3xx-6xx on its branch), pruned when the INVITE
	// transaction ended, or answered too late.
	Terminated
)

func (s State) String() string {
	switch s {
	case Early:
		return "EARLY"
	case Confirmed:
		return "CONFIRMED"
	case Terminated:
		return "TERMINATED"
	}
	return "State(" + strconv.Itoa(int(s)) + ")"
}

// MaxCSeq is the highest CSeq number RFC 3261 §8.1.1.5 allows (below 2^31).
const MaxCSeq uint32 = 1<<31 - 1

var (
	// ErrLateAnswer: a 2xx on a leg that is already Terminated, or after
	// Prune on a leg that was removed or never seen. The dialog module ACKs
	// and BYEs that leg; OnResponse returns it along with this error.
	ErrLateAnswer = errors.New("dlgout: 2xx on a terminated or pruned leg")
	// ErrAlreadyAnswered: Answer on a leg while another leg answered first.
	ErrAlreadyAnswered = errors.New("dlgout: another leg already answered")
	// ErrNotAnswered: Answer on a leg that has not seen a 2xx.
	ErrNotAnswered = errors.New("dlgout: no 2xx seen on this leg")
	// ErrUnknownLeg: no leg with that To-tag.
	ErrUnknownLeg = errors.New("dlgout: unknown leg")
	// ErrMalformed: status outside 100-699, or no CSeq.
	ErrMalformed = errors.New("dlgout: malformed response")
	// ErrNotInvite: the response's CSeq method is not INVITE. Only responses
	// to the dialog-creating INVITE create or update legs; a 200 to a PRACK
	// must not confirm anything.
	ErrNotInvite = errors.New("dlgout: response is not for an INVITE")
	// ErrCSeqExhausted: the leg has seen MaxCSeq in that direction, so no
	// legal CSeq is above it.
	ErrCSeqExhausted = errors.New("dlgout: no CSeq left above the highest seen")
)

// Leg is one callee leg (one To-tag) of a dialog.
//
// The slices and URI parameters a Leg holds are never written after they are
// stored (an update stores new ones), so copies of a Leg may share them; do
// not modify them in place either.
type Leg struct {
	ToTag string
	// RemoteTarget is the Contact of the leg's last 1xx/2xx that had one
	// (RFC 3261 §12.1.2); a 1xx arriving after the 2xx does not change it.
	RemoteTarget sip.Uri
	// RouteSet goes from this proxy towards the callee, nearest hop first
	// (see CalleeRouteSet). Set when the leg is created and recomputed from
	// the 2xx (RFC 3261 §13.2.2.4); later 1xx do not change it.
	RouteSet []sip.Uri
	// RemoteCSeq is the highest CSeq seen in requests from the callee on
	// this leg, in the callee's numbering.
	RemoteCSeq uint32
	// LocalCSeq is the highest CSeq seen in requests towards the callee on
	// this leg, starting with the INVITE's, in the caller's numbering.
	LocalCSeq uint32
	// ToCalleeShift and ToCallerShift count the requests we put into the
	// leg ourselves (pings, BYE) in that direction. Each takes a number of
	// the party it impersonates, so from then on that party's requests
	// reach the other side that much higher (and the replies come back that
	// much lower): see Shift. Without it a party's next request after a
	// ping would repeat or undercut the ping's number, which UAs refuse
	// with 500 (RFC 3261 §12.2.2; most stacks refuse an equal one too).
	ToCalleeShift, ToCallerShift uint32
	// SDP is the last session description the callee sent on this leg (a
	// 1xx/2xx to the INVITE, a request or reply within the dialog), kept
	// only when the dialog may need it (re-INVITE pings): the offer a
	// re-INVITE towards the caller carries.
	SDP []byte
	// Transport and Source are those of the leg's last 1xx/2xx ("UDP",
	// "ip:port").
	Transport string
	Source    string
	State     State
	// Branch is the tm branch index the leg was first seen on; one branch
	// yields several legs when a proxy downstream forks.
	Branch           int
	Created, Updated time.Time
	// LastCode is the last status that changed the leg: a removed leg whose
	// LastCode is 2xx had answered and needs ACK + BYE.
	LastCode int
}

// NextCSeq returns a CSeq for a request we generate on the leg, towards the
// callee (impersonating the caller) or towards the caller (impersonating the
// callee): strictly above anything that side has seen (RFC 3261 §12.2.1.1),
// and taken for good (the direction's shift grows by one), so that two
// requests we generate never share a number and the party's own next
// request still arrives above it. It is on Leg as well as on Set because
// the leg of a late 2xx is not in any Set and still needs a BYE.
func (l *Leg) NextCSeq(towardsCallee bool) (uint32, error) {
	seen, shift := l.RemoteCSeq, &l.ToCallerShift
	if towardsCallee {
		seen, shift = l.LocalCSeq, &l.ToCalleeShift
	}
	if uint64(seen)+uint64(*shift) >= uint64(MaxCSeq) {
		return 0, ErrCSeqExhausted
	}
	*shift++
	return seen + *shift, nil
}

// Shift is what a party's CSeq numbers gain on their way through the leg:
// a request from the caller (towards the callee) or from the callee gets
// that much added, the replies that much taken off again.
func (l *Leg) Shift(fromCaller bool) uint32 {
	if fromCaller {
		return l.ToCalleeShift
	}
	return l.ToCallerShift
}

func (l *Leg) observe(fromCallee bool, cseq uint32) {
	if fromCallee {
		l.RemoteCSeq = max(l.RemoteCSeq, cseq)
	} else {
		l.LocalCSeq = max(l.LocalCSeq, cseq)
	}
}

// Set is the set of callee legs of one dialog. The zero value is an empty
// set. Legs are few (typically 1-3), so a slice beats a map; pointers keep a
// *Leg handed out valid when the slice grows.
type Set struct {
	legs     []*Leg
	answered *Leg
	// pruned: the INVITE transaction has ended; no leg is created any more
	// and a 2xx on anything but the answered leg is late.
	pruned bool
	// gone holds the last legs End removed, newest last: a request the BYE
	// overtook (UDP reorders; so do parallel readers) still finds where
	// its leg was (Gone).
	gone []*Leg
}

// maxGone bounds the ended legs a Set remembers.
const maxGone = 4

// Reply is what a response to the dialog-creating INVITE says about a
// callee leg: the facts the dialog module reads off the message, so the Set
// never parses.
type Reply struct {
	Code int
	// ToTag is the To tag ("" when the response has none).
	ToTag string
	// CSeq and Method are the response's CSeq; Method "" means the response
	// had no CSeq.
	CSeq   uint32
	Method sip.RequestMethod
	// Contact is the first Contact's URI, when HasContact (a wildcard does
	// not count).
	Contact    sip.Uri
	HasContact bool
	// RecordRoute lists the Record-Route URIs in message order. The Set
	// copies what it keeps.
	RecordRoute []sip.Uri
	// Transport and Source are where the response came from ("UDP",
	// "ip:port").
	Transport, Source string
	// SDP is the response's session description, nil when it has none or
	// the dialog keeps none; the leg keeps it as given (tm gives every body
	// its own bytes, never the message's pooled text).
	SDP []byte
}

// OnReply takes a response to the dialog-creating INVITE as received on
// tm branch branch, and ourRR, which tells our own Record-Route entries.
//
//   - 100, or 1xx without a To tag: nil, false, nil.
//   - tagged 1xx/2xx: creates (created true) or updates the leg of that
//     To-tag and returns it; a 2xx makes it Confirmed. A tagged 1xx on a
//     Terminated or Confirmed leg, or after Prune, changes nothing.
//   - 3xx-6xx: every leg of that branch still Early becomes Terminated;
//     returns nil, false, nil.
//   - 2xx on a Terminated leg, or after Prune on a leg the Set no longer
//     holds: the leg (from the Set, or built from the response and not
//     stored: Adopt stores it), false, ErrLateAnswer.
//   - a 2xx without a To tag makes a leg whose tag is null (""): RFC 3261
//     §8.2.6.2 makes the UAS add one, and §12.1.2 has the UAC treat a
//     missing one as null; the caller's ACK and BYE then carry none.
func (s *Set) OnReply(now time.Time, branch int, r Reply, ourRR func(*sip.Uri) bool) (leg *Leg, created bool, err error) {
	code := r.Code
	switch {
	case code < 100 || code > 699:
		return nil, false, ErrMalformed
	case code >= 300:
		s.failBranch(now, branch, code)
		return nil, false, nil
	case code == 100:
		return nil, false, nil
	}
	if r.Method == "" {
		return nil, false, ErrMalformed
	}
	if r.Method != sip.INVITE {
		return nil, false, ErrNotInvite
	}
	final := code >= 200
	toTag := r.ToTag
	if toTag == "" && !final {
		return nil, false, nil
	}

	leg = s.Get(toTag)
	switch {
	case leg == nil && s.pruned:
		if !final {
			return nil, false, nil
		}
		leg = &Leg{ToTag: toTag, State: Terminated, Branch: branch, Created: now}
		leg.update(now, &r, ourRR, true)
		return leg, false, ErrLateAnswer
	case leg == nil:
		leg = &Leg{ToTag: toTag, State: Early, Branch: branch, Created: now}
		leg.update(now, &r, ourRR, true)
		if final {
			leg.State = Confirmed
		}
		s.legs = append(s.legs, leg)
		return leg, true, nil
	case leg.State == Terminated:
		if !final {
			return leg, false, nil
		}
		// Refreshed from the 2xx: the ACK and BYE go where it says.
		leg.update(now, &r, ourRR, true)
		return leg, false, ErrLateAnswer
	case leg.State == Confirmed && !final:
		// A 1xx overtaken by the 2xx (UDP reordering) says nothing new.
		return leg, false, nil
	}
	leg.update(now, &r, ourRR, final)
	if final {
		leg.State = Confirmed
	}
	return leg, false, nil
}

// update records a tagged 1xx/2xx on the leg; withRoute recomputes the route
// set (leg creation and 2xx only).
func (l *Leg) update(now time.Time, r *Reply, ourRR func(*sip.Uri) bool, withRoute bool) {
	var buf [48]*string
	keep := buf[:0]
	if l.Updated.IsZero() {
		keep = append(keep, &l.ToTag) // a new leg
	}
	if r.HasContact && !uriEqual(&l.RemoteTarget, &r.Contact) {
		l.RemoteTarget = CloneURI(r.Contact)
		keep = sipstr.URIStrings(keep, &l.RemoteTarget)
	}
	if withRoute {
		lo, _ := ourRun(r.RecordRoute, ourRR)
		if !routeEqualReversed(l.RouteSet, r.RecordRoute[:lo]) {
			l.RouteSet = reversedClone(r.RecordRoute[:lo])
			for i := range l.RouteSet {
				keep = sipstr.URIStrings(keep, &l.RouteSet[i])
			}
		}
	}
	// Source and Transport are the reply's too (its Source() is cut from
	// its text): kept afresh only when they changed.
	if l.Transport != r.Transport {
		l.Transport = r.Transport
		keep = append(keep, &l.Transport)
	}
	if l.Source != r.Source {
		l.Source = r.Source
		keep = append(keep, &l.Source)
	}
	// What the leg keeps for the dialog's life shares nothing with the
	// reply (sipstr.Detach).
	sipstr.Detach(keep)
	l.LocalCSeq = max(l.LocalCSeq, r.CSeq)
	if r.SDP != nil {
		l.SDP = r.SDP
	}
	l.LastCode = r.Code
	l.Updated = now
}

func (s *Set) failBranch(now time.Time, branch, code int) {
	for _, l := range s.legs {
		if l.Branch == branch && l.State == Early {
			l.State = Terminated
			l.LastCode = code
			l.Updated = now
		}
	}
}

// Restore makes a Set holding one answered leg, as it was when the dialog
// was saved: a restarted proxy's confirmed dialog, whose INVITE
// transaction is long gone (so the Set is pruned).
func Restore(l Leg) Set {
	l.State = Confirmed
	return Set{legs: []*Leg{&l}, answered: &l, pruned: true}
}

// Get returns the leg of that To-tag (To-tags compare exactly), or nil. The
// pointer is live: it changes with the Set.
func (s *Set) Get(toTag string) *Leg {
	for _, l := range s.legs {
		if l.ToTag == toTag {
			return l
		}
	}
	return nil
}

// Gone returns a leg of that To-tag that End removed (Terminated), or nil:
// where an ACK sent before the BYE that ended its leg, and reordered behind
// it, still goes. Get never returns such a leg.
func (s *Set) Gone(toTag string) *Leg {
	for i := len(s.gone) - 1; i >= 0; i-- {
		if s.gone[i].ToTag == toTag {
			return s.gone[i]
		}
	}
	return nil
}

// Legs returns copies of the legs in creation order.
func (s *Set) Legs() []Leg {
	if len(s.legs) == 0 {
		return nil
	}
	out := make([]Leg, len(s.legs))
	for i, l := range s.legs {
		out[i] = *l
	}
	return out
}

// Early returns the legs still Early, which get a CANCEL when the dialog is
// terminated before an answer.
func (s *Set) Early() []*Leg {
	var out []*Leg
	for _, l := range s.legs {
		if l.State == Early {
			out = append(out, l)
		}
	}
	return out
}

// Answer marks the leg that answered the call: the first one whose 2xx the
// dialog module accepts. Answering the same leg again is a no-op (2xx
// retransmission). When another leg answered first it returns the leg named
// by toTag with ErrAlreadyAnswered: that leg gets ACK + BYE.
func (s *Set) Answer(toTag string) (*Leg, error) {
	l := s.Get(toTag)
	switch {
	case l == nil:
		return nil, ErrUnknownLeg
	case s.answered == l:
		return l, nil
	case s.answered != nil:
		return l, ErrAlreadyAnswered
	case l.State == Terminated:
		return l, ErrLateAnswer
	case l.State != Confirmed:
		return l, ErrNotAnswered
	}
	s.answered = l
	return l, nil
}

// Answered returns the leg that answered, nil before Answer succeeded.
func (s *Set) Answered() *Leg { return s.answered }

// Prune is called when the INVITE transaction ends: every leg that did not
// answer becomes Terminated and leaves the Set; they are returned in
// creation order. The legs that answered (Confirmed) stay: the answered one
// and any other whose 2xx went to the caller too (RFC 3261 §16.7 step 5),
// until End. After Prune no leg is created, and a 2xx on a leg the Set does
// not hold is ErrLateAnswer.
func (s *Set) Prune() []Leg {
	var removed []Leg
	s.prune(func(l *Leg) { removed = append(removed, *l) })
	return removed
}

// Trim is Prune for a caller that needs only how many legs left: no copy
// of them is made (a Leg is a third of a kilobyte; a forked call's INVITE
// ends with one to prune).
func (s *Set) Trim() int {
	n := 0
	s.prune(func(*Leg) { n++ })
	return n
}

func (s *Set) prune(gone func(*Leg)) {
	s.pruned = true
	kept := s.legs[:0]
	for _, l := range s.legs {
		if l == s.answered || l.State == Confirmed {
			kept = append(kept, l)
			continue
		}
		l.State = Terminated
		gone(l)
	}
	clear(s.legs[len(kept):])
	s.legs = kept
}

// Adopt stores a leg OnReply returned with ErrLateAnswer: a late 2xx the
// caller was given, so the call may go on with it.
func (s *Set) Adopt(l *Leg) {
	if l == nil || s.Get(l.ToTag) != nil {
		return
	}
	l.State = Confirmed
	s.legs = append(s.legs, l)
}

// End removes a leg whose session is over (a BYE on it). When it was the
// answered leg, the oldest other leg that answered becomes the answered one
// and is returned; nil otherwise.
func (s *Set) End(toTag string) (promoted *Leg) {
	kept := s.legs[:0]
	var ended *Leg
	for _, l := range s.legs {
		if l.ToTag == toTag && ended == nil {
			ended = l
			l.State = Terminated
			continue
		}
		kept = append(kept, l)
	}
	clear(s.legs[len(kept):])
	s.legs = kept
	if ended != nil {
		if len(s.gone) == maxGone {
			copy(s.gone, s.gone[1:])
			s.gone = s.gone[:maxGone-1]
		}
		s.gone = append(s.gone, ended)
	}
	if ended == nil || ended != s.answered {
		return nil
	}
	s.answered = nil
	for _, l := range s.legs {
		if l.State == Confirmed {
			s.answered = l
			return l
		}
	}
	return nil
}

// Confirmed returns the legs that answered, the answered one first.
func (s *Set) Confirmed() []*Leg {
	var out []*Leg
	if s.answered != nil {
		out = append(out, s.answered)
	}
	for _, l := range s.legs {
		if l.State == Confirmed && l != s.answered {
			out = append(out, l)
		}
	}
	return out
}

// ObserveRequest records a request seen on the leg, from the callee or
// towards it, raising that direction's CSeq numerically (never as strings:
// 10 is above 9). Every method counts, ACK and CANCEL included: they carry
// the number of their INVITE, and a number seen is never wrong to stay above
// (an ACK can be the only trace of a re-INVITE we missed). method is taken so
// that the caller need not special-case; it does not change the outcome.
func (s *Set) ObserveRequest(toTag string, fromCallee bool, cseq uint32, method string) error {
	l := s.Get(toTag)
	if l == nil {
		return ErrUnknownLeg
	}
	l.observe(fromCallee, cseq)
	return nil
}

// NextCSeq is Leg.NextCSeq for the leg of that To-tag.
func (s *Set) NextCSeq(toTag string, towardsCallee bool) (uint32, error) {
	l := s.Get(toTag)
	if l == nil {
		return 0, ErrUnknownLeg
	}
	return l.NextCSeq(towardsCallee)
}

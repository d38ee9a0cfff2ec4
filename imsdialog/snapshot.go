package imsdialog

import (
	"errors"
	"fmt"
	"maps"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/imsdlg/imsdlg/dlgout"
)

// Snapshot is what a confirmed dialog needs to outlive the process
// (db_mode): plain values, in the form a store can keep.
type Snapshot struct {
	HEntry, HID uint32
	CallID      string
	FromTag     string
	UpBranch    string
	// From and To are header values (To without the callee's tag).
	From, To     string
	CallerTarget string
	CallerRoute  []string
	CallerDst    string
	CallerCSeq   uint32
	InviteCSeq   uint32
	Callee       LegSnapshot
	State        State
	Created      time.Time
	Start        time.Time
	Timeout      time.Duration
	// Deadline is when the lifetime timer fires; zero when none is armed.
	Deadline time.Time
	Vars     map[string]string
	Flags    uint32
	// CallerSDP is the caller's last session description, kept for
	// re-INVITE pings (Callee.SDP the callee's).
	CallerSDP []byte
	// Raced: answered across the caller's CANCEL with the flag E; the
	// lifetime (Deadline) is race_condition_timeout's, and its end a race.
	Raced bool
}

// LegSnapshot is the callee leg that answered.
type LegSnapshot struct {
	ToTag        string
	RemoteTarget string
	RouteSet     []string
	LocalCSeq    uint32
	RemoteCSeq   uint32
	// ToCalleeShift and ToCallerShift count our own requests on the leg
	// (dlgout.Leg).
	ToCalleeShift, ToCallerShift uint32
	SDP                          []byte
	Transport                    string
	Source                       string
	Branch                       int
	Created                      time.Time
	Updated                      time.Time
}

// DID is the dialog cookie of the snapshot.
func (s *Snapshot) DID() string { return makeDID(s.HEntry, s.HID) }

// Snapshot returns the cell as db_mode saves it; false when the dialog is
// not confirmed (it is then deleted from the store).
func (c *Cell) Snapshot() (Snapshot, bool) {
	leg := c.outs.Answered()
	if !persistable(c.state) || leg == nil {
		return Snapshot{}, false
	}
	e, id, _ := parseDID(c.did)
	s := Snapshot{
		HEntry: e, HID: id, CallID: c.callID, FromTag: c.fromTag, UpBranch: c.upBranch,
		From: c.from.Value(), To: c.to.Value(),
		CallerTarget: c.callerTarget.String(), CallerRoute: uriStrings(c.callerRoute), CallerDst: c.callerDst,
		CallerCSeq: c.callerCSeq, InviteCSeq: c.inviteCSeq,
		Callee: LegSnapshot{ToTag: leg.ToTag, RemoteTarget: leg.RemoteTarget.String(), RouteSet: uriStrings(leg.RouteSet),
			LocalCSeq: leg.LocalCSeq, RemoteCSeq: leg.RemoteCSeq, ToCalleeShift: leg.ToCalleeShift, ToCallerShift: leg.ToCallerShift,
			SDP: leg.SDP, Transport: leg.Transport, Source: leg.Source,
			Branch: leg.Branch, Created: leg.Created, Updated: leg.Updated},
		State: c.state, Created: c.created, Start: c.start, Timeout: c.timeout, Deadline: c.deadline,
		Flags: c.flags, CallerSDP: c.callerSDP, Raced: c.raced,
	}
	if len(c.vars) > 0 {
		s.Vars = maps.Clone(c.vars)
	}
	return s, true
}

// RestoreCell rebuilds a confirmed dialog's cell from its snapshot. The
// lifetime timer is the manager's to arm again (Deadline).
func RestoreCell(cfg *CellConfig, s Snapshot, ours func(*sip.Uri) bool) (*Cell, error) {
	if !persistable(s.State) {
		return nil, fmt.Errorf("state %s is not a confirmed one", s.State)
	}
	c := &Cell{cfg: cfg, ours: ours, did: s.DID(), callID: s.CallID, fromTag: s.FromTag, upBranch: s.UpBranch,
		state: s.State, created: s.Created, start: s.Start, timeout: s.Timeout, deadline: s.Deadline,
		callerDst: s.CallerDst, callerCSeq: s.CallerCSeq, inviteCSeq: s.InviteCSeq, flags: s.Flags, ping: cfg.Ping,
		reping: cfg.ReinvitePing, callerSDP: s.CallerSDP, raced: s.Raced}
	if c.timeout <= 0 {
		c.timeout = cfg.Timeout
	}
	var err error
	if c.from.DisplayName, err = sip.ParseAddressValue(s.From, &c.from.Address, &c.from.Params); err != nil {
		return nil, fmt.Errorf("from %q: %w", s.From, err)
	}
	if c.to.DisplayName, err = sip.ParseAddressValue(s.To, &c.to.Address, &c.to.Params); err != nil {
		return nil, fmt.Errorf("to %q: %w", s.To, err)
	}
	if err := sip.ParseUri(s.CallerTarget, &c.callerTarget); err != nil {
		return nil, fmt.Errorf("caller target %q: %w", s.CallerTarget, err)
	}
	if c.callerRoute, err = parseURIs(s.CallerRoute); err != nil {
		return nil, fmt.Errorf("caller route: %w", err)
	}
	l := s.Callee
	if l.ToTag == "" {
		return nil, errors.New("callee leg without a To tag")
	}
	leg := dlgout.Leg{ToTag: l.ToTag, LocalCSeq: l.LocalCSeq, RemoteCSeq: l.RemoteCSeq,
		ToCalleeShift: l.ToCalleeShift, ToCallerShift: l.ToCallerShift, SDP: l.SDP, Transport: l.Transport,
		Source: l.Source, Branch: l.Branch, Created: l.Created, Updated: l.Updated, LastCode: 200}
	if err := sip.ParseUri(l.RemoteTarget, &leg.RemoteTarget); err != nil {
		return nil, fmt.Errorf("callee target %q: %w", l.RemoteTarget, err)
	}
	if leg.RouteSet, err = parseURIs(l.RouteSet); err != nil {
		return nil, fmt.Errorf("callee route: %w", err)
	}
	c.outs = dlgout.Restore(leg)
	if len(s.Vars) > 0 {
		c.vars = maps.Clone(s.Vars)
	}
	return c, nil
}

func parseURIs(ss []string) ([]sip.Uri, error) {
	out := make([]sip.Uri, 0, len(ss))
	for _, s := range ss {
		var u sip.Uri
		if err := sip.ParseUri(strings.Trim(s, "<>"), &u); err != nil {
			return nil, fmt.Errorf("%q: %w", s, err)
		}
		out = append(out, u)
	}
	return out, nil
}

func uriStrings(us []sip.Uri) []string {
	out := make([]string, 0, len(us))
	for i := range us {
		out = append(out, us[i].String())
	}
	return out
}

func makeDID(entry, id uint32) string {
	var b [17]byte // one allocation, the string's
	return string(strconv.AppendUint(append(strconv.AppendUint(b[:0], uint64(entry), 16), '.'), uint64(id), 16))
}

// parseDID splits a did cookie; false when it is not one.
func parseDID(s string) (entry, id uint32, ok bool) {
	es, ids, found := strings.Cut(s, ".")
	if !found {
		return 0, 0, false
	}
	e, err1 := strconv.ParseUint(es, 16, 32)
	n, err2 := strconv.ParseUint(ids, 16, 32)
	if err1 != nil || err2 != nil {
		return 0, 0, false
	}
	return uint32(e), uint32(n), true
}

package imsdialog

import (
	"strconv"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/imsdlg/imsdlg/dlgout"
	"github.com/imsdlg/imsdlg/tm"
)

// Dialog is one dialog cell: the caller leg, the callee legs (dlgout) and
// the life cycle (FSM). Its fields are guarded by mu; read them through
// Info.
type Dialog struct {
	m *Manager
	// HEntry and HID identify the dialog (the did cookie is their hex).
	HEntry, HID uint32
	did         string
	CallID      string
	FromTag     string
	// upBranch is the top Via branch of the INVITE that created the
	// dialog: with Call-ID and From tag it names the dialog (DESIGN §4).
	upBranch string

	mu           sync.Mutex
	fsm          *FSM
	outs         dlgout.Set
	from         *sip.FromHeader // the caller's From, as received
	to           *sip.ToHeader   // the INVITE's To (no tag)
	callerTarget sip.Uri         // Contact of the INVITE
	callerRoute  []sip.Uri       // from us towards the caller, nearest first
	callerDst    string          // "udp:ip:port" of the caller's hop when it has no route set
	callerCSeq   uint32          // highest CSeq seen from the caller
	inviteCSeq   uint32
	inviteTx     *tm.Transaction // while the INVITE transaction runs
	timer        tm.Timer
	deadline     time.Time // when timer fires; zero without one
	byeTimer     tm.Timer
	vars         map[string]string
	flags        uint32
	cbs          []callbackReg
}

// DID is the dialog cookie: hex h_entry "." hex h_id.
func (d *Dialog) DID() string { return d.did }

func makeDID(entry, id uint32) string {
	return strconv.FormatUint(uint64(entry), 16) + "." + strconv.FormatUint(uint64(id), 16)
}

// parseDID splits a did cookie; false when it is not one.
func parseDID(s string) (entry, id uint32, ok bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == '.' {
			e, err1 := strconv.ParseUint(s[:i], 16, 32)
			n, err2 := strconv.ParseUint(s[i+1:], 16, 32)
			if err1 != nil || err2 != nil {
				return 0, 0, false
			}
			return uint32(e), uint32(n), true
		}
	}
	return 0, 0, false
}

// ourRR tells our Record-Route entry of this dialog: it carries our did
// and names one of our addresses. The did alone is not enough: another
// proxy of the same call running this module (a P-CSCF in front of this
// S-CSCF) derives the same did from the same Call-ID, and its entries must
// stay in the route sets.
func (d *Dialog) ourRR(u sip.Uri) bool {
	v, ok := u.UriParams.Get(d.m.cfg.RRParam)
	if !ok || v != d.did {
		return false
	}
	s := d.m.send()
	if s == nil {
		return true
	}
	port := u.Port
	if port == 0 && u.IsEncrypted() {
		port = 5061
	}
	return s.IsOurAddress(u.Host, port)
}

// LegInfo describes one callee leg (dlg_out) for management.
type LegInfo struct {
	ToTag        string   `json:"to_tag"`
	State        string   `json:"state"`
	RemoteTarget string   `json:"remote_target"`
	RouteSet     []string `json:"route_set"`
	CallerCSeq   uint32   `json:"caller_cseq"`
	CalleeCSeq   uint32   `json:"callee_cseq"`
	Branch       int      `json:"branch"`
	LastCode     int      `json:"last_code"`
	Source       string   `json:"source"`
	Created      int64    `json:"created"`
	Updated      int64    `json:"updated"`
}

// Info is a snapshot of a dialog, the shape of dlg.list (a contract).
type Info struct {
	HEntry      uint32            `json:"h_entry"`
	HID         uint32            `json:"h_id"`
	DID         string            `json:"did"`
	CallID      string            `json:"callid"`
	FromTag     string            `json:"from_tag"`
	ToTag       string            `json:"to_tag"`
	FromURI     string            `json:"from_uri"`
	ToURI       string            `json:"to_uri"`
	State       string            `json:"state"`
	EndReason   string            `json:"end_reason,omitempty"`
	Created     int64             `json:"created"`
	Start       int64             `json:"start,omitempty"`
	Ended       int64             `json:"ended,omitempty"`
	Timeout     int64             `json:"timeout"` // seconds of lifetime
	CallerCSeq  uint32            `json:"caller_cseq"`
	CallerRoute []string          `json:"caller_route_set"`
	CallerURI   string            `json:"caller_contact"`
	DlgOuts     []LegInfo         `json:"dlg_outs"`
	Vars        map[string]string `json:"vars,omitempty"`
	Flags       uint32            `json:"flags,omitempty"`
}

func uriStrings(us []sip.Uri) []string {
	out := make([]string, 0, len(us))
	for i := range us {
		out = append(out, us[i].String())
	}
	return out
}

func unix(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

// Info returns a snapshot; withCtx adds variables and flags (dlg.list_ctx).
func (d *Dialog) Info(withCtx bool) Info {
	d.mu.Lock()
	defer d.mu.Unlock()
	in := Info{
		HEntry: d.HEntry, HID: d.HID, DID: d.did, CallID: d.CallID, FromTag: d.FromTag,
		State: d.fsm.State.String(), Created: unix(d.fsm.Created), Start: unix(d.fsm.Start), Ended: unix(d.fsm.Ended),
		Timeout: int64(d.fsm.Timeout / time.Second), CallerCSeq: d.callerCSeq,
		CallerRoute: uriStrings(d.callerRoute), CallerURI: d.callerTarget.String(), DlgOuts: []LegInfo{},
	}
	if d.fsm.End != NotEnded {
		in.EndReason = d.fsm.End.String()
	}
	if d.from != nil {
		in.FromURI = d.from.Address.String()
	}
	if d.to != nil {
		in.ToURI = d.to.Address.String()
	}
	if a := d.outs.Answered(); a != nil {
		in.ToTag = a.ToTag
	}
	for _, l := range d.outs.Legs() {
		in.DlgOuts = append(in.DlgOuts, LegInfo{
			ToTag: l.ToTag, State: l.State.String(), RemoteTarget: l.RemoteTarget.String(), RouteSet: uriStrings(l.RouteSet),
			CallerCSeq: l.LocalCSeq, CalleeCSeq: l.RemoteCSeq, Branch: l.Branch, LastCode: l.LastCode, Source: l.Source,
			Created: unix(l.Created), Updated: unix(l.Updated),
		})
	}
	if withCtx {
		in.Flags = d.flags
		if len(d.vars) > 0 {
			in.Vars = make(map[string]string, len(d.vars))
			for k, v := range d.vars {
				in.Vars[k] = v
			}
		}
	}
	return in
}

// State returns the dialog's state.
func (d *Dialog) State() State {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.fsm.State
}

// SetVar sets a dialog variable (set_dlg_var); an empty value removes it.
func (d *Dialog) SetVar(key, val string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if persistable(d.fsm.State) && d.m != nil {
		d.m.markDirty(d, d.fsm.State)
	}
	if val == "" {
		delete(d.vars, key)
		return
	}
	if d.vars == nil {
		d.vars = make(map[string]string)
	}
	d.vars[key] = val
}

// Var returns a dialog variable (get_dlg_var).
func (d *Dialog) Var(key string) (string, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	v, ok := d.vars[key]
	return v, ok
}

// SetFlag, ResetFlag and IsFlagSet handle the dialog flags 0..31
// (dlg_setflag, dlg_resetflag, dlg_isflagset).
func (d *Dialog) SetFlag(n uint) {
	d.mu.Lock()
	d.flags |= 1 << (n & 31)
	d.mu.Unlock()
}

func (d *Dialog) ResetFlag(n uint) {
	d.mu.Lock()
	d.flags &^= 1 << (n & 31)
	d.mu.Unlock()
}

func (d *Dialog) IsFlagSet(n uint) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.flags&(1<<(n&31)) != 0
}

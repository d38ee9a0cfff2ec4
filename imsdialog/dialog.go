package imsdialog

import (
	"maps"
	"sync"
	"time"
	"weak"

	"github.com/emiago/sipgo/sip"

	"github.com/imsdlg/imsdlg/tm"
	"github.com/imsdlg/imsdlg/tm/wheel"
)

// Dialog is one dialog of the table: its Cell, guarded by a lock, with the
// I/O handles the cell's actions need (the proxy to send through, the
// INVITE transaction while it runs, the timers) and its callbacks.
type Dialog struct {
	m *Manager
	// HEntry and HID identify the dialog (the did cookie is their hex).
	HEntry, HID uint32
	CallID      string
	FromTag     string
	did         string
	upBranch    string

	mu       sync.Mutex
	cell     *Cell
	sender   tm.Sender
	inviteTx *tm.Transaction // while the INVITE transaction runs
	// doneTx is the INVITE transaction once it ended: it stays 64*T1 to
	// relay retransmitted 2xx, bound to this dialog; a dialog that ends
	// meanwhile unbinds itself (ActDestroy) so the transaction does not
	// hold an ended call's memory that long. Weak: a long call must not
	// keep the transaction.
	doneTx weak.Pointer[tm.Transaction]
	// timers are the dialog's pending timers, by Timer-1 (lifetime, BYE
	// wait, OPTIONS ping, ACK wait, re-INVITE ping). On tm's timer wheel
	// they are the entries below, fired through dialogFirer: no
	// allocation per arming (a call arms four or five), nor per dialog.
	timers  [numTimers]tm.Timer
	entries [numTimers]wheel.Entry
	cbs     []callbackReg
	// Admission (Limiter): the INVITE's decision waits in pending until
	// admitted (a pointer: 144 bytes that every held dialog carried for
	// the few milliseconds of a deferred admission); abandoned is set
	// when the INVITE ended meanwhile.
	admitted  bool
	abandoned bool
	pending   *tm.Decision
}

// DID is the dialog cookie: hex h_entry "." hex h_id.
func (d *Dialog) DID() string { return d.did }

// State returns the dialog's state.
func (d *Dialog) State() State {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cell.state
}

// ToTag is the To tag of the leg that answered, "" before an answer.
func (d *Dialog) ToTag() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cell.ToTag()
}

// Snapshot is Cell.Snapshot under the dialog's lock.
func (d *Dialog) Snapshot() (Snapshot, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cell.Snapshot()
}

func (d *Dialog) matchTags(fromTag, toTag string) bool {
	if fromTag != d.FromTag {
		return false
	}
	if toTag == "" {
		return true
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cell.outs.Get(toTag) != nil
}

// dialogKey keys the dialog binding of a tm transaction.
type dialogKey struct{}

type binding struct {
	d       *Dialog
	initial bool // the INVITE that created the dialog (else a request within it)
	// fromCaller is a request within the dialog's direction.
	fromCaller bool
}

// A transaction's binding is the dialog pointer itself, typed by its role:
// *Dialog for the INVITE that created the dialog, *callerSide and
// *calleeSide (conversions of the same pointer) for requests within it. A
// binding struct boxed into the transaction's value was an allocation of
// every transaction of a call and, at 3000 calls/s, tens of thousands of
// small live objects for the collector to mark (issue 14); three bindings
// kept in the Dialog would have pushed it out of its size class.
type (
	callerSide Dialog
	calleeSide Dialog
)

// bindValue is what a request within d binds its transaction to.
func bindValue(d *Dialog, fromCaller bool) any {
	if fromCaller {
		return (*callerSide)(d)
	}
	return (*calleeSide)(d)
}

// bindingOf reads a transaction's binding.
func bindingOf(t *tm.Transaction) (binding, bool) {
	switch v := t.Value(dialogKey{}).(type) {
	case *Dialog:
		return binding{d: v, initial: true}, true
	case *callerSide:
		return binding{d: (*Dialog)(v), fromCaller: true}, true
	case *calleeSide:
		return binding{d: (*Dialog)(v)}, true
	}
	return binding{}, false
}

// Current returns the dialog a transaction belongs to (get_current_dialog).
func Current(t *tm.Transaction) *Dialog {
	if t == nil {
		return nil
	}
	if b, ok := bindingOf(t); ok {
		return b.d
	}
	return nil
}

// createKey marks a transaction whose INVITE must create a dialog.
type createKey struct{}

// CreateDialog asks for a dialog for this initial INVITE (dlg_flag /
// create_dialog): a router calls it when dialog.enable is off and only
// some calls are to be tracked.
func CreateDialog(r *tm.Request) {
	if r.Tx != nil {
		r.Tx.SetValue(createKey{}, true)
	}
}

// EndRaces sets create_dialog's flag E on the dialog the INVITE of r
// creates, from the router (dialog.end_races sets it for every dialog):
// answered across the caller's CANCEL, the call is ended
// race_condition_timeout after the answer. Manager.SetEndRaces changes it
// on a dialog that exists.
func EndRaces(r *tm.Request) {
	if r.Tx != nil {
		r.Tx.SetValue(endRacesKey{}, true)
	}
}

// endRacesKey marks a transaction whose dialog has the flag E.
type endRacesKey struct{}

// SetCreateTimeout sets, from the router, the lifetime of the dialog the
// INVITE of r creates (Kamailio $dlg_ctx(timeout), OpenSIPS
// $DLG_timeout set before the dialog exists): from its answer, in place
// of default_timeout. The router runs before the dialog is made, so
// Manager.SetTimeout cannot reach it yet. Not positive: ignored.
func SetCreateTimeout(r *tm.Request, d time.Duration) {
	if r.Tx != nil && d > 0 {
		r.Tx.SetValue(createTimeoutKey{}, d)
	}
}

// createTimeoutKey holds SetCreateTimeout's lifetime on a transaction.
type createTimeoutKey struct{}

// LegInfo describes one callee leg (dlg_out) for management.
type LegInfo struct {
	ToTag        string
	State        string
	RemoteTarget string
	RouteSet     []string
	CallerCSeq   uint32
	CalleeCSeq   uint32
	Branch       int
	LastCode     int
	Source       string
	Created      time.Time
	Updated      time.Time
}

// Info is a dialog as management shows it.
type Info struct {
	HEntry, HID uint32
	DID         string
	CallID      string
	FromTag     string
	ToTag       string
	FromURI     string
	ToURI       string
	State       State
	EndReason   EndReason
	Created     time.Time
	Start       time.Time
	Ended       time.Time
	Deadline    time.Time
	Timeout     time.Duration
	CallerCSeq  uint32
	CallerRoute []string
	CallerURI   string
	DlgOuts     []LegInfo
	// Vars and Flags are filled for Info(true) (dlg.list_ctx).
	Vars  map[string]string
	Flags uint32
}

// Info returns a snapshot; withCtx adds variables and flags (dlg.list_ctx).
func (d *Dialog) Info(withCtx bool) Info {
	d.mu.Lock()
	defer d.mu.Unlock()
	c := d.cell
	in := Info{
		HEntry: d.HEntry, HID: d.HID, DID: d.did, CallID: d.CallID, FromTag: d.FromTag, ToTag: c.ToTag(),
		FromURI: c.from.Address.String(), ToURI: c.to.Address.String(),
		State: c.state, EndReason: c.end, Created: c.created, Start: c.start, Ended: c.ended,
		Deadline: c.deadline, Timeout: c.timeout, CallerCSeq: c.callerCSeq,
		CallerRoute: uriStrings(c.callerRoute), CallerURI: c.callerTarget.String(), DlgOuts: []LegInfo{},
	}
	for _, l := range c.outs.Legs() {
		in.DlgOuts = append(in.DlgOuts, LegInfo{
			ToTag: l.ToTag, State: l.State.String(), RemoteTarget: l.RemoteTarget.String(), RouteSet: uriStrings(l.RouteSet),
			CallerCSeq: l.LocalCSeq, CalleeCSeq: l.RemoteCSeq, Branch: l.Branch, LastCode: l.LastCode, Source: l.Source,
			Created: l.Created, Updated: l.Updated,
		})
	}
	if withCtx {
		in.Flags = c.flags
		if len(c.vars) > 0 {
			in.Vars = maps.Clone(c.vars)
		}
	}
	return in
}

// EndReason says why the dialog ended (NotEnded while it goes on).
func (d *Dialog) EndReason() EndReason { return d.endReason() }

// SetVar sets a dialog variable (set_dlg_var); an empty value removes it.
func (d *Dialog) SetVar(key, val string) {
	d.mu.Lock()
	acts := d.cell.SetVar(key, val)
	d.mu.Unlock()
	d.m.run(d, acts, CallbackParams{})
}

// Var returns a dialog variable (get_dlg_var).
func (d *Dialog) Var(key string) (string, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cell.Var(key)
}

// SetFlag, ResetFlag and IsFlagSet handle the dialog flags 0..31
// (dlg_setflag, dlg_resetflag, dlg_isflagset); a change is saved with the
// dialog (db_mode).
func (d *Dialog) SetFlag(n uint) { d.setFlag(n, true) }

// ResetFlag is dlg_resetflag.
func (d *Dialog) ResetFlag(n uint) { d.setFlag(n, false) }

// TestAndSetFlag is test_and_set_dlg_flag: under the dialog's lock, when
// flag n (0..31) is value it becomes !value and the result is true;
// otherwise nothing changes and the result is false. Two routers racing
// for one call (e.g. only the first of two forked answers may start
// charging) see one winner.
func (d *Dialog) TestAndSetFlag(n uint, value bool) bool {
	d.mu.Lock()
	if d.cell.IsFlagSet(n) != value {
		d.mu.Unlock()
		return false
	}
	acts := d.cell.SetFlag(n, !value)
	d.mu.Unlock()
	d.m.run(d, acts, CallbackParams{})
	return true
}

func (d *Dialog) setFlag(n uint, on bool) {
	d.mu.Lock()
	acts := d.cell.SetFlag(n, on)
	d.mu.Unlock()
	d.m.run(d, acts, CallbackParams{})
}

// IsFlagSet is dlg_isflagset.
func (d *Dialog) IsFlagSet(n uint) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cell.IsFlagSet(n)
}

// CallbackFunc is a dialog callback (register_dlgcb). It runs on the
// goroutine that saw the event, without the dialog's lock.
type CallbackFunc func(d *Dialog, typ Callback, p CallbackParams)

// CallbackParams carry the message that caused the callback, when one did.
// The message is valid during the callback only (tm reuses the memory of
// received responses and ACKs): copy what you keep.
type CallbackParams struct {
	Request  *sip.Request
	Response *sip.Response
	// FromCaller is true when the message came from the caller.
	FromCaller bool
}

type callbackReg struct {
	types Callback
	f     CallbackFunc
}

// RegisterCallback registers a global callback for the given types
// (CREATED is global by nature; the others apply to every dialog).
func (m *Manager) RegisterCallback(types Callback, f CallbackFunc) {
	m.gmu.Lock()
	defer m.gmu.Unlock()
	old := *m.global.Load()
	next := append(append([]callbackReg{}, old...), callbackReg{types, f})
	m.global.Store(&next)
}

// Saved tells the dialog that the persister wrote its record to the
// dialog store: its SAVED callbacks run (DLGCB_SAVED).
func (d *Dialog) Saved() { d.m.fire(d, CbSaved, CallbackParams{}) }

// RegisterCallback registers a callback on this dialog only.
func (d *Dialog) RegisterCallback(types Callback, f CallbackFunc) {
	d.mu.Lock()
	d.cbs = append(d.cbs, callbackReg{types, f})
	d.mu.Unlock()
}

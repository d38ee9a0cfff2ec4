package imsdialog

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/imsdlg/imsdlg/dlgdb"
	"github.com/imsdlg/imsdlg/dlgout"
	"github.com/imsdlg/imsdlg/profiles"
)

// Persistence modes (db_mode of the dialog modules).
const (
	DBModeNone     = 0 // dialogs live in memory only
	DBModeRealtime = 1 // every change is written as it happens
	DBModeDelayed  = 2 // changes are written every db_update_period
	DBModeShutdown = 3 // dialogs are written when the proxy stops
)

// PersistOptions configure SetPersistence.
type PersistOptions struct {
	Store dlgdb.Store
	// Node names this proxy's records; the same across restarts.
	Node string
	Mode int
	// Period is db_update_period, for DBModeDelayed.
	Period time.Duration
}

// persister is the dialog manager's write-behind of confirmed dialogs.
// Changes only mark a dialog dirty (no I/O on the SIP path); one goroutine
// writes what is dirty, in one round trip per flush.
type persister struct {
	opts  PersistOptions
	mu    sync.Mutex
	dirty map[string]*Dialog // did -> dialog to write, nil to delete
	kick  chan struct{}
	// failing: the last flush failed; logged once until one succeeds.
	failing bool
}

// SetPersistence makes the manager keep its confirmed dialogs in a store.
// Call it before traffic flows, then Restore, then run RunPersistence.
func (m *Manager) SetPersistence(o PersistOptions) error {
	switch {
	case o.Mode < DBModeNone || o.Mode > DBModeShutdown:
		return fmt.Errorf("db_mode: %d is not 0 (none), 1 (realtime), 2 (delayed) or 3 (shutdown)", o.Mode)
	case o.Mode == DBModeNone:
		return nil
	case o.Store == nil:
		return errors.New("db_mode: a dialog store (db_url) is required")
	case o.Node == "":
		return errors.New("db_mode: empty node id")
	case o.Mode == DBModeDelayed && o.Period <= 0:
		return fmt.Errorf("db_update_period: must be positive with db_mode 2, got %v", o.Period)
	}
	m.persist.Store(&persister{opts: o, dirty: map[string]*Dialog{}, kick: make(chan struct{}, 1)})
	return nil
}

// persistable: only confirmed dialogs outlive a restart; an early one's
// INVITE transaction dies with the process anyway.
func persistable(s State) bool { return s == ConfirmedNA || s == Confirmed }

// markDirty queues the dialog for writing (or, once it is no longer
// persistable, for deletion). Cheap: a map insert under a short lock.
func (m *Manager) markDirty(d *Dialog, state State) {
	p := m.persist.Load()
	if p == nil {
		return
	}
	p.mu.Lock()
	if persistable(state) {
		p.dirty[d.did] = d
	} else {
		p.dirty[d.did] = nil
	}
	p.mu.Unlock()
	if p.opts.Mode == DBModeRealtime {
		select {
		case p.kick <- struct{}{}:
		default:
		}
	}
}

// RunPersistence writes dirty dialogs until ctx ends: as they change in
// realtime mode, every db_update_period in delayed mode. It returns at
// once in the other modes. Call FlushPersistence after it returns.
func (m *Manager) RunPersistence(ctx context.Context) {
	p := m.persist.Load()
	if p == nil || (p.opts.Mode != DBModeRealtime && p.opts.Mode != DBModeDelayed) {
		return
	}
	var tick <-chan time.Time
	retry := time.Second
	if p.opts.Mode == DBModeDelayed {
		t := time.NewTicker(p.opts.Period)
		defer t.Stop()
		tick = t.C
		retry = p.opts.Period
	}
	// A failed realtime flush waits before trying again, not spinning.
	var backoff <-chan time.Time
	for {
		select {
		case <-ctx.Done():
			return
		case <-p.kick:
			if backoff != nil {
				continue
			}
		case <-tick:
		case <-backoff:
			backoff = nil
		}
		if err := m.flush(ctx, p, false); err != nil && p.opts.Mode == DBModeRealtime {
			backoff = time.After(retry)
		}
	}
}

// FlushPersistence writes what is pending; in shutdown mode, every
// confirmed dialog. Call it when the proxy stops.
func (m *Manager) FlushPersistence(ctx context.Context) error {
	p := m.persist.Load()
	if p == nil {
		return nil
	}
	return m.flush(ctx, p, p.opts.Mode == DBModeShutdown)
}

func (m *Manager) flush(ctx context.Context, p *persister, all bool) error {
	if all {
		for _, d := range m.Dialogs() {
			if s := d.State(); persistable(s) {
				m.markDirty(d, s)
			}
		}
	}
	p.mu.Lock()
	batch := p.dirty
	p.dirty = make(map[string]*Dialog, len(batch))
	p.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	changes := make([]dlgdb.Change, 0, len(batch))
	for did, d := range batch {
		c := dlgdb.Change{DID: did}
		if d != nil {
			if rec, ok := m.record(d); ok {
				c.Rec = rec
			}
		}
		changes = append(changes, c)
	}
	err := p.opts.Store.Apply(ctx, p.opts.Node, changes)
	if err != nil {
		// Put back what is not newer in the meantime: nothing is lost.
		p.mu.Lock()
		for did, d := range batch {
			if _, newer := p.dirty[did]; !newer {
				p.dirty[did] = d
			}
		}
		first := !p.failing
		p.failing = true
		p.mu.Unlock()
		m.stats.dbErrors.Add(1)
		if first {
			m.log.Warn("dialogs not written to the dialog store; retrying", "dialogs", len(batch), "error", err)
		}
		return err
	}
	p.mu.Lock()
	recovered := p.failing
	p.failing = false
	p.mu.Unlock()
	m.stats.dbWrites.Add(uint64(len(changes)))
	if recovered {
		m.log.Info("dialog store written again", "dialogs", len(batch))
	}
	return nil
}

// record snapshots a dialog; false when it is no longer persistable
// (written as a deletion).
func (m *Manager) record(d *Dialog) (*dlgdb.Record, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	leg := d.outs.Answered()
	if !persistable(d.fsm.State) || leg == nil {
		return nil, false
	}
	r := &dlgdb.Record{
		Version: dlgdb.CurrentVersion, HEntry: d.HEntry, HID: d.HID, CallID: d.CallID, FromTag: d.FromTag,
		UpBranch: d.upBranch, From: d.from.Value(), To: d.to.Value(),
		CallerTarget: d.callerTarget.String(), CallerRoute: uriStrings(d.callerRoute), CallerDst: d.callerDst,
		CallerCSeq: d.callerCSeq, InviteCSeq: d.inviteCSeq,
		Callee: dlgdb.Leg{ToTag: leg.ToTag, RemoteTarget: leg.RemoteTarget.String(), RouteSet: uriStrings(leg.RouteSet),
			LocalCSeq: leg.LocalCSeq, RemoteCSeq: leg.RemoteCSeq, Transport: leg.Transport, Source: leg.Source,
			Branch: leg.Branch, Created: leg.Created, Updated: leg.Updated},
		State: int(d.fsm.State), Created: d.fsm.Created, Start: d.fsm.Start,
		Timeout: d.fsm.Timeout.Milliseconds(), Deadline: d.deadline, Flags: d.flags,
	}
	if len(d.vars) > 0 {
		r.Vars = make(map[string]string, len(d.vars))
		for k, v := range d.vars {
			r.Vars[k] = v
		}
	}
	if set := m.Profiles(); set != nil {
		for _, ms := range set.Memberships(d.did) {
			r.Profiles = append(r.Profiles, dlgdb.Membership{Profile: ms.Profile, Value: ms.Value})
		}
	}
	return r, true
}

// Restore loads this node's saved dialogs into the table, with their
// timers (a dialog whose deadline passed while the proxy was down ends at
// once, with BYE both ways) and profile memberships. Call it after
// SetProfiles and before traffic flows. It returns the dids restored;
// records it cannot use are reported in the error and skipped.
func (m *Manager) Restore(ctx context.Context) ([]string, error) {
	p := m.persist.Load()
	if p == nil {
		return nil, nil
	}
	recs, err := p.opts.Store.Load(ctx, p.opts.Node)
	errs := []error{err}
	var dids []string
	for i := range recs {
		d, rerr := m.restoreOne(ctx, &recs[i])
		if rerr != nil {
			errs = append(errs, fmt.Errorf("dialog %s (callid %s): %w", recs[i].DID(), recs[i].CallID, rerr))
			continue
		}
		dids = append(dids, d.did)
	}
	return dids, errors.Join(errs...)
}

func (m *Manager) restoreOne(ctx context.Context, r *dlgdb.Record) (*Dialog, error) {
	if int(r.HEntry) >= len(m.table) {
		return nil, fmt.Errorf("h_entry %d is beyond hash_size %d (was hash_size changed?)", r.HEntry, len(m.table))
	}
	if !persistable(State(r.State)) {
		return nil, fmt.Errorf("state %d is not a confirmed one", r.State)
	}
	d := &Dialog{m: m, HEntry: r.HEntry, HID: r.HID, did: makeDID(r.HEntry, r.HID),
		CallID: r.CallID, FromTag: r.FromTag, upBranch: r.UpBranch,
		callerDst: r.CallerDst, callerCSeq: r.CallerCSeq, inviteCSeq: r.InviteCSeq, flags: r.Flags}
	var err error
	from := &sip.FromHeader{}
	if from.DisplayName, err = sip.ParseAddressValue(r.From, &from.Address, &from.Params); err != nil {
		return nil, fmt.Errorf("from %q: %w", r.From, err)
	}
	to := &sip.ToHeader{}
	if to.DisplayName, err = sip.ParseAddressValue(r.To, &to.Address, &to.Params); err != nil {
		return nil, fmt.Errorf("to %q: %w", r.To, err)
	}
	d.from, d.to = from, to
	if err := sip.ParseUri(r.CallerTarget, &d.callerTarget); err != nil {
		return nil, fmt.Errorf("caller target %q: %w", r.CallerTarget, err)
	}
	if d.callerRoute, err = parseURIs(r.CallerRoute); err != nil {
		return nil, fmt.Errorf("caller route: %w", err)
	}
	leg := dlgout.Leg{ToTag: r.Callee.ToTag, LocalCSeq: r.Callee.LocalCSeq, RemoteCSeq: r.Callee.RemoteCSeq,
		Transport: r.Callee.Transport, Source: r.Callee.Source, Branch: r.Callee.Branch,
		Created: r.Callee.Created, Updated: r.Callee.Updated, LastCode: 200}
	if err := sip.ParseUri(r.Callee.RemoteTarget, &leg.RemoteTarget); err != nil {
		return nil, fmt.Errorf("callee target %q: %w", r.Callee.RemoteTarget, err)
	}
	if leg.RouteSet, err = parseURIs(r.Callee.RouteSet); err != nil {
		return nil, fmt.Errorf("callee route: %w", err)
	}
	d.outs = dlgout.Restore(leg)
	d.fsm = &FSM{State: State(r.State), Created: r.Created, Start: r.Start,
		Timeout: time.Duration(r.Timeout) * time.Millisecond, ByeWait: m.cfg.ByeTimeout}
	if len(r.Vars) > 0 {
		d.vars = make(map[string]string, len(r.Vars))
		for k, v := range r.Vars {
			d.vars[k] = v
		}
	}
	if set := m.Profiles(); set != nil && len(r.Profiles) > 0 {
		ms := make([]profiles.Membership, 0, len(r.Profiles))
		for _, p := range r.Profiles {
			ms = append(ms, profiles.Membership{Profile: p.Profile, Value: p.Value})
		}
		if err := set.Restore(ctx, d.did, ms); err != nil {
			m.log.Warn("restored dialog: profile memberships not all restored", "callid", d.CallID, "did", d.did, "error", err)
		}
	}

	en := &m.table[d.HEntry]
	en.mu.Lock()
	if _, dup := en.byID[d.HID]; dup {
		en.mu.Unlock()
		return nil, errors.New("a dialog with this did is already in the table")
	}
	if en.byID == nil {
		en.byID = make(map[uint32]*Dialog)
	}
	en.byID[d.HID] = d
	// New dialogs must not take the id of a restored one.
	en.nextID = max(en.nextID, d.HID)
	en.mu.Unlock()

	m.stats.created.Add(1)
	m.stats.active.Add(1)
	m.stats.restored.Add(1)
	d.mu.Lock()
	if !r.Deadline.IsZero() {
		// At least a second: an expired dialog's BYEs wait for the
		// listeners, which start after the restore.
		left := max(r.Deadline.Sub(m.clock.Now()), time.Second)
		m.execLocked(d, []Action{{Kind: ActArmTimeout, After: left}})
	}
	d.mu.Unlock()
	m.log.Info("dialog restored", "callid", d.CallID, "did", d.did, "state", d.fsm.State.String())
	return d, nil
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

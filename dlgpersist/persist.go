package dlgpersist

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/imsdlg/imsdlg/dlgdb"
	"github.com/imsdlg/imsdlg/imsdialog"
	"github.com/imsdlg/imsdlg/tm"
)

// Persistence modes (db_mode of the dialog modules).
const (
	DBModeNone     = 0 // dialogs live in memory only
	DBModeRealtime = 1 // every change is written as it happens
	DBModeDelayed  = 2 // changes are written every db_update_period
	DBModeShutdown = 3 // dialogs are written when the proxy stops
)

// Options configure a Persister.
type Options struct {
	Store dlgdb.Store
	// Node names this proxy's records; the same across restarts.
	Node string
	Mode int
	// Period is db_update_period, for DBModeDelayed.
	Period time.Duration
	Logger *slog.Logger
	// Memberships lists the profiles a dialog is in, saved with it; nil:
	// none are.
	Memberships func(did string) []dlgdb.Membership
	// RestoreMemberships gives a restored dialog its saved memberships back
	// (recorded, never counted again: see profiles.Set.Restore); nil: they
	// are not restored.
	RestoreMemberships func(ctx context.Context, did string, ms []dlgdb.Membership) error
}

// Persister is the dialog manager's write-behind of confirmed dialogs
// (imsdialog.Persister). Changes only mark a dialog dirty (no I/O on the
// SIP path); one goroutine, Run, writes what is dirty, in one round trip
// per flush.
type Persister struct {
	opts Options
	log  *slog.Logger
	// write orders the store's writes: a flush's against RestoreDB's
	// snapshot and rewrite, so that a dialog that ends in between is not
	// written back after its deletion.
	write sync.Mutex
	mu    sync.Mutex
	dirty map[string]*imsdialog.Dialog // did -> dialog to write, or to delete once it is not confirmed
	kick  chan struct{}
	// failing: the last flush failed; logged once until one succeeds.
	failing bool
	stats   Stats
}

var _ imsdialog.Persister = (*Persister)(nil)

// New validates the options; run Run for the writes (db_mode 1 and 2) and
// call Flush when the proxy stops.
func New(o Options) (*Persister, error) {
	switch {
	case o.Mode < DBModeRealtime || o.Mode > DBModeShutdown:
		return nil, fmt.Errorf("db_mode: %d is not 1 (realtime), 2 (delayed) or 3 (shutdown)", o.Mode)
	case o.Store == nil:
		return nil, errors.New("db_mode: a dialog store (db_url) is required")
	case o.Node == "":
		return nil, errors.New("db_mode: empty node id")
	case o.Mode == DBModeDelayed && o.Period <= 0:
		return nil, fmt.Errorf("db_update_period: must be positive with db_mode 2, got %v", o.Period)
	}
	p := &Persister{opts: o, log: o.Logger, dirty: map[string]*imsdialog.Dialog{}, kick: make(chan struct{}, 1)}
	if p.log == nil {
		p.log = slog.Default()
	}
	return p, nil
}

// Stats returns the persistence counters.
func (p *Persister) Stats() *Stats { return &p.stats }

// Pending is the number of dialogs whose change is not written yet.
func (p *Persister) Pending() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.dirty)
}

// Changed queues the dialog for writing (or, once it is no longer
// confirmed, for deletion). Cheap: a map insert under a short lock.
func (p *Persister) Changed(d *imsdialog.Dialog) {
	p.mu.Lock()
	p.dirty[d.DID()] = d
	p.mu.Unlock()
	if p.opts.Mode == DBModeRealtime {
		select {
		case p.kick <- struct{}{}:
		default:
		}
	}
}

// Run writes dirty dialogs until ctx ends: as they change in realtime
// mode, every db_update_period in delayed mode. It returns at once in
// shutdown mode. Call Flush after it returns.
func (p *Persister) Run(ctx context.Context) {
	if p.opts.Mode != DBModeRealtime && p.opts.Mode != DBModeDelayed {
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
		if err := p.flush(ctx, nil); err != nil && p.opts.Mode == DBModeRealtime {
			backoff = time.After(retry)
		}
	}
}

// Flush writes what is pending; in shutdown mode, every confirmed dialog
// of m. Call it when the proxy stops.
func (p *Persister) Flush(ctx context.Context, m *imsdialog.Manager) error {
	var all []*imsdialog.Dialog
	if p.opts.Mode == DBModeShutdown && m != nil {
		all = m.Dialogs()
	}
	return p.flush(ctx, all)
}

func (p *Persister) flush(ctx context.Context, all []*imsdialog.Dialog) error {
	p.write.Lock()
	defer p.write.Unlock()
	for _, d := range all {
		p.mu.Lock()
		p.dirty[d.DID()] = d
		p.mu.Unlock()
	}
	p.mu.Lock()
	batch := p.dirty
	p.dirty = make(map[string]*imsdialog.Dialog, len(batch))
	p.mu.Unlock()
	if len(batch) == 0 {
		return nil
	}
	changes := make([]dlgdb.Change, 0, len(batch))
	for did, d := range batch {
		c := dlgdb.Change{DID: did}
		if s, ok := d.Snapshot(); ok {
			c.Rec = p.record(&s)
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
		p.stats.errors.Add(1)
		if first {
			p.log.Warn("dialogs not written to the dialog store; retrying", "dialogs", len(batch), "error", err)
		}
		return err
	}
	p.mu.Lock()
	recovered := p.failing
	p.failing = false
	p.mu.Unlock()
	p.stats.writes.Add(uint64(len(changes)))
	for _, c := range changes {
		if c.Rec != nil {
			batch[c.DID].Saved()
		}
	}
	if recovered {
		p.log.Info("dialog store written again", "dialogs", len(batch))
	}
	return nil
}

// RestoreDB rewrites the store from memory (dlg_restore_db, after the
// store and the proxy went out of step: a flushed database, a failover):
// the node's records become those of m's confirmed dialogs, in one
// replacement. Pending changes are written later as usual. It returns how
// many dialogs it wrote.
func (p *Persister) RestoreDB(ctx context.Context, m *imsdialog.Manager) (int, error) {
	p.write.Lock()
	defer p.write.Unlock()
	var recs []dlgdb.Record
	var saved []*imsdialog.Dialog
	for _, d := range m.Dialogs() {
		if s, ok := d.Snapshot(); ok {
			recs = append(recs, *p.record(&s))
			saved = append(saved, d)
		}
	}
	if err := p.opts.Store.Replace(ctx, p.opts.Node, recs); err != nil {
		p.stats.errors.Add(1)
		return 0, err
	}
	p.stats.writes.Add(uint64(len(recs)))
	for _, d := range saved {
		d.Saved()
	}
	p.log.Info("dialog store rewritten from memory", "dialogs", len(recs), "node", p.opts.Node)
	return len(recs), nil
}

// record is a snapshot as the store keeps it.
func (p *Persister) record(s *imsdialog.Snapshot) *dlgdb.Record {
	r := &dlgdb.Record{
		Version: dlgdb.CurrentVersion, HEntry: s.HEntry, HID: s.HID, CallID: s.CallID, FromTag: s.FromTag,
		UpBranch: s.UpBranch, From: s.From, To: s.To,
		CallerTarget: s.CallerTarget, CallerRoute: s.CallerRoute, CallerDst: s.CallerDst,
		CallerCSeq: s.CallerCSeq, InviteCSeq: s.InviteCSeq,
		Callee: dlgdb.Leg{ToTag: s.Callee.ToTag, RemoteTarget: s.Callee.RemoteTarget, RouteSet: s.Callee.RouteSet,
			LocalCSeq: s.Callee.LocalCSeq, RemoteCSeq: s.Callee.RemoteCSeq, Transport: s.Callee.Transport,
			CalleeShift: s.Callee.ToCalleeShift, CallerShift: s.Callee.ToCallerShift, SDP: s.Callee.SDP,
			Source: s.Callee.Source, Branch: s.Callee.Branch, Created: s.Callee.Created, Updated: s.Callee.Updated},
		State: int(s.State), Created: s.Created, Start: s.Start,
		Timeout: s.Timeout.Milliseconds(), Deadline: s.Deadline, Vars: s.Vars, Flags: s.Flags, CallerSDP: s.CallerSDP,
		Raced: s.Raced,
	}
	if p.opts.Memberships != nil {
		r.Profiles = p.opts.Memberships(r.DID())
	}
	return r
}

// snapshot is a stored record as the dialog module restores it.
func snapshot(r *dlgdb.Record) imsdialog.Snapshot {
	return imsdialog.Snapshot{
		HEntry: r.HEntry, HID: r.HID, CallID: r.CallID, FromTag: r.FromTag, UpBranch: r.UpBranch,
		From: r.From, To: r.To, CallerTarget: r.CallerTarget, CallerRoute: r.CallerRoute, CallerDst: r.CallerDst,
		CallerCSeq: r.CallerCSeq, InviteCSeq: r.InviteCSeq,
		Callee: imsdialog.LegSnapshot{ToTag: r.Callee.ToTag, RemoteTarget: r.Callee.RemoteTarget, RouteSet: r.Callee.RouteSet,
			LocalCSeq: r.Callee.LocalCSeq, RemoteCSeq: r.Callee.RemoteCSeq, Transport: r.Callee.Transport,
			ToCalleeShift: r.Callee.CalleeShift, ToCallerShift: r.Callee.CallerShift, SDP: r.Callee.SDP,
			Source: r.Callee.Source, Branch: r.Callee.Branch, Created: r.Callee.Created, Updated: r.Callee.Updated},
		State: imsdialog.State(r.State), Created: r.Created, Start: r.Start,
		Timeout: time.Duration(r.Timeout) * time.Millisecond, Deadline: r.Deadline, Vars: r.Vars, Flags: r.Flags,
		CallerSDP: r.CallerSDP, Raced: r.Raced,
	}
}

// ErrUnavailable wraps a Restore that read nothing because the dialog
// store did not answer; calling Restore again may succeed.
var ErrUnavailable = dlgdb.ErrUnavailable

// Restore loads this node's saved dialogs into m, with their timers and
// their profile memberships. A saved dialog whose deadline passed while the
// proxy was down is not restored: the proxy would have ended it then, the
// call cannot be assumed to exist, and its record is deleted (its profile
// counts go with the reconcile that follows, which does not keep it). Call
// it before the profiles' reconcile (which keeps the restored dialogs'
// counts); it may run while traffic flows (a store that was down at
// start). It returns the dids restored; records it cannot use are reported
// in the error and skipped. An error wrapping ErrUnavailable means nothing
// was read: try again later.
func (p *Persister) Restore(ctx context.Context, m *imsdialog.Manager, s tm.Sender) ([]string, error) {
	r, err := p.load(ctx, m, s, nil)
	return r.Loaded, err
}

// Sync is what SyncDB did: the dids loaded into memory, how many records
// were left to the dialogs memory already has, and how many were dropped
// as outlived.
type Sync struct {
	Loaded  []string
	Kept    int
	Dropped int
}

// SyncDB (OpenSIPS MI dlg_db_sync) loads this node's saved dialogs that
// memory does not hold, as Restore does at start: a backup proxy running
// with the node id of one that failed takes its calls over this way. A
// dialog memory holds, or one with a write or delete still pending here
// (a flush that failed), is never replaced by its record: with db_mode
// every change of ours is written, so memory is as new as the store or
// newer, and a record whose delete is pending is a call that ended.
func (p *Persister) SyncDB(ctx context.Context, m *imsdialog.Manager, s tm.Sender) (Sync, error) {
	p.write.Lock()
	defer p.write.Unlock()
	return p.load(ctx, m, s, func(did string) bool {
		if m.ByDID(did) != nil {
			return true
		}
		p.mu.Lock()
		_, pending := p.dirty[did]
		p.mu.Unlock()
		return pending
	})
}

// load is Restore with skip, when not nil, leaving out the records it
// names (counted as kept).
func (p *Persister) load(ctx context.Context, m *imsdialog.Manager, s tm.Sender, skip func(did string) bool) (Sync, error) {
	var res Sync
	recs, err := p.opts.Store.Load(ctx, p.opts.Node)
	if err != nil && len(recs) == 0 && errors.Is(err, dlgdb.ErrUnavailable) {
		return res, err
	}
	errs := []error{err}
	byDID := make(map[string]*dlgdb.Record, len(recs))
	snaps := make([]imsdialog.Snapshot, 0, len(recs))
	var outlived []dlgdb.Change
	for i := range recs {
		if skip != nil && skip(recs[i].DID()) {
			res.Kept++
			continue
		}
		snap := snapshot(&recs[i])
		if m.Outlived(&snap) {
			outlived = append(outlived, dlgdb.Change{DID: recs[i].DID()})
			p.log.Info("saved dialog dropped, not restored: its deadline passed while the proxy was down",
				"callid", snap.CallID, "did", snap.DID(), "deadline", snap.Deadline)
			continue
		}
		byDID[recs[i].DID()] = &recs[i]
		snaps = append(snaps, snap)
	}
	res.Dropped = len(outlived)
	if len(outlived) > 0 {
		p.stats.dropped.Add(uint64(len(outlived)))
		if err := p.opts.Store.Apply(ctx, p.opts.Node, outlived); err != nil {
			// Dropped again at the next restore.
			errs = append(errs, fmt.Errorf("delete %d outlived dialogs: %w", len(outlived), err))
		}
	}
	ds, err := m.Restore(snaps, s)
	errs = append(errs, err)
	res.Loaded = make([]string, 0, len(ds))
	for _, d := range ds {
		res.Loaded = append(res.Loaded, d.DID())
		r := byDID[d.DID()]
		if p.opts.RestoreMemberships == nil || r == nil || len(r.Profiles) == 0 {
			continue
		}
		if err := p.opts.RestoreMemberships(ctx, d.DID(), r.Profiles); err != nil {
			p.log.Warn("restored dialog: profile memberships not all restored", "callid", d.CallID, "did", d.DID(), "error", err)
		}
	}
	return res, errors.Join(errs...)
}

package imsdialog

import (
	"errors"
	"fmt"
	"time"

	"github.com/imsdlg/imsdlg/tm"
)

// Restore puts dialogs saved by db_mode back in the table, with their
// lifetime timers: a dialog whose deadline passed while the proxy was down
// ends at once (after at least a second, so that the listeners are up),
// with BYE both ways. s is what their requests go out through. Snapshots
// that cannot be used are reported in the error and skipped; the dialogs
// restored are returned.
func (m *Manager) Restore(snaps []Snapshot, s tm.Sender) ([]*Dialog, error) {
	if s == nil {
		return nil, errors.New("imsdialog: Restore needs the proxy's sender")
	}
	var errs []error
	var out []*Dialog
	for i := range snaps {
		d, err := m.restoreOne(&snaps[i], s)
		if err != nil {
			errs = append(errs, fmt.Errorf("dialog %s (callid %s): %w", snaps[i].DID(), snaps[i].CallID, err))
			continue
		}
		out = append(out, d)
	}
	return out, errors.Join(errs...)
}

func (m *Manager) restoreOne(snap *Snapshot, s tm.Sender) (*Dialog, error) {
	if int(snap.HEntry) >= len(m.table) {
		return nil, fmt.Errorf("h_entry %d is beyond hash_size %d (was hash_size changed?)", snap.HEntry, len(m.table))
	}
	if want := m.entryOf(snap.CallID); snap.HEntry != want {
		return nil, fmt.Errorf("h_entry %d is not where its Call-ID leads (%d): was hash_size changed?", snap.HEntry, want)
	}
	c, err := RestoreCell(&m.cell, *snap, s.IsOurURI)
	if err != nil {
		return nil, err
	}
	d := &Dialog{m: m, HEntry: snap.HEntry, HID: snap.HID, did: c.did, CallID: snap.CallID, FromTag: snap.FromTag,
		upBranch: snap.UpBranch, cell: c, sender: s, admitted: true}
	if !m.insert(d) {
		return nil, errors.New("a dialog with this did is already in the table")
	}
	m.stats.created.Add(1)
	m.stats.active.Add(1)
	m.stats.restored.Add(1)
	if !snap.Deadline.IsZero() {
		left := max(snap.Deadline.Sub(m.clock.Now()), time.Second)
		d.mu.Lock()
		c.deadline = time.Time{}
		acts := c.arm(nil, m.clock.Now(), TimerLifetime, left)
		m.timersLocked(d, acts)
		d.mu.Unlock()
	}
	if c.state == ConfirmedNA && m.cell.AckWait > 0 {
		d.mu.Lock()
		m.timersLocked(d, c.arm(nil, m.clock.Now(), TimerAck, m.cell.AckWait))
		d.mu.Unlock()
	}
	if c.ping != PingNone {
		d.mu.Lock()
		m.timersLocked(d, c.arm(nil, m.clock.Now(), TimerPing, m.cell.PingInterval))
		d.mu.Unlock()
	}
	if c.reping != PingNone {
		d.mu.Lock()
		m.timersLocked(d, c.arm(nil, m.clock.Now(), TimerReinvitePing, m.cell.ReinvitePingInterval))
		d.mu.Unlock()
	}
	m.log.Info("dialog restored", "callid", d.CallID, "did", d.did, "state", snap.State.String())
	m.fire(d, CbLoaded, CallbackParams{})
	return d, nil
}

// Outlived reports whether a saved dialog's deadline passed, by the
// manager's clock: the proxy would have ended it then, with BYE both ways,
// so the call cannot be assumed to exist any more and is not restored.
func (m *Manager) Outlived(s *Snapshot) bool {
	return !s.Deadline.IsZero() && !m.clock.Now().Before(s.Deadline)
}

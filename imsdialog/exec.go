package imsdialog

import (
	"context"
	"log/slog"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/imsdlg/imsdlg/tm"
)

// step runs one event through a dialog's cell and carries out its actions.
func (m *Manager) step(d *Dialog, ev Event, p CallbackParams) {
	m.stepIf(d, ev, p, nil)
}

// stepIf is step when ok, checked under the dialog's lock, says so; it
// reports whether the event was applied.
func (m *Manager) stepIf(d *Dialog, ev Event, p CallbackParams, ok func(*Cell) bool) bool {
	d.mu.Lock()
	if ok != nil && !ok(d.cell) {
		d.mu.Unlock()
		return false
	}
	acts := d.cell.Step(m.clock.Now(), ev)
	m.timersLocked(d, acts)
	d.mu.Unlock()
	m.run(d, acts, p)
	releaseActions(acts)
	return true
}

// timersLocked arms and stops the dialog's timers, under its lock so that a
// timer never outlives the decision that stopped it.
// dialogFirer is a Dialog as the wheel's Firer of its timers: the method
// stays off Dialog's API, and a pointer in an interface allocates nothing
// (a closure per dialog did).
type dialogFirer Dialog

// Fire steps the dialog off the wheel's goroutine: a firing may run
// callbacks and a limiter; tm's own timers must not wait for them.
func (f *dialogFirer) Fire(arg uint64) {
	d := (*Dialog)(f)
	go d.m.timerFired(d, timerEvents[arg])
}

func (m *Manager) timersLocked(d *Dialog, acts []Action) {
	for _, a := range acts {
		switch a.Kind {
		case ActArmTimer:
			i := int(a.Timer) - 1
			if i < 0 || i >= numTimers {
				continue
			}
			if m.wheel != nil {
				// Re-arming replaces a pending firing; one that lost the
				// race to Stop is stale and the cell ignores it.
				m.wheel.ScheduleFirer(&d.entries[i], a.After, (*dialogFirer)(d), uint64(a.Timer))
				d.timers[i] = &d.entries[i]
				continue
			}
			if d.timers[i] != nil {
				d.timers[i].Stop()
			}
			kind := timerEvents[a.Timer]
			d.timers[i] = m.clock.AfterFunc(a.After, func() { m.timerFired(d, kind) })
		case ActStopTimer:
			if i := int(a.Timer) - 1; i >= 0 && i < numTimers && d.timers[i] != nil {
				d.timers[i].Stop()
				d.timers[i] = nil
			}
		case ActDestroy:
			for i, t := range d.timers {
				if t != nil {
					t.Stop()
					d.timers[i] = nil
				}
			}
		}
	}
}

// run does the I/O and callbacks of a cell's actions, without the lock.
func (m *Manager) run(d *Dialog, acts []Action, p CallbackParams) {
	for _, a := range acts {
		switch a.Kind {
		case ActFire:
			m.fire(d, a.Callback, p)
		case ActStateChanged:
			end := d.endReason()
			m.stats.transition(a.From, a.To, end)
			if a.After > 0 {
				m.stats.duration.Observe(a.After.Seconds())
			}
			if a.To == Terminated && m.log.Enabled(m.ctx, slog.LevelInfo) {
				// Checked first: the boxed arguments were three
				// allocations of every call at a level that drops them.
				m.log.Info("call ended", "callid", d.CallID, "did", d.did, "reason", end.String(),
					"answered", a.From == Confirmed || a.From == ConfirmedNA, "duration", a.After.Round(time.Millisecond))
			}
			// Debug, and checked first: at 2000 calls/s the boxed
			// arguments alone were 20 allocations per call.
			if m.log.Enabled(context.Background(), slog.LevelDebug) {
				if m.debug() {
					m.log.Debug("dialog state", "callid", d.CallID, "did", d.did, "from", a.From.String(), "to", a.To.String())
				}
			}
			if m.onState != nil {
				m.observeState(d, a.From, a.To)
			}
		case ActSend:
			m.send(d, a.Send)
		case ActReplyUpstream:
			d.mu.Lock()
			tx := d.inviteTx
			d.mu.Unlock()
			if tx == nil {
				continue
			}
			hdrs := make([]sip.Header, 0, len(a.Headers))
			for _, h := range a.Headers {
				hdrs = append(hdrs, sip.NewHeader(h.Name, h.Value))
			}
			if err := tx.Reply(a.Code, a.Reason, hdrs...); err != nil {
				m.log.Info("early termination: INVITE already answered", "callid", d.CallID, "did", d.did, "error", err)
			}
		case ActRelease:
			if m.limiter != nil {
				m.limiter.Release(d.did)
			}
		case ActPersist:
			if m.persist != nil {
				m.persist.Changed(d)
			}
		case ActDestroy:
			m.remove(d)
			m.unbind(d)
		case ActLog:
			// A forked call logs its cancelled leg: the arguments were
			// three heap objects of every such call at levels that drop it.
			if !m.log.Enabled(m.ctx, a.Level) {
				continue
			}
			args := []any{"callid", d.CallID, "did", d.did}
			if a.Leg != "" {
				args = append(args, "to_tag", a.Leg)
			}
			if a.Reason != "" {
				args = append(args, "why", a.Reason)
			}
			m.log.Log(m.ctx, a.Level, a.Msg, args...)
		}
	}
}

// unbind detaches a destroyed dialog from its INVITE transaction when that
// ended and lingers (64*T1, relaying retransmitted 2xx): nothing it still
// sees concerns a destroyed dialog. A transaction still running keeps its
// binding: its outcome may be owed to a pending admission (abandoned).
func (m *Manager) unbind(d *Dialog) {
	d.mu.Lock()
	tx := d.doneTx.Value()
	d.mu.Unlock()
	if tx != nil {
		if b, ok := bindingOf(tx); ok && b.d == d {
			tx.SetValue(dialogKey{}, nil)
		}
	}
}

func (d *Dialog) endReason() EndReason {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cell.end
}

// debug tells whether Debug lines are written: their arguments cost
// allocations per message even when the handler drops them.
func (m *Manager) debug() bool { return m.log.Enabled(context.Background(), slog.LevelDebug) }

// send sends a request the cell built. A BYE it waits for reports back as
// EvByeDone, whatever happens to it.
func (m *Manager) send(d *Dialog, o *OutRequest) {
	req := buildRequest(o)
	if o.Method == sip.ACK {
		if err := d.sender.ForwardStateless(req, o.Dst); err != nil {
			m.log.Info("ACK not sent", "callid", d.CallID, "did", d.did, "error", err)
		}
		return
	}
	side := sideName(o.Side)
	if !o.Await {
		side = "leg " + tm.Tag(o.To.Params)
	}
	err := d.sender.Send(req, o.Dst, func(res *sip.Response, err error) {
		switch {
		case err != nil:
			m.log.Info(string(o.Method)+" failed", "callid", d.CallID, "did", d.did, "side", side, "error", err)
		default:
			m.log.Info(string(o.Method)+" answered", "callid", d.CallID, "did", d.did, "side", side, "code", res.StatusCode)
		}
		if o.Await {
			code := 0
			if res != nil {
				code = res.StatusCode
			}
			m.step(d, Event{Kind: awaited(o), Side: o.Side, Code: code, Method: string(o.Method)}, CallbackParams{})
		}
	})
	if err != nil {
		m.log.Info(string(o.Method)+" not sent", "callid", d.CallID, "did", d.did, "side", side, "error", err)
		if o.Await {
			m.step(d, Event{Kind: awaited(o), Side: o.Side, Method: string(o.Method)}, CallbackParams{})
		}
	}
}

// awaited is the event that reports the final reply of a request the cell
// waits for.
func awaited(o *OutRequest) EventKind {
	if o.Method == sip.OPTIONS || o.Method == sip.INVITE {
		return EvPingDone
	}
	return EvByeDone
}

// buildRequest turns a request the cell built into a message: the one
// builder of every request the dialog module sends.
func buildRequest(o *OutRequest) *sip.Request {
	req := sip.NewRequest(o.Method, *o.Target.Clone())
	for i := range o.Route {
		req.AppendHeader(&sip.RouteHeader{Address: *o.Route[i].Clone()})
	}
	from := o.From
	from.Address = *o.From.Address.Clone()
	from.Params = o.From.Params.Clone()
	to := o.To
	to.Address = *o.To.Address.Clone()
	to.Params = o.To.Params.Clone()
	req.AppendHeader(&from)
	req.AppendHeader(&to)
	cid := sip.CallIDHeader(o.CallID)
	req.AppendHeader(&cid)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: o.CSeq, MethodName: o.Method})
	mf := sip.MaxForwardsHeader(70)
	req.AppendHeader(&mf)
	for _, h := range o.Headers {
		req.AppendHeader(sip.NewHeader(h.Name, h.Value))
	}
	req.SetBody(o.Body)
	return req
}

// observeState runs the state observer; a panic in it costs the event,
// not the call.
func (m *Manager) observeState(d *Dialog, from, to State) {
	defer func() {
		if r := recover(); r != nil {
			m.log.Error("panic in the dialog state observer", "callid", d.CallID, "panic", r)
		}
	}()
	m.onState(d, from, to, m.clock.Now())
}

func (m *Manager) fire(d *Dialog, c Callback, p CallbackParams) {
	for _, r := range *m.global.Load() {
		if r.types&c != 0 {
			m.call(r.f, d, c, p)
		}
	}
	d.mu.Lock()
	cbs := d.cbs
	d.mu.Unlock()
	for _, r := range cbs {
		if r.types&c != 0 {
			m.call(r.f, d, c, p)
		}
	}
}

// call runs one callback; a panicking callback is logged and skipped, as
// timers run callbacks on goroutines of their own.
func (m *Manager) call(f CallbackFunc, d *Dialog, c Callback, p CallbackParams) {
	defer func() {
		if r := recover(); r != nil {
			m.log.Error("panic in a dialog callback", "callid", d.CallID, "type", c.String(), "panic", r)
		}
	}()
	f(d, c, p)
}

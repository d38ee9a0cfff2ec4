package imsdialog

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/imsdlg/imsdlg/internal/ratelog"
	"github.com/imsdlg/imsdlg/tm"
	"github.com/imsdlg/imsdlg/tm/wheel"
)

// Options build a Manager. Everything it works with is given here, once:
// nothing is set or swapped while calls flow.
type Options struct {
	Config Config
	Logger *slog.Logger
	// Clock runs the dialog timers (default: the wall clock). Give it the
	// *wheel.Wheel tm runs on (tm.Options.Clock) and the timers cost no
	// allocation.
	Clock tm.Clock
	// Limiter counts new dialogs in call limits; nil: no limits.
	Limiter Limiter
	// Persister saves confirmed dialogs (db_mode); nil: memory only.
	Persister Persister
	// OnStateChange observes every state change; nil: none.
	OnStateChange StateFunc
}

// ErrNotFound answers a command on a dialog that has ended.
var ErrNotFound = errors.New("dialog not found")

type entry struct {
	mu     sync.Mutex
	nextID uint32
	byID   map[uint32]*Dialog
}

// Manager owns the dialogs: the sharded table, their timers, and the I/O
// their cells ask for. It plugs into tm as one module (Module): a
// middleware on the request route and an observer of transactions.
type Manager struct {
	cfg   Config
	cell  CellConfig
	clock tm.Clock
	// wheel is clock when it is tm's timer wheel: dialog timers then ride
	// entries embedded in the dialogs.
	wheel   *wheel.Wheel
	log     *slog.Logger
	limiter Limiter
	persist Persister
	onState StateFunc
	table   []entry
	global  atomic.Pointer[[]callbackReg]
	// onTimeout is OnTimeout's hook (dlg_on_timeout); nil: none.
	onTimeout atomic.Pointer[func(*Dialog) time.Duration]
	gmu       sync.Mutex
	stats     Stats
	// validate is the validate_dialog mode, auto resolved to off.
	validate   string
	invalidLog ratelog.Limiter

	// ctx ends with Close; wg counts the goroutines the manager starts
	// (admissions), so Close can wait for them.
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// New builds a manager; plug it into the proxy with Module.
func New(o Options) (*Manager, error) {
	cfg := o.Config
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("dialog config: %w", err)
	}
	m := &Manager{cfg: cfg, clock: o.Clock, log: o.Logger, limiter: o.Limiter, persist: o.Persister,
		onState: o.OnStateChange, table: make([]entry, cfg.HashSize)}
	m.stats.init()
	// Each run starts its ids at a random point of each entry, so that
	// dialogs this run creates before it could read the saved ones of the
	// last run (a dialog store down at start) do not take their ids and
	// overwrite their records.
	for i := range m.table {
		m.table[i].nextID = rand.Uint32()
	}
	if m.log == nil {
		m.log = slog.Default()
	}
	if m.clock == nil {
		m.clock = tm.SystemClock()
	}
	m.wheel, _ = m.clock.(*wheel.Wheel)
	m.cell = CellConfig{RRParam: cfg.RRParam, Timeout: cfg.DefaultTimeout, ByeWait: cfg.ByeTimeout, TimeoutRefresh: cfg.TimeoutRefresh,
		EarlyTerminateCode: cfg.EarlyTerminateCode, ExtraHeaders: headerLines(cfg.ExtraHeaders),
		AbsorbSecond2xx: cfg.Second2xx == Second2xxAbsorb, PingInterval: cfg.OptionsPingInterval,
		AckWait: cfg.AckTimeout, ReinvitePingInterval: cfg.ReinvitePingInterval, KeepSDP: cfg.KeepSDP}
	m.cell.EndRaces, m.cell.RaceTimeout = cfg.EndRaces, cfg.RaceConditionTimeout
	m.cell.Ping, _ = ParsePing(cfg.Ping) // Validate refused a bad one
	m.cell.ReinvitePing, _ = ParsePing(cfg.ReinvitePing)
	m.validate = cfg.ValidateDialog
	if m.validate == ValidateAuto || m.validate == "" {
		m.validate = ValidateOff
	}
	empty := []callbackReg{}
	m.global.Store(&empty)
	m.ctx, m.cancel = context.WithCancel(context.Background())
	return m, nil
}

// Module is the dialog module as tm plugs it in: its middleware wraps the
// routers after it, its observer follows every transaction.
func (m *Manager) Module() tm.Module {
	return tm.Module{Name: "dialog", Middleware: m.middleware, Reply: replyHook{m}, Observer: observer{m}}
}

// Close waits for the admissions in flight. Dialogs stay in the table:
// what happens to them at a stop is the persister's business.
func (m *Manager) Close() {
	m.cancel()
	m.wg.Wait()
}

// Stats returns the dialog statistics.
func (m *Manager) Stats() *Stats { return &m.stats }

// Config returns the configuration the manager runs with.
func (m *Manager) Config() Config { return m.cfg }

// headerLines splits "Name: value" lines (validated by Config.Validate or
// Terminate).
func headerLines(lines []string) []Header {
	if len(lines) == 0 {
		return nil
	}
	out := make([]Header, 0, len(lines))
	for _, l := range lines {
		if name, value, err := tm.CheckHeaderLine(l); err == nil {
			out = append(out, Header{Name: name, Value: value})
		}
	}
	return out
}

// HashEntry is the h_entry of a Call-ID in a table of hashSize entries (a
// power of two): FNV-1a, the same in every process, so that a restored
// dialog sits where its Call-ID leads.
func HashEntry(callID string, hashSize int) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(callID); i++ {
		h ^= uint32(callID[i])
		h *= 16777619
	}
	return h & uint32(hashSize-1)
}

func (m *Manager) entryOf(callID string) uint32 { return HashEntry(callID, len(m.table)) }

// allocate gives a new dialog of callID its place in the table (h_entry,
// h_id) without putting it there yet.
func (m *Manager) allocate(callID string) (uint32, uint32) {
	e := m.entryOf(callID)
	en := &m.table[e]
	en.mu.Lock()
	en.nextID++
	if en.nextID == 0 { // wrapped: 0 reads as "no id" in too many tools
		en.nextID++
	}
	id := en.nextID
	en.mu.Unlock()
	return e, id
}

// insert puts a dialog in the table; false when its place is taken.
func (m *Manager) insert(d *Dialog) bool {
	en := &m.table[d.HEntry]
	en.mu.Lock()
	defer en.mu.Unlock()
	if _, dup := en.byID[d.HID]; dup {
		return false
	}
	if en.byID == nil {
		en.byID = make(map[uint32]*Dialog)
	}
	en.byID[d.HID] = d
	// New dialogs must not take the id of a restored one.
	en.nextID = max(en.nextID, d.HID)
	return true
}

func (m *Manager) remove(d *Dialog) {
	en := &m.table[d.HEntry]
	en.mu.Lock()
	if en.byID[d.HID] == d {
		delete(en.byID, d.HID)
	}
	en.mu.Unlock()
}

// Lookup finds a dialog by its table position (lookup_dlg).
func (m *Manager) Lookup(hEntry, hID uint32) *Dialog {
	if int(hEntry) >= len(m.table) {
		return nil
	}
	en := &m.table[hEntry]
	en.mu.Lock()
	defer en.mu.Unlock()
	return en.byID[hID]
}

// ByDID finds a dialog by its did ("h_entry.h_id" in hex), the id the
// profiles know it by.
func (m *Manager) ByDID(did string) *Dialog {
	e, id, ok := parseDID(did)
	if !ok {
		return nil
	}
	return m.Lookup(e, id)
}

// ByCallID returns the dialogs of a Call-ID (a forked call, or a call and
// its spiral, may have several), for a lookup by Call-ID alone.
func (m *Manager) ByCallID(callID string) []*Dialog { return m.byCallID(callID) }

// byCallID returns the dialogs of a Call-ID (they share a table entry).
func (m *Manager) byCallID(callID string) []*Dialog {
	en := &m.table[m.entryOf(callID)]
	en.mu.Lock()
	defer en.mu.Unlock()
	var out []*Dialog
	for _, d := range en.byID {
		if d.CallID == callID {
			out = append(out, d)
		}
	}
	return out
}

// Get finds a dialog by Call-ID and tags (dlg_get); toTag may be empty
// for a dialog not answered yet. The tags may be given in either order.
func (m *Manager) Get(callID, fromTag, toTag string) *Dialog {
	for _, d := range m.byCallID(callID) {
		if d.matchTags(fromTag, toTag) || d.matchTags(toTag, fromTag) {
			return d
		}
	}
	return nil
}

// Dialogs returns every dialog in the table.
func (m *Manager) Dialogs() []*Dialog {
	var out []*Dialog
	for i := range m.table {
		en := &m.table[i]
		en.mu.Lock()
		for _, d := range en.byID {
			out = append(out, d)
		}
		en.mu.Unlock()
	}
	return out
}

// Terminate ends a dialog in any state (dlg_terminate): an early one with
// CANCEL down and a final reply up (code 0: early_terminate_code), a
// confirmed one with BYE to the chosen side(s). Both carry a Reason with
// reason, and hdrs ("Name: value" lines). It returns ErrNotFound for an
// ended dialog.
func (m *Manager) Terminate(d *Dialog, side Side, code int, reason string, hdrs ...string) error {
	for i, h := range hdrs {
		if _, _, err := tm.CheckHeaderLine(h); err != nil {
			return fmt.Errorf("header %d %q: %w", i, h, err)
		}
	}
	ev := Event{Kind: EvTerminate, Side: side, Code: code, Reason: reason, Headers: headerLines(hdrs)}
	if !m.stepIf(d, ev, CallbackParams{}, func(c *Cell) bool { return !c.Ended() }) {
		return ErrNotFound
	}
	return nil
}

// TerminateDlg is terminate_dlg(callid, ftag, ttag, hdrs).
func (m *Manager) TerminateDlg(callID, fromTag, toTag string, side Side, reason string, hdrs ...string) error {
	d := m.Get(callID, fromTag, toTag)
	if d == nil {
		return fmt.Errorf("call-id %q from-tag %q to-tag %q: %w", callID, fromTag, toTag, ErrNotFound)
	}
	return m.Terminate(d, side, 0, reason, hdrs...)
}

// LookupTerminateDlg is lookup_terminate_dlg(h_entry, h_id, hdrs).
func (m *Manager) LookupTerminateDlg(hEntry, hID uint32, side Side, reason string, hdrs ...string) error {
	d := m.Lookup(hEntry, hID)
	if d == nil {
		return fmt.Errorf("dialog %d:%d: %w", hEntry, hID, ErrNotFound)
	}
	return m.Terminate(d, side, 0, reason, hdrs...)
}

// SetTimeout changes one dialog's lifetime (the timeout_avp of the
// manual): the timer restarts with it from now.
func (m *Manager) SetTimeout(d *Dialog, timeout time.Duration) error {
	if timeout <= 0 {
		return fmt.Errorf("dialog timeout must be positive, got %v", timeout)
	}
	if !m.stepIf(d, Event{Kind: EvSetTimeout, Timeout: timeout}, CallbackParams{}, func(c *Cell) bool { return !c.Ended() }) {
		return ErrNotFound
	}
	return nil
}

// OnTimeout sets the hook run when a dialog's lifetime ends
// (dialog.default_timeout, set_timeout), before the dialog is ended
// (OpenSIPS dlg_on_timeout): a positive duration it returns extends the
// call by that much, as SetTimeout would, and the call goes on; zero lets
// it end (CbExpired, then BYE both ways, or 408 upstream for an early
// dialog). It runs on a goroutine of its own and may call the Manager and
// the Dialog; a panic in it ends the dialog as without a hook. nil removes
// it. One hook per manager: per call, it decides from the dialog's vars and
// flags.
func (m *Manager) OnTimeout(f func(d *Dialog) time.Duration) {
	if f == nil {
		m.onTimeout.Store(nil)
		return
	}
	m.onTimeout.Store(&f)
}

// timerFired steps a dialog timer's event, after asking the OnTimeout hook
// whether a lifetime that ended is extended instead.
func (m *Manager) timerFired(d *Dialog, kind EventKind) {
	if h := m.onTimeout.Load(); h != nil && kind == EvTimeout && m.lifetimeOver(d) {
		if extend := m.askTimeout(*h, d); extend > 0 && m.SetTimeout(d, extend) == nil {
			m.log.Info("dialog timeout extended by the timeout hook", "callid", d.CallID, "did", d.did, "by", extend)
			return
		}
	}
	m.step(d, Event{Kind: kind}, CallbackParams{})
}

// lifetimeOver: the dialog goes on and its lifetime timer is the current
// one (not one a later SetTimeout replaced), and not a race's end, which
// the hook does not put off.
func (m *Manager) lifetimeOver(d *Dialog) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return !d.cell.Ended() && !d.cell.raced && (d.cell.deadline.IsZero() || !m.clock.Now().Before(d.cell.deadline))
}

func (m *Manager) askTimeout(h func(*Dialog) time.Duration, d *Dialog) (extend time.Duration) {
	defer func() {
		if r := recover(); r != nil {
			m.log.Error("panic in the dialog timeout hook", "callid", d.CallID, "did", d.did, "panic", r,
				"stack", string(debug.Stack()))
			extend = 0
		}
	}()
	return h(d)
}

// SetPing changes who one dialog pings with in-dialog OPTIONS (the
// create_dialog flags P and p, per call): from the next
// options_ping_interval on, or at once off with PingNone.
func (m *Manager) SetPing(d *Dialog, p Ping) error { return m.setPing(d, EvSetPing, p) }

func (m *Manager) setPing(d *Dialog, kind EventKind, p Ping) error {
	if p&^PingBoth != 0 {
		return fmt.Errorf("imsdialog: ping sides %d: want PingNone, PingCaller, PingCallee or PingBoth", p)
	}
	if !m.stepIf(d, Event{Kind: kind, Ping: p}, CallbackParams{}, func(c *Cell) bool { return !c.Ended() }) {
		return fmt.Errorf("dialog %s: %w", d.did, ErrNotFound)
	}
	return nil
}

// SetReinvitePing changes who one dialog pings with re-INVITEs (the
// create_dialog flags R and r, per call): from the next
// reinvite_ping_interval on, or at once off with PingNone. Set it while
// the call is set up (from the router): a dialog keeps the session
// descriptions a re-INVITE repeats only while it may need them, and a
// side whose description it lacks is pinged with OPTIONS instead.
func (m *Manager) SetReinvitePing(d *Dialog, p Ping) error {
	return m.setPing(d, EvSetReinvitePing, p)
}

// SetEndRaces sets or clears one dialog's create_dialog flag E
// (dialog.end_races for every dialog, EndRaces from the router): answered
// across the caller's CANCEL, the call is ended race_condition_timeout
// after the answer. It is read when the INVITE's outcome comes (a
// CREATED callback is in time).
func (m *Manager) SetEndRaces(d *Dialog, on bool) error {
	if !m.stepIf(d, Event{Kind: EvSetEndRaces, On: on}, CallbackParams{}, func(c *Cell) bool { return !c.Ended() }) {
		return fmt.Errorf("dialog %s: %w", d.did, ErrNotFound)
	}
	return nil
}

// InfoCtx is the dlg.list_ctx view of a dialog: MI_CONTEXT callbacks run
// first, so a module can put its own context into the dialog variables.
func (m *Manager) InfoCtx(d *Dialog) Info {
	m.fire(d, CbMIContext, CallbackParams{})
	return d.Info(true)
}

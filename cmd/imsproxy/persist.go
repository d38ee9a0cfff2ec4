package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/imsdlg/imsdlg/cachedb"
	"github.com/imsdlg/imsdlg/dlgdb"
	"github.com/imsdlg/imsdlg/dlgpersist"
	"github.com/imsdlg/imsdlg/events"
	"github.com/imsdlg/imsdlg/imsdialog"
	"github.com/imsdlg/imsdlg/internal/mgmt"
	"github.com/imsdlg/imsdlg/tm"
)

// EventsSection is the events section: where E_DLG_STATE_CHANGED goes.
type EventsSection struct {
	// EventIDFormat is OpenSIPS's event_id_format: 0 hash_entry and
	// hash_id, 1 id and db_id, 2 all (the default: the first round's id
	// and OpenSIPS's fields).
	EventIDFormat int                `config:"event_id_format"`
	QueueSize     int                `config:"queue_size"`
	BatchSize     int                `config:"batch_size"`
	RedisStream   RedisStreamSection `config:"redis_stream"`
	Webhook       WebhookSection     `config:"webhook"`
}

// RedisStreamSection is events.redis_stream; an empty url turns it off.
type RedisStreamSection struct {
	URL     string        `config:"url"`
	Stream  string        `config:"stream"`
	MaxLen  int64         `config:"maxlen"`
	Timeout time.Duration `config:"timeout" unit:"ms"`
}

// WebhookSection is events.webhook; an empty url turns it off.
type WebhookSection struct {
	URL     string        `config:"url"`
	Timeout time.Duration `config:"timeout" unit:"ms"`
}

func persistDefaults() map[string]any {
	return map[string]any{
		"dialog.db_mode":              0,
		"dialog.db_url":               "",
		"dialog.db_update_period":     "60s",
		"events.event_id_format":      2,
		"events.queue_size":           events.DefaultQueueSize,
		"events.batch_size":           events.DefaultBatchSize,
		"events.redis_stream.url":     "",
		"events.redis_stream.stream":  events.DefaultStream,
		"events.redis_stream.maxlen":  events.DefaultMaxLen,
		"events.redis_stream.timeout": events.DefaultTimeout.String(),
		"events.webhook.url":          "",
		"events.webhook.timeout":      events.DefaultTimeout.String(),
	}
}

// validatePersist checks dialog.db_* and events.*, naming each key.
func (c *Config) validatePersist() []error {
	var errs []error
	bad := func(key string, val any, format string, args ...any) {
		errs = append(errs, fmt.Errorf("config: %s = %s: %s", key, showValue(val), fmt.Sprintf(format, args...)))
	}
	d := c.Dialog
	switch {
	case d.DBMode < dlgpersist.DBModeNone || d.DBMode > dlgpersist.DBModeShutdown:
		bad("dialog.db_mode", d.DBMode, "must be 0 (none), 1 (realtime), 2 (every db_update_period) or 3 (at shutdown)")
	case d.DBMode != dlgpersist.DBModeNone && d.DBURL == "":
		bad("dialog.db_url", d.DBURL, "required with dialog.db_mode %d", d.DBMode)
	}
	if d.DBURL != "" {
		if _, err := cachedb.ParseURL(d.DBURL); err != nil {
			bad("dialog.db_url", d.DBURL, "%v", err)
		}
	}
	if d.DBUpdatePeriod <= 0 {
		bad("dialog.db_update_period", d.DBUpdatePeriod, "must be positive")
	}
	e := c.Events
	opts := events.Options{QueueSize: e.QueueSize, BatchSize: e.BatchSize}
	if err := opts.Validate(); err != nil {
		errs = append(errs, prefixed(err)...)
	}
	if _, err := events.ParseIDFormat(e.EventIDFormat); err != nil {
		errs = append(errs, prefixed(err)...)
	}
	if e.RedisStream.URL != "" {
		if err := c.streamOptions().Validate(); err != nil {
			errs = append(errs, prefixed(err)...)
		}
	}
	if e.Webhook.URL != "" {
		if err := (events.WebhookOptions{URL: e.Webhook.URL, Timeout: e.Webhook.Timeout}).Validate(); err != nil {
			errs = append(errs, prefixed(err)...)
		}
	}
	return errs
}

func prefixed(err error) []error {
	var out []error
	for _, e := range unjoin(err) {
		out = append(out, fmt.Errorf("config: %v", e))
	}
	return out
}

func (c *Config) streamOptions() events.RedisStreamOptions {
	s := c.Events.RedisStream
	return events.RedisStreamOptions{URL: s.URL, Stream: s.Stream, MaxLen: s.MaxLen, Timeout: s.Timeout}
}

// dialogDB is the dialog store of a running daemon: empty with db_mode 0.
type dialogDB struct {
	store     *dlgdb.Redis
	persister *dlgpersist.Persister
	node      string
}

// openDialogDB connects the dialog store of db_mode.
func openDialogDB(c *Config, prof *profileRuntime, log *slog.Logger) (*dialogDB, error) {
	if c.Dialog.DBMode == dlgpersist.DBModeNone {
		return &dialogDB{}, nil
	}
	st, err := dlgdb.NewRedis(dlgdb.RedisOptions{URL: c.Dialog.DBURL})
	if err != nil {
		return nil, fmt.Errorf("dialog.db_url: %w", err)
	}
	p, err := dlgpersist.New(dlgpersist.Options{Store: st, Node: prof.node, Mode: c.Dialog.DBMode,
		Period: c.Dialog.DBUpdatePeriod, Logger: log,
		Memberships: prof.memberships, RestoreMemberships: prof.restoreMemberships})
	if err != nil {
		st.Close()
		return nil, fmt.Errorf("dialog.%w", err)
	}
	return &dialogDB{store: st, persister: p, node: prof.node}, nil
}

// registerStoreMethods adds dlg.restore_db (OpenSIPS MI dlg_restore_db):
// the dialog store rewritten with the confirmed dialogs in memory; and
// dlg.db_sync (dlg_db_sync): the node's saved dialogs that memory lacks
// loaded into it.
func (db *dialogDB) registerStoreMethods(api *mgmt.Server, m *imsdialog.Manager, s tm.Sender) {
	api.Register("dlg.db_sync", func(ctx context.Context, _ json.RawMessage) (any, error) {
		if db.persister == nil {
			return nil, mgmt.NewError(mgmt.CodeInvalidRequest, "dlg.db_sync: no dialog store (dialog.db_mode is 0)")
		}
		res, err := db.persister.SyncDB(ctx, m, s)
		if errors.Is(err, dlgpersist.ErrUnavailable) {
			return nil, fmt.Errorf("dlg.db_sync (dialog.db_url): %w", err)
		}
		out := map[string]any{"loaded": len(res.Loaded), "kept": res.Kept, "dropped": res.Dropped, "node": db.node}
		if err != nil {
			// Records it could not use: the others are loaded all the same.
			out["errors"] = err.Error()
		}
		return out, nil
	})
	api.Register("dlg.restore_db", func(ctx context.Context, _ json.RawMessage) (any, error) {
		if db.persister == nil {
			return nil, mgmt.NewError(mgmt.CodeInvalidRequest, "dlg.restore_db: no dialog store (dialog.db_mode is 0)")
		}
		n, err := db.persister.RestoreDB(ctx, m)
		if err != nil {
			return nil, fmt.Errorf("dlg.restore_db (dialog.db_url): %w", err)
		}
		return map[string]any{"written": n, "node": db.node}, nil
	})
}

// flush writes what is pending at a stop (every confirmed dialog in
// db_mode 3).
func (db *dialogDB) flush(ctx context.Context, m *imsdialog.Manager) error {
	if db.persister == nil {
		return nil
	}
	return db.persister.Flush(ctx, m)
}

// pending is the number of dialogs a failed flush left unwritten.
func (db *dialogDB) pending() int {
	if db.persister == nil {
		return 0
	}
	return db.persister.Pending()
}

// stats are the persistence counters dlg.stats shows.
func (db *dialogDB) stats() map[string]int64 {
	if db.persister == nil {
		return map[string]int64{"db_writes": 0, "db_errors": 0, "db_outlived_dropped": 0}
	}
	return db.persister.Stats().Snapshot()
}

func (db *dialogDB) ready(ctx context.Context) error {
	if db.store == nil {
		return nil
	}
	if err := db.store.Client().Ping(ctx).Err(); err != nil {
		return fmt.Errorf("dialog.db_url: %w", err)
	}
	return nil
}

func (db *dialogDB) Close() error {
	if db.store == nil {
		return nil
	}
	return db.store.Close()
}

// publisher sends the dialogs' state changes to the event sinks.
type publisher struct {
	*events.Publisher
}

func (p publisher) onStateChange(d *imsdialog.Dialog, from, to imsdialog.State, at time.Time) {
	ev := events.Event{Name: events.StateChanged, ID: d.DID(), CallID: d.CallID, FromTag: d.FromTag,
		ToTag: d.ToTag(), OldState: int(from), NewState: int(to),
		OldStateName: from.String(), NewStateName: to.String(), Time: at}
	ev.WithIDs(d.HEntry, d.HID)
	if to == imsdialog.Terminated || to == imsdialog.Deleted {
		ev.EndReason = d.EndReason().String()
	}
	p.Publish(ev)
}

// startEvents builds the event publisher; nil when no sink is configured.
func startEvents(c *Config, node string, log *slog.Logger) (*publisher, error) {
	var sinks []events.Sink
	if c.Events.RedisStream.URL != "" {
		s, err := events.NewRedisStream(c.streamOptions())
		if err != nil {
			return nil, err
		}
		sinks = append(sinks, s)
	}
	if c.Events.Webhook.URL != "" {
		w, err := events.NewWebhook(events.WebhookOptions{URL: c.Events.Webhook.URL, Timeout: c.Events.Webhook.Timeout})
		if err != nil {
			return nil, err
		}
		sinks = append(sinks, w)
	}
	if len(sinks) == 0 {
		return nil, nil
	}
	ids, _ := events.ParseIDFormat(c.Events.EventIDFormat) // checked by LoadConfig
	pub, err := events.New(events.Options{QueueSize: c.Events.QueueSize, BatchSize: c.Events.BatchSize,
		Sinks: sinks, Logger: log, Node: node, IDs: ids})
	if err != nil {
		return nil, err
	}
	return &publisher{pub}, nil
}

// sinkNames lists the configured event sinks, for the start-up log.
func (c *Config) sinkNames() string {
	var n []string
	if c.Events.RedisStream.URL != "" {
		n = append(n, "redis_stream")
	}
	if c.Events.Webhook.URL != "" {
		n = append(n, "webhook")
	}
	return strings.Join(n, ",")
}

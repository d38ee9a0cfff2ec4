package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"

	"github.com/imsdlg/imsdlg/cachedb"
	"github.com/imsdlg/imsdlg/calllimit"
	"github.com/imsdlg/imsdlg/dlgdb"
	"github.com/imsdlg/imsdlg/imsdialog"
	"github.com/imsdlg/imsdlg/profiles"
)

// ProfilesSection is the profiles section: the profiles of the dialog
// module (OpenSIPS dialog names) and their cache DB.
type ProfilesSection struct {
	// CachedbURL holds the shared ("/s") profiles: redis://,
	// redis-sentinel:// or redis-cluster://. Empty: no shared profile may
	// be declared.
	CachedbURL string   `config:"cachedb_url"`
	WithValue  []string `config:"with_value"`
	NoValue    []string `config:"no_value"`
	// A day is the default (counts of a vanished node must outlive any
	// call), hence large.
	ProfileTimeout time.Duration `config:"profile_timeout" unit:"s,large"`
	ValuePrefix    string        `config:"profile_value_prefix"`
	NoValuePrefix  string        `config:"profile_no_value_prefix"`
	SizePrefix     string        `config:"profile_size_prefix"`
	// OnCachedbError is fail_open or fail_closed: whether a call whose
	// limit cannot be checked is accepted.
	OnCachedbError string `config:"on_cachedb_error"`
	// CachedbTimeout bounds one round trip to the cache DB.
	CachedbTimeout time.Duration `config:"cachedb_timeout" unit:"ms"`
	// RetryPeriod is how often decrements that failed are tried again.
	RetryPeriod time.Duration `config:"retry_period" unit:"s"`
	// NodeID names this node in the cache DB's membership records; it must
	// stay the same across restarts so a restarted node removes what it
	// counted before. Default: hostname plus the first SIP listen port.
	NodeID string `config:"node_id"`
}

// LimitSection is one entry of limits.
type LimitSection struct {
	Profile string `config:"profile"`
	Key     string `config:"key"`
	Max     int64  `config:"max"`
	Code    int    `config:"code"`
	Reason  string `config:"reason"`
	// Timeout, when set, is the lifetime of the calls this limit counts,
	// instead of dialog.default_timeout (timeout_avp by profile); the
	// shortest wins when several apply.
	Timeout time.Duration `config:"timeout" unit:"s,large"`
}

func profileDefaults() map[string]any {
	k := cachedb.DefaultKeys()
	return map[string]any{
		"profiles.cachedb_url":             "",
		"profiles.with_value":              []string{},
		"profiles.no_value":                []string{},
		"profiles.profile_timeout":         cachedb.DefaultTTL.String(),
		"profiles.profile_value_prefix":    k.ValuePrefix,
		"profiles.profile_no_value_prefix": k.NoValuePrefix,
		"profiles.profile_size_prefix":     k.SizePrefix,
		"profiles.on_cachedb_error":        "fail_closed",
		"profiles.cachedb_timeout":         cachedb.DefaultTimeout.String(),
		"profiles.retry_period":            "5s",
		"profiles.node_id":                 "",
		"limits":                           []any{},
	}
}

// validateProfiles checks the profiles section and the limits; each
// problem names its key.
func (c *Config) validateProfiles() []error {
	var errs []error
	bad := func(key string, val any, format string, args ...any) {
		errs = append(errs, fmt.Errorf("config: %s = %s: %s", key, showValue(val), fmt.Sprintf(format, args...)))
	}
	p := &c.Profiles
	if p.CachedbURL != "" {
		if _, err := cachedb.ParseURL(p.CachedbURL); err != nil {
			bad("profiles.cachedb_url", p.CachedbURL, "%v", err)
		}
	}
	if p.ProfileTimeout < time.Second {
		bad("profiles.profile_timeout", p.ProfileTimeout, "must be at least 1s (Redis expiries are whole seconds)")
	}
	if p.CachedbTimeout <= 0 {
		bad("profiles.cachedb_timeout", p.CachedbTimeout, "must be positive")
	}
	if p.RetryPeriod <= 0 {
		bad("profiles.retry_period", p.RetryPeriod, "must be positive")
	}
	for key, v := range map[string]string{
		"profiles.profile_value_prefix":    p.ValuePrefix,
		"profiles.profile_no_value_prefix": p.NoValuePrefix,
		"profiles.profile_size_prefix":     p.SizePrefix,
	} {
		if v == "" || strings.ContainsAny(v, " \t\r\n") {
			bad(key, v, "must be non-empty, without spaces")
		}
	}
	switch strings.ToLower(p.OnCachedbError) {
	case "fail_open", "fail_closed":
		p.OnCachedbError = strings.ToLower(p.OnCachedbError)
	default:
		bad("profiles.on_cachedb_error", p.OnCachedbError, "must be fail_open or fail_closed")
	}
	if strings.ContainsAny(p.NodeID, " \t\r\n") {
		bad("profiles.node_id", p.NodeID, "must not contain spaces")
	}
	// Names and their sharing are checked by the profiles package, which
	// knows the rules; a throw-away set tells us.
	var shared cachedb.Store
	if p.CachedbURL != "" {
		shared = cachedb.NewMemory(cachedb.DefaultKeys(), 0, nil)
	}
	set, err := profiles.New(profiles.Config{WithValue: p.WithValue, NoValue: p.NoValue}, nil, shared, "check")
	if err != nil {
		for _, e := range unjoin(err) {
			msg := strings.TrimPrefix(e.Error(), "profiles: ")
			msg = strings.Replace(msg, "profiles_with_value", "profiles.with_value", 1)
			msg = strings.Replace(msg, "profiles_no_value", "profiles.no_value", 1)
			msg = strings.Replace(msg, "no cachedb_url is configured", "profiles.cachedb_url is empty", 1)
			errs = append(errs, fmt.Errorf("config: %s", msg))
		}
	}
	limits, lerrs := c.limitList()
	errs = append(errs, lerrs...)
	if set != nil && len(lerrs) == 0 {
		// The dialog module checks limits against the declared profiles.
		if _, err := calllimit.CheckLimits(set, limits); err != nil {
			for _, e := range unjoin(err) {
				errs = append(errs, fmt.Errorf("config: %v", e))
			}
		}
	}
	return errs
}

// limitList converts the limits section.
func (c *Config) limitList() ([]calllimit.Limit, []error) {
	var errs []error
	out := make([]calllimit.Limit, 0, len(c.Limits))
	for i, l := range c.Limits {
		key := l.Key
		if key == "" {
			key = "none"
		}
		if l.Timeout < 0 {
			errs = append(errs, fmt.Errorf("config: limits[%d].timeout = %s: must not be negative (0: dialog.default_timeout)", i, showValue(l.Timeout)))
		}
		k, err := calllimit.ParseLimitKey(key)
		if err != nil {
			errs = append(errs, fmt.Errorf("config: limits[%d].key = %s: %v", i, showValue(l.Key), err))
			continue
		}
		out = append(out, calllimit.Limit{Profile: l.Profile, Key: k, Max: l.Max, Code: l.Code, Reason: l.Reason})
	}
	return out, errs
}

// nodeID is profiles.node_id or its default.
func (c *Config) nodeID() string {
	if c.Profiles.NodeID != "" {
		return c.Profiles.NodeID
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "imsproxy"
	}
	port := "5060"
	if len(c.ListenAddrs) > 0 {
		port = fmt.Sprint(c.ListenAddrs[0].Port)
	}
	return net.JoinHostPort(host, port)
}

// profileRuntime is the profiles part of a running daemon.
type profileRuntime struct {
	set      *profiles.Set
	shared   *cachedb.Redis // nil without cachedb_url
	node     string
	failOpen bool
}

// startProfiles builds the profile set. Call reconcile once the dialogs
// to keep are restored, before any call is taken.
func startProfiles(ctx context.Context, c *Config, log *slog.Logger) (*profileRuntime, error) {
	p := c.Profiles
	keys := cachedb.Keys{ValuePrefix: p.ValuePrefix, NoValuePrefix: p.NoValuePrefix, SizePrefix: p.SizePrefix}
	rt := &profileRuntime{node: c.nodeID(), failOpen: p.OnCachedbError == "fail_open"}
	var shared cachedb.Store
	if p.CachedbURL != "" {
		r, err := cachedb.NewRedis(cachedb.RedisOptions{URL: p.CachedbURL, Keys: keys,
			TTL: p.ProfileTimeout, Timeout: p.CachedbTimeout})
		if err != nil {
			return nil, fmt.Errorf("profiles.cachedb_url: %w", err)
		}
		rt.shared, shared = r, r
	}
	local := cachedb.NewMemory(keys, p.ProfileTimeout, nil)
	set, err := profiles.New(profiles.Config{WithValue: p.WithValue, NoValue: p.NoValue}, local, shared, rt.node)
	if err != nil {
		if rt.shared != nil {
			rt.shared.Close()
		}
		return nil, err
	}
	set.SetLogger(log)
	rt.set = set
	return rt, nil
}

// limiter is the call-limits plug-in of the dialog module. Without limits
// it still takes ended dialogs out of the profiles they were put in
// otherwise (restored with db_mode, set through the Go API).
func (rt *profileRuntime) limiter(c *Config, log *slog.Logger) (*calllimit.Limiter, error) {
	limits, _ := c.limitList() // validated by LoadConfig
	return calllimit.New(calllimit.Options{Set: rt.set, Limits: limits, FailOpen: rt.failOpen,
		// A call set-up waits at most for two round trips' worth.
		Timeout: 2 * c.Profiles.CachedbTimeout, Logger: log})
}

// memberships and restoreMemberships connect the dialog store to the
// profiles: a saved dialog carries its memberships, a restored one gets
// them back without counting them again.
func (rt *profileRuntime) memberships(did string) []dlgdb.Membership {
	ms := rt.set.Memberships(did)
	if len(ms) == 0 {
		return nil
	}
	out := make([]dlgdb.Membership, 0, len(ms))
	for _, m := range ms {
		out = append(out, dlgdb.Membership{Profile: m.Profile, Value: m.Value})
	}
	return out
}

func (rt *profileRuntime) restoreMemberships(ctx context.Context, did string, ms []dlgdb.Membership) error {
	pm := make([]profiles.Membership, 0, len(ms))
	for _, m := range ms {
		pm = append(pm, profiles.Membership{Profile: m.Profile, Value: m.Value})
	}
	return rt.set.Restore(ctx, did, pm)
}

// Close releases the cache DB connection.
func (rt *profileRuntime) Close() error {
	if rt.shared != nil {
		return rt.shared.Close()
	}
	return nil
}

// limitTimeouts gives the calls a limit counts that limit's timeout (the
// shortest of those that apply), when the dialog is created: the profiles
// know its memberships by then, since the limits are checked first.
func (rt *profileRuntime) limitTimeouts(c *Config, m *imsdialog.Manager, log *slog.Logger) {
	type rule struct {
		profile string
		timeout time.Duration
	}
	var rules []rule
	for _, l := range c.Limits {
		if l.Timeout > 0 {
			rules = append(rules, rule{l.Profile, l.Timeout})
		}
	}
	if len(rules) == 0 {
		return
	}
	m.RegisterCallback(imsdialog.CbCreated, func(d *imsdialog.Dialog, _ imsdialog.Callback, _ imsdialog.CallbackParams) {
		var best time.Duration
		for _, r := range rules {
			if rt.set.IsInProfile(d.DID(), r.profile, "") && (best == 0 || r.timeout < best) {
				best = r.timeout
			}
		}
		if best == 0 {
			return
		}
		if err := m.SetTimeout(d, best); err != nil {
			log.Debug("limit timeout not set: the dialog ended", "callid", d.CallID, "did", d.DID())
		}
	})
}

package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/go-viper/mapstructure/v2"
	"github.com/spf13/viper"
	"go.yaml.in/yaml/v3"

	"github.com/imsdlg/imsdlg/configs"
	"github.com/imsdlg/imsdlg/imsdialog"
	"github.com/imsdlg/imsdlg/internal/location"
	"github.com/imsdlg/imsdlg/tm"
)

// EnvPrefix is the prefix of the environment variables that override config
// keys: IMSDLG_TM_FR_TIMEOUT sets tm.fr_timeout.
const EnvPrefix = "IMSDLG"

// Config is the daemon configuration. The mapstructure names are the config
// keys operators write, so they are a contract: rename none of them.
//
// The fields tagged `mapstructure:"-"` are not keys: LoadConfig derives them
// from the keys once every value is valid, so the daemon never parses twice.
type Config struct {
	Listen      []string        `mapstructure:"listen"`
	Advertise   string          `mapstructure:"advertise"`
	Domains     []string        `mapstructure:"domains"`
	NextHop     string          `mapstructure:"next_hop"`
	RecordRoute bool            `mapstructure:"record_route"`
	Location    LocationConfig  `mapstructure:"location"`
	Mgmt        MgmtConfig      `mapstructure:"mgmt"`
	Log         LogConfig       `mapstructure:"log"`
	TM          TMSection       `mapstructure:"tm"`
	Dialog      DialogSection   `mapstructure:"dialog"`
	Profiles    ProfilesSection `mapstructure:"profiles"`
	Limits      []LimitSection  `mapstructure:"limits"`
	Events      EventsSection   `mapstructure:"events"`
	Role        string          `mapstructure:"role"`
	PCSCF       PCSCFSection    `mapstructure:"pcscf"`
	SCSCF       SCSCFSection    `mapstructure:"scscf"`

	// ListenAddrs is Listen parsed, in the same order.
	ListenAddrs []ListenAddr `mapstructure:"-"`
	// NextHopAddr is NextHop parsed; nil when NextHop is empty.
	NextHopAddr *ListenAddr `mapstructure:"-"`
	// AdvertiseHost and AdvertisePort are Advertise split; AdvertisePort is 0
	// when Advertise names no port, and both are zero when it is empty.
	AdvertiseHost string `mapstructure:"-"`
	AdvertisePort int    `mapstructure:"-"`
}

// LocationConfig is the location section: registrar limits and static
// contacts.
type LocationConfig struct {
	// Static is location.static as written: AOR -> contact URIs. It is read
	// straight from the YAML file (never from the environment or overrides)
	// because viper lower-cases and dot-splits map keys, which would corrupt
	// AORs such as "sip:Alice@example.com".
	Static         map[string][]string `mapstructure:"-"`
	MinExpires     Seconds             `mapstructure:"min_expires"`
	MaxExpires     Seconds             `mapstructure:"max_expires"`
	DefaultExpires Seconds             `mapstructure:"default_expires"`
	MaxContacts    int                 `mapstructure:"max_contacts"`

	// Contacts is Static parsed: the same AOR keys, each contact with its
	// q split off the URI.
	Contacts map[string][]StaticContact `mapstructure:"-"`
}

// MgmtConfig is the mgmt section.
type MgmtConfig struct {
	// Listen is HOST:PORT of the management HTTP server; "" disables it.
	Listen string `mapstructure:"listen"`
	// Pprof serves Go's runtime profiles under /debug/pprof/.
	Pprof bool `mapstructure:"pprof"`
}

// LogConfig is the log section.
type LogConfig struct {
	Level    string `mapstructure:"level"`     // debug|info|warn|error
	Format   string `mapstructure:"format"`    // text|json
	SIPTrace bool   `mapstructure:"sip_trace"` // log every SIP message sent and received
}

// TMSection is the tm section; see tm.Config for what each timer does.
// T1_timer is written so in the docs and accepted in any case, since viper
// lower-cases every key.
type TMSection struct {
	FrTimeout            Seconds `mapstructure:"fr_timeout"`
	FrInvTimeout         Seconds `mapstructure:"fr_inv_timeout"`
	RestartFrOnEachReply bool    `mapstructure:"restart_fr_on_each_reply"`
	Disable6xxBlock      bool    `mapstructure:"disable_6xx_block"`
	Auto100Trying        bool    `mapstructure:"auto_100trying"`
	T1                   Millis  `mapstructure:"t1_timer"`
	T2                   Millis  `mapstructure:"t2_timer"`
	T4                   Millis  `mapstructure:"t4_timer"`
	WtTimer              Seconds `mapstructure:"wt_timer"`
	MaxMessageSize       int     `mapstructure:"max_message_size"`
	UDPMaxSize           int     `mapstructure:"udp_max_size"`
	CancelWait           Millis  `mapstructure:"cancel_wait"`
	LocalTimeout         Seconds `mapstructure:"local_timeout"`
}

// DialogSection is the dialog section; names follow the ims_dialog manual.
type DialogSection struct {
	Enable             bool     `mapstructure:"enable"`
	HashSize           int      `mapstructure:"hash_size"`
	RRParam            string   `mapstructure:"rr_param"`
	DefaultTimeout     Seconds  `mapstructure:"default_timeout"`
	DetectSpirals      bool     `mapstructure:"detect_spirals"`
	MatchMode          int      `mapstructure:"dlg_match_mode"`
	ExtraHeaders       []string `mapstructure:"dlg_extra_hdrs"`
	EarlyTerminateCode int      `mapstructure:"early_terminate_code"`
	ByeTimeout         Seconds  `mapstructure:"bye_timeout"`
	DBMode             int      `mapstructure:"db_mode"`
	DBURL              string   `mapstructure:"db_url"`
	DBUpdatePeriod     Seconds  `mapstructure:"db_update_period"`
}

// DialogConfig converts the dialog section into the dialog module's config.
func (c *Config) DialogConfig() imsdialog.Config {
	d := c.Dialog
	return imsdialog.Config{
		Enable:             d.Enable,
		HashSize:           d.HashSize,
		RRParam:            d.RRParam,
		DefaultTimeout:     d.DefaultTimeout.Duration(),
		DetectSpirals:      d.DetectSpirals,
		MatchMode:          d.MatchMode,
		ExtraHeaders:       d.ExtraHeaders,
		EarlyTerminateCode: d.EarlyTerminateCode,
		ByeTimeout:         d.ByeTimeout.Duration(),
	}
}

// Seconds is a duration key whose plain integers count seconds, as the
// OpenSIPS/Kamailio manuals give fr_timeout and friends. Go duration
// strings ("500ms") are accepted as well.
type Seconds time.Duration

// Duration returns s as a time.Duration.
func (s Seconds) Duration() time.Duration { return time.Duration(s) }

func (s Seconds) String() string { return time.Duration(s).String() }

// Millis is a duration key whose plain integers count milliseconds, as the
// manuals give T1_timer, T2_timer, T4_timer and cancel_wait.
type Millis time.Duration

// Duration returns m as a time.Duration.
func (m Millis) Duration() time.Duration { return time.Duration(m) }

func (m Millis) String() string { return time.Duration(m).String() }

// TMConfig converts the tm section into the transaction layer's config.
func (c *Config) TMConfig() tm.Config {
	t := c.TM
	return tm.Config{
		FrTimeout:            t.FrTimeout.Duration(),
		FrInvTimeout:         t.FrInvTimeout.Duration(),
		RestartFrOnEachReply: t.RestartFrOnEachReply,
		Disable6xxBlock:      t.Disable6xxBlock,
		Auto100Trying:        t.Auto100Trying,
		T1:                   t.T1.Duration(),
		T2:                   t.T2.Duration(),
		T4:                   t.T4.Duration(),
		WtTimer:              t.WtTimer.Duration(),
		MaxMessageSize:       t.MaxMessageSize,
		UDPMaxSize:           t.UDPMaxSize,
		CancelWait:           t.CancelWait.Duration(),
		LocalTimeout:         t.LocalTimeout.Duration(),
	}
}

// SlogLevel returns the level as a slog.Level; an invalid level (which
// LoadConfig never lets through) falls back to info.
func (l LogConfig) SlogLevel() slog.Level {
	switch strings.ToLower(l.Level) {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

// NewLogger returns a logger writing to w in the configured format and level.
func (l LogConfig) NewLogger(w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: l.SlogLevel()}
	if strings.EqualFold(l.Format, "json") {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// Overrides collects "key=value" config overrides from a repeatable flag:
//
//	var ov Overrides
//	flag.Var(&ov, "set", "override a config key, key=value (repeatable)")
//	cfg, err := LoadConfig(path, ov)
type Overrides map[string]string

func (o *Overrides) String() string {
	if o == nil || len(*o) == 0 {
		return ""
	}
	keys := make([]string, 0, len(*o))
	for k := range *o {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + (*o)[k]
	}
	return strings.Join(parts, ",")
}

// Set adds one "key=value" override.
func (o *Overrides) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	k = strings.TrimSpace(k)
	if !ok || k == "" {
		return fmt.Errorf("override %q: want key=value", s)
	}
	if *o == nil {
		*o = make(Overrides)
	}
	(*o)[k] = v
	return nil
}

// defaults are the built-in values of every key. configs/standalone.yaml
// states the same values (a test keeps them in step); they are also what
// makes viper's AutomaticEnv see each key, since it only looks up the
// environment for keys it already knows.
func defaults() map[string]any {
	t := tm.DefaultConfig()
	dc := imsdialog.DefaultConfig()
	d := map[string]any{
		"listen":                      []string{"udp:127.0.0.1:5060", "tcp:127.0.0.1:5060"},
		"advertise":                   "",
		"domains":                     []string{"localhost", "127.0.0.1"},
		"next_hop":                    "",
		"record_route":                true,
		"location.min_expires":        "60s",
		"location.max_expires":        "3600s",
		"location.default_expires":    "3600s",
		"location.max_contacts":       10,
		"mgmt.listen":                 "127.0.0.1:8080",
		"mgmt.pprof":                  false,
		"log.level":                   "info",
		"log.format":                  "text",
		"log.sip_trace":               false,
		"tm.fr_timeout":               t.FrTimeout.String(),
		"tm.fr_inv_timeout":           t.FrInvTimeout.String(),
		"tm.restart_fr_on_each_reply": t.RestartFrOnEachReply,
		"tm.disable_6xx_block":        t.Disable6xxBlock,
		"tm.auto_100trying":           t.Auto100Trying,
		"tm.t1_timer":                 t.T1.String(),
		"tm.t2_timer":                 t.T2.String(),
		"tm.t4_timer":                 t.T4.String(),
		"tm.wt_timer":                 t.WtTimer.String(),
		"tm.max_message_size":         t.MaxMessageSize,
		"tm.udp_max_size":             t.UDPMaxSize,
		"tm.cancel_wait":              t.CancelWait.String(),
		"tm.local_timeout":            t.LocalTimeout.String(),
		"dialog.enable":               dc.Enable,
		"dialog.hash_size":            dc.HashSize,
		"dialog.rr_param":             dc.RRParam,
		"dialog.default_timeout":      dc.DefaultTimeout.String(),
		"dialog.detect_spirals":       dc.DetectSpirals,
		"dialog.dlg_match_mode":       dc.MatchMode,
		"dialog.dlg_extra_hdrs":       []string{},
		"dialog.early_terminate_code": dc.EarlyTerminateCode,
		"dialog.bye_timeout":          dc.ByeTimeout.String(),
	}
	for k, v := range persistDefaults() {
		d[k] = v
	}
	for k, v := range profileDefaults() {
		d[k] = v
	}
	for k, v := range roleDefaults() {
		d[k] = v
	}
	return d
}

// staticKey is the one key whose value is free-form (its map keys are AORs,
// not config keys), so it bypasses viper; see LocationConfig.Static.
const staticKey = "location.static"

// sections are the keys that hold other keys.
var sections = map[string]bool{"location": true, "mgmt": true, "log": true, "tm": true, "dialog": true, "profiles": true, "events": true, "events.redis_stream": true, "events.webhook": true,
	"pcscf": true, "scscf": true}

// LoadConfig loads the configuration from the YAML file at path, or from the
// embedded configs/standalone.yaml when path is "". Keys the file leaves out
// take their defaults; environment variables IMSDLG_<KEY> (dots written as
// underscores, e.g. IMSDLG_TM_FR_TIMEOUT) override the file, and overrides
// ("tm.fr_timeout" -> "10") override both. Values from the environment and
// from overrides are strings: lists are comma separated, durations take an
// integer in the key's unit or a Go duration string.
//
// An unknown key is an error naming it. Every value is validated and all
// problems are reported at once, joined; each names its key and value.
func LoadConfig(path string, overrides map[string]string) (*Config, error) {
	data := configs.Standalone
	if path != "" {
		var err error
		if data, err = os.ReadFile(path); err != nil {
			return nil, fmt.Errorf("config: %w", err)
		}
	}
	settings, static, errs, err := parseYAML(data)
	if err != nil {
		return nil, fmt.Errorf("config: parse %s: %w", sourceName(path), err)
	}

	v := viper.New()
	for k, d := range defaults() {
		v.SetDefault(k, d)
	}
	v.SetEnvPrefix(EnvPrefix)
	v.SetEnvKeyReplacer(strings.NewReplacer(".", "_"))
	// An empty variable must count, so IMSDLG_MGMT_LISTEN= can disable mgmt.
	v.AllowEmptyEnv(true)
	v.AutomaticEnv()
	if err := v.MergeConfigMap(settings); err != nil {
		return nil, fmt.Errorf("config: merge %s: %w", sourceName(path), err)
	}
	errs = append(errs, applyOverrides(v, overrides)...)

	// Unknown keys never reach viper, so the values can still be checked and
	// every problem reported in one go.
	var c Config
	if err := v.UnmarshalExact(&c, viper.DecodeHook(decodeHook())); err != nil {
		// A value that did not decode would show up again, misleadingly,
		// as a zero value in validation: stop here.
		return nil, errors.Join(append(errs, decodeProblems(err)...)...)
	}
	if static == nil {
		static = map[string][]string{}
	}
	c.Location.Static = static
	errs = append(errs, c.validate()...)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return &c, nil
}

// displayKey spells a key as the docs do; viper has lower-cased it.
func displayKey(key string) string {
	for _, t := range []string{"T1_timer", "T2_timer", "T4_timer"} {
		if key == "tm."+strings.ToLower(t) {
			return "tm." + t
		}
	}
	return key
}

func sourceName(path string) string {
	if path == "" {
		return "embedded standalone.yaml"
	}
	return path
}

func applyOverrides(v *viper.Viper, overrides map[string]string) []error {
	known := defaults()
	keys := make([]string, 0, len(overrides))
	for k := range overrides {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var errs []error
	for _, k := range keys {
		lk := strings.ToLower(strings.TrimSpace(k))
		switch _, ok := known[lk]; {
		case lk == staticKey:
			errs = append(errs, fmt.Errorf("config: override %q: %s can only be set in the config file", k, staticKey))
		case !ok:
			errs = append(errs, fmt.Errorf("config: unknown key %q (override)", k))
		default:
			v.Set(lk, overrides[k])
		}
	}
	return errs
}

// parseYAML decodes the file and checks its keys. It returns the settings
// for viper's config layer (location.static removed, nulls dropped so they
// mean "default"), location.static as written, and the problems with keys;
// err is set only when the file is not YAML at all.
func parseYAML(data []byte) (settings map[string]any, static map[string][]string, errs []error, err error) {
	var root map[string]any
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, nil, nil, err
	}
	known := defaults()
	settings = map[string]any{}
	var walk func(prefix, shown string, m map[string]any, out map[string]any)
	walk = func(prefix, shown string, m map[string]any, out map[string]any) {
		seen := map[string]string{}
		for _, k := range sortedKeys(m) {
			val := m[k]
			lk := strings.ToLower(k)
			full, name := join(prefix, lk), join(shown, k)
			if prev, dup := seen[lk]; dup {
				errs = append(errs, fmt.Errorf("config: key %q given twice (as %q and %q)", name, join(shown, prev), name))
				continue
			}
			seen[lk] = k
			switch _, leaf := known[full]; {
			case full == staticKey:
				var serrs []error
				static, serrs = parseStatic(name, val)
				errs = append(errs, serrs...)
			case sections[full]:
				if val == nil {
					continue
				}
				sub, ok := asMap(val)
				if !ok {
					errs = append(errs, fmt.Errorf("config: %s = %s: must be a mapping of keys", name, showValue(val)))
					continue
				}
				subOut := map[string]any{}
				walk(full, name, sub, subOut)
				out[lk] = subOut
			case leaf:
				if val != nil {
					out[lk] = val
				}
			default:
				errs = append(errs, fmt.Errorf("config: unknown key %q", name))
			}
		}
	}
	walk("", "", root, settings)
	return settings, static, errs, nil
}

func parseStatic(name string, val any) (map[string][]string, []error) {
	static := map[string][]string{}
	if val == nil {
		return static, nil
	}
	m, ok := asMap(val)
	if !ok {
		return static, []error{fmt.Errorf("config: %s = %s: must be a mapping of AOR to contact URIs", name, showValue(val))}
	}
	var errs []error
	for _, aor := range sortedKeys(m) {
		key := fmt.Sprintf("%s[%q]", name, aor)
		var contacts []string
		switch list := m[aor].(type) {
		case nil:
		case []any:
			for i, c := range list {
				s, ok := c.(string)
				if !ok {
					errs = append(errs, fmt.Errorf("config: %s[%d] = %s: must be a contact URI string", key, i, showValue(c)))
					continue
				}
				contacts = append(contacts, s)
			}
		default:
			errs = append(errs, fmt.Errorf("config: %s = %s: must be a list of contact URIs", key, showValue(list)))
			continue
		}
		static[aor] = contacts
	}
	return static, errs
}

func asMap(v any) (map[string]any, bool) {
	switch m := v.(type) {
	case map[string]any:
		return m, true
	case map[any]any:
		out := make(map[string]any, len(m))
		for k, x := range m {
			out[fmt.Sprint(k)] = x
		}
		return out, true
	}
	return nil, false
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func join(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

var (
	secondsType = reflect.TypeFor[Seconds]()
	millisType  = reflect.TypeFor[Millis]()
)

// decodeHook replaces viper's default hooks: durations in the key's integer
// unit, and comma-separated strings (from the environment and overrides)
// into lists.
func decodeHook() mapstructure.DecodeHookFunc {
	return mapstructure.ComposeDecodeHookFunc(durationHook, stringToListHook)
}

func durationHook(_ reflect.Type, to reflect.Type, data any) (any, error) {
	switch to {
	case secondsType:
		d, err := parseDuration(data, time.Second, "seconds")
		return Seconds(d), err
	case millisType:
		d, err := parseDuration(data, time.Millisecond, "milliseconds")
		return Millis(d), err
	}
	return data, nil
}

// parseDuration reads a Go duration string, or a plain number (possibly
// given as a string, as environment variables are) counted in unit.
func parseDuration(data any, unit time.Duration, unitName string) (time.Duration, error) {
	var n float64
	switch x := data.(type) {
	case time.Duration:
		return x, nil
	case string:
		s := strings.TrimSpace(x)
		if i, err := strconv.ParseInt(s, 10, 64); err == nil {
			n = float64(i)
			break
		}
		d, err := time.ParseDuration(s)
		if err != nil {
			return 0, &badValueError{x, "not a duration: want a Go duration such as \"30s\" or an integer number of " + unitName}
		}
		return d, nil
	default:
		rv := reflect.ValueOf(data)
		switch {
		case rv.CanInt():
			n = float64(rv.Int())
		case rv.CanUint():
			n = float64(rv.Uint())
		case rv.CanFloat():
			n = rv.Float()
		default:
			return 0, &badValueError{data, "not a duration: want a Go duration such as \"30s\" or an integer number of " + unitName}
		}
	}
	d := n * float64(unit)
	if math.IsNaN(d) || math.Abs(d) >= math.MaxInt64 {
		return 0, &badValueError{data, "out of range"}
	}
	return time.Duration(d), nil
}

// badValueError lets decodeProblems name the value next to the key, as the
// validation errors do.
type badValueError struct {
	value   any
	problem string
}

func (e *badValueError) Error() string { return fmt.Sprintf("%s: %s", showValue(e.value), e.problem) }

func stringToListHook(from reflect.Type, to reflect.Type, data any) (any, error) {
	if from.Kind() != reflect.String || to.Kind() != reflect.Slice {
		return data, nil
	}
	var out []string
	for part := range strings.SplitSeq(data.(string), ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out, nil
}

// decodeProblems turns mapstructure's joined errors into one error per key,
// in the same "config: KEY: problem" shape as the validation errors.
func decodeProblems(err error) []error {
	var out []error
	var walk func(error)
	walk = func(e error) {
		if de, ok := e.(*mapstructure.DecodeError); ok {
			inner := de.Unwrap()
			var nested *mapstructure.DecodeError
			if _, multi := inner.(interface{ Unwrap() []error }); multi || errors.As(inner, &nested) {
				walk(inner)
				return
			}
			key := displayKey(de.Name())
			var pe *mapstructure.ParseError
			var ue *mapstructure.UnconvertibleTypeError
			var be *badValueError
			switch {
			case errors.As(inner, &be):
				out = append(out, fmt.Errorf("config: %s = %s: %s", key, showValue(be.value), be.problem))
			case errors.As(inner, &pe):
				out = append(out, fmt.Errorf("config: %s = %s: not a valid %s", key, showValue(pe.Value), pe.Expected.Type()))
			case errors.As(inner, &ue):
				out = append(out, fmt.Errorf("config: %s = %s: want %s", key, showValue(ue.Value), ue.Expected.Type()))
			default:
				out = append(out, fmt.Errorf("config: %s: %w", key, inner))
			}
			return
		}
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, x := range j.Unwrap() {
				walk(x)
			}
			return
		}
		if de := (*mapstructure.DecodeError)(nil); errors.As(e, &de) {
			// A plain wrapper around decode errors ("decoding failed due
			// to..."): its text adds nothing.
			walk(errors.Unwrap(e))
			return
		}
		out = append(out, fmt.Errorf("config: %w", e))
	}
	walk(err)
	return out
}

// ListenAddr is a parsed "NETWORK:HOST:PORT" socket address.
type ListenAddr struct {
	Network string // "udp" or "tcp"
	Host    string // IPv6 without brackets
	Port    int
}

// HostPort returns "HOST:PORT", with brackets around an IPv6 host.
func (a ListenAddr) HostPort() string {
	return net.JoinHostPort(a.Host, strconv.Itoa(a.Port))
}

// String returns the address in the form ParseListen reads.
func (a ListenAddr) String() string { return a.Network + ":" + a.HostPort() }

// ParseListen parses a listen entry: "udp:HOST:PORT" or "tcp:HOST:PORT",
// with an IPv6 HOST in brackets ("udp:[::1]:5060"). The network is matched
// in any case; PORT must be 1..65535.
func ParseListen(s string) (ListenAddr, error) {
	network, hostport, ok := strings.Cut(s, ":")
	if !ok {
		return ListenAddr{}, errors.New(`want "udp:HOST:PORT" or "tcp:HOST:PORT"`)
	}
	network = strings.ToLower(network)
	if network != "udp" && network != "tcp" {
		return ListenAddr{}, fmt.Errorf("network %q is not udp or tcp", network)
	}
	return parseHostPort(network, hostport)
}

// ParseNextHop parses next_hop: what ParseListen reads, or a bare
// "HOST:PORT" meaning udp.
func ParseNextHop(s string) (ListenAddr, error) {
	lower := strings.ToLower(s)
	if strings.HasPrefix(lower, "udp:") || strings.HasPrefix(lower, "tcp:") {
		return ParseListen(s)
	}
	// "tls:host:5061" would otherwise fail as a confusing bad host:port.
	if scheme, rest, ok := strings.Cut(s, ":"); ok && strings.Contains(rest, ":") && !strings.HasPrefix(s, "[") && isAlpha(scheme) {
		return ListenAddr{}, fmt.Errorf("network %q is not udp or tcp", strings.ToLower(scheme))
	}
	return parseHostPort("udp", s)
}

func parseHostPort(network, hostport string) (ListenAddr, error) {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return ListenAddr{}, fmt.Errorf("want HOST:PORT: %w", err)
	}
	if err := checkHost(host); err != nil {
		return ListenAddr{}, err
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 {
		return ListenAddr{}, fmt.Errorf("port %q is not within 1..65535", port)
	}
	return ListenAddr{Network: network, Host: host, Port: p}, nil
}

// ParseAdvertise parses advertise: "HOST" or "HOST:PORT" (IPv6 in brackets
// when a port follows; a bare IPv6 address is taken as a host). Port is 0
// when none is given.
func ParseAdvertise(s string) (host string, port int, err error) {
	if ip := net.ParseIP(strings.Trim(s, "[]")); ip != nil {
		return strings.Trim(s, "[]"), 0, nil
	}
	if !strings.Contains(s, ":") {
		return s, 0, checkHost(s)
	}
	a, err := parseHostPort("", s)
	if err != nil {
		return "", 0, err
	}
	return a.Host, a.Port, nil
}

// checkHost accepts an IP address or a DNS name, so that a typo such as a
// stray scheme ("sip:host") is caught at load time rather than on the wire.
func checkHost(host string) error {
	if host == "" {
		return errors.New("empty host")
	}
	if net.ParseIP(host) != nil {
		return nil
	}
	for _, r := range host {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.' || r == '_') {
			return fmt.Errorf("host %q is neither an IP address nor a DNS name", host)
		}
	}
	return nil
}

func isAlpha(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return false
		}
	}
	return true
}

// StaticContact is one parsed contact of location.static.
type StaticContact struct {
	// URI is the contact without its q parameter.
	URI sip.Uri
	// Q is the forking preference, 0..1; 1 when the entry has none.
	Q float64
	// HasQ tells an explicit q from the default, for a location service
	// that orders unqualified contacts differently.
	HasQ bool
}

// ParseContact parses a static contact the way the location service
// does: a sip: or sips: URI, in <> when it carries URI parameters (such as
// ;transport=tcp), optionally followed by ";q=" in 0..1.
func ParseContact(s string) (StaticContact, error) {
	u, q, err := location.ParseStaticContact(s)
	if err != nil {
		return StaticContact{}, err
	}
	_, _, hasQ := strings.Cut(strings.ToLower(s[strings.LastIndexByte(s, '>')+1:]), ";q=")
	return StaticContact{URI: u, Q: q, HasQ: hasQ}, nil
}

func parseSIPURI(s string) (sip.Uri, error) {
	var u sip.Uri
	if err := sip.ParseUri(strings.TrimSpace(s), &u); err != nil {
		return sip.Uri{}, fmt.Errorf("not a SIP URI: %w", err)
	}
	if u.Scheme != "sip" && u.Scheme != "sips" {
		return sip.Uri{}, fmt.Errorf("scheme %q is not sip or sips", u.Scheme)
	}
	if u.Host == "" || u.Wildcard {
		return sip.Uri{}, errors.New("not a SIP URI: no host")
	}
	return u, nil
}

// validate checks every value, returning all problems, and fills the
// derived fields.
func (c *Config) validate() []error {
	var errs []error
	bad := func(key string, val any, format string, args ...any) {
		errs = append(errs, fmt.Errorf("config: %s = %s: %s", key, showValue(val), fmt.Sprintf(format, args...)))
	}

	if len(c.Listen) == 0 {
		errs = append(errs, errors.New("config: listen: needs at least one entry"))
	}
	c.ListenAddrs = nil
	for i, s := range c.Listen {
		a, err := ParseListen(s)
		if err != nil {
			bad(fmt.Sprintf("listen[%d]", i), s, "%v", err)
			continue
		}
		c.ListenAddrs = append(c.ListenAddrs, a)
	}

	c.AdvertiseHost, c.AdvertisePort = "", 0
	if c.Advertise != "" {
		host, port, err := ParseAdvertise(c.Advertise)
		if err != nil {
			bad("advertise", c.Advertise, "%v", err)
		}
		c.AdvertiseHost, c.AdvertisePort = host, port
	}

	for i, d := range c.Domains {
		if err := checkHost(d); err != nil {
			bad(fmt.Sprintf("domains[%d]", i), d, "%v", err)
		}
	}

	c.NextHopAddr = nil
	if c.NextHop != "" {
		a, err := ParseNextHop(c.NextHop)
		if err != nil {
			bad("next_hop", c.NextHop, "%v", err)
		} else {
			c.NextHopAddr = &a
		}
	}

	if c.Mgmt.Listen != "" {
		// Unlike SIP sockets, an empty host (all interfaces) and port 0
		// (any free port, for tests) make sense here.
		_, port, err := net.SplitHostPort(c.Mgmt.Listen)
		if err != nil {
			bad("mgmt.listen", c.Mgmt.Listen, "want HOST:PORT: %v", err)
		} else if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
			bad("mgmt.listen", c.Mgmt.Listen, "port %q is not within 0..65535", port)
		}
	}

	switch strings.ToLower(c.Log.Level) {
	case "debug", "info", "warn", "error":
		c.Log.Level = strings.ToLower(c.Log.Level)
	default:
		bad("log.level", c.Log.Level, "must be debug, info, warn or error")
	}
	switch strings.ToLower(c.Log.Format) {
	case "text", "json":
		c.Log.Format = strings.ToLower(c.Log.Format)
	default:
		bad("log.format", c.Log.Format, "must be text or json")
	}

	positive := func(key string, d time.Duration, shown fmt.Stringer) {
		if d <= 0 {
			bad(key, shown, "must be positive")
		}
	}
	l := &c.Location
	positive("location.min_expires", l.MinExpires.Duration(), l.MinExpires)
	positive("location.max_expires", l.MaxExpires.Duration(), l.MaxExpires)
	positive("location.default_expires", l.DefaultExpires.Duration(), l.DefaultExpires)
	if l.MinExpires > 0 && l.MaxExpires > 0 && l.MaxExpires < l.MinExpires {
		bad("location.max_expires", l.MaxExpires, "must not be below location.min_expires (%s)", l.MinExpires)
	}
	if l.DefaultExpires > 0 && (l.DefaultExpires < l.MinExpires || l.DefaultExpires > l.MaxExpires) {
		bad("location.default_expires", l.DefaultExpires, "must be within location.min_expires..location.max_expires (%s..%s)", l.MinExpires, l.MaxExpires)
	}
	if l.MaxContacts < 1 {
		bad("location.max_contacts", l.MaxContacts, "must be at least 1")
	}
	errs = append(errs, c.validateStatic()...)

	t := &c.TM
	positive("tm.fr_timeout", t.FrTimeout.Duration(), t.FrTimeout)
	positive("tm.fr_inv_timeout", t.FrInvTimeout.Duration(), t.FrInvTimeout)
	positive("tm.T1_timer", t.T1.Duration(), t.T1)
	positive("tm.T2_timer", t.T2.Duration(), t.T2)
	positive("tm.T4_timer", t.T4.Duration(), t.T4)
	positive("tm.wt_timer", t.WtTimer.Duration(), t.WtTimer)
	positive("tm.cancel_wait", t.CancelWait.Duration(), t.CancelWait)
	positive("tm.local_timeout", t.LocalTimeout.Duration(), t.LocalTimeout)
	if t.T1 > 0 && t.T2 > 0 && t.T2 < t.T1 {
		bad("tm.T2_timer", t.T2, "must not be below tm.T1_timer (%s)", t.T1)
	}
	if t.MaxMessageSize < 1024 || t.MaxMessageSize > 65535 {
		bad("tm.max_message_size", t.MaxMessageSize, "must be within 1024..65535")
	}
	if t.UDPMaxSize < 500 || t.UDPMaxSize > 65000 {
		bad("tm.udp_max_size", t.UDPMaxSize, "must be within 500..65000")
	}
	// The dialog module knows its own limits; its messages start with the
	// parameter's name.
	if err := c.DialogConfig().Validate(); err != nil {
		for _, e := range unjoin(err) {
			errs = append(errs, fmt.Errorf("config: dialog.%v", e))
		}
	}
	errs = append(errs, c.validateProfiles()...)
	errs = append(errs, c.validatePersist()...)
	errs = append(errs, c.validateRoles()...)
	return errs
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

func (c *Config) validateStatic() []error {
	var errs []error
	c.Location.Contacts = make(map[string][]StaticContact, len(c.Location.Static))
	for _, aor := range sortedKeys(c.Location.Static) {
		key := fmt.Sprintf("%s[%q]", staticKey, aor)
		u, err := parseSIPURI(aor)
		if err != nil {
			errs = append(errs, fmt.Errorf("config: %s: AOR %q: %v", key, aor, err))
			continue
		}
		served := slices.ContainsFunc(c.Domains, func(d string) bool { return strings.EqualFold(d, u.Host) })
		if !served {
			errs = append(errs, fmt.Errorf("config: %s: AOR domain %q is not in domains %q; no request would ever look it up", key, u.Host, c.Domains))
		}
		var contacts []StaticContact
		for i, s := range c.Location.Static[aor] {
			sc, err := ParseContact(s)
			if err != nil {
				errs = append(errs, fmt.Errorf("config: %s[%d] = %q: %v", key, i, s, err))
				continue
			}
			contacts = append(contacts, sc)
		}
		c.Location.Contacts[aor] = contacts
	}
	return errs
}

func showValue(v any) string {
	switch x := v.(type) {
	case string:
		return strconv.Quote(x)
	case fmt.Stringer:
		return strconv.Quote(x.String())
	case nil:
		return "null"
	}
	return fmt.Sprint(v)
}

package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/netip"
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
	"github.com/imsdlg/imsdlg/internal/routing"
	"github.com/imsdlg/imsdlg/tm"
)

// EnvPrefix is the prefix of the environment variables that override config
// keys: IMSDLG_TM_FR_TIMEOUT sets tm.fr_timeout.
const EnvPrefix = "IMSDLG"

// Config is the daemon configuration. The `config` tags are the keys
// operators write, so they are a contract: rename none of them. The tm and
// dialog sections are the packages' own Configs, which carry their keys;
// configsection.go says what the tags mean.
//
// The fields tagged `config:"-"` are not keys: LoadConfig derives them
// from the keys once every value is valid, so the daemon never parses twice.
type Config struct {
	Listen      []string           `config:"listen"`
	Advertise   string             `config:"advertise"`
	Domains     []string           `config:"domains"`
	NextHop     string             `config:"next_hop"`
	RecordRoute bool               `config:"record_route"`
	Location    LocationConfig     `config:"location"`
	Mgmt        MgmtConfig         `config:"mgmt"`
	Log         LogConfig          `config:"log"`
	TM          tm.Config          `config:"tm"`
	Dialog      DialogSection      `config:"dialog"`
	Profiles    ProfilesSection    `config:"profiles"`
	Limits      []LimitSection     `config:"limits"`
	Events      EventsSection      `config:"events"`
	Shutdown    ShutdownSection    `config:"shutdown"`
	Runtime     RuntimeSection     `config:"runtime"`
	TCP         TCPSection         `config:"tcp"`
	UDP         UDPSection         `config:"udp"`
	Role        string             `config:"role"`
	PCSCF       PCSCFSection       `config:"pcscf"`
	SCSCF       SCSCFSection       `config:"scscf"`
	Replicate   []ReplicateSection `config:"replicate"`

	// Replications are Replicate parsed, in order.
	Replications []routing.Replication `config:"-"`
	// ListenAddrs is Listen parsed, in the same order.
	ListenAddrs []ListenAddr `config:"-"`
	// NextHopAddr is NextHop parsed; nil when NextHop is empty.
	NextHopAddr *ListenAddr `config:"-"`
	// AdvertiseHost and AdvertisePort are Advertise split; AdvertisePort is 0
	// when Advertise names no port, and both are zero when it is empty.
	AdvertiseHost string `config:"-"`
	AdvertisePort int    `config:"-"`
}

// LocationConfig is the location section: registrar limits and static
// contacts.
type LocationConfig struct {
	// Static is location.static as written: AOR -> contact URIs. It is read
	// straight from the YAML file (never from the environment or overrides)
	// because viper lower-cases and dot-splits map keys, which would corrupt
	// AORs such as "sip:Alice@example.com".
	Static map[string][]string `config:"-"`
	// Registrations are routinely an hour or more, hence large.
	MinExpires     time.Duration `config:"min_expires" unit:"s,large"`
	MaxExpires     time.Duration `config:"max_expires" unit:"s,large"`
	DefaultExpires time.Duration `config:"default_expires" unit:"s,large"`
	MaxContacts    int           `config:"max_contacts"`

	// Contacts is Static parsed: the same AOR keys, each contact with its
	// q split off the URI.
	Contacts map[string][]StaticContact `config:"-"`
}

// LogConfig is the log section.
type LogConfig struct {
	Level    string `config:"level"`     // debug|info|warn|error
	Format   string `config:"format"`    // text|json
	SIPTrace bool   `config:"sip_trace"` // log every SIP message sent and received
}

// DialogSection is the dialog section: the dialog module's parameters and,
// in the same section as the seeds have them, the persistence of dialogs,
// which package dlgpersist does rather than the module.
type DialogSection struct {
	imsdialog.Config `config:",squash"`

	DBMode int    `config:"db_mode"`
	DBURL  string `config:"db_url"`
	// Periods of minutes are normal here, hence large.
	DBUpdatePeriod time.Duration `config:"db_update_period" unit:"s,large"`
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

// defaults are the built-in values of every key: the packages' own
// DefaultConfig for their sections, and the daemon's for the rest.
// configs/standalone.yaml states the same values (a test keeps them in
// step); they are also what makes viper's AutomaticEnv see each key, since
// it only looks up the environment for keys it already knows.
func defaults() map[string]any {
	d := map[string]any{
		"listen":                   []string{"udp:127.0.0.1:5060", "tcp:127.0.0.1:5060"},
		"advertise":                "",
		"domains":                  []string{"localhost", "127.0.0.1"},
		"next_hop":                 "",
		"record_route":             true,
		"location.min_expires":     "60s",
		"location.max_expires":     "3600s",
		"location.default_expires": "3600s",
		"location.max_contacts":    10,
		"log.level":                "info",
		"log.format":               "text",
		"log.sip_trace":            false,
	}
	for _, m := range []map[string]any{
		sectionDefaults("tm", tm.DefaultConfig()),
		sectionDefaults("dialog", imsdialog.DefaultConfig()),
		mgmtDefaults(),
		shutdownDefaults(),
		runtimeDefaults(),
		tcpDefaults(),
		udpDefaults(),
		persistDefaults(),
		profileDefaults(),
		roleDefaults(),
	} {
		maps.Copy(d, m)
	}
	return d
}

// staticKey is the one key whose value is free-form (its map keys are AORs,
// not config keys), so it bypasses viper; see LocationConfig.Static.
const staticKey = "location.static"

// LoadConfig loads the configuration from the YAML file at path, or from the
// embedded configs/standalone.yaml when path is "". Keys the file leaves out
// take their defaults; environment variables IMSDLG_<KEY> (dots written as
// underscores, e.g. IMSDLG_TM_FR_TIMEOUT) override the file, and overrides
// ("tm.fr_timeout" -> "10") override both. Values from the environment and
// from overrides are strings: lists are comma separated, durations take an
// integer in the key's unit or a Go duration string.
//
// An unknown key is an error naming it, and so is an IMSDLG_ variable that
// names no key. Every value is validated and all problems are reported at
// once, joined; each names its key and value.
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
	errs = append(errs, checkEnvironment(os.Environ())...)

	// Unknown keys never reach viper, so the values can still be checked and
	// every problem reported in one go.
	all := v.AllSettings()
	uerrs := applyUnits(all)
	var c Config
	if err := decodeSettings(all, &c); err != nil || len(uerrs) > 0 {
		// A value that did not decode would show up again, misleadingly,
		// as a zero value in validation: stop here.
		errs = append(errs, uerrs...)
		if err != nil {
			errs = append(errs, decodeProblems(err)...)
		}
		return nil, errors.Join(errs...)
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

func sourceName(path string) string {
	if path == "" {
		return "embedded standalone.yaml"
	}
	return path
}

func applyOverrides(v *viper.Viper, overrides map[string]string) []error {
	keys := make([]string, 0, len(overrides))
	for k := range overrides {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var errs []error
	for _, k := range keys {
		lk := strings.ToLower(strings.TrimSpace(k))
		switch {
		case lk == staticKey:
			errs = append(errs, fmt.Errorf("config: override %q: %s can only be set in the config file", k, staticKey))
		case !isKey(lk):
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
			switch {
			case full == staticKey:
				var serrs []error
				static, serrs = parseStatic(name, val)
				errs = append(errs, serrs...)
			case isSection(full):
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
			case isKey(full):
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

// stringToListHook splits the comma-separated strings of the environment
// and overrides into lists.
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
			// Its name is the key as the tags spell it: "tm.T1_timer".
			key := de.Name()
			var pe *mapstructure.ParseError
			var ue *mapstructure.UnconvertibleTypeError
			switch {
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
	seen := map[ListenAddr]int{}
	for i, s := range c.Listen {
		a, err := ParseListen(s)
		if err != nil {
			bad(fmt.Sprintf("listen[%d]", i), s, "%v", err)
			continue
		}
		// The proxy binds IP addresses: a name would fail at start, after
		// --check said the config was fine.
		if _, err := netip.ParseAddr(a.Host); err != nil {
			bad(fmt.Sprintf("listen[%d]", i), s, "the host must be an IP address (0.0.0.0 or [::] for all), not a name; put the name in advertise")
			continue
		}
		if j, dup := seen[a]; dup {
			bad(fmt.Sprintf("listen[%d]", i), s, "the same as listen[%d]", j)
			continue
		}
		seen[a] = i
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

	errs = append(errs, c.validateMgmt()...)
	errs = append(errs, c.validateShutdown()...)
	errs = append(errs, c.validateRuntime()...)
	errs = append(errs, c.validateTCP()...)
	errs = append(errs, c.validateUDP()...)

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

	l := &c.Location
	for _, e := range []struct {
		key string
		d   time.Duration
	}{{"location.min_expires", l.MinExpires}, {"location.max_expires", l.MaxExpires}, {"location.default_expires", l.DefaultExpires}} {
		if e.d <= 0 {
			bad(e.key, e.d, "must be positive")
		}
	}
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

	// The packages know their own limits, and their messages start with the
	// parameter's name: only the section is ours to add.
	errs = append(errs, sectionProblems("tm", c.TM.Validate())...)
	errs = append(errs, sectionProblems("dialog", c.Dialog.Config.Validate())...)
	if d := c.Dialog.Config; d.ReinvitePing != "none" && d.ReinvitePingInterval <= c.TM.FrTimeout {
		// OpenSIPS' warning made a rule: a ping is judged at the next
		// tick, so one still waiting for tm's timeout would be sent again
		// before it could fail.
		bad("dialog.reinvite_ping_interval", d.ReinvitePingInterval, "must be longer than tm.fr_timeout (%s) while dialog.reinvite_ping is %s", c.TM.FrTimeout, d.ReinvitePing)
	}
	errs = append(errs, c.validateProfiles()...)
	errs = append(errs, c.validatePersist()...)
	errs = append(errs, c.validateRoles()...)
	errs = append(errs, c.validateReplicate()...)
	return errs
}

// dialogConfig is the dialog section as the manager takes it: a
// validate_dialog of auto is fix for a P-CSCF, which faces UEs nobody
// vouches for (a request within a dialog goes where the dialog goes), and
// off elsewhere (issue 13 §1).
func (c *Config) dialogConfig() imsdialog.Config {
	d := c.Dialog.Config
	if d.ValidateDialog == imsdialog.ValidateAuto || d.ValidateDialog == "" {
		d.ValidateDialog = imsdialog.ValidateOff
		if c.Role == RolePCSCF {
			d.ValidateDialog = imsdialog.ValidateFix
		}
	}
	return d
}

// sectionProblems turns the problems a package's Config.Validate names by
// parameter into problems naming the key.
func sectionProblems(section string, err error) []error {
	if err == nil {
		return nil
	}
	var out []error
	for _, e := range unjoin(err) {
		out = append(out, fmt.Errorf("config: %s.%w", section, e))
	}
	return out
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

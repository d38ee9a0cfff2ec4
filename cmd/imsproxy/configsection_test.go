package main

import (
	"bufio"
	"bytes"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imsdlg/imsdlg/configs"
	"github.com/imsdlg/imsdlg/imsdialog"
	"github.com/imsdlg/imsdlg/tm"
)

// A package's Config is decoded as it is: a field without a key could not
// be configured, and a duration without a unit would read "30" as 30ns.
// Every field also needs its default here, or the environment cannot set it.
func TestConfig_PackageConfigFieldsAllHaveAKeyAUnitAndADefault(t *testing.T) {
	d := defaults()
	for _, sec := range []struct {
		name string
		cfg  any
	}{
		{"tm", tm.DefaultConfig()},
		{"dialog", imsdialog.DefaultConfig()},
	} {
		v := reflect.ValueOf(sec.cfg)
		for i := range v.NumField() {
			f := v.Type().Field(i)
			t.Run(sec.name+"."+f.Name, func(t *testing.T) {
				key := f.Tag.Get(configTag)
				require.NotEmpty(t, key, "no `config` tag")
				if key == "-" {
					// Not an operator's key: the daemon's code sets it
					// (tm.Config.ReuseMessageText, a promise of its
					// modules), and no file or variable can.
					assert.Empty(t, f.Tag.Get(unitTag), "no unit on a field that is not a key")
					return
				}
				require.NotContains(t, key, ",", "the key only, no options")
				unit, hasUnit := f.Tag.Lookup(unitTag)
				if f.Type == durationType {
					assert.Contains(t, []string{"s", "ms", "s,large"}, unit, "a duration needs a `unit` tag")
				} else {
					assert.False(t, hasUnit, "`unit` is for durations only")
				}

				got, ok := d[sec.name+"."+strings.ToLower(key)]
				require.True(t, ok, "defaults() lacks %s.%s", sec.name, key)
				want := v.Field(i).Interface()
				if f.Type.Kind() == reflect.Slice && v.Field(i).IsNil() {
					want = reflect.MakeSlice(f.Type, 0, 0).Interface()
				}
				assert.Equal(t, want, got, "the default is the package's DefaultConfig")
			})
		}
		assert.Empty(t, walkKeys(v.Type(), reflect.Value{}, sec.name, sec.name, func(keyInfo, reflect.Value) {}))
	}
}

func TestConfig_TagCheckNamesTheFieldsItCannotUse(t *testing.T) {
	type entry struct {
		Wait time.Duration `config:"wait" unit:"s"`
	}
	type bad struct {
		NoKey     int
		NoUnit    time.Duration `config:"no_unit"`
		HourUnit  time.Duration `config:"hour_unit" unit:"h"`
		LargeMs   time.Duration `config:"large_ms" unit:"ms,large"`
		UnitOnInt int           `config:"unit_on_int" unit:"s"`
		Entries   []entry       `config:"entries"`
		Derived   int           `config:"-"`
		Good      time.Duration `config:"good" unit:"ms"`
	}
	problems := walkKeys(reflect.TypeFor[bad](), reflect.Value{}, "", "", func(keyInfo, reflect.Value) {})
	var text []string
	for _, p := range problems {
		text = append(text, p.Error())
	}
	assert.Len(t, problems, 5, "%q", text)
	all := strings.Join(text, "\n")
	for _, want := range []string{
		"bad.NoKey: no `config` tag",
		"bad.NoUnit: a duration needs a `unit` tag",
		`bad.HourUnit: ` + "`unit:\"h\"`" + `: the unit is s or ms`,
		"bad.LargeMs: `unit:\"ms,large\"`: large is for seconds only",
		"bad.UnitOnInt: `unit` tag on a int",
	} {
		assert.Contains(t, all, want)
	}
}

// defaults() is what makes a key settable from the environment, and what
// tells a key from a typo: it must name exactly the keys the tags declare.
func TestConfig_DefaultsNameExactlyTheTaggedKeys(t *testing.T) {
	var tagged []string
	for _, k := range configKeys().list {
		if !k.section {
			tagged = append(tagged, k.key)
		}
	}
	slices.Sort(tagged)
	assert.Equal(t, tagged, slices.Sorted(maps.Keys(defaults())))
}

// Each duration key's comment in the embedded file names its integer unit;
// it must be the unit of the key's tag.
func TestConfig_EmbeddedConfigNamesEachDurationsIntegerUnit(t *testing.T) {
	comments := map[string]string{} // key -> the comment above it
	var path []string               // sections open at each indent level
	var comment strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(configs.Standalone))
	for sc.Scan() {
		line := sc.Text()
		trimmed := strings.TrimSpace(line)
		switch {
		case trimmed == "":
			comment.Reset()
		case strings.HasPrefix(trimmed, "#"):
			comment.WriteString(strings.TrimSpace(strings.TrimPrefix(trimmed, "#")) + " ")
		case strings.HasPrefix(trimmed, "- "):
		default:
			name, _, ok := strings.Cut(trimmed, ":")
			require.True(t, ok, "line %q", line)
			depth := (len(line) - len(strings.TrimLeft(line, " "))) / 2
			path = append(path[:depth], strings.ToLower(name))
			comments[strings.Join(path, ".")] = comment.String()
			comment.Reset()
		}
	}
	for _, k := range configKeys().list {
		if k.section {
			continue
		}
		c, ok := comments[k.key]
		if !assert.True(t, ok, "%s is not in configs/standalone.yaml", k.shown) {
			continue
		}
		switch k.unit {
		case time.Second:
			assert.Contains(t, c, "(integer unit: seconds)", k.shown)
		case time.Millisecond:
			assert.Contains(t, c, "(integer unit: milliseconds)", k.shown)
		default:
			assert.NotContains(t, c, "integer unit", k.shown)
		}
	}
}

// The integer of each duration key counts the unit the OpenSIPS/Kamailio
// manuals give the parameter, whichever source it comes from.
func TestConfig_IntegerDurationsCountInTheKeysUnit(t *testing.T) {
	tests := []struct {
		key  string
		n    string
		got  func(*Config) time.Duration
		want time.Duration
	}{
		{"tm.fr_timeout", "10", func(c *Config) time.Duration { return c.TM.FrTimeout }, 10 * time.Second},
		{"tm.fr_inv_timeout", "90", func(c *Config) time.Duration { return c.TM.FrInvTimeout }, 90 * time.Second},
		{"tm.T1_timer", "250", func(c *Config) time.Duration { return c.TM.T1 }, 250 * time.Millisecond},
		{"tm.T2_timer", "6000", func(c *Config) time.Duration { return c.TM.T2 }, 6 * time.Second},
		{"tm.T4_timer", "2500", func(c *Config) time.Duration { return c.TM.T4 }, 2500 * time.Millisecond},
		{"tm.wt_timer", "7", func(c *Config) time.Duration { return c.TM.WtTimer }, 7 * time.Second},
		{"tm.cancel_wait", "300", func(c *Config) time.Duration { return c.TM.CancelWait }, 300 * time.Millisecond},
		{"tm.local_timeout", "20", func(c *Config) time.Duration { return c.TM.LocalTimeout }, 20 * time.Second},
		{"dialog.default_timeout", "7200", func(c *Config) time.Duration { return c.Dialog.DefaultTimeout }, 2 * time.Hour},
		{"dialog.bye_timeout", "20", func(c *Config) time.Duration { return c.Dialog.ByeTimeout }, 20 * time.Second},
		{"dialog.race_condition_timeout", "2", func(c *Config) time.Duration { return c.Dialog.RaceConditionTimeout }, 2 * time.Second},
		{"dialog.db_update_period", "10", func(c *Config) time.Duration { return c.Dialog.DBUpdatePeriod }, 10 * time.Second},
		{"location.min_expires", "120", func(c *Config) time.Duration { return c.Location.MinExpires }, 2 * time.Minute},
		{"profiles.profile_timeout", "3600", func(c *Config) time.Duration { return c.Profiles.ProfileTimeout }, time.Hour},
		{"profiles.cachedb_timeout", "200", func(c *Config) time.Duration { return c.Profiles.CachedbTimeout }, 200 * time.Millisecond},
		{"profiles.retry_period", "3", func(c *Config) time.Duration { return c.Profiles.RetryPeriod }, 3 * time.Second},
		{"events.redis_stream.timeout", "700", func(c *Config) time.Duration { return c.Events.RedisStream.Timeout }, 700 * time.Millisecond},
		{"events.webhook.timeout", "1500", func(c *Config) time.Duration { return c.Events.Webhook.Timeout }, 1500 * time.Millisecond},
	}
	for _, tt := range tests {
		section, name, _ := strings.Cut(tt.key, ".")
		sources := map[string]func(t *testing.T) (*Config, error){
			"file": func(t *testing.T) (*Config, error) {
				yaml := section + ":\n  " + name + ": " + tt.n + "\n"
				if inner, leaf, nested := strings.Cut(name, "."); nested {
					yaml = section + ":\n  " + inner + ":\n    " + leaf + ": " + tt.n + "\n"
				}
				return loadYAML(t, yaml)
			},
			"environment": func(t *testing.T) (*Config, error) {
				t.Setenv(envName(strings.ToLower(tt.key)), tt.n)
				return LoadConfig("", nil)
			},
			"override": func(t *testing.T) (*Config, error) {
				return LoadConfig("", map[string]string{tt.key: tt.n})
			},
		}
		for _, src := range []string{"file", "environment", "override"} {
			t.Run(tt.key+" "+tt.n+" from "+src, func(t *testing.T) {
				isolateEnv(t)
				c, err := sources[src](t)
				require.NoError(t, err)
				assert.Equal(t, tt.want, tt.got(c))
			})
		}
	}
}

// fr_timeout: 30000 is Kamailio's fr_timer in milliseconds; read as
// seconds it would be a branch that waits over eight hours.
func TestConfig_LargeIntegerSecondsAreAnErrorSuggestingADuration(t *testing.T) {
	tests := []struct {
		name      string
		yaml      string
		env       map[string]string
		overrides map[string]string
		want      string
	}{
		{"Kamailio fr_timer habit", "tm: {fr_timeout: 30000}", nil, nil,
			`config: tm.fr_timeout = 30000: 30000 seconds is over 8 hours; integers count seconds here (milliseconds in Kamailio): write "30s" or "30000ms"`},
		{"the threshold itself", "tm: {fr_inv_timeout: 1000}", nil, nil,
			`config: tm.fr_inv_timeout = 1000: 1000 seconds is over 16 minutes; integers count seconds here (milliseconds in Kamailio): write "1s" or "1000ms"`},
		{"from the environment", "", map[string]string{"IMSDLG_TM_WT_TIMER": "5000"}, nil,
			`config: tm.wt_timer = "5000": 5000 seconds is over 1 hour; integers count seconds here (milliseconds in Kamailio): write "5s" or "5000ms"`},
		{"from an override", "", nil, map[string]string{"dialog.bye_timeout": "3600"},
			`config: dialog.bye_timeout = "3600": 3600 seconds is 1 hour; integers count seconds here (milliseconds in Kamailio): write "3.6s" or "3600ms"`},
		{"a cmd-only seconds key", "profiles: {retry_period: 2000}", nil, nil,
			`config: profiles.retry_period = 2000: 2000 seconds is over 33 minutes`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			isolateEnv(t)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			_, err := LoadConfig(writeConfig(t, tt.yaml), tt.overrides)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

func TestConfig_LargeIntegerSecondsAreFineWhereTheKeyExpectsThem(t *testing.T) {
	isolateEnv(t)
	c, err := loadYAML(t, `
tm: {fr_timeout: 999, fr_inv_timeout: 30000ms, T2_timer: 30000}
dialog: {default_timeout: 86400, db_update_period: 3600}
profiles: {profile_timeout: 172800}
location: {min_expires: 1800, max_expires: 7200, default_expires: 7200}
`)
	require.NoError(t, err)
	assert.Equal(t, 999*time.Second, c.TM.FrTimeout, "below the threshold, still seconds")
	assert.Equal(t, 30*time.Second, c.TM.FrInvTimeout, "the duration form says what it means")
	assert.Equal(t, 30*time.Second, c.TM.T2, "a milliseconds key counts milliseconds")
	assert.Equal(t, 24*time.Hour, c.Dialog.DefaultTimeout)
	assert.Equal(t, time.Hour, c.Dialog.DBUpdatePeriod)
	assert.Equal(t, 48*time.Hour, c.Profiles.ProfileTimeout)
	assert.Equal(t, 30*time.Minute, c.Location.MinExpires)
	assert.Equal(t, 2*time.Hour, c.Location.MaxExpires)
	assert.Equal(t, 2*time.Hour, c.Location.DefaultExpires)
}

func TestConfig_UnknownEnvironmentVariableIsAnError(t *testing.T) {
	tests := []struct {
		name, variable, want string
	}{
		{"misspelt key", "IMSDLG_TM_FR_TIMOUT", "config: environment variable IMSDLG_TM_FR_TIMOUT names no key"},
		{"a section, not a key", "IMSDLG_TM", "config: environment variable IMSDLG_TM names no key"},
		{"key of no section", "IMSDLG_FR_TIMEOUT", "config: environment variable IMSDLG_FR_TIMEOUT names no key"},
		{"lower case, which the lookup would miss", "IMSDLG_tm_fr_timeout", "config: environment variable IMSDLG_tm_fr_timeout: write it in upper case, IMSDLG_TM_FR_TIMEOUT"},
		{"static", "IMSDLG_LOCATION_STATIC", "config: environment variable IMSDLG_LOCATION_STATIC: location.static can only be set in the config file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			isolateEnv(t)
			t.Setenv(tt.variable, "10")
			_, err := LoadConfig("", nil)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

func TestConfig_UnknownEnvironmentVariableIsReportedWithTheOtherProblems(t *testing.T) {
	isolateEnv(t)
	t.Setenv("IMSDLG_TM_FR_TIMOUT", "10")
	t.Setenv("IMSDLG_TM_FR_TIMEOUT", "10") // known: no complaint
	_, err := loadYAML(t, "lisen: []\nlog: {level: loud}\n")
	require.Error(t, err)
	joined, ok := err.(interface{ Unwrap() []error })
	require.True(t, ok)
	assert.Len(t, joined.Unwrap(), 3, "%v", err)
	assert.Contains(t, err.Error(), `unknown key "lisen"`)
	assert.Contains(t, err.Error(), "IMSDLG_TM_FR_TIMOUT names no key")
	assert.Contains(t, err.Error(), `log.level = "loud"`)
	assert.NotContains(t, err.Error(), "IMSDLG_TM_FR_TIMEOUT ")
}

// The packages' Validate name the parameter; the daemon only puts the
// section in front, so the value and what is wanted stay in the message.
func TestConfig_PackageValidationNamesTheKeyAndValue(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"tm duration", "tm: {local_timeout: 0}", `config: tm.local_timeout = "0s": must be positive`},
		{"tm size", "tm: {udp_max_size: 100}", `config: tm.udp_max_size = 100: must be within 500..65000`},
		{"tm T2 below T1", "tm: {T1_timer: 2000, T2_timer: 1000}", `config: tm.T2_timer = "1s": must not be below T1_timer (2s)`},
		{"dialog hash_size", "dialog: {hash_size: 1000}", `config: dialog.hash_size = 1000: must be a power of two within 1..1048576`},
		{"dialog rr_param", `dialog: {rr_param: "d id"}`, `config: dialog.rr_param = "d id": must be a URI parameter name`},
		{"dialog duration", "dialog: {bye_timeout: 0}", `config: dialog.bye_timeout = "0s": must be positive`},
		{"dialog race timeout", "dialog: {race_condition_timeout: 0}", `config: dialog.race_condition_timeout = "0s": must be positive`},
		{"dialog match mode", "dialog: {dlg_match_mode: 5}", `config: dialog.dlg_match_mode = 5: must be 0, 1 or 2`},
		{"dialog early code", "dialog: {early_terminate_code: 180}", `config: dialog.early_terminate_code = 180: must be a final error code 300..699`},
		{"dialog extra header", `dialog: {dlg_extra_hdrs: ["X-A"]}`, `config: dialog.dlg_extra_hdrs[0] = "X-A": must be one "Name: value" line`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			isolateEnv(t)
			_, err := loadYAML(t, tt.yaml)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

// Issue 13 §2: a duration inside a list entry (limits[].timeout) reads
// like any duration key (a Go duration, or an integer in its unit), and a
// bad one is named with its entry.
func TestIssue13_2_DurationsInListEntries(t *testing.T) {
	settings := map[string]any{"limits": []any{
		map[string]any{"profile": "a", "timeout": 90},
		map[string]any{"profile": "b", "Timeout": "2h"},
		map[string]any{"profile": "c", "timeout": "soon"},
		map[string]any{"profile": "d"},
	}}
	errs := applyUnits(settings)
	list := settings["limits"].([]any)
	assert.Equal(t, 90*time.Second, list[0].(map[string]any)["timeout"])
	assert.Equal(t, 2*time.Hour, list[1].(map[string]any)["Timeout"])
	assert.NotContains(t, list[2].(map[string]any), "timeout", "a bad value is removed")
	require.Len(t, errs, 1)
	assert.Contains(t, errs[0].Error(), `limits[2].timeout = "soon"`)
}

// Issue 14: the daemon runs tm with the received messages' text pooled
// (its modules copy what they keep); a package default leaves it off for
// embedders.
func TestIssue14_DaemonReusesMessageText(t *testing.T) {
	assert.False(t, tm.DefaultConfig().ReuseMessageText, "off for embedders")
	c := tm.DefaultConfig()
	c.FrTimeout = 7 * time.Second
	got := daemonTM(c)
	assert.True(t, got.ReuseMessageText)
	assert.Equal(t, 7*time.Second, got.FrTimeout, "the operator's settings kept")
}

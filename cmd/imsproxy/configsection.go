package main

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-viper/mapstructure/v2"
)

// The config structs carry their keys in tags, so that a package's Config
// (tm.Config, imsdialog.Config) is decoded as it is, and a new parameter
// needs no code here:
//
//	`config:"fr_timeout"`  the key; "-" for a field derived from the keys,
//	                       ",squash" for an embedded struct whose keys
//	                       belong to the section it is embedded in
//	`unit:"s"`             what a plain integer counts for a duration key:
//	                       "s" or "ms", as the OpenSIPS/Kamailio manuals say
//	`unit:"s,large"`       seconds, for a key whose normal values run to
//	                       thousands (dialog.default_timeout: 43200); any
//	                       other seconds key refuses integers >= 1000,
//	                       which are Kamailio milliseconds far more often
//	                       than they are deliberate quarter hours
const (
	configTag = "config"
	unitTag   = "unit"
)

// largeSeconds is where an integer for a seconds key is taken for
// Kamailio's milliseconds (fr_timer=30000) rather than seconds.
const largeSeconds = 1000

var durationType = reflect.TypeFor[time.Duration]()

// keyInfo is one key of the configuration, as its tags describe it.
type keyInfo struct {
	key     string        // lower case, as viper spells it: "tm.t1_timer"
	shown   string        // as the docs spell it: "tm.T1_timer"
	section bool          // holds keys rather than a value
	unit    time.Duration // what a plain integer counts; 0: not a duration
	large   bool          // see unitTag
	// entries are the duration fields of a list's entries (limits[].timeout).
	entries []keyInfo
}

// keyTable holds every key of Config, in the order the structs declare them.
type keyTable struct {
	list  []keyInfo
	byKey map[string]keyInfo
}

// configKeys is read from the tags once. A malformed tag is a programming
// error that the first test loading a config would hit, hence the panic.
var configKeys = sync.OnceValue(func() keyTable {
	t := keyTable{byKey: map[string]keyInfo{}}
	problems := walkKeys(reflect.TypeFor[Config](), reflect.Value{}, "", "", func(k keyInfo, _ reflect.Value) {
		t.list = append(t.list, k)
		t.byKey[k.key] = k
	})
	if len(problems) > 0 {
		panic(fmt.Sprintf("config tags: %v", errors.Join(problems...)))
	}
	return t
})

// isKey tells whether key (lower case) holds a value.
func isKey(key string) bool {
	k, ok := configKeys().byKey[key]
	return ok && !k.section
}

// isSection tells whether key (lower case) holds other keys.
func isSection(key string) bool {
	return configKeys().byKey[key].section
}

// walkKeys calls visit for every section and key of the struct type t,
// under prefix (lower case) and shown (as the tags spell it), with the
// field's value when v, a value of t, is valid. It returns what is wrong
// with the tags, so a test can hold every Config to them.
func walkKeys(t reflect.Type, v reflect.Value, prefix, shown string, visit func(keyInfo, reflect.Value)) []error {
	var problems []error
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		where := t.String() + "." + f.Name
		var fv reflect.Value
		if v.IsValid() {
			fv = v.Field(i)
		}
		tag, ok := f.Tag.Lookup(configTag)
		if !ok {
			problems = append(problems, fmt.Errorf("%s: no `%s` tag naming its key", where, configTag))
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		switch {
		case name == "-":
			continue
		case opts == "squash" && f.Anonymous && f.Type.Kind() == reflect.Struct:
			problems = append(problems, walkKeys(f.Type, fv, prefix, shown, visit)...)
			continue
		case name == "" || opts != "":
			problems = append(problems, fmt.Errorf("%s: `%s:%q`: want a key, \"-\", or \",squash\" on an embedded struct", where, configTag, tag))
			continue
		}
		k := keyInfo{key: join(prefix, strings.ToLower(name)), shown: join(shown, name)}

		unit, hasUnit := f.Tag.Lookup(unitTag)
		switch {
		case f.Type == durationType && !hasUnit:
			problems = append(problems, fmt.Errorf("%s: a duration needs a `%s` tag (s or ms) saying what a plain integer counts", where, unitTag))
		case f.Type != durationType && hasUnit:
			problems = append(problems, fmt.Errorf("%s: `%s` tag on a %s, not a time.Duration", where, unitTag, f.Type))
		case hasUnit:
			var err error
			if k.unit, k.large, err = parseUnitTag(unit); err != nil {
				problems = append(problems, fmt.Errorf("%s: %w", where, err))
			}
		}

		switch {
		case f.Type.Kind() == reflect.Struct && f.Type != durationType:
			k.section = true
			visit(k, fv)
			problems = append(problems, walkKeys(f.Type, fv, k.key, k.shown, visit)...)
			continue
		case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct:
			// List entries (limits, scscf.as_rules) are decoded by their
			// tags too; applyUnits converts their durations entry by entry.
			problems = append(problems, walkKeys(f.Type.Elem(), reflect.Value{}, "", "", func(e keyInfo, _ reflect.Value) {
				if e.unit != 0 {
					k.entries = append(k.entries, e)
				}
			})...)
		}
		visit(k, fv)
	}
	return problems
}

func parseUnitTag(tag string) (unit time.Duration, large bool, err error) {
	name, opts, _ := strings.Cut(tag, ",")
	switch name {
	case "s":
		unit = time.Second
	case "ms":
		unit = time.Millisecond
	default:
		return 0, false, fmt.Errorf("`%s:%q`: the unit is s or ms", unitTag, tag)
	}
	switch opts {
	case "":
	case "large":
		if unit != time.Second {
			return 0, false, fmt.Errorf("`%s:%q`: large is for seconds only", unitTag, tag)
		}
		large = true
	default:
		return 0, false, fmt.Errorf("`%s:%q`: the only option is large", unitTag, tag)
	}
	return unit, large, nil
}

// sectionDefaults returns the keys of a package's Config under section,
// with the values of cfg (its DefaultConfig), for viper's defaults.
func sectionDefaults(section string, cfg any) map[string]any {
	out := map[string]any{}
	v := reflect.ValueOf(cfg)
	problems := walkKeys(v.Type(), v, section, section, func(k keyInfo, fv reflect.Value) {
		if k.section {
			return
		}
		if fv.Kind() == reflect.Slice && fv.IsNil() {
			// viper treats a nil default as no default, and then never
			// looks the key up in the environment.
			fv = reflect.MakeSlice(fv.Type(), 0, 0)
		}
		out[k.key] = fv.Interface()
	})
	if len(problems) > 0 {
		panic(fmt.Sprintf("config tags: %v", errors.Join(problems...)))
	}
	return out
}

// applyUnits turns the value of every duration key in settings (viper's
// nested map, lower-case keys) into a time.Duration, reading a plain number
// in the key's unit. It is the one place that reads the unit tags, so the
// decode after it needs no duration hook. A value that is no duration is
// reported, naming its key, and removed.
func applyUnits(settings map[string]any) []error {
	var errs []error
	for _, k := range configKeys().list {
		if k.unit == 0 && len(k.entries) == 0 {
			continue
		}
		m, last := settings, k.key
		for {
			section, rest, nested := strings.Cut(last, ".")
			if !nested {
				break
			}
			m, _ = m[section].(map[string]any)
			last = rest
		}
		val, ok := m[last]
		if !ok {
			continue
		}
		if len(k.entries) > 0 {
			errs = append(errs, applyEntryUnits(k, val)...)
			continue
		}
		d, err := durationOf(k, val)
		if err != nil {
			errs = append(errs, fmt.Errorf("config: %s = %s: %w", k.shown, showValue(val), err))
			delete(m, last)
			continue
		}
		m[last] = d
	}
	return errs
}

// applyEntryUnits converts the duration fields of each entry of a list
// key, naming the entry in errors ("limits[2].timeout").
func applyEntryUnits(k keyInfo, val any) []error {
	list, ok := val.([]any)
	if !ok {
		return nil // not a list: the decode names the key
	}
	var errs []error
	for i, item := range list {
		entry, ok := item.(map[string]any)
		if !ok {
			continue
		}
		for _, e := range k.entries {
			// Entry keys arrive in the case the file used.
			for name, v := range entry {
				if !strings.EqualFold(name, e.key) {
					continue
				}
				d, err := durationOf(e, v)
				if err != nil {
					errs = append(errs, fmt.Errorf("config: %s[%d].%s = %s: %w", k.shown, i, e.shown, showValue(v), err))
					delete(entry, name)
					continue
				}
				entry[name] = d
			}
		}
	}
	return errs
}

// durationOf reads a Go duration string, or a plain number (possibly
// given as a string, as environment variables and overrides are) counted
// in the key's unit.
func durationOf(k keyInfo, val any) (time.Duration, error) {
	unitName := "seconds"
	if k.unit == time.Millisecond {
		unitName = "milliseconds"
	}
	notDuration := fmt.Errorf("not a duration: want a Go duration such as \"30s\" or an integer number of %s", unitName)
	var n float64
	switch x := val.(type) {
	case time.Duration: // a default
		return x, nil
	case string:
		s := strings.TrimSpace(x)
		i, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			d, err := time.ParseDuration(s)
			if err != nil {
				return 0, notDuration
			}
			return d, nil
		}
		n = float64(i)
	default:
		rv := reflect.ValueOf(val)
		switch {
		case rv.CanInt():
			n = float64(rv.Int())
		case rv.CanUint():
			n = float64(rv.Uint())
		case rv.CanFloat():
			n = rv.Float()
		default:
			return 0, notDuration
		}
	}
	if k.unit == time.Second && !k.large && n >= largeSeconds {
		num := strconv.FormatFloat(n, 'f', -1, 64)
		return 0, fmt.Errorf("%s seconds is %s; integers count seconds here (milliseconds in Kamailio): write %q or %q",
			num, roughly(time.Duration(n)*time.Second), strconv.FormatFloat(n/1000, 'f', -1, 64)+"s", num+"ms")
	}
	d := n * float64(k.unit)
	if math.IsNaN(d) || math.Abs(d) >= math.MaxInt64 {
		return 0, errors.New("out of range")
	}
	return time.Duration(d), nil
}

// roughly says how long d is in the unit an operator thinks in, so the
// size of a misread integer is plain at a glance.
func roughly(d time.Duration) string {
	unit, name := time.Hour, "hour"
	if d < time.Hour {
		unit, name = time.Minute, "minute"
	}
	n := int64(d / unit)
	if n != 1 {
		name += "s"
	}
	if d%unit != 0 {
		return fmt.Sprintf("over %d %s", n, name)
	}
	return fmt.Sprintf("%d %s", n, name)
}

// decodeSettings decodes settings, converted by applyUnits, into c. Every
// struct names its keys with configTag, the package Configs included.
func decodeSettings(settings map[string]any, c *Config) error {
	dec, err := mapstructure.NewDecoder(&mapstructure.DecoderConfig{
		TagName:     configTag,
		ErrorUnused: true,
		// Environment variables and overrides are strings: "10", "false".
		WeaklyTypedInput: true,
		DecodeHook:       mapstructure.DecodeHookFuncType(stringToListHook),
		Result:           c,
	})
	if err != nil {
		return err
	}
	return dec.Decode(settings)
}

// envName is the environment variable that sets key (lower case).
func envName(key string) string {
	return EnvPrefix + "_" + strings.ToUpper(strings.ReplaceAll(key, ".", "_"))
}

// checkEnvironment reports the IMSDLG_ variables of environ that set no
// key. Viper only looks up the variables of the keys it knows, so a
// misspelt one would otherwise leave the default in place without a word.
func checkEnvironment(environ []string) []error {
	vars := map[string]bool{}
	for _, k := range configKeys().list {
		if !k.section {
			vars[envName(k.key)] = true
		}
	}
	var names []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(strings.ToUpper(name), EnvPrefix+"_") && !vars[name] {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	var errs []error
	for _, name := range names {
		switch upper := strings.ToUpper(name); {
		case upper == envName(staticKey):
			errs = append(errs, fmt.Errorf("config: environment variable %s: %s can only be set in the config file", name, staticKey))
		case vars[upper]:
			// The lookup is case-sensitive: as written, it would be ignored.
			errs = append(errs, fmt.Errorf("config: environment variable %s: write it in upper case, %s", name, upper))
		default:
			errs = append(errs, fmt.Errorf("config: environment variable %s names no key (%s_<KEY> in upper case, the dots of the key as underscores)", name, EnvPrefix))
		}
	}
	return errs
}

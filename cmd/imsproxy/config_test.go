package main

import (
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/imsdlg/imsdlg/imsdialog"
	"github.com/imsdlg/imsdlg/internal/testcert"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imsdlg/imsdlg/tm"
)

// isolateEnv removes every IMSDLG_ variable for the duration of the test, so
// the developer's environment cannot change what a test sees.
func isolateEnv(t *testing.T) {
	t.Helper()
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, EnvPrefix+"_") {
			t.Setenv(k, "") // restores the value after the test
			require.NoError(t, os.Unsetenv(k))
		}
	}
}

func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "imsdlg.yaml")
	require.NoError(t, os.WriteFile(path, []byte(yaml), 0o600))
	return path
}

func loadYAML(t *testing.T, yaml string) (*Config, error) {
	t.Helper()
	return LoadConfig(writeConfig(t, yaml), nil)
}

func TestLoadConfigWithoutPathUsesEmbeddedStandaloneConfig(t *testing.T) {
	isolateEnv(t)
	c, err := LoadConfig("", nil)
	require.NoError(t, err)

	assert.Equal(t, []string{"udp:127.0.0.1:5060", "tcp:127.0.0.1:5060"}, c.Listen)
	assert.Equal(t, []ListenAddr{
		{Network: "udp", Host: "127.0.0.1", Port: 5060},
		{Network: "tcp", Host: "127.0.0.1", Port: 5060},
	}, c.ListenAddrs)
	assert.Empty(t, c.Advertise)
	assert.Equal(t, []string{"localhost", "127.0.0.1"}, c.Domains)
	assert.Empty(t, c.NextHop)
	assert.Nil(t, c.NextHopAddr)
	assert.True(t, c.RecordRoute)
	assert.Equal(t, "127.0.0.1:8080", c.Mgmt.Listen)
	assert.Equal(t, LogConfig{Level: "info", Format: "text"}, c.Log)
	assert.Equal(t, 60*time.Second, c.Location.MinExpires)
	assert.Equal(t, 3600*time.Second, c.Location.MaxExpires)
	assert.Equal(t, 3600*time.Second, c.Location.DefaultExpires)
	assert.Equal(t, 10, c.Location.MaxContacts)
	assert.Empty(t, c.Location.Static)
	assert.Equal(t, tm.DefaultConfig(), c.TM)
	assert.NoError(t, c.TM.Validate())
}

// The embedded file documents the defaults; an empty file gets the built-in
// ones. They must not drift apart.
func TestEmbeddedConfigStatesTheBuiltInDefaults(t *testing.T) {
	isolateEnv(t)
	embedded, err := LoadConfig("", nil)
	require.NoError(t, err)
	builtin, err := loadYAML(t, "")
	require.NoError(t, err)
	assert.Equal(t, builtin, embedded)
}

func TestConfigFileOverridesDefaults(t *testing.T) {
	isolateEnv(t)
	c, err := loadYAML(t, `
listen: ["tcp:0.0.0.0:5080"]
advertise: pcscf.example.net:5080
domains: [ims.example.net]
next_hop: tcp:10.0.0.2:5060
record_route: false
mgmt: {listen: ":0", token: s3cret}
log: {level: DEBUG, format: json}
tm:
  fr_timeout: 10s
  auto_100trying: false
  udp_max_size: 1400
`)
	require.NoError(t, err)

	assert.Equal(t, []ListenAddr{{Network: "tcp", Host: "0.0.0.0", Port: 5080}}, c.ListenAddrs)
	assert.Equal(t, "pcscf.example.net", c.AdvertiseHost)
	assert.Equal(t, 5080, c.AdvertisePort)
	assert.Equal(t, []string{"ims.example.net"}, c.Domains)
	assert.Equal(t, &ListenAddr{Network: "tcp", Host: "10.0.0.2", Port: 5060}, c.NextHopAddr)
	assert.False(t, c.RecordRoute)
	assert.Equal(t, ":0", c.Mgmt.Listen)
	assert.Equal(t, LogConfig{Level: "debug", Format: "json"}, c.Log, "level and format are normalised to lower case")

	want := tm.DefaultConfig()
	want.FrTimeout = 10 * time.Second
	want.Auto100Trying = false
	want.UDPMaxSize = 1400
	assert.Equal(t, want, c.TM, "keys the file leaves out keep their defaults")
}

func TestEnvironmentOverridesConfigFile(t *testing.T) {
	isolateEnv(t)
	t.Setenv("IMSDLG_TM_FR_TIMEOUT", "10")
	t.Setenv("IMSDLG_TM_T1_TIMER", "250")
	t.Setenv("IMSDLG_TM_AUTO_100TRYING", "false")
	t.Setenv("IMSDLG_MGMT_LISTEN", "127.0.0.1:9999")
	t.Setenv("IMSDLG_LISTEN", "udp:127.0.0.2:5060, tcp:127.0.0.2:5061")
	t.Setenv("IMSDLG_LOCATION_MAX_CONTACTS", "3")
	t.Setenv("IMSDLG_ADVERTISE", "") // empty still counts: it is set

	c, err := loadYAML(t, `
advertise: sbc.example.net
tm: {fr_timeout: 20s, T1_timer: 400}
mgmt: {listen: "127.0.0.1:8181"}
`)
	require.NoError(t, err)

	assert.Equal(t, 10*time.Second, c.TM.FrTimeout)
	assert.Equal(t, 250*time.Millisecond, c.TM.T1)
	assert.False(t, c.TM.Auto100Trying)
	assert.Equal(t, "127.0.0.1:9999", c.Mgmt.Listen)
	assert.Equal(t, []string{"udp:127.0.0.2:5060", "tcp:127.0.0.2:5061"}, c.Listen)
	assert.Equal(t, 3, c.Location.MaxContacts)
	assert.Empty(t, c.Advertise)
}

func TestEmptyMgmtListenFromEnvironmentDisablesMgmt(t *testing.T) {
	isolateEnv(t)
	t.Setenv("IMSDLG_MGMT_LISTEN", "")
	c, err := LoadConfig("", nil)
	require.NoError(t, err)
	assert.Empty(t, c.Mgmt.Listen)
}

func TestOverridesWinOverEnvironmentAndFile(t *testing.T) {
	isolateEnv(t)
	t.Setenv("IMSDLG_TM_WT_TIMER", "7")
	path := writeConfig(t, "tm: {wt_timer: 6s}\nlog: {level: warn}\n")

	c, err := LoadConfig(path, map[string]string{
		"tm.wt_timer": "8",
		"TM.T2_TIMER": "6000", // keys match in any case, like the file's
		"domains":     "a.example, b.example",
	})
	require.NoError(t, err)

	assert.Equal(t, 8*time.Second, c.TM.WtTimer)
	assert.Equal(t, 6*time.Second, c.TM.T2)
	assert.Equal(t, []string{"a.example", "b.example"}, c.Domains)
	assert.Equal(t, "warn", c.Log.Level)
}

func TestDurationAcceptsIntegerInKeyUnitOrGoDurationString(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		env  map[string]string
		got  func(*Config) time.Duration
		want time.Duration
	}{
		{"seconds key, YAML integer", "tm: {fr_timeout: 45}", nil, func(c *Config) time.Duration { return c.TM.FrTimeout }, 45 * time.Second},
		{"seconds key, quoted integer", `tm: {fr_timeout: "45"}`, nil, func(c *Config) time.Duration { return c.TM.FrTimeout }, 45 * time.Second},
		{"seconds key, Go duration", "tm: {fr_timeout: 1500ms}", nil, func(c *Config) time.Duration { return c.TM.FrTimeout }, 1500 * time.Millisecond},
		{"seconds key, env integer", "", map[string]string{"IMSDLG_TM_FR_INV_TIMEOUT": "90"}, func(c *Config) time.Duration { return c.TM.FrInvTimeout }, 90 * time.Second},
		{"seconds key, env Go duration", "", map[string]string{"IMSDLG_TM_LOCAL_TIMEOUT": "1m"}, func(c *Config) time.Duration { return c.TM.LocalTimeout }, time.Minute},
		{"expires in seconds", "location: {min_expires: 120}", nil, func(c *Config) time.Duration { return c.Location.MinExpires }, 2 * time.Minute},
		{"millis key, YAML integer", "tm: {T1_timer: 250}", nil, func(c *Config) time.Duration { return c.TM.T1 }, 250 * time.Millisecond},
		{"millis key, quoted integer", `tm: {T4_timer: "2500"}`, nil, func(c *Config) time.Duration { return c.TM.T4 }, 2500 * time.Millisecond},
		{"millis key, Go duration", "tm: {T2_timer: 8s}", nil, func(c *Config) time.Duration { return c.TM.T2 }, 8 * time.Second},
		{"millis key, env integer", "", map[string]string{"IMSDLG_TM_CANCEL_WAIT": "750"}, func(c *Config) time.Duration { return c.TM.CancelWait }, 750 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			isolateEnv(t)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			c, err := loadYAML(t, tt.yaml)
			require.NoError(t, err)
			assert.Equal(t, tt.want, tt.got(c))
		})
	}
}

func TestT1TimerKeyIsAcceptedInAnyCase(t *testing.T) {
	for _, key := range []string{"T1_timer", "t1_timer", "T1_TIMER"} {
		t.Run(key, func(t *testing.T) {
			isolateEnv(t)
			c, err := loadYAML(t, "tm:\n  "+key+": 300\n")
			require.NoError(t, err)
			assert.Equal(t, 300*time.Millisecond, c.TM.T1)
		})
	}
}

func TestUnknownKeyIsRejectedWithItsName(t *testing.T) {
	tests := []struct {
		name      string
		yaml      string
		overrides map[string]string
		want      string
	}{
		{"misspelt nested key", "tm: {fr_timout: 10}", nil, `config: unknown key "tm.fr_timout"`},
		{"misspelt top-level key", "lisen: [udp:127.0.0.1:5060]", nil, `config: unknown key "lisen"`},
		{"key under the wrong section", "mgmt: {level: debug}", nil, `config: unknown key "mgmt.level"`},
		{"key nested under a leaf section", "log: {level: {x: 1}, colour: true}", nil, `config: unknown key "log.colour"`},
		{"unknown override", "", map[string]string{"tm.fr_timout": "10"}, `config: unknown key "tm.fr_timout" (override)`},
		{"static cannot be overridden", "", map[string]string{"location.static": "x"}, `location.static can only be set in the config file`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			isolateEnv(t)
			_, err := LoadConfig(writeConfig(t, tt.yaml), tt.overrides)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

func TestKeyGivenTwiceInDifferentCaseIsRejected(t *testing.T) {
	isolateEnv(t)
	_, err := loadYAML(t, "tm:\n  T1_timer: 300\n  t1_timer: 400\n")
	require.Error(t, err)
	assert.Contains(t, err.Error(), `key "tm.t1_timer" given twice (as "tm.T1_timer" and "tm.t1_timer")`)
}

func TestBadValueIsRejectedNamingItsKeyAndValue(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{"no listen entry", "listen: []", []string{"listen: needs at least one entry"}},
		{"unknown listen network", "listen: [sctp:127.0.0.1:5060]", []string{`listen[0] = "sctp:127.0.0.1:5060"`, `network "sctp" is not udp or tcp`}},
		{"listen without port", "listen: [udp:127.0.0.1]", []string{`listen[0] = "udp:127.0.0.1"`, "want HOST:PORT"}},
		{"listen port zero", "listen: [udp:127.0.0.1:0]", []string{`listen[0] = "udp:127.0.0.1:0"`, "not within 1..65535"}},
		{"listen port too big", "listen: [udp:127.0.0.1:5060, tcp:127.0.0.1:70000]", []string{`listen[1] = "tcp:127.0.0.1:70000"`, `port "70000"`}},
		{"listen without network", "listen: [127.0.0.1]", []string{`listen[0] = "127.0.0.1"`, `want "udp:HOST:PORT"`}},
		{"listen host with stray scheme", `listen: ["udp:sip/host:5060"]`, []string{`listen[0] = "udp:sip/host:5060"`, "neither an IP address nor a DNS name"}},
		{"next_hop with unknown network", "next_hop: tls:10.0.0.1:5061", []string{`next_hop = "tls:10.0.0.1:5061"`, `network "tls"`}},
		{"next_hop without port", "next_hop: 10.0.0.1", []string{`next_hop = "10.0.0.1"`, "want HOST:PORT"}},
		{"advertise with bad port", "advertise: host.example:99999", []string{`advertise = "host.example:99999"`, "not within 1..65535"}},
		{"bad domain", `domains: ["sip:localhost"]`, []string{`domains[0] = "sip:localhost"`}},
		{"mgmt.listen without port", "mgmt: {listen: localhost}", []string{`mgmt.listen = "localhost"`, "want HOST:PORT"}},
		{"mgmt.listen port too big", `mgmt: {listen: "127.0.0.1:65536"}`, []string{`mgmt.listen = "127.0.0.1:65536"`}},
		{"log level", "log: {level: verbose}", []string{`log.level = "verbose"`, "debug, info, warn or error"}},
		{"log format", "log: {format: xml}", []string{`log.format = "xml"`, "text or json"}},
		{"zero duration", "tm: {fr_timeout: 0}", []string{`tm.fr_timeout = "0s": must be positive`}},
		{"negative duration", "tm: {cancel_wait: -5}", []string{`tm.cancel_wait = "-5ms": must be positive`}},
		{"not a duration", "tm: {fr_inv_timeout: soon}", []string{`tm.fr_inv_timeout = "soon": not a duration`, "integer number of seconds"}},
		{"not a millis duration", "tm: {T4_timer: later}", []string{`tm.T4_timer = "later": not a duration`, "integer number of milliseconds"}},
		{"T2 below T1", "tm: {T1_timer: 2000, T2_timer: 1000}", []string{`tm.T2_timer = "1s": must not be below T1_timer (2s)`}},
		{"max_message_size too small", "tm: {max_message_size: 100}", []string{"tm.max_message_size = 100", "1024..65535"}},
		{"max_message_size too big", "tm: {max_message_size: 70000}", []string{"tm.max_message_size = 70000"}},
		{"max_message_size not a number", "tm: {max_message_size: big}", []string{`tm.max_message_size = "big": not a valid int`}},
		{"udp_max_size too small", "tm: {udp_max_size: 499}", []string{"tm.udp_max_size = 499", "500..65000"}},
		{"udp_max_size too big", "tm: {udp_max_size: 65001}", []string{"tm.udp_max_size = 65001"}},
		{"record_route not a bool", "record_route: maybe", []string{`record_route = "maybe": not a valid bool`}},
		{"max_expires below min_expires", "location: {min_expires: 600, max_expires: 300, default_expires: 300}", []string{`location.max_expires = "5m0s": must not be below location.min_expires (10m0s)`}},
		{"reinvite ping judged before it can time out", "dialog: {reinvite_ping: callee, reinvite_ping_interval: 20s}\ntm: {fr_timeout: 30s}", []string{`dialog.reinvite_ping_interval = "20s": must be longer than tm.fr_timeout (30s) while dialog.reinvite_ping is callee`}},
		{"reinvite_ping not a side", "dialog: {reinvite_ping: yes}", []string{`dialog.reinvite_ping = "yes": must be none, caller, callee or both`}},
		{"default_expires above max", "location: {default_expires: 7200}", []string{`location.default_expires = "2h0m0s"`, "within location.min_expires..location.max_expires"}},
		{"max_contacts zero", "location: {max_contacts: 0}", []string{"location.max_contacts = 0", "at least 1"}},
		{"section that is not a mapping", "tm: 5", []string{"tm = 5: must be a mapping"}},
		{"static contact not a SIP URI", `location: {static: {"sip:alice@localhost": ["alice at home"]}}`, []string{`location.static["sip:alice@localhost"][0] = "alice at home"`, "invalid uri scheme"}},
		{"static contact with other scheme", `location: {static: {"sip:alice@localhost": ["tel:+15551234"]}}`, []string{`location.static["sip:alice@localhost"][0] = "tel:+15551234"`, `scheme "tel"`}},
		{"static q above 1", `location: {static: {"sip:alice@localhost": ["sip:alice@127.0.0.1:5070;q=1.5"]}}`, []string{`location.static["sip:alice@localhost"][0] = "sip:alice@127.0.0.1:5070;q=1.5"`, `invalid q value "1.5"`}},
		{"static q not a number", `location: {static: {"sip:alice@localhost": ["sip:alice@127.0.0.1:5070;q=high"]}}`, []string{`invalid q value "high"`}},
		{"static AOR not a SIP URI", `location: {static: {"alice": ["sip:alice@127.0.0.1:5070"]}}`, []string{`location.static["alice"]: AOR "alice"`}},
		{"static AOR of a foreign domain", `location: {static: {"sip:alice@example.com": ["sip:alice@127.0.0.1:5070"]}}`, []string{`location.static["sip:alice@example.com"]`, `AOR domain "example.com" is not in domains`}},
		{"static contacts not a list", `location: {static: {"sip:alice@localhost": 5}}`, []string{`location.static["sip:alice@localhost"] = 5: must be a list`}},
		{"static contact not a string", `location: {static: {"sip:alice@localhost": [5]}}`, []string{`location.static["sip:alice@localhost"][0] = 5`}},
		{"not YAML", "listen: [", []string{"config: parse ", "imsdlg.yaml"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			isolateEnv(t)
			_, err := loadYAML(t, tt.yaml)
			require.Error(t, err)
			for _, want := range tt.want {
				assert.Contains(t, err.Error(), want)
			}
		})
	}
}

func TestMissingConfigFileIsAnError(t *testing.T) {
	isolateEnv(t)
	_, err := LoadConfig(filepath.Join(t.TempDir(), "absent.yaml"), nil)
	require.ErrorIs(t, err, os.ErrNotExist)
}

func TestAllProblemsAreReportedTogether(t *testing.T) {
	isolateEnv(t)
	_, err := loadYAML(t, `
listen: [sctp:127.0.0.1:5060, udp:127.0.0.1:0]
next_hop: nowhere
mgmt: {listen: nohost}
log: {level: loud, format: xml}
tm: {fr_timeout: 0, T1_timer: 5000, T2_timer: 4000, max_message_size: 10, udp_max_size: 10}
`)
	require.Error(t, err)
	for _, key := range []string{
		"listen[0]", "listen[1]", "next_hop", "mgmt.listen", "log.level", "log.format",
		"tm.fr_timeout", "tm.T2_timer", "tm.max_message_size", "tm.udp_max_size",
	} {
		assert.Contains(t, err.Error(), key+" = ")
	}
	joined, ok := err.(interface{ Unwrap() []error })
	require.True(t, ok, "problems are joined, one error each")
	assert.Len(t, joined.Unwrap(), 10)
}

func TestUnknownKeysAreReportedWithBadValues(t *testing.T) {
	isolateEnv(t)
	_, err := loadYAML(t, "lisen: []\ntm: {fr_timout: 1, T1_timr: 2, fr_timeout: 0}\n")
	require.Error(t, err)
	for _, key := range []string{"lisen", "tm.fr_timout", "tm.T1_timr"} {
		assert.Contains(t, err.Error(), `unknown key "`+key+`"`)
	}
	assert.Contains(t, err.Error(), `tm.fr_timeout = "0s": must be positive`)
}

func TestDecodeErrorsAreReportedTogether(t *testing.T) {
	isolateEnv(t)
	_, err := loadYAML(t, "tm: {fr_timeout: soon, max_message_size: big}\nrecord_route: maybe\n")
	require.Error(t, err)
	for _, key := range []string{"tm.fr_timeout", "tm.max_message_size", "record_route"} {
		assert.Contains(t, err.Error(), "config: "+key+" = ")
	}
	assert.NotContains(t, err.Error(), "decoding failed", "mapstructure's wrapper adds nothing")
}

func TestIPv6ListenAddresses(t *testing.T) {
	isolateEnv(t)
	c, err := loadYAML(t, `
listen: ["udp:[::1]:5060", "tcp:[2001:db8::1]:5061"]
next_hop: "[2001:db8::2]:5060"
advertise: "2001:db8::10"
`)
	require.NoError(t, err)
	assert.Equal(t, []ListenAddr{
		{Network: "udp", Host: "::1", Port: 5060},
		{Network: "tcp", Host: "2001:db8::1", Port: 5061},
	}, c.ListenAddrs)
	assert.Equal(t, "udp:[::1]:5060", c.ListenAddrs[0].String())
	assert.Equal(t, "[2001:db8::1]:5061", c.ListenAddrs[1].HostPort())
	assert.Equal(t, &ListenAddr{Network: "udp", Host: "2001:db8::2", Port: 5060}, c.NextHopAddr)
	assert.Equal(t, "2001:db8::10", c.AdvertiseHost)
	assert.Zero(t, c.AdvertisePort)
}

func TestParseListenAndNextHop(t *testing.T) {
	tests := []struct {
		name    string
		parse   func(string) (ListenAddr, error)
		in      string
		want    ListenAddr
		wantErr string
	}{
		{"listen udp", ParseListen, "udp:10.0.0.1:5060", ListenAddr{"udp", "10.0.0.1", 5060}, ""},
		{"listen network in upper case", ParseListen, "TCP:host.example:5070", ListenAddr{"tcp", "host.example", 5070}, ""},
		{"listen bracketed IPv6", ParseListen, "udp:[fe80::1]:5060", ListenAddr{"udp", "fe80::1", 5060}, ""},
		{"listen unbracketed IPv6", ParseListen, "udp:::1:5060", ListenAddr{}, "want HOST:PORT"},
		{"listen empty host", ParseListen, "udp::5060", ListenAddr{}, "empty host"},
		{"listen bare host:port", ParseListen, "10.0.0.1:5060", ListenAddr{}, `network "10.0.0.1" is not udp or tcp`},
		{"next hop bare host:port is udp", ParseNextHop, "10.0.0.1:5060", ListenAddr{"udp", "10.0.0.1", 5060}, ""},
		{"next hop tcp", ParseNextHop, "tcp:scscf.example:5060", ListenAddr{"tcp", "scscf.example", 5060}, ""},
		{"next hop bare IPv6", ParseNextHop, "[::1]:5062", ListenAddr{"udp", "::1", 5062}, ""},
		{"next hop tls", ParseNextHop, "tls:scscf.example:5061", ListenAddr{}, `network "tls" is not udp or tcp`},
		{"next hop bad port", ParseNextHop, "host.example:sip", ListenAddr{}, `port "sip" is not within 1..65535`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.parse(tt.in)
			if tt.wantErr != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestStaticContactsKeepAORCaseAndSplitOffQ(t *testing.T) {
	isolateEnv(t)
	c, err := loadYAML(t, `
domains: [localhost, Example.COM]
location:
  static:
    "sip:Alice@example.com":
      - "<sip:alice@127.0.0.1:5070;transport=tcp>"
      - "sip:alice@[::1]:5071;Q=0.5"
    "sip:bob@localhost": []
`)
	require.NoError(t, err)

	assert.Equal(t, map[string][]string{
		"sip:Alice@example.com": {"<sip:alice@127.0.0.1:5070;transport=tcp>", "sip:alice@[::1]:5071;Q=0.5"},
		"sip:bob@localhost":     nil,
	}, c.Location.Static, "AORs keep their case and their dots")

	contacts := c.Location.Contacts["sip:Alice@example.com"]
	require.Len(t, contacts, 2)
	assert.Equal(t, "sip:alice@127.0.0.1:5070;transport=tcp", contacts[0].URI.String())
	assert.Equal(t, 1.0, contacts[0].Q)
	assert.False(t, contacts[0].HasQ)
	assert.Equal(t, "sip:alice@[::1]:5071", contacts[1].URI.String(), "q is a preference, not part of the URI")
	assert.Equal(t, 0.5, contacts[1].Q)
	assert.True(t, contacts[1].HasQ)
	assert.Contains(t, c.Location.Contacts, "sip:bob@localhost")
}

func TestOverridesFlagCollectsKeyValuePairs(t *testing.T) {
	var ov Overrides
	fs := flag.NewFlagSet("imsproxy", flag.ContinueOnError)
	fs.Var(&ov, "set", "override")
	require.NoError(t, fs.Parse([]string{"-set", "tm.fr_timeout=10", "-set", "mgmt.listen="}))
	assert.Equal(t, Overrides{"tm.fr_timeout": "10", "mgmt.listen": ""}, ov)
	assert.Equal(t, "mgmt.listen=,tm.fr_timeout=10", ov.String())

	fs.SetOutput(new(strings.Builder))
	assert.Error(t, fs.Parse([]string{"-set", "no-equals-sign"}))
}

func TestLogConfigBuildsLoggerOfConfiguredFormatAndLevel(t *testing.T) {
	var out strings.Builder
	logger := LogConfig{Level: "warn", Format: "json"}.NewLogger(&out)
	logger.Info("dropped")
	logger.Warn("kept", "k", "v")
	assert.NotContains(t, out.String(), "dropped")
	assert.Contains(t, out.String(), `"msg":"kept"`)
}

func TestDialogSection(t *testing.T) {
	c, err := LoadConfig("", nil)
	require.NoError(t, err)
	dc := c.Dialog.Config
	assert.Empty(t, dc.ExtraHeaders)
	dc.ExtraHeaders = nil
	assert.Equal(t, imsdialog.DefaultConfig(), dc, "the embedded file carries the module defaults")

	c, err = LoadConfig("", map[string]string{"dialog.default_timeout": "120", "dialog.rr_param": "dlg", "dialog.dlg_extra_hdrs": "X-A: 1,X-B: 2"})
	require.NoError(t, err)
	dc = c.Dialog.Config
	assert.Equal(t, 120*time.Second, dc.DefaultTimeout)
	assert.Equal(t, "dlg", dc.RRParam)
	assert.Equal(t, []string{"X-A: 1", "X-B: 2"}, dc.ExtraHeaders)

	_, err = LoadConfig("", map[string]string{"dialog.hash_size": "1000", "dialog.dlg_match_mode": "5"})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "dialog.hash_size")
	assert.Contains(t, err.Error(), "dialog.dlg_match_mode")
}

// Issue 12 §9: the management port: a token from the config or a file, and
// no reachable listen address without one unless explicitly allowed.
func TestConfig_MgmtToken(t *testing.T) {
	isolateEnv(t)
	tokenFile := filepath.Join(t.TempDir(), "token")
	require.NoError(t, os.WriteFile(tokenFile, []byte("s3cret\n"), 0o600))
	certFile, keyFile := testcert.Write(t, t.TempDir())
	for _, tc := range []struct {
		name, yaml string
		token      string
		err        string
	}{
		{"loopback needs none", `mgmt: {listen: "127.0.0.1:0"}`, "", ""},
		{"a remote address needs a token", `mgmt: {listen: "0.0.0.0:8080"}`, "", `config: mgmt.listen = "0.0.0.0:8080": is reachable from other hosts and mgmt.token is empty`},
		{"an empty host is every interface", `mgmt: {listen: ":8080"}`, "", "mgmt.token is empty"},
		{"or an explicit choice", `mgmt: {listen: "0.0.0.0:8080", allow_remote_without_token: true}`, "", ""},
		{"a token", `mgmt: {listen: "0.0.0.0:8080", token: abc}`, "abc", ""},
		{"a token file", `mgmt: {listen: "[::]:8080", token_file: "` + tokenFile + `"}`, "s3cret", ""},
		{"not both", `mgmt: {token: abc, token_file: "` + tokenFile + `"}`, "", "give mgmt.token or mgmt.token_file, not both"},
		{"a missing file", `mgmt: {token_file: /nonexistent/token}`, "", "config: mgmt.token_file = \"/nonexistent/token\": open /nonexistent/token"},
		{"a bad origin", `mgmt: {allowed_origins: ["noc.example.net"]}`, "", "mgmt.allowed_origins[0]"},
		{"a batch of 0", `mgmt: {max_batch: 0}`, "", "mgmt.max_batch = 0: must be at least 1"},
		{"TLS: the pair", `mgmt: {tls_cert_file: "` + certFile + `", tls_key_file: "` + keyFile + `"}`, "", ""},
		{"TLS: a certificate without its key", `mgmt: {tls_cert_file: "` + certFile + `"}`, "", "config: mgmt.tls_key_file = \"\": give mgmt.tls_cert_file and mgmt.tls_key_file together"},
		{"TLS: a key that is not the certificate's", `mgmt: {tls_cert_file: "` + certFile + `", tls_key_file: "` + tokenFile + `"}`, "", "config: mgmt.tls_cert_file = "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := loadYAML(t, tc.yaml)
			if tc.err != "" {
				require.Error(t, err)
				assert.Contains(t, err.Error(), tc.err)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.token, c.Mgmt.token)
			assert.Equal(t, strings.Contains(tc.yaml, "tls_cert_file"), c.Mgmt.tls != nil, "the pair is loaded")
		})
	}
}

// Issue 13 §1: dialog.validate_dialog auto is fix for a P-CSCF (UEs nobody
// vouches for) and off elsewhere; a mode set in the file is kept.
func TestIssue13_1_ValidateDialogByRole(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"role: standalone", imsdialog.ValidateOff},
		{"role: scscf", imsdialog.ValidateOff},
		{"role: pcscf\npcscf: {scscf_uri: 'sip:127.0.0.1:6060'}", imsdialog.ValidateFix},
		{"role: pcscf\npcscf: {scscf_uri: 'sip:127.0.0.1:6060'}\ndialog: {validate_dialog: log}", imsdialog.ValidateLog},
		{"dialog: {validate_dialog: reject}", imsdialog.ValidateReject},
	} {
		cfg, err := loadYAML(t, tc.yaml)
		require.NoError(t, err, tc.yaml)
		assert.Equal(t, tc.want, cfg.dialogConfig().ValidateDialog, tc.yaml)
	}
}

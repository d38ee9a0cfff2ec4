package main

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Issue 14: the runtime section sets the collector; a bad value names its
// key.
func TestRuntime_ConfigKeys(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		bad  bool
	}{
		{"", 0, false}, {"0", 0, false}, {"1073741824", 1 << 30, false}, {"512MiB", 512 << 20, false},
		{"2GB", 2e9, false}, {"1.5GiB", 0, true}, {"-1", 0, true}, {"lots", 0, true},
		{"9223372036854775807GiB", 0, true},
	} {
		n, err := parseByteSize(tc.in)
		if tc.bad {
			assert.Error(t, err, tc.in)
			continue
		}
		require.NoError(t, err, tc.in)
		assert.Equal(t, tc.want, n, tc.in)
	}
	for _, tc := range []struct {
		set  []string
		want string
	}{
		{[]string{"runtime.gogc=0"}, "runtime.gogc"},
		{[]string{"runtime.memory_limit=huge"}, "runtime.memory_limit"},
		{[]string{"runtime.gogc=-1"}, "needs runtime.memory_limit"},
	} {
		_, err := loadForTest(t, tc.set...)
		require.Error(t, err)
		assert.Contains(t, err.Error(), tc.want)
	}
	cfg, err := loadForTest(t, "runtime.gogc=-1", "runtime.memory_limit=256MiB")
	require.NoError(t, err)
	assert.Equal(t, int64(256<<20), cfg.Runtime.memoryLimit)
	assert.Equal(t, -1, cfg.Runtime.GOGC)
}

func loadForTest(t *testing.T, set ...string) (*Config, error) {
	t.Helper()
	o := map[string]string{}
	for _, kv := range set {
		k, v, _ := strings.Cut(kv, "=")
		o[k] = v
	}
	return LoadConfig("", o)
}

// Issue 15 §6: the tcp keys are checked and named.
func TestTCP_ConfigKeys(t *testing.T) {
	for _, tc := range []struct{ set, want string }{
		{"tcp.connection_lifetime=0s", "tcp.connection_lifetime"},
		{"tcp.max_connections=0", "tcp.max_connections"},
		{"tcp.max_connections_per_ip=5000", "tcp.max_connections_per_ip"},
	} {
		_, err := loadForTest(t, tc.set)
		require.Error(t, err, tc.set)
		assert.Contains(t, err.Error(), tc.want)
	}
	cfg, err := loadForTest(t, "tcp.max_connections_per_ip=10", "tcp.read_timeout=3s")
	require.NoError(t, err)
	assert.Equal(t, 10, cfg.TCP.MaxConnectionsPerIP)
	assert.Equal(t, 3*time.Second, cfg.TCP.ReadTimeout)
}

// Issue 15 §14: --check catches what would fail at start, every problem
// at once: a host name in listen (the proxy binds addresses), a duplicate
// entry.
func TestConfig_ListenNamesAndDuplicatesFailTheCheck(t *testing.T) {
	_, err := loadForTest(t, "listen=udp:sip.example.com:5060,udp:127.0.0.1:5060,udp:127.0.0.1:5060")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "listen[0]")
	assert.Contains(t, err.Error(), "must be an IP address")
	assert.Contains(t, err.Error(), "listen[2]")
	assert.Contains(t, err.Error(), "the same as listen[1]")
	_, err = loadForTest(t, "listen=udp:127.0.0.1:5060,tcp:127.0.0.1:5060,udp:[::1]:5060")
	assert.NoError(t, err, "one port on UDP and TCP, and IPv6, are fine")
}

package main

import (
	"context"
	"log/slog"
	"math"
	"os"
	"runtime"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imsdlg/imsdlg/tm/transport"
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

// Issue 14: runtime.heap_headroom keeps the soft memory limit at the live
// heap plus the headroom (never above runtime.memory_limit), following the
// live heap as it moves by more than an eighth of the headroom; a bad
// value names its key; 0 turns it off.
func TestRuntime_HeapHeadroom(t *testing.T) {
	cfg, err := loadForTest(t)
	require.NoError(t, err)
	assert.Equal(t, int64(128<<20), cfg.Runtime.heapHeadroom, "default")
	_, err = loadForTest(t, "runtime.heap_headroom=lots")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "runtime.heap_headroom")
	off, err := loadForTest(t, "runtime.heap_headroom=0")
	require.NoError(t, err)
	assert.Nil(t, off.Runtime.headroomTuner(slog.New(slog.DiscardHandler)), "0 is off")

	const mib = 1 << 20
	for _, tc := range []struct {
		live, ceiling, want int64
	}{
		{100 * mib, 0, 228 * mib},
		{100 * mib, 200 * mib, 200 * mib},
		{math.MaxInt64 - 1, 0, math.MaxInt64},
	} {
		h := heapTuner{headroom: 128 * mib, ceiling: tc.ceiling}
		assert.Equal(t, tc.want, h.limit(tc.live), "live %d ceiling %d", tc.live, tc.ceiling)
	}

	synctest.Test(t, func(t *testing.T) {
		lives := []int64{10 * mib, 20 * mib, 300 * mib, 305 * mib, 100 * mib}
		var sets []int64
		i := 0
		h := heapTuner{headroom: 128 * mib, ceiling: 400 * mib, every: time.Second,
			live: func() int64 { v := lives[min(i, len(lives)-1)]; i++; return v },
			set:  func(n int64) { sets = append(sets, n) }}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { h.run(ctx); close(done) }()
		time.Sleep(4*time.Second + time.Millisecond)
		synctest.Wait()
		cancel()
		<-done
		// 10 -> 138; 20 is within 16 MiB of it; 300 -> 428, capped at 400;
		// 305 -> 400 again (no change); 100 -> 228.
		assert.Equal(t, []int64{138 * mib, 400 * mib, 228 * mib}, sets)
	})
}

// Issue 14: the udp keys are checked and named, and reach the transport.
func TestUDP_ConfigKeys(t *testing.T) {
	for _, tc := range []struct{ set, want string }{
		{"udp.sockets=0", "udp.sockets"},
		{"udp.readers=65", "udp.readers"},
		{"udp.batch=0", "udp.batch"},
		{"udp.write_queue=0", "udp.write_queue"},
		{"udp.read_buffer=lots", "udp.read_buffer"},
		{"udp.write_buffer=1KiB", "udp.write_buffer"},
		{"udp.read_watchdog=-1s", "udp.read_watchdog"},
		{"udp.read_watchdog=10us", "udp.read_watchdog"},
		{"udp.blocking_reads=maybe", "udp.blocking_reads"},
		{"udp.raw_io=2", "udp.raw_io"},
		{"udp.raw_writes=often", "udp.raw_writes"},
		{"udp.raw_reads=seldom", "udp.raw_reads"},
	} {
		_, err := loadForTest(t, tc.set)
		require.Error(t, err, tc.set)
		assert.Contains(t, err.Error(), tc.want, tc.set)
	}

	def, err := loadForTest(t)
	require.NoError(t, err)
	var o transport.Options
	def.UDP.options(&o)
	assert.Equal(t, transport.Options{UDPSockets: 1, UDPBatch: transport.DefaultUDPBatch, UDPReadBuffer: 4 << 20,
		UDPWriteBuffer: 4 << 20, UDPWriteQueue: transport.DefaultUDPWriteQueue,
		UDPReadWatchdog: transport.DefaultUDPReadWatchdog, UDPRawWrites: true, UDPRawReads: true}, o,
		"defaults: netpoller reads, raw reads and writes, readers left to the transport")

	cfg, err := loadForTest(t, "udp.sockets=4", "udp.readers=2", "udp.batch=8", "udp.read_buffer=8MiB",
		"udp.write_buffer=65536", "udp.write_queue=100", "udp.blocking_reads=false", "udp.read_watchdog=0", "udp.raw_io=true", "udp.raw_writes=false",
		"udp.raw_reads=false")
	require.NoError(t, err)
	o = transport.Options{}
	cfg.UDP.options(&o)
	assert.Equal(t, transport.Options{UDPSockets: 4, UDPReaders: 2, UDPBatch: 8, UDPReadBuffer: 8 << 20,
		UDPWriteBuffer: 65536, UDPWriteQueue: 100, UDPBlockingReads: false, UDPRawIO: true, UDPReadWatchdog: -1}, o)
	ms, err := loadForTest(t, "udp.read_watchdog=5")
	require.NoError(t, err)
	assert.Equal(t, 5*time.Millisecond, ms.UDP.ReadWatchdog, "a plain number counts milliseconds")
}

// Issue 14: runtime.gomaxprocs sets Go's processor count; auto (0) is
// half the CPUs, at least one; the environment's GOMAXPROCS wins; a bad
// value names its key.
func TestRuntime_GoMaxProcs(t *testing.T) {
	for _, tc := range []struct{ setting, cpus, want int }{
		{0, 1, 1}, {0, 2, 1}, {0, 3, 1}, {0, 4, 2}, {0, 16, 8}, {3, 2, 3}, {1, 64, 1},
	} {
		assert.Equal(t, tc.want, gomaxprocsFor(tc.setting, tc.cpus), "setting %d on %d CPUs", tc.setting, tc.cpus)
	}
	for _, bad := range []string{"-1", "1025", "many"} {
		_, err := loadForTest(t, "runtime.gomaxprocs="+bad)
		require.Error(t, err, bad)
		assert.Contains(t, err.Error(), "runtime.gomaxprocs", bad)
	}
	cfg, err := loadForTest(t)
	require.NoError(t, err)
	assert.Zero(t, cfg.Runtime.GoMaxProcs, "auto by default")

	prev := runtime.GOMAXPROCS(0)
	t.Cleanup(func() { runtime.GOMAXPROCS(prev) })
	log := slog.New(slog.DiscardHandler)
	if _, set := os.LookupEnv("GOMAXPROCS"); !set {
		RuntimeSection{GoMaxProcs: 3}.apply(log)
		assert.Equal(t, 3, runtime.GOMAXPROCS(0))
		runtime.GOMAXPROCS(4)
		RuntimeSection{}.apply(log)
		assert.Equal(t, 2, runtime.GOMAXPROCS(0), "auto: half of 4")
	}
	t.Setenv("GOMAXPROCS", "3")
	runtime.GOMAXPROCS(5)
	RuntimeSection{GoMaxProcs: 1}.apply(log)
	assert.Equal(t, 5, runtime.GOMAXPROCS(0), "the environment's GOMAXPROCS wins")
}

// RFC 3841 §9.1 / OpenSIPS t_relay's allow-no-cancel: tm.allow_no_cancel
// reaches tm's config, off by default; a bad value names the key.
func TestTM_AllowNoCancelKey(t *testing.T) {
	def, err := loadForTest(t)
	require.NoError(t, err)
	assert.False(t, def.TM.AllowNoCancel)
	on, err := loadForTest(t, "tm.allow_no_cancel=true")
	require.NoError(t, err)
	assert.True(t, on.TM.AllowNoCancel)
	_, err = loadForTest(t, "tm.allow_no_cancel=sometimes")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "tm.allow_no_cancel")
}

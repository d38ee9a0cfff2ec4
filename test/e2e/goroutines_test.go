package e2e

import (
	"testing"
	"time"
)

// Issue 10 "done when": calls that are only held cost the proxy no
// goroutine. 2000 confirmed calls (sipp callers pausing in the call) leave
// the goroutine count within 50 of what the idle daemon had.
func TestIssue10_HeldCallsHoldNoGoroutines(t *testing.T) {
	RequireTools(t)
	const calls = 2000
	uas := StartSipp(t, SippArgs{Scenario: "uas.xml", Calls: calls, NoMessageTrace: true, Timeout: 2 * time.Minute})
	cfg := NewProxyConfig(t)
	cfg.Static["sip:bob@127.0.0.1"] = []string{uas.Contact("bob")}
	p := StartProxy(t, cfg.YAML())
	idle, ok := MetricValue(p.Metrics(), "go_goroutines")
	if !ok {
		t.Fatal("no go_goroutines in /metrics")
	}
	uac := StartSipp(t, SippArgs{Scenario: "uac.xml", Remote: p.Addr("udp"), Service: "bob", Calls: calls, Rate: 400,
		Pause: time.Minute, NoMessageTrace: true, Timeout: 2 * time.Minute})
	defer uac.Kill()
	defer uas.Kill()
	deadline := time.Now().Add(45 * time.Second)
	for {
		st := dlgStats(t, p)
		tms := tmStats(t, p)
		if st["active_dialogs"] == calls && tms["inuse_transactions"] == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("never %d confirmed calls with no transaction left: dlg.stats %v, tm.stats %v", calls, st, tms)
		}
		time.Sleep(100 * time.Millisecond)
	}
	m := p.Metrics()
	held, _ := MetricValue(m, "go_goroutines")
	t.Logf("goroutines: idle %.0f, with %d held calls %.0f", idle, calls, held)
	// The live heap of the last GC, which the README's memory sizing and
	// test/bench/sustained_mem.sh read without forcing a collection.
	live, ok := MetricValue(m, "go_gc_heap_live_bytes")
	if !ok || live <= 0 {
		t.Errorf("go_gc_heap_live_bytes = %v (present %v), want the live heap in /metrics", live, ok)
	}
	// runtime.heap_headroom (128 MiB by default) keeps the soft memory
	// limit at the live heap plus the headroom, moved when the live heap
	// moved by an eighth of it: without it the limit is math.MaxInt64.
	const mib = 1 << 20
	if limit, ok := MetricValue(m, "go_gc_gomemlimit_bytes"); !ok || limit < 128*mib || limit > live+(128+16+16)*mib {
		t.Errorf("go_gc_gomemlimit_bytes = %v (present %v), want the live heap (%v) + 128 MiB, within 32 MiB", limit, ok, live)
	}
	if held > idle+50 {
		t.Errorf("goroutines: idle %.0f, with %d held calls %.0f (want at most idle+50)", idle, calls, held)
	}
}

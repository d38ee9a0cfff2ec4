package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/imsdlg/imsdlg/internal/redistest"
)

// Issue 12 §6: SIGTERM drains: /readyz says 503 and new calls get 503, the
// call in progress goes on (its BYE is relayed), and the daemon exits once
// it ended, well before the drain period.
func TestIssue12_DrainOnSIGTERM(t *testing.T) {
	RequireTools(t)
	t.Parallel()
	uas := StartSipp(t, SippArgs{Scenario: "uas.xml"})
	cfg := NewProxyConfig(t)
	cfg.Static["sip:bob@127.0.0.1"] = []string{uas.Contact("bob")}
	p := StartProxyEnv(t, cfg.YAML(), "IMSDLG_SHUTDOWN_DRAIN_PERIOD=20s")
	uac := StartSipp(t, SippArgs{Scenario: "uac.xml", Remote: p.Addr("udp"), Service: "bob", Pause: 3 * time.Second})
	waitDialogs(t, p, "a confirmed dialog", func(ds []dlgInfo) bool { return len(ds) == 1 && ds[0].State == "CONFIRMED" })

	p.Term()
	deadline := time.Now().Add(5 * time.Second)
	for p.Ready() != 503 {
		if time.Now().After(deadline) {
			t.Fatalf("/readyz still %d after SIGTERM", p.Ready())
		}
		time.Sleep(20 * time.Millisecond)
	}
	late := StartSipp(t, SippArgs{Scenario: "uac_expect.xml", Remote: p.Addr("udp"), Service: "bob", Keys: map[string]string{"code": "503"}})
	if err := late.Wait(); err != nil {
		t.Errorf("a new call during the drain: %v", err)
	}
	waitAll(t, uac, uas) // the held call ends by itself: its BYE is relayed
	start := time.Now()
	if err := p.WaitExit(10 * time.Second); err != nil {
		t.Fatalf("exit after the drain: %v\n%s", err, p.Output())
	}
	if waited := time.Since(start); waited > 5*time.Second {
		t.Errorf("exited %v after the last call ended; the drain should end with it", waited)
	}
	if !strings.Contains(p.Output(), "imsproxy draining") {
		t.Errorf("no drain in the log:\n%s", p.Output())
	}
}

// Issue 15 §11: a call still ringing when the grace ends gets a final reply
// upstream (503) and a CANCEL downstream; nothing is left ringing.
func TestIssue15_RingingCallEndedAtStop(t *testing.T) {
	RequireTools(t)
	t.Parallel()
	ring := StartSipp(t, SippArgs{Scenario: "uas_ring.xml", Vars: map[string]string{"require_reason": "1"}})
	cfg := NewProxyConfig(t)
	cfg.Static["sip:bob@127.0.0.1"] = []string{ring.Contact("bob")}
	p := StartProxyEnv(t, cfg.YAML(), "IMSDLG_SHUTDOWN_DRAIN_PERIOD=0s", "IMSDLG_SHUTDOWN_GRACE=1s")
	uac := StartSipp(t, SippArgs{Scenario: "uac_expect.xml", Remote: p.Addr("udp"), Service: "bob", Keys: map[string]string{"code": "503"}})
	waitDialogs(t, p, "an early dialog", func(ds []dlgInfo) bool { return len(ds) == 1 && ds[0].State == "EARLY" })
	p.Term()
	waitAll(t, uac, ring)
	if err := p.WaitExit(10 * time.Second); err != nil {
		t.Fatalf("exit: %v\n%s", err, p.Output())
	}
}

// Issue 15 §1: with db_mode 3 the last write gets its own time even when
// the grace ran out on a transaction still in progress; when it fails the
// exit status says so and the log counts the dialogs lost.
func TestIssue15_LastWriteAtStop(t *testing.T) {
	RequireTools(t)
	t.Parallel()
	for _, redisUp := range []bool{true, false} {
		t.Run(fmt.Sprintf("redis up %v", redisUp), func(t *testing.T) {
			srv := redistest.Start(t, redistest.Options{})
			rc := srv.Client(t)
			uas := StartSipp(t, SippArgs{Scenario: "uas.xml"})
			ring := StartSipp(t, SippArgs{Scenario: "uas_ring.xml"})
			cfg := NewProxyConfig(t)
			cfg.Static["sip:bob@127.0.0.1"] = []string{uas.Contact("bob")}
			cfg.Static["sip:carol@127.0.0.1"] = []string{ring.Contact("carol")}
			cfg.Extra = fmt.Sprintf("dialog: {db_mode: 3, db_url: %q}\nprofiles: {node_id: last-write}\n", srv.URL())
			p := StartProxyEnv(t, cfg.YAML(), "IMSDLG_SHUTDOWN_DRAIN_PERIOD=0s", "IMSDLG_SHUTDOWN_GRACE=1s",
				"IMSDLG_SHUTDOWN_PERSIST_TIMEOUT=2s")
			held := StartSipp(t, SippArgs{Scenario: "uac.xml", Remote: p.Addr("udp"), Service: "bob", Pause: time.Minute, Timeout: 90 * time.Second})
			defer held.Kill()
			defer uas.Kill()
			ringing := StartSipp(t, SippArgs{Scenario: "uac_expect.xml", Remote: p.Addr("udp"), Service: "carol", Keys: map[string]string{"code": "503"}})
			waitDialogs(t, p, "one confirmed and one early dialog", func(ds []dlgInfo) bool {
				return len(ds) == 2 && (ds[0].State == "CONFIRMED") != (ds[1].State == "CONFIRMED")
			})
			if !redisUp {
				srv.Stop()
			}
			p.Term()
			err := p.WaitExit(15 * time.Second)
			waitAll(t, ringing, ring)
			if redisUp {
				if err != nil {
					t.Fatalf("exit: %v\n%s", err, p.Output())
				}
				n, herr := rc.HLen(context.Background(), "imsdlg_dlg_last-write").Result()
				if herr != nil || n != 1 {
					t.Fatalf("dialogs written at stop: %d (%v), want 1\n%s", n, herr, p.Output())
				}
				return
			}
			if err == nil {
				t.Fatalf("exit status 0 although the last write failed:\n%s", p.Output())
			}
			if !strings.Contains(p.Output(), "1 dialogs not written to dialog.db_url") {
				t.Errorf("the log does not count the dialogs lost:\n%s", p.Output())
			}
		})
	}
}

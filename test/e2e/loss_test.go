package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Issue 15 §0: calls through the proxy with messages lost at both ends
// (sipp -lost: INVITEs, 200s, ACKs, BYEs and their replies dropped and
// retransmitted). Every retransmission path must end each dialog exactly
// once: when both sipps are done, no dialog, transaction or profile count
// is left behind. An answer whose ACKs were all lost (the caller's sipp
// gave up on it) is ended by dialog.ack_timeout. (T1 stays the UAs' own:
// a proxy that forgets an INVITE earlier than its caller stops
// retransmitting it takes a late retransmission for a new call.)
func TestIssue15_LossLeavesNoDialogBehind(t *testing.T) {
	RequireTools(t)
	t.Parallel()
	const calls = 200
	uas := StartSipp(t, SippArgs{Scenario: "uas.xml", Calls: calls, Timeout: 30 * time.Second,
		Extra: []string{"-lost", "2"}})
	cfg := NewProxyConfig(t)
	cfg.Static["sip:bob@127.0.0.1"] = []string{uas.Contact("bob")}
	cfg.Extra = "profiles: {with_value: [caller]}\n" +
		"limits: [{profile: caller, key: from_uri, max: 0}]\n" +
		"dialog: {bye_timeout: 5s, ack_timeout: 8s}"
	cfg.SIPTrace = true
	p := StartProxy(t, cfg.YAML())
	uac := StartSipp(t, SippArgs{Scenario: "uac.xml", Remote: p.Addr("udp"), Service: "bob", Calls: calls, Rate: 100,
		NoMessageTrace: true, Timeout: 30 * time.Second, Extra: []string{"-lost", "2"}})
	// A call whose last messages were lost may fail at one end; the
	// proxy must not keep it either way.
	uac.Wait()
	uas.Wait()
	sippsDone := time.Now()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ds := dlgList(t, p)
		st := dlgStats(t, p)
		m := tmStats(t, p)
		if len(ds) == 0 && st["active_dialogs"] == 0 && st["early_dialogs"] == 0 && m["inuse_transactions"] == 0 {
			if st["processed_dialogs"] != calls {
				t.Errorf("processed_dialogs = %d, want %d", st["processed_dialogs"], calls)
			}
			t.Logf("the proxy was clean %v after both sipps ended", time.Since(sippsDone).Round(time.Millisecond))
			break
		}
		if time.Now().After(deadline) {
			if len(ds) > 0 {
				t.Logf("the proxy's log of %s:\n%s", ds[0].CallID, proxyTrace(p, ds[0].CallID))
			}
			t.Fatalf("left behind after the calls: %d dialogs (first %+v), stats %v, inuse_transactions %d",
				len(ds), first(ds), st, m["inuse_transactions"])
		}
		time.Sleep(200 * time.Millisecond)
	}
	raw, err := p.RPC("dlg.profile_get_size", map[string]any{"profile": "caller"})
	if err != nil {
		t.Fatal(err)
	}
	if string(raw) == "" || !containsZeroSize(raw) {
		t.Errorf("profile caller still counts calls: %s", raw)
	}
}

func first(ds []dlgInfo) any {
	if len(ds) == 0 {
		return nil
	}
	return ds[0]
}

func containsZeroSize(raw []byte) bool {
	var v struct{ Size int64 }
	return jsonUnmarshal(raw, &v) == nil && v.Size == 0
}

func jsonUnmarshal(raw []byte, v any) error { return json.Unmarshal(raw, v) }

// proxyTrace is the daemon's log lines about one call (sip_trace on).
func proxyTrace(p *Proxy, callID string) string {
	var b strings.Builder
	for _, line := range strings.Split(p.Output(), "\n") {
		if strings.Contains(line, callID) {
			b.WriteString(line + "\n")
		}
	}
	return b.String()
}

// callTrace is what a sipp's message trace says about one call: the
// messages that carry its Call-ID, with sipp's direction lines.
func callTrace(s *Sipp, callID string) string {
	data, err := os.ReadFile(filepath.Join(s.Dir, sippMsgFile))
	if err != nil {
		return err.Error()
	}
	var b strings.Builder
	for _, block := range strings.Split(string(data), "----------------------------------------------- ") {
		if strings.Contains(block, "Call-ID: "+callID) {
			b.WriteString(block)
		}
		if b.Len() > 20000 {
			break
		}
	}
	return b.String()
}

package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/imsdlg/imsdlg/internal/redistest"
)

// Issue 6 §4 and §3: with db_mode 1 a confirmed call survives SIGKILL: the
// restarted proxy lists it, still counts it once in its shared profile,
// and dlg.terminate_dlg sends BYE to both parties. Every state change went
// to the Redis stream as E_DLG_STATE_CHANGED.
func TestE2E_DialogSurvivesSIGKILL(t *testing.T) {
	RequireTools(t)
	t.Parallel()
	srv := redistest.Start(t, redistest.Options{})
	rc := srv.Client(t)
	uas, yaml := persistedNode(t, srv, "node-p", fmt.Sprintf(`events: {redis_stream: {url: %q, stream: "dlg:events"}}`, srv.URL()))
	p := StartProxy(t, yaml)
	uac := StartSipp(t, SippArgs{Scenario: "uac_recv_bye.xml", Remote: p.Addr("udp"), Service: "bob",
		Vars: map[string]string{"require_reason": "1"}, Timeout: 60 * time.Second})
	before := waitDialogs(t, p, "a confirmed dialog", func(ds []dlgInfo) bool { return len(ds) == 1 && ds[0].State == "CONFIRMED" })
	waitHash(t, rc, "imsdlg_dlg_node-p", 1)
	waitCounter(t, rc, "dlg_noval_calls", 1)

	p.Kill()
	p2 := StartProxy(t, yaml)
	after := dlgList(t, p2)
	if len(after) != 1 || after[0].CallID != before[0].CallID || after[0].State != "CONFIRMED" ||
		after[0].HEntry != before[0].HEntry || after[0].HID != before[0].HID || after[0].ToTag != before[0].ToTag {
		t.Fatalf("dlg.list after restart = %+v, want %+v", after, before)
	}
	if n := counter(t, rc, "dlg_noval_calls"); n != 1 {
		t.Errorf("dlg_noval_calls = %d after the restart, want 1 (counted once)", n)
	}
	if st := dlgStats(t, p2); st["restored_dialogs"] != 1 || st["active_dialogs"] != 1 {
		t.Errorf("dlg.stats after restart: %v", st)
	}
	if _, err := p2.RPC("dlg.terminate_dlg", map[string]any{"callid": after[0].CallID, "from_tag": after[0].FromTag,
		"to_tag": after[0].ToTag, "reason": "operator after restart"}); err != nil {
		t.Fatalf("dlg.terminate_dlg: %v", err)
	}
	waitAll(t, uac, uas)
	waitDialogs(t, p2, "no dialog", func(ds []dlgInfo) bool { return len(ds) == 0 })
	waitHash(t, rc, "imsdlg_dlg_node-p", 0)
	waitCounter(t, rc, "dlg_noval_calls", 0)

	// The stream holds the life of the call from both runs of the proxy.
	var states []string
	deadline := time.Now().Add(10 * time.Second)
	for {
		msgs, err := rc.XRange(context.Background(), "dlg:events", "-", "+").Result()
		if err != nil {
			t.Fatal(err)
		}
		states = states[:0]
		for _, m := range msgs {
			if m.Values["event"] != "E_DLG_STATE_CHANGED" || m.Values["callid"] != before[0].CallID || m.Values["node"] != "node-p" {
				t.Fatalf("stream entry %v", m.Values)
			}
			states = append(states, fmt.Sprint(m.Values["old_state_name"], ">", m.Values["new_state_name"]))
		}
		if len(states) >= 5 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	want := []string{"UNCONFIRMED>EARLY", "EARLY>CONFIRMED_NA", "CONFIRMED_NA>CONFIRMED", "CONFIRMED>TERMINATED", "TERMINATED>DELETED"}
	if fmt.Sprint(states) != fmt.Sprint(want) {
		t.Errorf("events = %v, want %v", states, want)
	}
}

// persistedNode starts a sipp callee and returns it with the config of a
// proxy (db_mode 1 and a shared profile calls/s, both in srv) whose calls
// to bob go to it.
func persistedNode(t *testing.T, srv *redistest.Server, node, extra string) (*Sipp, string) {
	t.Helper()
	uas := StartSipp(t, SippArgs{Scenario: "uas.xml", Timeout: 60 * time.Second})
	cfg := NewProxyConfig(t)
	cfg.Static["sip:bob@127.0.0.1"] = []string{uas.Contact("bob")}
	cfg.Extra = fmt.Sprintf(`dialog: {db_mode: 1, db_url: %q}
profiles: {cachedb_url: %q, no_value: [calls/s], node_id: %s}
limits: [{profile: calls/s, max: 10}]
%s
`, srv.URL(), srv.URL(), node, extra)
	return uas, cfg.YAML()
}

func waitHash(t *testing.T, c *redis.Client, key string, want int64) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		n, err := c.HLen(context.Background(), key).Result()
		if err != nil {
			t.Fatal(err)
		}
		if n == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("HLEN %s = %d, want %d", key, n, want)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Issue 6 §4: a request within a restored dialog finds it: the caller's
// BYE after the restart goes through the dialog, which ends and leaves its
// profile and the dialog store.
func TestE2E_InDialogRequestAfterSIGKILL(t *testing.T) {
	RequireTools(t)
	t.Parallel()
	srv := redistest.Start(t, redistest.Options{})
	rc := srv.Client(t)
	uas, yaml := persistedNode(t, srv, "node-q", "")
	p := StartProxy(t, yaml)
	uac := StartSipp(t, SippArgs{Scenario: "uac.xml", Remote: p.Addr("udp"), Service: "bob",
		Pause: 8 * time.Second, Timeout: 60 * time.Second})
	waitDialogs(t, p, "a confirmed dialog", func(ds []dlgInfo) bool { return len(ds) == 1 && ds[0].State == "CONFIRMED" })
	waitHash(t, rc, "imsdlg_dlg_node-q", 1)
	p.Kill()
	p2 := StartProxy(t, yaml)
	if ds := dlgList(t, p2); len(ds) != 1 {
		t.Fatalf("dlg.list after restart = %+v, want the call", ds)
	}
	// The caller hangs up after its pause, through the restarted proxy.
	waitAll(t, uac, uas)
	waitDialogs(t, p2, "no dialog", func(ds []dlgInfo) bool { return len(ds) == 0 })
	if st := dlgStats(t, p2); st["processed_dialogs"] != 1 {
		t.Errorf("dlg.stats: %v, want the restored dialog ended by the BYE (processed 1)", st)
	}
	waitHash(t, rc, "imsdlg_dlg_node-q", 0)
	waitCounter(t, rc, "dlg_noval_calls", 0)
}

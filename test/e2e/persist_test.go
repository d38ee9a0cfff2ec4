package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/imsdlg/imsdlg/cachedb"
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
	// Issue 12 §8: the operator's call left an audit line, and the call
	// its one line at the end, both naming it.
	for _, want := range []string{`msg="mgmt: audit" method=dlg.terminate_dlg`, `msg="call ended" callid=` + after[0].CallID} {
		if out := p2.Output(); !strings.Contains(out, want) {
			t.Errorf("the proxy's log lacks %q", want)
		}
	}
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
			// Issue 13 §5: OpenSIPS's ids and the end reason.
			if m.Values["hash_entry"] != fmt.Sprint(before[0].HEntry) || m.Values["hash_id"] != fmt.Sprint(before[0].HID) {
				t.Errorf("stream entry ids %v, want hash_entry %d hash_id %d", m.Values, before[0].HEntry, before[0].HID)
			}
			if m.Values["new_state_name"] == "TERMINATED" && m.Values["end_reason"] != "terminated" {
				t.Errorf("TERMINATED entry %v, want end_reason terminated (dlg.terminate_dlg)", m.Values)
			}
		}
		if (len(states) > 0 && states[len(states)-1] == "TERMINATED>DELETED") || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	want := []string{"UNCONFIRMED>EARLY", "EARLY>CONFIRMED_NA", "CONFIRMED_NA>CONFIRMED", "CONFIRMED>TERMINATED", "TERMINATED>DELETED"}
	// The callee sends its 180 and 200 back to back over UDP; two readers
	// may handle the 200 first (SIP over UDP does not keep order), and the
	// 180 that comes after the answer makes no early state.
	reordered := append([]string{"UNCONFIRMED>CONFIRMED_NA"}, want[2:]...)
	if fmt.Sprint(states) != fmt.Sprint(want) && fmt.Sprint(states) != fmt.Sprint(reordered) {
		t.Errorf("events = %v, want %v (or, 180 after 200, %v)", states, want, reordered)
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

// Issue 15 §2: a proxy restarted while Redis is down starts (a Redis
// outage must not become a SIP outage), says not ready, and once Redis
// answers it restores its saved call and reconciles its counts: the call
// is listed and counted once (a count its last run left for a call that
// no longer exists is removed), and it ends with BYE both ways.
func TestIssue15_2_RestartWhileRedisIsDown(t *testing.T) {
	RequireTools(t)
	t.Parallel()
	srv := redistest.Start(t, redistest.Options{Persistent: true})
	rc := srv.Client(t)
	uas, yaml := persistedNode(t, srv, "node-r", "")
	p := StartProxy(t, yaml)
	uac := StartSipp(t, SippArgs{Scenario: "uac_recv_bye.xml", Remote: p.Addr("udp"), Service: "bob", Timeout: 90 * time.Second})
	before := waitDialogs(t, p, "a confirmed dialog", func(ds []dlgInfo) bool { return len(ds) == 1 && ds[0].State == "CONFIRMED" })
	waitHash(t, rc, "imsdlg_dlg_node-r", 1)
	// A count the node left for a call that has ended since.
	st, err := cachedb.NewRedis(cachedb.RedisOptions{URL: srv.URL(), Keys: cachedb.DefaultKeys()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.Add(context.Background(), cachedb.Profile{Name: "calls"}, "", cachedb.Member{Node: "node-r", Dialog: "ff.1"}, 0); err != nil {
		t.Fatal(err)
	}
	waitCounter(t, rc, "dlg_noval_calls", 2)

	p.Kill()
	srv.Stop()
	p2 := StartProxy(t, yaml)
	if code := p2.Ready(); code != 503 {
		t.Errorf("/readyz = %d with Redis down and nothing restored, want 503", code)
	}
	if ds := dlgList(t, p2); len(ds) != 0 {
		t.Fatalf("dlg.list with Redis down = %+v, want nothing yet", ds)
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for p2.Ready() != 200 {
		if time.Now().After(deadline) {
			t.Fatalf("/readyz not 200 within 30 s of Redis coming back")
		}
		time.Sleep(100 * time.Millisecond)
	}
	after := dlgList(t, p2)
	if len(after) != 1 || after[0].CallID != before[0].CallID || after[0].State != "CONFIRMED" {
		t.Fatalf("dlg.list once Redis is back = %+v, want the call", after)
	}
	waitCounter(t, rc, "dlg_noval_calls", 1)
	if _, err := p2.RPC("dlg.terminate_dlg", map[string]any{"callid": after[0].CallID, "from_tag": after[0].FromTag,
		"to_tag": after[0].ToTag}); err != nil {
		t.Fatalf("dlg.terminate_dlg: %v", err)
	}
	waitAll(t, uac, uas)
	waitHash(t, rc, "imsdlg_dlg_node-r", 0)
	waitCounter(t, rc, "dlg_noval_calls", 0)
	if !strings.Contains(p2.Output(), "retrying in the background") {
		t.Errorf("the proxy did not say it started without what Redis holds")
	}
}

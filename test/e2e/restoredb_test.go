package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/imsdlg/imsdlg/internal/redistest"
)

// OpenSIPS dialog MI dlg_restore_db (001 §1.9.10): after the dialog store
// and the proxy went out of step (here: the node's hash deleted and a
// stray record left in it), dlg.restore_db rewrites it with the confirmed
// dialogs in memory, and only those. Without a store it says so.
func TestSeedDialog_1_9_10_RestoreDB(t *testing.T) {
	RequireTools(t)
	t.Parallel()
	srv := redistest.Start(t, redistest.Options{})
	rc := srv.Client(t)
	uas, yaml := persistedNode(t, srv, "node-r", "")
	p := StartProxy(t, yaml)
	uac := StartSipp(t, SippArgs{Scenario: "uac_recv_bye.xml", Remote: p.Addr("udp"), Service: "bob", Timeout: 60 * time.Second})
	ds := waitDialogs(t, p, "a confirmed dialog", func(ds []dlgInfo) bool { return len(ds) == 1 && ds[0].State == "CONFIRMED" })
	const key = "imsdlg_dlg_node-r"
	waitHash(t, rc, key, 1)
	ctx := context.Background()
	fields, err := rc.HKeys(ctx, key).Result()
	if err != nil || len(fields) != 1 {
		t.Fatalf("HKEYS %s = %v, %v", key, fields, err)
	}
	did := fields[0]
	// Out of step: the call's record lost, a record of no call left.
	if err := rc.Del(ctx, key).Err(); err != nil {
		t.Fatal(err)
	}
	if err := rc.HSet(ctx, key, "ff.1", `{"v":1,"h_entry":255,"h_id":1,"callid":"gone"}`).Err(); err != nil {
		t.Fatal(err)
	}

	raw, err := p.RPC("dlg.restore_db", nil)
	if err != nil {
		t.Fatalf("dlg.restore_db: %v", err)
	}
	var res struct {
		Written int    `json:"written"`
		Node    string `json:"node"`
	}
	if err := json.Unmarshal(raw, &res); err != nil || res.Written != 1 || res.Node != "node-r" {
		t.Fatalf("dlg.restore_db = %s (%v), want written 1 on node-r", raw, err)
	}
	got, err := rc.HGetAll(ctx, key).Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || !strings.Contains(got[did], ds[0].CallID) {
		t.Errorf("%s after dlg.restore_db = %v, want only %s, the record of %s", key, got, did, ds[0].CallID)
	}
	if out := p.Output(); !strings.Contains(out, `msg="mgmt: audit" method=dlg.restore_db`) {
		t.Errorf("no audit line for dlg.restore_db")
	}

	// The call goes on and ends as usual, leaving the store empty.
	if _, err := p.RPC("dlg.terminate_dlg", map[string]any{"callid": ds[0].CallID, "from_tag": ds[0].FromTag,
		"to_tag": ds[0].ToTag}); err != nil {
		t.Fatalf("dlg.terminate_dlg: %v", err)
	}
	waitAll(t, uac, uas)
	waitHash(t, rc, key, 0)

	bare := StartProxy(t, NewProxyConfig(t).YAML())
	_, err = bare.RPC("dlg.restore_db", nil)
	var rpcErr *RPCError
	if !errors.As(err, &rpcErr) || !strings.Contains(rpcErr.Message, "dialog.db_mode is 0") {
		t.Errorf("dlg.restore_db without a store: %v, want an error naming dialog.db_mode", err)
	}
}

package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/imsdlg/imsdlg/internal/redistest"
)

// OpenSIPS dialog MI dlg_db_sync (001 §1.9.8): a backup proxy running with
// the node id of the active one loads, on demand, the saved dialogs it does
// not hold (a failover takes the calls over), and leaves those it holds
// alone; a second sync loads nothing. Without a store it says so.
func TestSeedDialog_1_9_8_DBSync(t *testing.T) {
	RequireTools(t)
	t.Parallel()
	srv := redistest.Start(t, redistest.Options{})
	rc := srv.Client(t)
	uas, yaml := persistedNode(t, srv, "node-s", "")
	// The backup first: at its start the store is empty.
	bcfg := NewProxyConfig(t)
	bcfg.Static["sip:bob@127.0.0.1"] = []string{uas.Contact("bob")}
	bcfg.Extra = fmt.Sprintf("dialog: {db_mode: 1, db_url: %q}\nprofiles: {cachedb_url: %q, no_value: [calls/s], node_id: node-s}\n"+
		"limits: [{profile: calls/s, max: 10}]\n", srv.URL(), srv.URL())
	backup := StartProxy(t, bcfg.YAML())
	active := StartProxy(t, yaml)
	uac := StartSipp(t, SippArgs{Scenario: "uac_recv_bye.xml", Remote: active.Addr("udp"), Service: "bob", Timeout: 60 * time.Second})
	ds := waitDialogs(t, active, "a confirmed dialog", func(ds []dlgInfo) bool { return len(ds) == 1 && ds[0].State == "CONFIRMED" })
	waitHash(t, rc, "imsdlg_dlg_node-s", 1)

	type syncResult struct {
		Loaded, Kept, Dropped int
		Node                  string
	}
	dbSync := func(p *Proxy) syncResult {
		t.Helper()
		raw, err := p.RPC("dlg.db_sync", nil)
		if err != nil {
			t.Fatalf("dlg.db_sync: %v", err)
		}
		var r syncResult
		if err := json.Unmarshal(raw, &r); err != nil {
			t.Fatalf("dlg.db_sync = %s: %v", raw, err)
		}
		return r
	}
	if got := dbSync(backup); got != (syncResult{Loaded: 1, Node: "node-s"}) {
		t.Fatalf("first dlg.db_sync on the backup = %+v, want the call loaded", got)
	}
	bds := waitDialogs(t, backup, "the call loaded", func(ds []dlgInfo) bool { return len(ds) == 1 })
	if bds[0].CallID != ds[0].CallID || bds[0].DID != ds[0].DID || bds[0].State != "CONFIRMED" || bds[0].ToTag != ds[0].ToTag {
		t.Errorf("backup holds %+v, want the active's %+v", bds[0], ds[0])
	}
	if got := dbSync(backup); got != (syncResult{Kept: 1, Node: "node-s"}) {
		t.Errorf("second dlg.db_sync on the backup = %+v, want the call kept, nothing loaded", got)
	}
	if got := dbSync(active); got != (syncResult{Kept: 1, Node: "node-s"}) {
		t.Errorf("dlg.db_sync on the active = %+v, want its own call kept", got)
	}
	if out := backup.Output(); !strings.Contains(out, `msg="mgmt: audit" method=dlg.db_sync`) {
		t.Errorf("no audit line for dlg.db_sync")
	}

	// The active ends the call; its record goes.
	if _, err := active.RPC("dlg.terminate_dlg", map[string]any{"callid": ds[0].CallID, "from_tag": ds[0].FromTag,
		"to_tag": ds[0].ToTag}); err != nil {
		t.Fatalf("dlg.terminate_dlg: %v", err)
	}
	waitAll(t, uac, uas)
	waitHash(t, rc, "imsdlg_dlg_node-s", 0)
	if got := dbSync(active); got != (syncResult{Node: "node-s"}) {
		t.Errorf("dlg.db_sync after the call = %+v, want nothing", got)
	}

	bare := StartProxy(t, NewProxyConfig(t).YAML())
	_, err := bare.RPC("dlg.db_sync", nil)
	var rpcErr *RPCError
	if !errors.As(err, &rpcErr) || !strings.Contains(rpcErr.Message, "dialog.db_mode is 0") {
		t.Errorf("dlg.db_sync without a store: %v, want an error naming dialog.db_mode", err)
	}
}

package e2e

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/imsdlg/imsdlg/internal/siptest"
)

// ims is a P-CSCF and an S-CSCF (two imsproxy processes), an application
// server (sipp acting as a proxy, as_proxy.xml) and the callee UEs (sipp
// UASs) registered as bob@127.0.0.1 through the P-CSCF.
type ims struct {
	pcscf, scscf *Proxy
	as           *Sipp
	callees      []*Sipp
}

// binding is the part of ul.dump the tests read.
type binding struct {
	AOR      string `json:"aor"`
	Contact  string `json:"contact"`
	Received string `json:"received"`
}

// startIMS starts the AS, the S-CSCF (its one AS rule sends INVITEs for bob
// to the AS), the P-CSCF in front of it (per-UE limit of one call), the
// callees, and registers each callee's contact through the P-CSCF with a
// real REGISTER (register.xml fails unless the 200 echoes the P-CSCF's
// Path).
func startIMS(t *testing.T, callees ...SippArgs) *ims {
	t.Helper()
	n := &ims{as: StartSipp(t, SippArgs{Scenario: "as_proxy.xml"})}
	for _, c := range callees {
		n.callees = append(n.callees, StartSipp(t, c))
	}

	s := NewProxyConfig(t)
	s.Extra = fmt.Sprintf("role: scscf\nscscf:\n  as_rules:\n    - {method: INVITE, ruri: '^sip:bob@', as: 'sip:%s'}\n", n.as.Addr())
	n.scscf = StartProxy(t, s.YAML())

	p := NewProxyConfig(t)
	p.Extra = fmt.Sprintf("role: pcscf\npcscf: {scscf_uri: 'sip:%s'}\n"+
		"profiles: {with_value: [ue_calls]}\n"+
		"limits: [{profile: ue_calls, key: from_uri, max: 1, code: 486, reason: 'Too many calls'}]\n",
		n.scscf.Addr("udp"))
	n.pcscf = StartProxy(t, p.YAML())

	for _, c := range n.callees {
		reg := StartSipp(t, SippArgs{Scenario: "register.xml", Remote: n.pcscf.Addr("udp"), Service: "bob",
			Keys: map[string]string{"contact": c.URI("bob")}})
		if err := reg.Wait(); err != nil {
			t.Fatalf("REGISTER of %s through the P-CSCF: %v", c.URI("bob"), err)
		}
	}
	// The S-CSCF is the registrar: both contacts, each REGISTER received
	// from the P-CSCF.
	raw, err := n.scscf.RPC("ul.dump", nil)
	if err != nil {
		t.Fatalf("ul.dump: %v", err)
	}
	var bs []binding
	if err := json.Unmarshal(raw, &bs); err != nil {
		t.Fatalf("ul.dump: %v: %s", err, raw)
	}
	if len(bs) != len(n.callees) {
		t.Fatalf("S-CSCF ul.dump: %d bindings, want %d: %s", len(bs), len(n.callees), raw)
	}
	for i, c := range n.callees {
		b := bs[i]
		if b.AOR != "sip:bob@127.0.0.1" || b.Received != n.pcscf.Addr("udp") {
			t.Errorf("binding %d: %+v, want AOR sip:bob@127.0.0.1 received from the P-CSCF %s", i, b, n.pcscf.Addr("udp"))
		}
		if !containsContact(bs, c.URI("bob")) {
			t.Errorf("contact %s not registered: %s", c.URI("bob"), raw)
		}
	}
	// The P-CSCF is no registrar.
	if raw, err := n.pcscf.RPC("ul.dump", nil); err != nil || string(raw) != "[]" {
		t.Errorf("P-CSCF ul.dump = %s, %v; want []", raw, err)
	}
	return n
}

func containsContact(bs []binding, contact string) bool {
	for _, b := range bs {
		if b.Contact == contact {
			return true
		}
	}
	return false
}

// call starts the caller UE (Service bob) against the P-CSCF.
func (n *ims) call(t *testing.T, caller SippArgs) *Sipp {
	t.Helper()
	caller.Remote, caller.Service = n.pcscf.Addr("udp"), "bob"
	return StartSipp(t, caller)
}

// terminate ends the call from the S-CSCF's management API.
func (n *ims) terminate(t *testing.T, d dlgInfo, side string) {
	t.Helper()
	if _, err := n.scscf.RPC("dlg.terminate_dlg", map[string]any{"callid": d.CallID, "from_tag": d.FromTag,
		"side": side, "reason": "terminated by the S-CSCF operator"}); err != nil {
		t.Fatalf("dlg.terminate_dlg on the S-CSCF: %v", err)
	}
}

// checkOneDialogPerNode: the call made one dialog on each node; the
// request back from the AS joined the S-CSCF's (one spiral), and the two
// terminating branches through the P-CSCF joined the P-CSCF's.
func (n *ims) checkOneDialogPerNode(t *testing.T, failed bool) {
	t.Helper()
	waitDialogs(t, n.scscf, "no dialog on the S-CSCF", func(ds []dlgInfo) bool { return len(ds) == 0 })
	waitDialogs(t, n.pcscf, "no dialog on the P-CSCF", func(ds []dlgInfo) bool { return len(ds) == 0 })
	end := "processed_dialogs"
	if failed {
		end = "failed_dialogs"
	}
	if st := dlgStats(t, n.scscf); st["created_dialogs"] != 1 || st["spiraled_requests"] != 1 || st[end] != 1 || st["active_dialogs"] != 0 {
		t.Errorf("S-CSCF dlg.stats: %v; want one dialog, one spiral (back from the AS), %s 1", st, end)
	}
	st := dlgStats(t, n.pcscf)
	if st["created_dialogs"] != 1 || st["spiraled_requests"] != 2 || st[end] != 1 {
		t.Errorf("P-CSCF dlg.stats: %v; want one dialog joined by the two terminating branches, %s 1", st, end)
	}
	// validate_dialog is on at the P-CSCF: the call's own requests (the
	// ACK passes it twice through the spiral) all fit their dialog.
	if st["invalid_remote_target"] != 0 || st["invalid_route_set"] != 0 {
		t.Errorf("P-CSCF dlg.stats: %v; a good call's requests were taken for forged ones", st)
	}
}

// Issue 6: UE → P-CSCF → S-CSCF → AS (sipp as a proxy) → S-CSCF →
// P-CSCF → two callee UEs in parallel; both ring, and the S-CSCF's
// operator ends the call: the callees get CANCEL (with a Reason), the
// caller the early_terminate_code (487).
func TestE2E_RolesEarlyCallEndedAtSCSCF(t *testing.T) {
	RequireTools(t)
	t.Parallel()
	ring := SippArgs{Scenario: "uas_ring.xml", Vars: map[string]string{"require_reason": "1"}}
	n := startIMS(t, ring, ring)
	uac := n.call(t, SippArgs{Scenario: "uac_expect.xml", Keys: map[string]string{"code": "487"}})

	ds := waitDialogs(t, n.scscf, "one early dialog with both callees' legs", func(ds []dlgInfo) bool {
		return len(ds) >= 1 && ds[0].State == "EARLY" && len(ds[0].DlgOuts) == 2
	})
	if len(ds) != 1 {
		t.Fatalf("S-CSCF dlg.list: %d dialogs for one call: %+v", len(ds), ds)
	}
	n.terminate(t, ds[0], "both")
	waitAll(t, append([]*Sipp{uac}, append(n.callees, n.as)...)...)
	n.checkOneDialogPerNode(t, true)
}

// Issue 6: the same path; one callee answers (the other is cancelled with
// "Call completed elsewhere"), and the S-CSCF's operator ends the call:
// caller and callee each get a BYE with a Reason.
func TestE2E_RolesConfirmedCallEndedAtSCSCF(t *testing.T) {
	RequireTools(t)
	t.Parallel()
	n := startIMS(t,
		SippArgs{Scenario: "uas_answer_late.xml", Pause: 500 * time.Millisecond},
		SippArgs{Scenario: "uas_ring.xml", Vars: map[string]string{"require_reason": "1"}})
	uac := n.call(t, SippArgs{Scenario: "uac_recv_bye.xml", Vars: map[string]string{"require_reason": "1"}})

	ds := waitDialogs(t, n.scscf, "one confirmed dialog", func(ds []dlgInfo) bool {
		return len(ds) >= 1 && ds[0].State == "CONFIRMED"
	})
	if len(ds) != 1 || len(ds[0].DlgOuts) != 1 {
		t.Fatalf("S-CSCF dlg.list: want one dialog with the answered leg only: %+v", ds)
	}
	ps := dlgList(t, n.pcscf)
	if len(ps) != 1 || ps[0].CallID != ds[0].CallID {
		t.Fatalf("P-CSCF dlg.list: want the call's one dialog: %+v", ps)
	}
	// Issue 13 §1: a P-CSCF checks requests within dialogs by default
	// (dialog.validate_dialog auto = fix): a BYE forged on the caller's
	// side with a CSeq already used is refused, and the call goes on.
	forger := siptest.NewUA(t)
	forger.SendRaw(n.pcscf.Addr("udp"), fmt.Sprintf("BYE sip:bob@127.0.0.1 SIP/2.0\r\n"+
		"Via: SIP/2.0/UDP %s;branch=z9hG4bK-forged-1;rport\r\nMax-Forwards: 70\r\n"+
		"From: <sip:alice@127.0.0.1>;tag=%s\r\nTo: <sip:bob@127.0.0.1>;tag=%s\r\n"+
		"Call-ID: %s\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n", forger.HostPort(), ps[0].FromTag, ps[0].ToTag, ps[0].CallID))
	if res := forger.Final(); res.StatusCode != 400 {
		t.Errorf("forged BYE at the P-CSCF: %d %s, want 400", res.StatusCode, res.Reason)
	}
	if st := dlgStats(t, n.pcscf); st["invalid_cseq"] != 1 || st["active_dialogs"] != 1 {
		t.Errorf("P-CSCF dlg.stats after a forged BYE: %v; want invalid_cseq 1, the call still up", st)
	}
	n.terminate(t, ds[0], "both")
	waitAll(t, append([]*Sipp{uac}, append(n.callees, n.as)...)...)
	n.checkOneDialogPerNode(t, false)
}

package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/imsdlg/imsdlg/internal/siptest"
)

// dlgInfo is the part of dlg.list the tests read (a contract of issue 4).
type dlgInfo struct {
	HEntry  uint32 `json:"h_entry"`
	HID     uint32 `json:"h_id"`
	DID     string `json:"did"`
	CallID  string `json:"callid"`
	FromTag string `json:"from_tag"`
	ToTag   string `json:"to_tag"`
	State   string `json:"state"`
	DlgOuts []struct {
		ToTag string `json:"to_tag"`
		State string `json:"state"`
	} `json:"dlg_outs"`
}

func dlgList(t *testing.T, p *Proxy) []dlgInfo {
	t.Helper()
	raw, err := p.RPC("dlg.list", nil)
	if err != nil {
		t.Fatalf("dlg.list: %v", err)
	}
	var out []dlgInfo
	if err := json.Unmarshal(raw, &out); err != nil {
		t.Fatalf("dlg.list: %v: %s", err, raw)
	}
	return out
}

// oneCallee starts a sipp callee (registered statically as bob), the proxy
// with extra YAML, and the sipp caller calling bob through it.
func oneCallee(t *testing.T, callee, caller SippArgs, extra string) (p *Proxy, uac, uas *Sipp) {
	t.Helper()
	uas = StartSipp(t, callee)
	cfg := NewProxyConfig(t)
	cfg.Static["sip:bob@127.0.0.1"] = []string{uas.Contact("bob")}
	cfg.Extra = extra
	p = StartProxy(t, cfg.YAML())
	caller.Remote, caller.Service = p.Addr("udp"), "bob"
	uac = StartSipp(t, caller)
	return p, uac, uas
}

// waitDialogs polls dlg.list until cond holds for it.
func waitDialogs(t *testing.T, p *Proxy, what string, cond func([]dlgInfo) bool) []dlgInfo {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		ds := dlgList(t, p)
		if cond(ds) {
			return ds
		}
		if time.Now().After(deadline) {
			t.Fatalf("dlg.list never showed %s; last: %+v", what, ds)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func dlgStats(t *testing.T, p *Proxy) map[string]int64 {
	t.Helper()
	raw, err := p.RPC("dlg.stats", nil)
	if err != nil {
		t.Fatalf("dlg.stats: %v", err)
	}
	var m map[string]int64
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// Issue 4: a forked call with two early branches: the caller sees both
// 18x, dlg.list shows two dlg_out in EARLY, after the 200 only the
// answering one; the counters go back to 0 when the call ends.
func TestE2E_DialogForkTwoEarlyLegs(t *testing.T) {
	RequireTools(t)
	t.Parallel()
	ring := StartSipp(t, SippArgs{Scenario: "uas_ring.xml", Vars: map[string]string{"require_reason": "1"}})
	answer := StartSipp(t, SippArgs{Scenario: "uas_answer_late.xml", Pause: 1500 * time.Millisecond})
	cfg := NewProxyConfig(t)
	cfg.Static["sip:bob@127.0.0.1"] = []string{ring.Contact("bob"), answer.Contact("bob")}
	p := StartProxy(t, cfg.YAML())
	uac := StartSipp(t, SippArgs{Scenario: "uac.xml", Remote: p.Addr("udp"), Service: "bob", Pause: 1500 * time.Millisecond})

	early := waitDialogs(t, p, "one dialog with two early legs", func(ds []dlgInfo) bool {
		return len(ds) == 1 && ds[0].State == "EARLY" && len(ds[0].DlgOuts) == 2 &&
			ds[0].DlgOuts[0].State == "EARLY" && ds[0].DlgOuts[1].State == "EARLY"
	})
	if early[0].DlgOuts[0].ToTag == early[0].DlgOuts[1].ToTag {
		t.Errorf("two legs with one To tag: %+v", early[0])
	}
	confirmed := waitDialogs(t, p, "the answered leg only", func(ds []dlgInfo) bool {
		return len(ds) == 1 && ds[0].State == "CONFIRMED" && len(ds[0].DlgOuts) == 1
	})
	if confirmed[0].ToTag == "" || confirmed[0].ToTag != confirmed[0].DlgOuts[0].ToTag {
		t.Errorf("to_tag %q is not the remaining leg's: %+v", confirmed[0].ToTag, confirmed[0])
	}
	waitAll(t, uac, answer, ring)
	waitDialogs(t, p, "no dialog", func(ds []dlgInfo) bool { return len(ds) == 0 })
	st := dlgStats(t, p)
	if st["active_dialogs"] != 0 || st["early_dialogs"] != 0 || st["processed_dialogs"] != 1 {
		t.Errorf("dlg.stats after the call: %v", st)
	}
}

// Issue 4: dlg.terminate_dlg on an early call: the callee gets CANCEL with
// a Reason, the caller the final reply (487).
func TestE2E_DialogTerminateEarly(t *testing.T) {
	RequireTools(t)
	t.Parallel()
	p, uac, uas := oneCallee(t, SippArgs{Scenario: "uas_ring.xml", Vars: map[string]string{"require_reason": "1"}},
		SippArgs{Scenario: "uac_expect.xml", Keys: map[string]string{"code": "487"}}, "")
	ds := waitDialogs(t, p, "an early dialog", func(ds []dlgInfo) bool { return len(ds) == 1 && ds[0].State == "EARLY" })
	if _, err := p.RPC("dlg.terminate_dlg", map[string]any{"callid": ds[0].CallID, "from_tag": ds[0].FromTag,
		"reason": "terminated by operator"}); err != nil {
		t.Fatalf("dlg.terminate_dlg: %v", err)
	}
	waitAll(t, uac, uas)
	waitDialogs(t, p, "no dialog", func(ds []dlgInfo) bool { return len(ds) == 0 })
	if st := dlgStats(t, p); st["failed_dialogs"] != 1 || st["early_dialogs"] != 0 {
		t.Errorf("dlg.stats: %v", st)
	}
	// Unknown or ended dialogs answer "not found", never a crash.
	_, err := p.RPC("dlg.terminate_dlg", map[string]any{"callid": ds[0].CallID, "from_tag": ds[0].FromTag})
	if rpcErr, ok := err.(*RPCError); !ok || rpcErr.Code != -32004 {
		t.Errorf("terminating an ended dialog: %v", err)
	}
	_, err = p.RPC("dlg.terminate_dlg", map[string]any{"callid": "x", "side": "sideways"})
	if rpcErr, ok := err.(*RPCError); !ok || rpcErr.Code != -32602 {
		t.Errorf("bad side: %v", err)
	}
}

// Issue 4: dlg.terminate_dlg on a confirmed call: the caller and the
// callee that answered get BYE (with a Reason), and the dialog goes.
func TestE2E_DialogTerminateConfirmed(t *testing.T) {
	RequireTools(t)
	t.Parallel()
	p, uac, uas := oneCallee(t, SippArgs{Scenario: "uas.xml"},
		SippArgs{Scenario: "uac_recv_bye.xml", Vars: map[string]string{"require_reason": "1"}},
		"dialog: {dlg_extra_hdrs: [\"X-Ended-By: imsdlg\"]}")
	ds := waitDialogs(t, p, "a confirmed dialog", func(ds []dlgInfo) bool { return len(ds) == 1 && ds[0].State == "CONFIRMED" })
	if _, err := p.RPC("dlg.terminate_dlg", map[string]any{"callid": ds[0].CallID, "from_tag": ds[0].FromTag,
		"to_tag": ds[0].ToTag, "side": "both", "reason": "terminated by operator"}); err != nil {
		t.Fatalf("dlg.terminate_dlg: %v", err)
	}
	waitAll(t, uac, uas)
	waitDialogs(t, p, "no dialog", func(ds []dlgInfo) bool { return len(ds) == 0 })
	if st := dlgStats(t, p); st["active_dialogs"] != 0 || st["processed_dialogs"] != 1 {
		t.Errorf("dlg.stats: %v", st)
	}
}

// OpenSIPS dialog manual 1.9.12 (dlg_push_var): a dialog value pushed to a
// list of dialogs, named by DID or by Call-ID, positional as opensips-cli
// sends it; the IDs that name no dialog come back, and a list naming none
// is "not found".
func TestSeedDialog_1_9_12_PushVar(t *testing.T) {
	RequireTools(t)
	t.Parallel()
	p, uac, uas := oneCallee(t, SippArgs{Scenario: "uas.xml"}, SippArgs{Scenario: "uac_recv_bye.xml"}, "")
	ds := waitDialogs(t, p, "a confirmed dialog", func(ds []dlgInfo) bool { return len(ds) == 1 && ds[0].State == "CONFIRMED" })
	getVar := func(name string) string {
		t.Helper()
		raw, err := p.RPC("dlg.get_var", map[string]any{"callid": ds[0].CallID, "name": name})
		if err != nil {
			t.Fatalf("dlg.get_var: %v", err)
		}
		var v struct {
			Value string `json:"value"`
		}
		json.Unmarshal(raw, &v)
		return v.Value
	}
	raw, err := p.RPC("dlg.push_var", []any{"campaign", "spring", ds[0].DID, "no-such-call"})
	if err != nil || !strings.Contains(string(raw), `"updated":1`) || !strings.Contains(string(raw), `"not_found":["no-such-call"]`) {
		t.Fatalf("dlg.push_var by DID: %s (%v)", raw, err)
	}
	if got := getVar("campaign"); got != "spring" {
		t.Errorf("campaign = %q after dlg.push_var by DID", got)
	}
	if _, err := p.RPC("dlg.push_var", map[string]any{"dlg_val_name": "campaign", "dlg_val_value": "summer",
		"dids": []string{ds[0].CallID}}); err != nil {
		t.Fatalf("dlg.push_var by Call-ID: %v", err)
	}
	if got := getVar("campaign"); got != "summer" {
		t.Errorf("campaign = %q after dlg.push_var by Call-ID", got)
	}
	var rpcErr *RPCError
	for _, tc := range []struct {
		params any
		code   int
	}{
		{[]any{"campaign", "x"}, -32602},
		{[]any{"campaign", "x", "no-such-call"}, -32004},
		{map[string]any{"dlg_val_name": "", "dlg_val_value": "x", "dids": []string{ds[0].DID}}, -32602},
	} {
		if _, err := p.RPC("dlg.push_var", tc.params); !errors.As(err, &rpcErr) || rpcErr.Code != tc.code {
			t.Errorf("dlg.push_var %v: %v, want %d", tc.params, err, tc.code)
		}
	}
	if _, err := p.RPC("dlg.terminate_dlg", map[string]any{"callid": ds[0].CallID}); err != nil {
		t.Fatalf("dlg.terminate_dlg: %v", err)
	}
	waitAll(t, uac, uas)
}

// Issue 4: default_timeout ends a confirmed call with BYE both ways.
func TestE2E_DialogTimeout(t *testing.T) {
	RequireTools(t)
	t.Parallel()
	p, uac, uas := oneCallee(t, SippArgs{Scenario: "uas.xml"},
		SippArgs{Scenario: "uac_recv_bye.xml", Vars: map[string]string{"require_reason": "1"}},
		"dialog: {default_timeout: 1s}")
	waitAll(t, uac, uas)
	waitDialogs(t, p, "no dialog", func(ds []dlgInfo) bool { return len(ds) == 0 })
	if st := dlgStats(t, p); st["expired_dialogs"] != 1 {
		t.Errorf("dlg.stats: %v", st)
	}
}

// Issue 4 / DESIGN §4: an INVITE that comes back through an application
// server joins its dialog (SPIRALED) instead of creating a second one. The
// caller and callee are sipp; the AS is a minimal hand-written peer on a
// loopback socket that sends the INVITE back with our Record-Route as its
// Route (an ODI) and relays the replies.
func TestE2E_DialogSpiralThroughAS(t *testing.T) {
	RequireTools(t)
	t.Parallel()
	uas := StartSipp(t, SippArgs{Scenario: "uas.xml"})
	as := siptest.NewUA(t)
	cfg := NewProxyConfig(t)
	// bob's only contact is the AS; the AS sends the call on to carol.
	cfg.Static["sip:bob@127.0.0.1"] = []string{"sip:bob@" + as.HostPort()}
	cfg.Static["sip:carol@127.0.0.1"] = []string{uas.Contact("carol")}
	p := StartProxy(t, cfg.YAML())
	proxy := p.Addr("udp")
	done := make(chan error, 1)
	go func() { done <- actAsAS(as, proxy) }()
	uac := StartSipp(t, SippArgs{Scenario: "uac.xml", Remote: proxy, Service: "bob"})
	waitAll(t, uac, uas)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	waitDialogs(t, p, "no dialog", func(ds []dlgInfo) bool { return len(ds) == 0 })
	st := dlgStats(t, p)
	if st["created_dialogs"] != 1 || st["spiraled_requests"] != 1 || st["processed_dialogs"] != 1 {
		t.Errorf("one dialog, one spiral expected: %v", st)
	}
}

// actAsAS plays the application server of one call: INVITE back to the
// proxy along our Record-Route, replies relayed until the 2xx.
func actAsAS(as *siptest.UA, proxy string) (err error) {
	defer func() {
		// siptest fails the test through t on a timeout; report as error.
		if r := recover(); r != nil {
			err = fmt.Errorf("AS: %v", r)
		}
	}()
	inv := as.Request(sip.INVITE)
	as.Reply(inv, 100, "")
	rr := inv.RecordRoute()
	if rr == nil {
		return fmt.Errorf("AS: the INVITE has no Record-Route of the proxy")
	}
	back := inv.Clone()
	back.Recipient = sip.Uri{Scheme: "sip", User: "carol", Host: "127.0.0.1"}
	back.PrependHeader(&sip.RouteHeader{Address: *rr.Address.Clone()})
	_, err = as.ProxyOnce(back, proxy)
	return err
}

// Issue 12 §5 (OpenSIPS dialog options_ping_interval, flag p): the callee
// of a confirmed call vanishes (its sipp is killed). The proxy's OPTIONS
// ping goes unanswered, the dialog ends with BYE both ways (the caller's
// gets 200), end reason ping_timeout, and the call's place in its
// per-caller limit is given back at once rather than after default_timeout.
func TestE2E_DialogPingEndsTheCallOfAVanishedCallee(t *testing.T) {
	RequireTools(t)
	t.Parallel()
	p, uac, uas := oneCallee(t, SippArgs{Scenario: "uas.xml"},
		SippArgs{Scenario: "uac_recv_bye.xml", Vars: map[string]string{"require_reason": "1"}},
		"dialog: {ping: callee, options_ping_interval: 2s}\n"+
			"profiles: {with_value: [caller]}\n"+
			"limits: [{profile: caller, key: from_uri, max: 1}]\n"+
			"tm: {fr_timeout: 1s}")
	waitDialogs(t, p, "a confirmed dialog", func(ds []dlgInfo) bool { return len(ds) == 1 && ds[0].State == "CONFIRMED" })
	uas.Kill()
	if err := uac.Wait(); err != nil {
		t.Fatal(err)
	}
	waitDialogs(t, p, "no dialog", func(ds []dlgInfo) bool { return len(ds) == 0 })
	st := dlgStats(t, p)
	if st["ping_timeout_dialogs"] != 1 || st["active_dialogs"] != 0 {
		t.Errorf("dlg.stats: %v", st)
	}
	if v, ok := MetricValue(p.Metrics(), `imsdlg_dialog_ended_dialogs_total{reason="ping_timeout"}`); !ok || v != 1 {
		t.Errorf("ended_dialogs_total{ping_timeout} = %v (found %v)", v, ok)
	}
	wantProfileEmpty(t, p, "caller")
}

// wantProfileEmpty fails unless the profile counts no call any more.
func wantProfileEmpty(t *testing.T, p *Proxy, profile string) {
	t.Helper()
	raw, err := p.RPC("dlg.profile_get_size", map[string]any{"profile": profile})
	if err != nil {
		t.Fatalf("dlg.profile_get_size: %v", err)
	}
	var size struct{ Size int64 }
	if err := json.Unmarshal(raw, &size); err != nil || size.Size != 0 {
		t.Errorf("profile %s holds %s after the call ended (%v)", profile, raw, err)
	}
}

// Issue 12 §5 (OpenSIPS dialog reinvite_ping_interval, create_dialog
// flags R and r): both parties get re-INVITE pings offering the other
// party's SDP, and answer them (sipp checks the SDP, the proxy ACKs the
// 2xx); then the callee vanishes (its sipp ends after the first ping). The
// next ping goes unanswered: BYE to the caller (after the pings it
// answered), end reason ping_timeout, the limit given back.
func TestIssue12_5_ReinvitePingEndsTheCallOfAVanishedCallee(t *testing.T) {
	RequireTools(t)
	t.Parallel()
	p, uac, uas := oneCallee(t, SippArgs{Scenario: "uas_reinvite_ping.xml", Vars: map[string]string{"vanish": "1"}},
		SippArgs{Scenario: "uac_answer_pings.xml"},
		"dialog: {reinvite_ping: both, reinvite_ping_interval: 2s}\n"+
			"profiles: {with_value: [caller]}\n"+
			"limits: [{profile: caller, key: from_uri, max: 1}]\n"+
			"tm: {fr_timeout: 1s}")
	waitAll(t, uas, uac)
	waitDialogs(t, p, "no dialog", func(ds []dlgInfo) bool { return len(ds) == 0 })
	if st := dlgStats(t, p); st["ping_timeout_dialogs"] != 1 {
		t.Errorf("dlg.stats: %v", st)
	}
	wantProfileEmpty(t, p, "caller")
}

// RFC 3261 §12.2.2: a UA refuses a request whose CSeq is not above the
// last it saw (most stacks refuse an equal one too). The proxy's re-INVITE
// ping to the callee takes the caller's next number, so the caller's own
// BYE (CSeq 2) must reach the callee renumbered above it (3; sipp checks),
// and its 200 must come back to the caller as CSeq 2 (sipp matches it).
func TestRFC3261_12_2_2_CallerRequestsAfterAPingStayInOrder(t *testing.T) {
	RequireTools(t)
	t.Parallel()
	_, uac, uas := oneCallee(t, SippArgs{Scenario: "uas_reinvite_ping.xml", Vars: map[string]string{"min_cseq": "3"}},
		SippArgs{Scenario: "uac.xml", Pause: 3 * time.Second},
		"dialog: {reinvite_ping: callee, reinvite_ping_interval: 2s}\ntm: {fr_timeout: 1s}")
	waitAll(t, uac, uas)
}

// Issue 13 §2: a limit's timeout is the lifetime of the calls it counts:
// the proxy ends the call with BYE both ways once it runs out, long before
// dialog.default_timeout.
func TestIssue13_2_LimitTimeoutEndsTheCall(t *testing.T) {
	RequireTools(t)
	t.Parallel()
	uas := StartSipp(t, SippArgs{Scenario: "uas.xml", Timeout: 30 * time.Second})
	cfg := NewProxyConfig(t)
	cfg.Static["sip:bob@127.0.0.1"] = []string{uas.Contact("bob")}
	cfg.Extra = "profiles: {no_value: [calls]}\nlimits: [{profile: calls, max: 0, timeout: 2}]"
	p := StartProxy(t, cfg.YAML())
	// The caller waits for the proxy's BYE: without the limit's timeout
	// (default_timeout is 12 h) its 30 s run out first and it fails.
	uac := StartSipp(t, SippArgs{Scenario: "uac_recv_bye.xml", Remote: p.Addr("udp"), Service: "bob", Timeout: 30 * time.Second})
	waitAll(t, uac, uas)
	if st := dlgStats(t, p); st["expired_dialogs"] != 1 {
		t.Errorf("dlg.stats = %v, want the call expired", st)
	}
}

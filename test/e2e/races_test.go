package e2e

import (
	"encoding/json"
	"testing"
	"time"
)

// RFC 5407 §3.1.2, RFC 3261 §16.10 (issue 11 item 1): the caller's CANCEL
// crosses the callee's 200. The proxy answers the CANCEL 200, relays the
// 200 of the INVITE (no local 487 first), and neither CANCELs nor BYEs the
// callee itself: the caller ACKs and ends the call with a BYE that gets
// 200. sipp on both sides; the callee fails on any request it does not
// expect.
func TestRFC5407_3_1_2_CancelCrossing2xx(t *testing.T) {
	RequireTools(t)
	t.Parallel()
	uas := StartSipp(t, SippArgs{Scenario: "uas_answer_silent.xml", Pause: 300 * time.Millisecond})
	cfg := NewProxyConfig(t)
	cfg.Static["sip:bob@127.0.0.1"] = []string{uas.Contact("bob")}
	p := StartProxy(t, cfg.YAML())
	uac := StartSipp(t, SippArgs{Scenario: "uac_cancel_crossing.xml", Remote: p.Addr("udp"), Service: "bob"})
	waitAll(t, uac, uas)
	m := settle(t, p)
	if m["cancels_received"] != 1 {
		t.Errorf("cancels_received = %d, want 1", m["cancels_received"])
	}
	if m["cancels_sent"] != 0 || m["local_requests"] != 0 {
		t.Errorf("the proxy sent %d CANCELs and %d requests of its own to the answered leg, want none",
			m["cancels_sent"], m["local_requests"])
	}
	dialogsEnd(t, p)
}

// RFC 3261 §16.7 step 5 (issue 11 item 1): a call forked to two callees
// that both answer. Both 200s reach the caller (the default,
// dialog.second_2xx: relay), the caller ACKs both and ends each with a BYE
// that gets 200; the proxy sends no CANCEL, ACK or BYE of its own.
func TestRFC3261_16_7_TwoAnswersBothRelayed(t *testing.T) {
	RequireTools(t)
	t.Parallel()
	p := twoAnswers(t, "uac_two_answers.xml")
	m := settle(t, p)
	if m["cancels_sent"] != 0 || m["local_requests"] != 0 {
		t.Errorf("the proxy sent %d CANCELs and %d requests of its own, want none", m["cancels_sent"], m["local_requests"])
	}
	if m["2xx_transactions"] < 3 { // the INVITE and the two BYEs
		t.Errorf("2xx_transactions = %d, want at least 3", m["2xx_transactions"])
	}
	dialogsEnd(t, p)
}

// RFC 3261 §16.7 step 5 with a reordered ACK: the caller's BYE of the
// second answering callee reaches the proxy before that leg's ACK (UDP may
// reorder them; so did the proxy's own parallel readers, once in CI). The
// BYE ends the leg, and the ACK, whose Request-URI names the first callee
// (sipp keeps its first target), must still reach the second: the dialog
// remembers the ended leg's target. Without it the second callee never
// gets its ACK and its sipp fails.
func TestRFC3261_16_7_ACKOvertakenByTheBYEOfItsLeg(t *testing.T) {
	RequireTools(t)
	t.Parallel()
	dialogsEnd(t, twoAnswers(t, "uac_two_answers_bye_first.xml"))
}

// twoAnswers runs a call forked to two callees that both answer at once
// (uas_answer_silent.xml), the caller playing scenario, and returns the
// proxy once all three sipps passed.
func twoAnswers(t *testing.T, scenario string) *Proxy {
	t.Helper()
	a := StartSipp(t, SippArgs{Scenario: "uas_answer_silent.xml"})
	b := StartSipp(t, SippArgs{Scenario: "uas_answer_silent.xml"})
	cfg := NewProxyConfig(t)
	cfg.Static["sip:bob@127.0.0.1"] = []string{a.Contact("bob"), b.Contact("bob")}
	p := StartProxy(t, cfg.YAML())
	uac := StartSipp(t, SippArgs{Scenario: scenario, Remote: p.Addr("udp"), Service: "bob"})
	waitAll(t, uac, a, b)
	return p
}

// dialogsEnd waits until the daemon holds no dialog: dlg.list and
// dlg.stats agree that the calls are over.
func dialogsEnd(t *testing.T, p *Proxy) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		raw, err := p.RPC("dlg.stats", nil)
		if err != nil {
			t.Fatalf("dlg.stats: %v", err)
		}
		var st map[string]any
		if err := json.Unmarshal(raw, &st); err != nil {
			t.Fatalf("dlg.stats: %v", err)
		}
		list, err := p.RPC("dlg.list", nil)
		if err != nil {
			t.Fatalf("dlg.list: %v", err)
		}
		var dl []any
		_ = json.Unmarshal(list, &dl)
		if st["active_dialogs"] == float64(0) && st["early_dialogs"] == float64(0) && len(dl) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("dialogs left: stats %v, list %s", st, list)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

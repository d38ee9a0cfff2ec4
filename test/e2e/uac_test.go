package e2e

import (
	"encoding/json"
	"strings"
	"testing"
)

// Issue 13 §7 (OpenSIPS tm t_uac_dlg with INVITE): the proxy calls a sipp
// callee itself (an INVITE with the Contact of the UA that will hold the
// session), ACKs its 2xx, and returns what the BYE needs; a second
// tm.uac_dlg sends that BYE within the dialog (Call-ID, tags, CSeq 2, to
// the callee's Contact). sipp runs INVITE -> 180 -> 200 -> ACK -> BYE ->
// 200 and exits 0 only if all of it came.
func TestIssue13_7_UacDlgInviteThenBye(t *testing.T) {
	RequireTools(t)
	t.Parallel()
	uas := StartSipp(t, SippArgs{Scenario: "uas.xml"})
	p := StartProxy(t, NewProxyConfig(t).YAML())
	raw, err := p.RPC("tm.uac_dlg", map[string]any{"method": "INVITE", "ruri": uas.URI("bob"),
		"from": "<sip:operator@127.0.0.1>", "headers": []string{"Contact: <sip:operator@127.0.0.1:9>",
			"Content-Type: application/sdp"},
		"body": "v=0\r\no=op 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\n"})
	if err != nil {
		t.Fatalf("tm.uac_dlg INVITE: %v", err)
	}
	var inv struct {
		Code     int      `json:"code"`
		CallID   string   `json:"callid"`
		FromTag  string   `json:"from_tag"`
		ToTag    string   `json:"to_tag"`
		Contact  string   `json:"contact"`
		RouteSet []string `json:"route_set"`
		CSeq     uint32   `json:"cseq"`
	}
	if err := json.Unmarshal(raw, &inv); err != nil || inv.Code != 200 || inv.ToTag == "" || inv.Contact == "" {
		t.Fatalf("tm.uac_dlg INVITE: %s (%v)", raw, err)
	}
	var hdrs []string
	for _, r := range inv.RouteSet {
		hdrs = append(hdrs, "Route: "+r)
	}
	raw, err = p.RPC("tm.uac_dlg", map[string]any{"method": "BYE", "ruri": strings.Trim(inv.Contact, "<>"),
		"from": "<sip:operator@127.0.0.1>;tag=" + inv.FromTag, "to": "<" + uas.URI("bob") + ">;tag=" + inv.ToTag,
		"callid": inv.CallID, "cseq": inv.CSeq + 1, "headers": hdrs})
	if err != nil || !strings.Contains(string(raw), `"code":200`) {
		t.Fatalf("tm.uac_dlg BYE: %s (%v)", raw, err)
	}
	waitAll(t, uas)
}

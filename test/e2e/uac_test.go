package e2e

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
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

// OpenSIPS tm manual 1.6.1 (t_uac_dlg, socket): with two UDP listeners,
// tm.uac_dlg's socket picks the one the request leaves from, and its Via
// names it; a socket the daemon does not listen on is refused as an
// invalid argument that names "socket" and lists the listeners.
func TestSeedTm_1_6_1_UacDlgSocket(t *testing.T) {
	RequireTools(t)
	t.Parallel()
	cfg := NewProxyConfig(t)
	second := FreePort(t, "udp")
	// Last: the daemon would pick the first UDP listener by itself.
	yaml := strings.Replace(cfg.YAML(), "]\ndomains:", fmt.Sprintf(", \"udp:%s:%d\"]\ndomains:", Loopback, second), 1)
	if !strings.Contains(yaml, fmt.Sprintf(":%d\"]\ndomains:", second)) {
		t.Fatalf("no second listener in\n%s", yaml)
	}
	p := StartProxy(t, yaml)

	peer, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(Loopback)})
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	seen := make(chan string, 1)
	go func() {
		buf := make([]byte, 65535)
		n, from, err := peer.ReadFromUDP(buf)
		if err != nil {
			return
		}
		m, err := sip.ParseMessage(buf[:n])
		req, ok := m.(*sip.Request)
		if err != nil || !ok {
			return
		}
		seen <- fmt.Sprintf("%s via %d", from, req.Via().Port)
		res := sip.NewResponseFromRequest(req, 200, "OK", nil)
		peer.WriteToUDP([]byte(res.String()), from)
	}()
	socket := fmt.Sprintf("udp:%s:%d", Loopback, second)
	raw, err := p.RPC("tm.uac_dlg", map[string]any{"method": "OPTIONS", "ruri": "sip:ping@" + peer.LocalAddr().String(),
		"socket": socket})
	if err != nil || !strings.Contains(string(raw), `"code":200`) {
		t.Fatalf("tm.uac_dlg with socket %s: %s (%v)", socket, raw, err)
	}
	want := fmt.Sprintf("%s:%d via %d", Loopback, second, second)
	if got := <-seen; got != want {
		t.Errorf("the OPTIONS came from %s, want %s", got, want)
	}

	_, err = p.RPC("tm.uac_dlg", map[string]any{"method": "OPTIONS", "ruri": "sip:ping@" + peer.LocalAddr().String(),
		"socket": fmt.Sprintf("udp:%s:%d", Loopback, FreePort(t, "udp"))})
	var rpcErr *RPCError
	if !errors.As(err, &rpcErr) || rpcErr.Code != -32602 || !strings.Contains(rpcErr.Message, `argument "socket"`) ||
		!strings.Contains(rpcErr.Message, socket) {
		t.Errorf("a socket not listened on: %v, want -32602 naming \"socket\" and listing %s", err, socket)
	}
}

// OpenSIPS tm manual 1.6.2 (t_uac_cancel): an INVITE the daemon sent
// itself (tm.uac_dlg) to a sipp callee that rings and never answers is
// cancelled by Call-ID and CSeq, with the Reason given; the pending
// tm.uac_dlg call returns the callee's 487, and sipp (which requires a
// Reason header in the CANCEL) sees INVITE, CANCEL, ACK in order.
// Arguments that name no CSeq, or no pending INVITE, are refused.
func TestSeedTm_1_6_2_UacCancel(t *testing.T) {
	RequireTools(t)
	t.Parallel()
	uas := StartSipp(t, SippArgs{Scenario: "uas_ring.xml", Vars: map[string]string{"require_reason": "1"}})
	p := StartProxy(t, NewProxyConfig(t).YAML())
	type result struct {
		raw json.RawMessage
		err error
	}
	done := make(chan result, 1)
	go func() {
		raw, err := p.RPC("tm.uac_dlg", map[string]any{"method": "INVITE", "ruri": uas.URI("bob"),
			"callid": "uac-cancel-1@e2e", "from": "<sip:operator@127.0.0.1>",
			"headers": []string{"Contact: <sip:operator@127.0.0.1:9>"}})
		done <- result{raw, err}
	}()
	var rpcErr *RPCError
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		raw, err := p.RPC("tm.t_uac_cancel", []any{"uac-cancel-1@e2e", "1 INVITE", "operator gave up"})
		if err == nil {
			if !strings.Contains(string(raw), `"cancelled":true`) || !strings.Contains(string(raw), `"local":true`) {
				t.Fatalf("tm.t_uac_cancel: %s", raw)
			}
			break
		}
		// Until the INVITE is on its way there is nothing to cancel.
		if !errors.As(err, &rpcErr) || rpcErr.Code != -32004 || time.Now().After(deadline) {
			t.Fatalf("tm.t_uac_cancel: %v", err)
		}
	}
	r := <-done
	if r.err != nil || !strings.Contains(string(r.raw), `"code":487`) {
		t.Fatalf("tm.uac_dlg INVITE after tm.t_uac_cancel: %s (%v), want the 487", r.raw, r.err)
	}
	waitAll(t, uas)

	for _, tc := range []struct {
		method string
		params any
		code   int
		want   string
	}{
		{"tm.t_uac_cancel", []any{"uac-cancel-1@e2e", "1 INVITE"}, -32004, "no pending INVITE"},
		{"tm.t_uac_cancel", map[string]any{"callid": "uac-cancel-1@e2e", "cseq": "one"}, -32602, `argument "cseq"`},
		{"tm.t_uac_cancel", map[string]any{"callid": "uac-cancel-1@e2e", "cseq": "1 BYE"}, -32602, "only an INVITE"},
		{"tm.t_uac_cancel", map[string]any{"cseq": 1}, -32602, "callid"},
		// t_reply_by_callid's form of tm.t_reply.
		{"tm.t_reply", map[string]any{"code": 486, "callid": "uac-cancel-1@e2e", "cseq": 1}, -32004, "no pending INVITE"},
		{"tm.t_reply", map[string]any{"code": 486, "callid": "x", "cseq": "1 INVITE", "trans_id": "1"}, -32602, "give one of them"},
		{"tm.t_reply", map[string]any{"code": 486}, -32602, `"trans_id" (or "callid" and "cseq")`},
		{"tm.t_reply", map[string]any{"code": 486, "callid": "x"}, -32602, `argument "cseq"`},
	} {
		_, err := p.RPC(tc.method, tc.params)
		if !errors.As(err, &rpcErr) || rpcErr.Code != tc.code || !strings.Contains(rpcErr.Message, tc.want) {
			t.Errorf("%s %v: %v, want %d with %q", tc.method, tc.params, err, tc.code, tc.want)
		}
	}
}

// OpenSIPS tm manual 1.6.2 (t_uac_cancel) on an INVITE the daemon relays
// (sipp caller -> imsproxy -> sipp callee that rings): named by the
// Call-ID and CSeq tm.list shows, its branches are cancelled with the
// Reason given and the caller gets the callee's 487.
func TestSeedTm_1_6_2_UacCancelRelayedInvite(t *testing.T) {
	RequireTools(t)
	t.Parallel()
	p, uac, uas := oneCallee(t, SippArgs{Scenario: "uas_ring.xml", Vars: map[string]string{"require_reason": "1"}},
		SippArgs{Scenario: "uac_expect.xml", Keys: map[string]string{"code": "487"}}, "")
	var pending []struct {
		TransID string `json:"trans_id"`
		CallID  string `json:"callid"`
		CSeq    string `json:"cseq"`
	}
	for deadline := time.Now().Add(10 * time.Second); len(pending) == 0; time.Sleep(20 * time.Millisecond) {
		raw, err := p.RPC("tm.list", nil)
		if err != nil || json.Unmarshal(raw, &pending) != nil || time.Now().After(deadline) {
			t.Fatalf("tm.list: %s (%v)", raw, err)
		}
	}
	raw, err := p.RPC("tm.t_uac_cancel", map[string]any{"callid": pending[0].CallID, "cseq": pending[0].CSeq,
		"reason": "operator"})
	if err != nil || !strings.Contains(string(raw), `"local":false`) ||
		!strings.Contains(string(raw), `"trans_id":"`+pending[0].TransID+`"`) {
		t.Fatalf("tm.t_uac_cancel of %+v: %s (%v)", pending[0], raw, err)
	}
	waitAll(t, uac, uas)
}

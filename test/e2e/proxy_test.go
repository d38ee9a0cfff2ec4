package e2e

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// These tests drive the built imsproxy with sipp peers over loopback, one
// scenario of issue 3 each. Servers (UAS) start first, then the proxy, then
// the caller; the caller is waited for before the callees.

func waitAll(t *testing.T, ss ...*Sipp) {
	t.Helper()
	for _, s := range ss {
		if err := s.Wait(); err != nil {
			t.Error(err)
		}
	}
}

// tmStats reads tm.stats from the daemon.
func tmStats(t *testing.T, p *Proxy) map[string]uint64 {
	t.Helper()
	raw, err := p.RPC("tm.stats", nil)
	if err != nil {
		t.Fatalf("tm.stats: %v", err)
	}
	var m map[string]uint64
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("tm.stats: %v: %s", err, raw)
	}
	return m
}

// settle waits until no transaction is in progress in the daemon (the last
// ones may end a moment after the peers exit).
func settle(t *testing.T, p *Proxy) map[string]uint64 {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		m := tmStats(t, p)
		if m["inuse_transactions"] == 0 {
			return m
		}
		if time.Now().After(deadline) {
			t.Fatalf("inuse_transactions stays %d", m["inuse_transactions"])
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// RFC 3261 §16.6/§16.12: a call set up and torn down through the proxy,
// ACK and BYE following the Record-Route, over UDP and over TCP.
func TestE2E_RecordRoutedCall(t *testing.T) {
	RequireTools(t)
	for _, tc := range []struct{ name, transport string }{{"udp", "u1"}, {"tcp", "t1"}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			uas := StartSipp(t, SippArgs{Scenario: "uas.xml", Transport: tc.transport, Calls: 3})
			cfg := NewProxyConfig(t)
			cfg.Static["sip:bob@127.0.0.1"] = []string{uas.Contact("bob")}
			p := StartProxy(t, cfg.YAML())
			uac := StartSipp(t, SippArgs{Scenario: "uac.xml", Remote: p.Addr(tc.name), Transport: tc.transport,
				Service: "bob", Calls: 3, Rate: 10})
			waitAll(t, uac, uas)
			m := settle(t, p)
			if m["stateless_forwarded"] < 3 {
				t.Errorf("the 3 ACKs were not relayed statelessly: %v", m)
			}
			if m["2xx_transactions"] < 6 {
				t.Errorf("want 3 INVITE and 3 BYE transactions answered 2xx: %v", m)
			}
		})
	}
}

// RFC 3261 §16.7 step 5, §9.1: a call forked to two contacts; one rings
// and is cancelled with "Call completed elsewhere" when the other answers.
func TestE2E_ForkOneRingsOneAnswers(t *testing.T) {
	RequireTools(t)
	t.Parallel()
	ring := StartSipp(t, SippArgs{Scenario: "uas_ring.xml", Vars: map[string]string{"require_reason": "1"}})
	answer := StartSipp(t, SippArgs{Scenario: "uas_answer_late.xml", Pause: 300 * time.Millisecond})
	cfg := NewProxyConfig(t)
	cfg.Static["sip:bob@127.0.0.1"] = []string{ring.Contact("bob"), answer.Contact("bob")}
	p := StartProxy(t, cfg.YAML())
	uac := StartSipp(t, SippArgs{Scenario: "uac.xml", Remote: p.Addr("udp"), Service: "bob"})
	waitAll(t, uac, answer, ring)
	m := settle(t, p)
	if m["cancels_sent"] != 1 {
		t.Errorf("cancels_sent = %d, want 1", m["cancels_sent"])
	}
	// Two INVITE branches and the BYE's.
	if m["branches"] != 3 {
		t.Errorf("branches = %d, want 3", m["branches"])
	}
	if !strings.Contains(p.Output(), "imsproxy started") {
		t.Error("daemon log lacks its start line")
	}
}

// RFC 3261 §16.10: the caller cancels while the callee rings; the CANCEL
// goes downstream with the caller's Reason, the caller gets 487.
func TestE2E_CallerCancelDuringRinging(t *testing.T) {
	RequireTools(t)
	t.Parallel()
	uas := StartSipp(t, SippArgs{Scenario: "uas_ring.xml", Vars: map[string]string{"require_reason": "1"}})
	cfg := NewProxyConfig(t)
	cfg.Static["sip:bob@127.0.0.1"] = []string{uas.Contact("bob")}
	p := StartProxy(t, cfg.YAML())
	uac := StartSipp(t, SippArgs{Scenario: "uac_cancel.xml", Remote: p.Addr("udp"), Service: "bob",
		Vars: map[string]string{"cancel_reason": "1"}})
	waitAll(t, uac, uas)
	m := settle(t, p)
	if m["cancels_received"] != 1 || m["cancels_sent"] != 1 {
		t.Errorf("cancels received/sent = %d/%d, want 1/1", m["cancels_received"], m["cancels_sent"])
	}
}

// RFC 3261 §16.7 step 6 with the tm manual's order: every branch fails,
// the caller gets the best reply (the lowest 4xx; 503 sorts last).
func TestE2E_AllBranchesFailBestResponse(t *testing.T) {
	RequireTools(t)
	cases := []struct {
		name  string
		codes []string
		want  string
	}{
		{"lowest 4xx beats 486 and 503", []string{"486", "404", "503"}, "404"},
		{"6xx beats every 4xx", []string{"404", "603", "480"}, "603"},
		{"a lone 503 becomes 500", []string{"503"}, "500"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var uases []*Sipp
			cfg := NewProxyConfig(t)
			for _, code := range tc.codes {
				u := StartSipp(t, SippArgs{Scenario: "uas_reply.xml", Keys: map[string]string{"code": code}})
				uases = append(uases, u)
				cfg.Static["sip:bob@127.0.0.1"] = append(cfg.Static["sip:bob@127.0.0.1"], u.Contact("bob"))
			}
			cfg.Extra = "tm: {disable_6xx_block: true}" // every branch answers before the choice
			p := StartProxy(t, cfg.YAML())
			uac := StartSipp(t, SippArgs{Scenario: "uac_expect.xml", Remote: p.Addr("udp"), Service: "bob",
				Keys: map[string]string{"code": tc.want}})
			waitAll(t, append([]*Sipp{uac}, uases...)...)
			settle(t, p)
		})
	}
}

// tm fr_inv_timeout: the callee rings for ever; the proxy cancels it with
// Reason 480 and answers the caller 408.
func TestE2E_FrInvTimeout(t *testing.T) {
	RequireTools(t)
	t.Parallel()
	uas := StartSipp(t, SippArgs{Scenario: "uas_ring.xml", Vars: map[string]string{"require_reason": "1"}})
	cfg := NewProxyConfig(t)
	cfg.Static["sip:bob@127.0.0.1"] = []string{uas.Contact("bob")}
	cfg.Extra = "tm: {fr_timeout: 5s, fr_inv_timeout: 1s}"
	p := StartProxy(t, cfg.YAML())
	uac := StartSipp(t, SippArgs{Scenario: "uac_expect.xml", Remote: p.Addr("udp"), Service: "bob",
		Keys: map[string]string{"code": "408"}})
	waitAll(t, uac, uas)
	m := settle(t, p)
	if m["fr_inv_timeouts"] != 1 {
		t.Errorf("fr_inv_timeouts = %d, want 1", m["fr_inv_timeouts"])
	}
	if v, ok := MetricValue(p.Metrics(), `imsdlg_tm_timeouts_total{timer="fr_inv_timeout"}`); !ok || v != 1 {
		t.Errorf("metric imsdlg_tm_timeouts_total{timer=fr_inv_timeout} = %v (found %v), want 1", v, ok)
	}
}

// RFC 3261 §14, §16.12: a re-INVITE and the BYE within a record-routed
// dialog pass through the proxy.
func TestE2E_ReinviteAndByeThroughRecordRoute(t *testing.T) {
	RequireTools(t)
	t.Parallel()
	uas := StartSipp(t, SippArgs{Scenario: "uas_reinvite.xml"})
	cfg := NewProxyConfig(t)
	cfg.Static["sip:bob@127.0.0.1"] = []string{uas.Contact("bob")}
	p := StartProxy(t, cfg.YAML())
	uac := StartSipp(t, SippArgs{Scenario: "uac_reinvite.xml", Remote: p.Addr("udp"), Service: "bob"})
	waitAll(t, uac, uas)
	m := settle(t, p)
	// INVITE, re-INVITE and BYE: three transactions answered 2xx, two ACKs.
	if m["2xx_transactions"] != 3 || m["stateless_forwarded"] != 2 {
		t.Errorf("2xx_transactions=%d stateless_forwarded=%d, want 3 and 2", m["2xx_transactions"], m["stateless_forwarded"])
	}
}

// An INVITE for a user of our domain with no contact gets 404.
func TestE2E_UnknownUserIs404(t *testing.T) {
	RequireTools(t)
	t.Parallel()
	cfg := NewProxyConfig(t)
	p := StartProxy(t, cfg.YAML())
	uac := StartSipp(t, SippArgs{Scenario: "uac_expect.xml", Remote: p.Addr("udp"), Service: "nobody",
		Keys: map[string]string{"code": "404"}})
	waitAll(t, uac)
}

// RFC 3261 §10.3: a UA registers two contacts with q values; a call to its
// AOR rings the preferred one first (serial forking), the other when the
// first declines.
func TestE2E_RegisterThenSerialFork(t *testing.T) {
	RequireTools(t)
	t.Parallel()
	first := StartSipp(t, SippArgs{Scenario: "uas_reply.xml", Keys: map[string]string{"code": "486"}})
	second := StartSipp(t, SippArgs{Scenario: "uas.xml"})
	cfg := NewProxyConfig(t)
	p := StartProxy(t, cfg.YAML())

	res := register(t, p.Addr("udp"), "carol", []string{
		fmt.Sprintf("<%s>;q=0.4", second.URI("carol")),
		fmt.Sprintf("<%s>;q=0.9", first.URI("carol")),
	})
	if !strings.HasPrefix(res, "SIP/2.0 200 ") || strings.Count(res, "\r\nContact: ") != 2 {
		t.Fatalf("REGISTER answer:\n%s", res)
	}
	raw, err := p.RPC("ul.dump", nil)
	if err != nil || !strings.Contains(string(raw), first.URI("carol")) {
		t.Fatalf("ul.dump = %s, %v", raw, err)
	}
	uac := StartSipp(t, SippArgs{Scenario: "uac.xml", Remote: p.Addr("udp"), Service: "carol"})
	waitAll(t, uac, second, first)
}

// register sends one REGISTER for user@127.0.0.1 with the given Contact
// values from a plain UDP socket and returns the raw answer.
func register(t *testing.T, proxy, user string, contacts []string) string {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	dst, err := net.ResolveUDPAddr("udp", proxy)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "REGISTER sip:127.0.0.1 SIP/2.0\r\n")
	fmt.Fprintf(&b, "Via: SIP/2.0/UDP %s;branch=z9hG4bK-reg-%d;rport\r\n", c.LocalAddr(), time.Now().UnixNano())
	fmt.Fprintf(&b, "Max-Forwards: 70\r\nFrom: <sip:%s@127.0.0.1>;tag=r1\r\nTo: <sip:%s@127.0.0.1>\r\n", user, user)
	fmt.Fprintf(&b, "Call-ID: reg-%d@test\r\nCSeq: 1 REGISTER\r\nExpires: 300\r\n", time.Now().UnixNano())
	for _, ct := range contacts {
		fmt.Fprintf(&b, "Contact: %s\r\n", ct)
	}
	b.WriteString("Content-Length: 0\r\n\r\n")
	if _, err := c.WriteToUDP([]byte(b.String()), dst); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 65535)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		n, _, err := c.ReadFromUDP(buf)
		if err != nil {
			t.Fatalf("no answer to REGISTER: %v", err)
		}
		if s := string(buf[:n]); !strings.HasPrefix(s, "SIP/2.0 100 ") {
			return s
		}
	}
}

// Issue 12 §2: a binary built from a git checkout says which commit it is,
// never just "dev".
func TestIssue12_VersionNamesTheRevision(t *testing.T) {
	out, err := exec.Command(BuildProxy(t), "version").CombinedOutput()
	if err != nil {
		t.Fatalf("imsproxy version: %v\n%s", err, out)
	}
	line := strings.TrimSpace(string(out))
	if _, err := exec.LookPath("git"); err != nil {
		t.Skipf("no git: the build has no VCS data (%s)", line)
	}
	if !regexp.MustCompile(`^imsproxy \S+ \([0-9a-f]{12}(\+dirty)? [0-9T:Z-]+\) go1\.`).MatchString(line) &&
		!regexp.MustCompile(`^imsproxy v\d+\.\d+\.\d+`).MatchString(line) {
		t.Errorf("imsproxy version = %q: want a version or a VCS revision", line)
	}
}

// Issue 13 §7 (the tm manual's t_reply; t_cancel): a ringing call is
// listed by tm.list; tm.t_reply answers it (486 with the To tag given,
// positional as opensips-cli sends it) and cancels the callee;
// tm.t_cancel cancels the callee of another, whose 487 reaches the caller.
func TestIssue13_7_ReplyAndCancelAPendingTransaction(t *testing.T) {
	RequireTools(t)
	t.Parallel()
	for _, tc := range []struct {
		name, method, code string
		params             func(tx pendingTx) any
	}{
		{"t_reply", "tm.t_reply", "486", func(tx pendingTx) any { return []any{486, "Busy by operator", tx.TransID, "op-tag"} }},
		{"t_cancel", "tm.t_cancel", "487", func(tx pendingTx) any {
			n, _ := strconv.ParseUint(tx.TransID, 10, 64) // a number is taken as well as the string
			return map[string]any{"trans_id": n, "reason": "operator"}
		}},
		// The MI t_reply's body (with its Content-Type among new_headers).
		{"t_reply with a body", "tm.t_reply", "486", func(tx pendingTx) any {
			return map[string]any{"code": 486, "reason": "Busy", "trans_id": tx.TransID,
				"new_headers": []string{"Content-Type: text/plain"}, "body": "busy by operator"}
		}},
		// t_cancel_branch: its one branch cancelled, its 487 is the reply.
		{"t_cancel branch 0", "tm.t_cancel", "487", func(tx pendingTx) any {
			return map[string]any{"trans_id": tx.TransID, "branch": 0, "reason": "operator"}
		}},
		// The tm manual's t_reply_by_callid: named by Call-ID and CSeq.
		{"t_reply by Call-ID", "tm.t_reply", "480", func(tx pendingTx) any {
			return map[string]any{"code": 480, "reason": "Away", "callid": tx.CallID, "cseq": tx.CSeq}
		}},
		// t_uac_cancel names the relayed INVITE the same way.
		{"t_uac_cancel", "tm.t_uac_cancel", "487", func(tx pendingTx) any {
			return []any{tx.CallID, tx.CSeq, "operator"}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			uas := StartSipp(t, SippArgs{Scenario: "uas_ring.xml"})
			cfg := NewProxyConfig(t)
			cfg.Static["sip:bob@127.0.0.1"] = []string{uas.Contact("bob")}
			p := StartProxy(t, cfg.YAML())
			uac := StartSipp(t, SippArgs{Scenario: "uac_expect.xml", Remote: p.Addr("udp"), Service: "bob",
				Keys: map[string]string{"code": tc.code}})
			var tx pendingTx
			deadline := time.Now().Add(10 * time.Second)
			for tx.TransID == "" {
				raw, err := p.RPC("tm.list", nil)
				if err != nil {
					t.Fatal(err)
				}
				var list []pendingTx
				if err := json.Unmarshal(raw, &list); err != nil {
					t.Fatal(err)
				}
				if len(list) == 1 && list[0].CallID != "" {
					tx = list[0]
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("tm.list = %s, want the ringing INVITE", raw)
				}
				time.Sleep(50 * time.Millisecond)
			}
			if _, err := p.RPC(tc.method, tc.params(tx)); err != nil {
				t.Fatalf("%s: %v", tc.method, err)
			}
			waitAll(t, uac, uas)
			if _, err := p.RPC(tc.method, tc.params(tx)); err == nil || !strings.Contains(err.Error(), "-32004") {
				t.Errorf("%s on an answered transaction: %v, want not found", tc.method, err)
			}
			msgs, _ := os.ReadFile(filepath.Join(uac.Dir, "messages.log"))
			if tc.name == "t_reply" && !strings.Contains(string(msgs), "tag=op-tag") {
				t.Errorf("the caller's 486 does not carry the To tag given to t_reply")
			}
			if tc.name == "t_reply with a body" && !strings.Contains(string(msgs), "busy by operator") {
				t.Errorf("the caller's 486 does not carry the body given to t_reply")
			}
		})
	}
}

// pendingTx is an entry of tm.list.
type pendingTx struct {
	TransID string `json:"trans_id"`
	CallID  string `json:"callid"`
	CSeq    string `json:"cseq"`
}

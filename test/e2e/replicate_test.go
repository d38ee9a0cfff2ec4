package e2e

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/imsdlg/imsdlg/internal/siptest"
)

// OpenSIPS tm t_replicate through the daemon's replicate list: a REGISTER
// to one registrar is copied to a second one (two imsproxy processes); the
// UE hears only the first one's 200 and both hold the binding. A MESSAGE,
// which no rule names, is not copied.
func TestSeedTm_1_4_19_ReplicateRegister(t *testing.T) {
	second := StartProxy(t, NewProxyConfig(t).YAML())
	c := NewProxyConfig(t)
	c.Extra = fmt.Sprintf("replicate:\n  - {method: REGISTER, to: 'sip:%s'}\n", second.Addr("udp"))
	first := StartProxy(t, c.YAML())

	ue := siptest.NewUA(t)
	contact := "sip:carol@" + ue.HostPort()
	ue.SendRaw(first.Addr("udp"), "REGISTER sip:127.0.0.1 SIP/2.0\r\n"+
		"Via: SIP/2.0/UDP "+ue.HostPort()+";branch=z9hG4bK-rep-1;rport\r\nMax-Forwards: 70\r\n"+
		"From: <sip:carol@127.0.0.1>;tag=rep1\r\nTo: <sip:carol@127.0.0.1>\r\nCall-ID: replicate-1@test\r\n"+
		"CSeq: 1 REGISTER\r\nContact: <"+contact+">\r\nExpires: 600\r\nContent-Length: 0\r\n\r\n")
	ue.Response(200)

	for name, p := range map[string]*Proxy{"first": first, "second": second} {
		// The second one's binding comes with the copy, after the UE's 200.
		siptest.Eventually(t, func() bool {
			raw, err := p.RPC("ul.dump", nil)
			if err != nil {
				t.Fatalf("%s registrar: ul.dump: %v", name, err)
			}
			var bs []binding
			if err := json.Unmarshal(raw, &bs); err != nil {
				t.Fatalf("%s registrar: ul.dump: %v: %s", name, err, raw)
			}
			return containsContact(bs, contact)
		}, "%s registrar: no binding of %s", name, contact)
	}
	ue.Quiet(200*time.Millisecond, "the second registrar's 200", func(m sip.Message) bool {
		_, ok := m.(*sip.Response)
		return ok
	})

	// A MESSAGE to the registered user: routed to its contact, not copied.
	ue.SendRaw(first.Addr("udp"), "MESSAGE sip:carol@127.0.0.1 SIP/2.0\r\n"+
		"Via: SIP/2.0/UDP "+ue.HostPort()+";branch=z9hG4bK-rep-2;rport\r\nMax-Forwards: 70\r\n"+
		"From: <sip:dave@127.0.0.1>;tag=rep2\r\nTo: <sip:carol@127.0.0.1>\r\nCall-ID: replicate-2@test\r\n"+
		"CSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n")
	ue.Reply(ue.Request(sip.MESSAGE), 200, "carol")
	ue.Response(200)
	if m := first.Metrics(); !strings.Contains(m, "imsdlg_tm_replicated_requests_total 1\n") {
		t.Errorf("replicated_requests: want 1 in the metrics:\n%s", grepLines(m, "replicated"))
	}
	if m := second.Metrics(); !strings.Contains(m, "imsdlg_tm_replicated_requests_total 0\n") {
		t.Errorf("the second registrar replicated: %s", grepLines(m, "replicated"))
	}
}

// grepLines are the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

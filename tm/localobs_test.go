package tm

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imsdlg/imsdlg/internal/siptest"
)

// localWatch is a module that sees what tm makes itself, by Call-ID:
// "METHOD" for a request, "CODE METHOD" for a reply.
type localWatch struct {
	ObserverFuncs
	mu  sync.Mutex
	got map[string][]string
}

func (w *localWatch) add(callid, what string) {
	callid = strings.Clone(callid) // a key kept: the text is the message's
	w.mu.Lock()
	defer w.mu.Unlock()
	w.got[callid] = append(w.got[callid], what)
}

func (w *localWatch) OnLocalRequest(req *sip.Request) { w.add(callID(req), string(req.Method)) }

func (w *localWatch) OnLocalReply(res *sip.Response) {
	method := ""
	if cs := res.CSeq(); cs != nil {
		method = string(cs.MethodName)
	}
	w.add(callID(res), fmt.Sprintf("%d %s", res.StatusCode, method))
}

func (w *localWatch) of(callid string) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.got[callid])
}

// OpenSIPS tm local_request_route and local_reply_route (§1.3.23,
// §1.3.24): a LocalObserver sees each request and reply tm makes itself,
// as it leaves, and nothing it relays.
func TestSeedTm_1_3_23_LocalRequestAndReplyRoutes(t *testing.T) {
	for _, tc := range []struct {
		name string
		run  func(t *testing.T, p *testProxy, uac, uas *siptest.UA) string // the Call-ID
		want []string
	}{
		{"a rejected INVITE's 100 and ACK", func(t *testing.T, p *testProxy, uac, uas *siptest.UA) string {
			inv := uac.Invite("sip:bob@" + p.udp)
			uac.Send(p.udp, inv)
			uas.Reply(uas.Request(sip.INVITE), 486, "b")
			uas.Request(sip.ACK)
			uac.Response(486)
			return callID(inv)
		}, []string{"100 INVITE", "ACK"}},
		{"a cancelled INVITE's CANCEL, its 200 and the ACK of the 487", func(t *testing.T, p *testProxy, uac, uas *siptest.UA) string {
			inv, got := ringingCancelled(t, p, uac, uas, "b")
			uas.Reply(uas.Request(sip.CANCEL), 200, "")
			uas.Reply(got, 487, "b")
			uas.Request(sip.ACK)
			uac.Response(487)
			return callID(inv)
		}, []string{"100 INVITE", "200 CANCEL", "CANCEL", "ACK"}},
		{"a local INVITE and the ACK of its 2xx", func(t *testing.T, p *testProxy, uac, uas *siptest.UA) string {
			final := make(chan int, 1)
			req := localReinvite(t, uas)
			require.NoError(t, p.Send(req, "", func(res *sip.Response, err error) {
				if res != nil {
					final <- res.StatusCode
				}
			}))
			uas.Reply(uas.Request(sip.INVITE), 200, "")
			uas.Request(sip.ACK)
			assert.Equal(t, 200, <-final)
			return callID(req)
		}, []string{"INVITE", "ACK"}},
		{"a request refused by validation", func(t *testing.T, p *testProxy, uac, uas *siptest.UA) string {
			uac.SendRaw(p.udp, "OPTIONS sip:bob@"+p.udp+" SIP/2.0\r\n"+
				"Via: SIP/2.0/UDP "+uac.HostPort()+";branch=z9hG4bK-mf0\r\nMax-Forwards: 0\r\n"+
				"From: <sip:a@b>;tag=1\r\nTo: <sip:bob@b>\r\nCall-ID: local-mf0\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n")
			uac.Response(483)
			return "local-mf0"
		}, []string{"483 OPTIONS"}},
		{"the 400 to a message that does not parse", func(t *testing.T, p *testProxy, uac, uas *siptest.UA) string {
			uac.SendRaw(p.udp, "INVITE sip:bob@"+p.udp+" SIP/2.0\r\n"+
				"Via: SIP/2.0/UDP "+uac.HostPort()+";branch=z9hG4bK-bad2\r\n"+
				"From: <sip:a@b>;tag=1\r\nTo: <sip:bob@b>\r\nCall-ID: local-bad2\r\n"+
				"CSeq: notanumber INVITE\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n")
			select {
			case <-uac.Raw:
			case <-time.After(waitFor):
				t.Fatal("no answer to a malformed request")
			}
			return "" // its CSeq does not parse: the status line alone
		}, []string{"400 "}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := &localWatch{got: map[string][]string{}}
			uac, uas := siptest.NewUA(t), siptest.NewUA(t)
			p := startProxy(t, testCfg(), toUAs(uas), withModules(Module{Name: "local", Observer: w}))
			id := tc.run(t, p, uac, uas)
			siptest.Eventually(t, func() bool { return len(w.of(id)) >= len(tc.want) }, "the local messages")
			// What was relayed (the 180, 486, 487) would be in by now: it is
			// shown before it leaves, and the callers waited for it.
			assert.ElementsMatch(t, tc.want, w.of(id))
		})
	}
}

// §1.3.23 with UDP alone: a branch relayed over UDP by a proxy without a
// TCP listener was shown to the LocalObservers as a request tm made (it
// came to its client transaction without ready bytes, which was taken
// for "local").
func TestSeedTm_1_3_23_RelayedBranchIsNotLocalOverUDPOnly(t *testing.T) {
	w := &localWatch{got: map[string][]string{}}
	uac, uas := siptest.NewUA(t), siptest.NewUA(t)
	p, err := New(Options{Config: testCfg(), Router: toUAs(uas), Clock: siptest.NewClock(),
		Modules: []Module{{Name: "local", Observer: w}}})
	require.NoError(t, err)
	t.Cleanup(func() { p.Close() })
	ua, err := p.Listen("udp", "127.0.0.1:0", "")
	require.NoError(t, err)

	inv := uac.Invite("sip:bob@" + ua.String())
	uac.Send(ua.String(), inv)
	got := uas.Request(sip.INVITE)
	uas.Reply(got, 486, "b")
	uas.Request(sip.ACK)
	uac.Response(486)
	siptest.Eventually(t, func() bool { return len(w.of(callID(inv))) >= 2 }, "the local messages")
	assert.ElementsMatch(t, []string{"100 INVITE", "ACK"}, w.of(callID(inv)), "the relayed INVITE is not local")
}

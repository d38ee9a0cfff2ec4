package routing

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imsdlg/imsdlg/imsdialog"
	"github.com/imsdlg/imsdlg/internal/location"
	"github.com/imsdlg/imsdlg/internal/siptest"
	"github.com/imsdlg/imsdlg/tm"
)

// node is one proxy on loopback: tm with the dialog module around a role's
// router, as the daemon wires them.
type node struct {
	p    *tm.Proxy
	m    *imsdialog.Manager
	addr string
	uri  sip.Uri
}

// freeUDPPort picks a loopback port for a proxy whose router must know its
// own address before it listens.
func freeUDPPort(t *testing.T) int {
	t.Helper()
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	require.NoError(t, err)
	port := c.LocalAddr().(*net.UDPAddr).Port
	require.NoError(t, c.Close())
	return port
}

func startNode(t *testing.T, port int, router Role) *node {
	t.Helper()
	m, err := imsdialog.New(imsdialog.Options{Config: imsdialog.DefaultConfig()})
	require.NoError(t, err)
	p, err := tm.New(tm.Options{Config: tm.DefaultConfig(), Router: router, Modules: []tm.Module{m.Module(), router.Module()}})
	require.NoError(t, err)
	a, err := p.Listen("udp", "127.0.0.1:"+strconv.Itoa(port), "")
	require.NoError(t, err)
	t.Cleanup(func() { p.Close() })
	return &node{p: p, m: m, addr: a.String(), uri: sip.Uri{Scheme: "sip", Host: "127.0.0.1", Port: port}}
}

// registerVia sends a REGISTER for aor with ua's contact to the P-CSCF and
// returns the final response.
func registerVia(t *testing.T, ua *siptest.UA, pcscf, aor string) *sip.Response {
	t.Helper()
	raw := "REGISTER sip:127.0.0.1 SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP " + ua.HostPort() + ";branch=z9hG4bK-reg-" + strconv.FormatInt(time.Now().UnixNano(), 36) + ";rport\r\n" +
		"Max-Forwards: 70\r\nFrom: <" + aor + ">;tag=r1\r\nTo: <" + aor + ">\r\n" +
		"Call-ID: reg-" + ua.HostPort() + "\r\nCSeq: 1 REGISTER\r\n" +
		"Contact: <sip:bob@" + ua.HostPort() + ">\r\nExpires: 600\r\nContent-Length: 0\r\n\r\n"
	m, err := sip.ParseMessage([]byte(raw))
	require.NoError(t, err)
	ua.Send(pcscf, m)
	return ua.Final()
}

// actAsProxyAS plays an application server that acts as a proxy for one
// INVITE: it pops its own Route, adds its Via, sends the INVITE on along
// the route set (back to the S-CSCF) and relays the replies until the
// final one.
func actAsProxyAS(as *siptest.UA, scscf string, got chan<- *sip.Request) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("AS: %v", r)
		}
	}()
	inv := as.Request(sip.INVITE)
	got <- inv.Clone()
	fwd := inv.Clone()
	fwd.RemoveHeader("Route")
	_, err = as.ProxyOnce(fwd, scscf)
	return err
}

// TS 24.229 roles over loopback: two callee contacts register through the
// P-CSCF (Path) at the S-CSCF; a call from a UE goes P-CSCF → S-CSCF → AS
// (a proxy) → S-CSCF → P-CSCF → both contacts in parallel; the S-CSCF holds
// one dialog for it (the spiral joined), and ends it on command.
func TestRoles_PCSCFSCSCFWithASAndPath(t *testing.T) {
	ue, as, c1, c2 := siptest.NewUA(t), siptest.NewUA(t), siptest.NewUA(t), siptest.NewUA(t)
	sPort, pPort := freeUDPPort(t), freeUDPPort(t)
	sURI := sip.Uri{Scheme: "sip", Host: "127.0.0.1", Port: sPort}
	pURI := sip.Uri{Scheme: "sip", Host: "127.0.0.1", Port: pPort}
	asURI := sip.Uri{Scheme: "sip", Host: "127.0.0.1", Port: as.Addr.Port}

	loc := location.New(location.Options{})
	base := Config{Domains: []string{"127.0.0.1"}, RecordRoute: true}
	scscf := startNode(t, sPort, NewSCSCF(base, SCSCFConfig{Self: sURI, Rules: []ASRule{{AS: asURI}}}, loc, nil))
	pc := NewPCSCF(base, PCSCFConfig{SCSCF: sURI, Path: true, Self: pURI}, nil, nil)
	pcscf := startNode(t, pPort, pc)

	// Registration through the P-CSCF.
	for _, c := range []*siptest.UA{c1, c2} {
		res := registerVia(t, c, pcscf.addr, "sip:bob@127.0.0.1")
		require.Equal(t, 200, res.StatusCode, res.Reason)
		require.Len(t, res.GetHeaders("Path"), 1, "the S-CSCF echoes the Path (Supported: path)")
		assert.Equal(t, "<sip:127.0.0.1:"+strconv.Itoa(pPort)+";lr;term>", res.GetHeaders("Path")[0].Value())
	}
	bs := loc.Lookup("sip:bob@127.0.0.1")
	require.Len(t, bs, 2)
	for _, b := range bs {
		assert.Equal(t, []string{"<sip:127.0.0.1:" + strconv.Itoa(pPort) + ";lr;term>"}, b.Path)
	}
	siptest.Eventually(t, func() bool { return len(pc.Learned().Bindings()) == 2 }, "the P-CSCF learned %d contacts", len(pc.Learned().Bindings()))

	// The call.
	asGot := make(chan *sip.Request, 1)
	asDone := make(chan error, 1)
	go func() { asDone <- actAsProxyAS(as, scscf.addr, asGot) }()
	inv := ue.Invite("sip:bob@127.0.0.1")
	ue.Send(pcscf.addr, inv)

	var atAS *sip.Request
	select {
	case atAS = <-asGot:
	case <-time.After(siptest.WaitFor):
		t.Fatal("the AS got no INVITE")
	}
	assert.Equal(t, []string{
		"<sip:127.0.0.1:" + strconv.Itoa(as.Addr.Port) + ";lr>",
		"<sip:127.0.0.1:" + strconv.Itoa(sPort) + ";lr;asnext=1>",
	}, routes(atAS), "the AS, then back to the S-CSCF at the next rule")

	i1, i2 := c1.Request(sip.INVITE), c2.Request(sip.INVITE)
	for _, x := range []struct {
		ua  *siptest.UA
		inv *sip.Request
	}{{c1, i1}, {c2, i2}} {
		assert.Equal(t, "sip:bob@"+x.ua.HostPort(), x.inv.Recipient.String(), "the registered contact")
		assert.Empty(t, routes(x.inv), "the P-CSCF consumed its Path entry")
		assert.Equal(t, pcscf.addr, net.JoinHostPort(x.inv.Via().Host, strconv.Itoa(x.inv.Via().Port)), "through the P-CSCF")
	}
	c1.Reply(i1, 180, "leg1")
	c2.Reply(i2, 180, "leg2")
	ue.Response(180)
	ue.Response(180)
	ds := scscf.m.Dialogs()
	require.Len(t, ds, 1, "the S-CSCF: one dialog, the spiral joined it")
	assert.Equal(t, int64(1), scscf.m.Stats().Snapshot()["spiraled_requests"])

	c1.Reply(i1, 200, "leg1")
	cancel := c2.Request(sip.CANCEL)
	c2.Reply(cancel, 200, "")
	c2.Reply(i2, 487, "leg2")
	c2.Request(sip.ACK)
	r200 := ue.Response(200)
	ue.Send(pcscf.addr, ue.AckFor(inv, r200))
	c1.Request(sip.ACK)
	require.NoError(t, <-asDone)

	d := scscf.m.Dialogs()[0]
	siptest.Eventually(t, func() bool { return d.State() == imsdialog.Confirmed }, "dialog %s", d.State())
	require.Len(t, scscf.m.Dialogs(), 1)

	// Ended from the S-CSCF: BYE both ways, each along its route set.
	in := d.Info(false)
	require.NoError(t, scscf.m.TerminateDlg(in.CallID, in.FromTag, in.ToTag, imsdialog.SideBoth, "operator"))
	for _, x := range []*siptest.UA{ue, c1} {
		bye := x.Request(sip.BYE)
		assert.True(t, strings.Contains(bye.String(), "Reason:"), "BYE with a Reason")
		assert.Equal(t, pcscf.addr, net.JoinHostPort(bye.Via().Host, strconv.Itoa(bye.Via().Port)), "through the P-CSCF")
		x.Reply(bye, 200, "")
	}
	siptest.Eventually(t, func() bool { return len(scscf.m.Dialogs()) == 0 }, "S-CSCF dialogs left: %d", len(scscf.m.Dialogs()))
	siptest.Eventually(t, func() bool { return len(pcscf.m.Dialogs()) == 0 }, "P-CSCF dialogs left: %d", len(pcscf.m.Dialogs()))
}

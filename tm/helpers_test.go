package tm

import (
	"fmt"
	"net"
	"testing"

	"github.com/emiago/sipgo/sip"
	"github.com/stretchr/testify/require"

	"github.com/imsdlg/imsdlg/internal/siptest"
)

const waitFor = siptest.WaitFor

// testProxy runs a Proxy on loopback with the given router.
type testProxy struct {
	*Proxy
	udp   string
	tcp   string
	clock *siptest.Clock
}

func startProxy(t *testing.T, cfg Config, router Router, opts ...func(*Options)) *testProxy {
	t.Helper()
	// UDP and TCP on one port number, so one host:port serves both. The
	// kernel picks the UDP port; the same TCP port may be taken by some
	// connection's ephemeral end, so try again with another.
	for attempt := 0; ; attempt++ {
		o := Options{Config: cfg, Router: router}
		clock := siptest.NewClock()
		o.Clock = clock
		for _, f := range opts {
			f(&o)
		}
		p, err := New(o)
		require.NoError(t, err)
		ua, err := p.Listen("udp", "127.0.0.1:0", "")
		require.NoError(t, err)
		_, port, _ := net.SplitHostPort(ua.String())
		ta, err := p.Listen("tcp", "127.0.0.1:"+port, "")
		if err != nil && attempt < 20 {
			p.Close()
			continue
		}
		require.NoError(t, err)
		t.Cleanup(func() { p.Close() })
		return &testProxy{Proxy: p, udp: ua.String(), tcp: ta.String(), clock: clock}
	}
}

// withModules plugs modules into a test proxy.
func withModules(m ...Module) func(*Options) {
	return func(o *Options) { o.Modules = append(o.Modules, m...) }
}

// toUA routes every initial request to the given UAs (parallel fork) and
// in-dialog requests along their route set.
func toUAs(uas ...*siptest.UA) RouterFunc {
	return func(r *Request) Decision {
		if !r.Initial {
			return RelayTo()
		}
		var ts []Target
		for _, u := range uas {
			ts = append(ts, Target{URI: sip.Uri{Scheme: "sip", User: "bob", Host: "127.0.0.1", Port: u.Addr.Port}})
		}
		d := RelayTo(ts...)
		d.RecordRoute = true
		return d
	}
}

// ringingCancelled sends an INVITE the callee rings for ("180" with To
// tag tag), then the caller's CANCEL; it returns once the caller has the
// CANCEL's 200: the INVITE as sent and as the callee got it.
func ringingCancelled(t *testing.T, p *testProxy, uac, uas *siptest.UA, tag string) (inv, got *sip.Request) {
	t.Helper()
	inv = uac.Invite("sip:bob@" + p.udp)
	uac.Send(p.udp, inv)
	got = uas.Request(sip.INVITE)
	uas.Reply(got, 180, tag)
	uac.Response(180)
	uac.Send(p.udp, uac.CancelFor(inv))
	uac.Response(200)
	return inv, got
}

// keepRes is a copy of res that owns every byte: what a test keeps past
// the call that hands res over (a Clone still reads the message's text,
// which goes back with it under Config.ReuseMessageText).
func keepRes(res *sip.Response) *sip.Response {
	m, err := sip.ParseMessage([]byte(res.String()))
	if err != nil {
		panic(fmt.Sprintf("keepRes: %v", err))
	}
	return m.(*sip.Response)
}

// Package dlgtest runs the dialog module the way the daemon does, for the
// loopback tests of the packages around it: a tm proxy on a UDP loopback
// socket with imsdialog plugged in as a module, a fake clock for every
// timer, and a record of the callbacks that fired.
package dlgtest

import (
	"log/slog"
	"strings"
	"sync"
	"testing"

	"github.com/emiago/sipgo/sip"
	"github.com/stretchr/testify/require"

	"github.com/imsdlg/imsdlg/imsdialog"
	"github.com/imsdlg/imsdlg/internal/siptest"
	"github.com/imsdlg/imsdlg/tm"
)

// Options configure an Env. Config zero means imsdialog.DefaultConfig.
type Options struct {
	Config        *imsdialog.Config
	Limiter       imsdialog.Limiter
	Persister     imsdialog.Persister
	OnStateChange imsdialog.StateFunc
	// Modules come after the dialog module in the chain.
	Modules []tm.Module
	// Logger of the dialog module and tm; nil: slog.Default().
	Logger *slog.Logger
}

// Env is a proxy with the dialog module on loopback.
type Env struct {
	P     *tm.Proxy
	M     *imsdialog.Manager
	Addr  string
	Clock *siptest.Clock

	mu    sync.Mutex
	fired []string // callbacks seen, "TYPE" in order
}

// Target is a branch to a test UA.
func Target(u *siptest.UA, user string) tm.Target {
	return tm.Target{URI: sip.Uri{Scheme: "sip", User: user, Host: "127.0.0.1", Port: u.Addr.Port}}
}

// Route routes every initial request with route and everything else along
// its route set.
func Route(route func(r *tm.Request) tm.Decision) tm.Router {
	if route == nil {
		route = func(*tm.Request) tm.Decision { return tm.RelayTo() }
	}
	return tm.RouterFunc(func(r *tm.Request) tm.Decision {
		if !r.Initial {
			return tm.RelayTo()
		}
		return route(r)
	})
}

// New starts the proxy with the dialog module in front of inner.
func New(t testing.TB, o Options, inner tm.Router) *Env {
	t.Helper()
	e := &Env{Clock: siptest.NewClock()}
	cfg := imsdialog.DefaultConfig()
	if o.Config != nil {
		cfg = *o.Config
	}
	m, err := imsdialog.New(imsdialog.Options{Config: cfg, Clock: e.Clock, Limiter: o.Limiter, Logger: o.Logger,
		Persister: o.Persister, OnStateChange: o.OnStateChange})
	require.NoError(t, err)
	mods := append([]tm.Module{m.Module()}, o.Modules...)
	p, err := tm.New(tm.Options{Config: tm.DefaultConfig(), Router: inner, Modules: mods, Clock: e.Clock, Logger: o.Logger})
	require.NoError(t, err)
	a, err := p.Listen("udp", "127.0.0.1:0", "")
	require.NoError(t, err)
	t.Cleanup(func() {
		p.Close()
		m.Close()
	})
	m.RegisterCallback(^imsdialog.Callback(0), func(d *imsdialog.Dialog, typ imsdialog.Callback, _ imsdialog.CallbackParams) {
		e.mu.Lock()
		e.fired = append(e.fired, typ.String())
		e.mu.Unlock()
	})
	e.P, e.M, e.Addr = p, m, a.String()
	return e
}

// Callbacks lists what fired, RESPONSE_FWDED aside (see Forwarded): it
// interleaves with the rest in the order the branches' replies arrive.
func (e *Env) Callbacks() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, f := range e.fired {
		if f != "RESPONSE_FWDED" {
			out = append(out, f)
		}
	}
	return strings.Join(out, ",")
}

// Forwarded counts RESPONSE_FWDED callbacks.
func (e *Env) Forwarded() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, f := range e.fired {
		if f == "RESPONSE_FWDED" {
			n++
		}
	}
	return n
}

// Only waits until the table holds exactly one dialog and returns it.
func (e *Env) Only(t testing.TB) *imsdialog.Dialog {
	t.Helper()
	var ds []*imsdialog.Dialog
	siptest.Eventually(t, func() bool { ds = e.M.Dialogs(); return len(ds) == 1 }, "want one dialog, have %d", len(ds))
	return ds[0]
}

// WaitState waits until d is in state s.
func (e *Env) WaitState(t testing.TB, d *imsdialog.Dialog, s imsdialog.State) {
	t.Helper()
	siptest.Eventually(t, func() bool { return d.State() == s }, "dialog state %s, want %s", d.State(), s)
}

// WaitGone waits until the table is empty.
func (e *Env) WaitGone(t testing.TB) {
	t.Helper()
	siptest.Eventually(t, func() bool { return len(e.M.Dialogs()) == 0 }, "dialogs left: %d", len(e.M.Dialogs()))
}

// ConfirmedCall sets up a call from uac to the callee a (To tag legA) and
// waits until its dialog is CONFIRMED.
func (e *Env) ConfirmedCall(t testing.TB, uac, a *siptest.UA) *imsdialog.Dialog {
	d, _ := e.Answer(t, uac, a, uac.Invite("sip:bob@"+e.Addr))
	return d
}

// Answer places inv from uac, has a answer it 200 (To tag legA) and uac
// ACK it, and returns the confirmed dialog with the 2xx (what the caller's
// requests within the dialog are built from).
func (e *Env) Answer(t testing.TB, uac, a *siptest.UA, inv *sip.Request) (*imsdialog.Dialog, *sip.Response) {
	t.Helper()
	uac.Send(e.Addr, inv)
	ia := a.Request(sip.INVITE)
	a.Reply(ia, 200, "legA")
	r200 := uac.Response(200)
	uac.Send(e.Addr, uac.AckFor(inv, r200))
	a.Request(sip.ACK)
	d := e.Only(t)
	e.WaitState(t, d, imsdialog.Confirmed)
	return d, r200
}

package calllimit

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imsdlg/imsdlg/cachedb"
	"github.com/imsdlg/imsdlg/imsdialog"
	"github.com/imsdlg/imsdlg/internal/dlgtest"
	"github.com/imsdlg/imsdlg/internal/siptest"
	"github.com/imsdlg/imsdlg/profiles"
	"github.com/imsdlg/imsdlg/tm"
)

// flakyStore is a memory store whose calls fail while down is set, as a
// Redis that went away.
type flakyStore struct {
	cachedb.Store
	down atomic.Bool
}

var errDown = errors.New("dial tcp 127.0.0.1:6379: connect: connection refused")

func (f *flakyStore) Add(ctx context.Context, p cachedb.Profile, v string, m cachedb.Member, limit int64) (int64, error) {
	if f.down.Load() {
		return 0, errDown
	}
	return f.Store.Add(ctx, p, v, m, limit)
}

func (f *flakyStore) Remove(ctx context.Context, p cachedb.Profile, v string, m cachedb.Member) (int64, error) {
	if f.down.Load() {
		return 0, errDown
	}
	return f.Store.Remove(ctx, p, v, m)
}

// limitEnv is a dialog env whose manager applies limits over a local
// profile "caller" (with value) and a shared "calls/s" (no value) kept in
// a flaky store.
func limitEnv(t *testing.T, callee *siptest.UA, failOpen bool, limits ...Limit) (*dlgtest.Env, *Limiter, *flakyStore) {
	t.Helper()
	shared := &flakyStore{Store: cachedb.NewMemory(cachedb.DefaultKeys(), 0, nil)}
	set, err := profiles.New(profiles.Config{WithValue: []string{"caller"}, NoValue: []string{"calls/s"}}, nil, shared, "node1")
	require.NoError(t, err)
	l, err := New(Options{Set: set, Limits: limits, FailOpen: failOpen})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { l.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	e := dlgtest.New(t, dlgtest.Options{Limiter: l}, dlgtest.Route(func(r *tm.Request) tm.Decision {
		return tm.RelayTo(dlgtest.Target(callee, "bob"))
	}))
	return e, l, shared
}

// waitSize waits until the release queue has done its work.
func waitSize(t *testing.T, set *profiles.Set, profile, value string, want int64) {
	t.Helper()
	siptest.Eventually(t, func() bool { return size(t, set, profile, value) == want }, "profile %s %q: size %d, want %d",
		profile, value, size(t, set, profile, value), want)
}

func size(t *testing.T, set *profiles.Set, profile, value string) int64 {
	t.Helper()
	n, err := set.Size(context.Background(), profile, value)
	require.NoError(t, err)
	return n
}

// Issue 5 §3: the call past the limit is rejected with the configured
// code and a Reason; the callee never sees it; when a call ends its place
// is free again.
func TestIssue5_LimitRejectsCallPastMax(t *testing.T) {
	uac1, uac2, a := siptest.NewUA(t), siptest.NewUA(t), siptest.NewUA(t)
	e, l, _ := limitEnv(t, a, false, Limit{Profile: "caller", Key: KeyFromURI, Max: 1, Code: 403, Reason: "Too Many Calls"})
	set := l.Set()

	inv := uac1.Invite("sip:bob@" + e.Addr)
	uac1.Send(e.Addr, inv)
	ia := a.Request(sip.INVITE)
	a.Reply(ia, 200, "legA")
	r200 := uac1.Response(200)
	uac1.Send(e.Addr, uac1.AckFor(inv, r200))
	a.Request(sip.ACK)
	d := e.Only(t)
	e.WaitState(t, d, imsdialog.Confirmed)
	assert.Equal(t, int64(1), size(t, set, "caller", "alice@127.0.0.1"))
	assert.True(t, set.IsInProfile(d.DID(), "caller", "alice@127.0.0.1"))

	// Same caller from another device: over the limit.
	uac2.Send(e.Addr, uac2.Invite("sip:bob@"+e.Addr))
	rej := uac2.Final()
	assert.Equal(t, 403, rej.StatusCode)
	assert.Equal(t, "Too Many Calls", rej.Reason)
	require.NotNil(t, rej.GetHeader("Reason"))
	assert.Contains(t, rej.GetHeader("Reason").Value(), "limit of 1 calls in profile caller")
	a.Quiet(30e6, "INVITE past the limit", func(m sip.Message) bool {
		r, ok := m.(*sip.Request)
		return ok && r.Method == sip.INVITE
	})
	assert.Len(t, e.M.Dialogs(), 1, "the rejected INVITE made no dialog")
	assert.Equal(t, int64(1), e.M.Stats().Snapshot()["created_dialogs"])
	assert.Equal(t, int64(1), size(t, set, "caller", "alice@127.0.0.1"))

	uac1.Send(e.Addr, uac1.InDialog("BYE", inv, r200, 2))
	a.Reply(a.Request(sip.BYE), 200, "")
	uac1.Response(200)
	e.WaitGone(t)
	waitSize(t, set, "caller", "alice@127.0.0.1", 0)
	assert.Equal(t, int64(0), size(t, set, "caller", ""))

	uac2.Send(e.Addr, uac2.Invite("sip:bob@"+e.Addr))
	ib := a.Request(sip.INVITE)
	a.Reply(ib, 486, "legB")
	assert.Equal(t, 486, uac2.Final().StatusCode)
	e.WaitGone(t)
	waitSize(t, set, "caller", "alice@127.0.0.1", 0) // a failed early call leaves its profile
}

// Issue 5 §2: membership ends by itself however the dialog ends: here by
// dlg_terminate of an early call and by default_timeout of a confirmed one.
func TestIssue5_MembershipEndsWithTheDialog(t *testing.T) {
	uac, a := siptest.NewUA(t), siptest.NewUA(t)
	e, l, _ := limitEnv(t, a, false, Limit{Profile: "calls/s", Key: KeyNone})
	set := l.Set()

	inv := uac.Invite("sip:bob@" + e.Addr)
	uac.Send(e.Addr, inv)
	ia := a.Request(sip.INVITE)
	a.Reply(ia, 180, "legA")
	uac.Response(180)
	d := e.Only(t)
	assert.Equal(t, int64(1), size(t, set, "calls/s", ""))
	require.NoError(t, e.M.Terminate(d, imsdialog.SideBoth, 0, "operator"))
	uac.Final()
	a.Reply(a.Request(sip.CANCEL), 200, "")
	a.Reply(ia, 487, "legA")
	e.WaitGone(t)
	waitSize(t, set, "calls/s", "", 0)

	d = e.ConfirmedCall(t, uac, a)
	assert.Equal(t, int64(1), size(t, set, "calls/s", ""))
	_, err := l.SetDlgProfile(context.Background(), d, "caller", "extra", 0)
	require.NoError(t, err)
	_, err = l.SetDlgProfile(context.Background(), d, "caller", "gone", 0)
	require.NoError(t, err)
	require.NoError(t, l.UnsetDlgProfile(context.Background(), d, "caller", "gone"))
	assert.Equal(t, int64(0), size(t, set, "caller", "gone"), "unset_dlg_profile")
	assert.Equal(t, int64(1), size(t, set, "caller", "extra"))
	e.Clock.Advance(imsdialog.DefaultConfig().DefaultTimeout)
	a.Reply(a.Request(sip.BYE), 200, "")
	uac.Reply(uac.Request(sip.BYE), 200, "")
	e.WaitGone(t)
	waitSize(t, set, "calls/s", "", 0)
	waitSize(t, set, "caller", "extra", 0) // set_dlg_profile memberships end too
}

// Issue 5 cachedb §5: with the shared store down, fail_closed rejects new
// calls with 503 and fail_open lets them through uncounted; either way
// the decrements that failed are retried once the store is back.
func TestIssue5_StoreDownFailMode(t *testing.T) {
	for _, tc := range []struct {
		name     string
		failOpen bool
		want     int
	}{
		{"fail_closed", false, 503},
		{"fail_open", true, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			uac, a := siptest.NewUA(t), siptest.NewUA(t)
			e, l, store := limitEnv(t, a, tc.failOpen, Limit{Profile: "calls/s", Key: KeyNone, Max: 10})
			set := l.Set()
			// One call counted before the outage.
			d := e.ConfirmedCall(t, uac, a)
			require.Equal(t, int64(1), size(t, set, "calls/s", ""))

			store.down.Store(true)
			inv := uac.Invite("sip:bob@" + e.Addr)
			uac.Send(e.Addr, inv)
			if tc.want == 503 {
				res := uac.Final()
				assert.Equal(t, 503, res.StatusCode)
				require.NotNil(t, res.GetHeader("Reason"))
			} else {
				ia := a.Request(sip.INVITE)
				a.Reply(ia, 486, "legB")
				assert.Equal(t, 486, uac.Final().StatusCode)
			}
			// The counted call ends while the store is down.
			require.NoError(t, e.M.Terminate(d, imsdialog.SideBoth, 0, "end"))
			a.Reply(a.Request(sip.BYE), 200, "")
			uac.Reply(uac.Request(sip.BYE), 200, "")
			e.WaitGone(t)
			siptest.Eventually(t, func() bool { return set.Pending() >= 1 }, "the decrement waits for the store")

			store.down.Store(false)
			// The ended call's release may still be on its way to the
			// pending set (Run's queue) when the rejected call's is there:
			// retry until both are through.
			siptest.Eventually(t, func() bool {
				return set.RetryPending(context.Background()) == 0 && size(t, set, "calls/s", "") == 0
			}, "retried, not lost")
		})
	}
}

func TestIssue5_SetProfilesNamesTheLimit(t *testing.T) {
	set, err := profiles.New(profiles.Config{WithValue: []string{"caller"}, NoValue: []string{"calls"}}, nil, nil, "n")
	require.NoError(t, err)
	_, err = New(Options{Set: set, Limits: []Limit{
		{Profile: "caller", Key: KeyFromURI, Max: 1},
		{Profile: "nope", Key: KeyFromURI},
		{Profile: "caller", Key: KeyNone},
		{Profile: "calls", Key: KeySourceIP},
		{Profile: "calls", Key: KeyNone, Max: -1, Code: 200},
	}})
	require.Error(t, err)
	for _, want := range []string{
		`limits[1].profile: "nope" is not declared`,
		`limits[2].key: profile "caller" has values`,
		`limits[3].key: profile "calls" has no value`,
		`limits[4].max: -1 is negative`,
		`limits[4].code: 200 is not a final error`,
	} {
		assert.Contains(t, err.Error(), want)
	}
	assert.NotContains(t, err.Error(), "limits[0]")
}

func TestIssue5_LimitKeyValues(t *testing.T) {
	req, err := sip.ParseMessage([]byte("INVITE sip:Bob@Example.com:5070;transport=udp SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bK-1\r\n" +
		"From: \"A\" <sip:Alice@EXAMPLE.org:5061;user=phone>;tag=1\r\n" +
		"To: <sip:bob@example.COM>\r\n" +
		"Call-ID: c1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"))
	require.NoError(t, err)
	sr := req.(*sip.Request)
	r := imsdialog.Call{From: sr.From().Address, To: sr.To().Address, RURI: sr.Recipient, Source: "10.1.2.3:40000"}
	for _, tc := range []struct {
		key  LimitKey
		want string
	}{
		{KeyFromURI, "Alice@example.org"},
		{KeyToURI, "bob@example.com"},
		{KeyRURI, "sip:Bob@Example.com:5070;transport=udp"},
		{KeySourceIP, "10.1.2.3"},
		{KeyNone, ""},
	} {
		t.Run(tc.key.String(), func(t *testing.T) {
			assert.Equal(t, tc.want, limitValue(tc.key, r))
			k, err := ParseLimitKey(tc.key.String())
			require.NoError(t, err)
			assert.Equal(t, tc.key, k)
		})
	}
	_, err = ParseLimitKey("contact")
	assert.ErrorContains(t, err, `unknown key "contact"`)
}

// gatedStore holds every Add until the test opens the gate, as a Redis
// that answers late.
type gatedStore struct {
	cachedb.Store
	entered chan struct{}
	gate    chan struct{}
}

func (g *gatedStore) Add(ctx context.Context, p cachedb.Profile, v string, m cachedb.Member, limit int64) (int64, error) {
	g.entered <- struct{}{}
	<-g.gate
	return g.Store.Add(ctx, p, v, m, limit)
}

// Issue 10 §3 and issue 15 §4: the limit check runs off tm's request path
// (the INVITE waits, tm.Defer); a caller who cancels meanwhile gets its
// reply, the call is never started, and the count it took is given back.
func TestIssue10_AdmissionCancelledWhileCounting(t *testing.T) {
	uac, a := siptest.NewUA(t), siptest.NewUA(t)
	store := &gatedStore{Store: cachedb.NewMemory(cachedb.DefaultKeys(), 0, nil), entered: make(chan struct{}, 4), gate: make(chan struct{})}
	set, err := profiles.New(profiles.Config{NoValue: []string{"calls/s"}}, nil, store, "node1")
	require.NoError(t, err)
	l, err := New(Options{Set: set, Limits: []Limit{{Profile: "calls/s", Max: 5}}, Timeout: 10 * time.Second})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go l.Run(ctx)
	e := dlgtest.New(t, dlgtest.Options{Limiter: l}, dlgtest.Route(func(r *tm.Request) tm.Decision {
		return tm.RelayTo(dlgtest.Target(a, "bob"))
	}))

	inv := uac.Invite("sip:bob@" + e.Addr)
	uac.Send(e.Addr, inv)
	<-store.entered // the count is being taken
	uac.Send(e.Addr, uac.CancelFor(inv))
	final := uac.Next("final reply to the INVITE", func(m sip.Message) bool {
		r, ok := m.(*sip.Response)
		return ok && r.StatusCode >= 200 && r.CSeq().MethodName == sip.INVITE
	}).(*sip.Response)
	assert.Equal(t, 487, final.StatusCode)
	close(store.gate)
	a.Quiet(50*time.Millisecond, "INVITE of a cancelled call", func(m sip.Message) bool {
		r, ok := m.(*sip.Request)
		return ok && r.Method == sip.INVITE
	})
	waitSize(t, set, "calls/s", "", 0)
	assert.Empty(t, e.M.Dialogs())
	assert.Zero(t, e.M.Stats().Snapshot()["created_dialogs"], "never a dialog")
}

// Issue 14: with node-local profiles only, admissions and releases never
// wait on the network: the dialog module admits inline (no goroutine, no
// tm.Defer) and Release gives the count back at once. One shared profile
// declared anywhere sends both back to their goroutines.
func TestIssue14_LocalLimitsAdmitInline(t *testing.T) {
	local, err := profiles.New(profiles.Config{WithValue: []string{"caller"}}, nil, nil, "n1")
	require.NoError(t, err)
	l, err := New(Options{Set: local, Limits: []Limit{{Profile: "caller", Key: KeyFromURI, Max: 1}}})
	require.NoError(t, err)
	assert.True(t, l.AdmitsInline())
	from := sip.Uri{Scheme: "sip", User: "alice", Host: "example.com"}
	require.Nil(t, l.Admit(context.Background(), imsdialog.Call{DID: "1.1", From: from}))
	assert.NotNil(t, l.Admit(context.Background(), imsdialog.Call{DID: "1.2", From: from}), "over the limit")
	l.Release("1.1") // no Run goroutine: given back at once
	waitSize(t, local, "caller", "alice@example.com", 0)

	mixed, err := profiles.New(profiles.Config{WithValue: []string{"caller"}, NoValue: []string{"all/s"}},
		nil, cachedb.NewMemory(cachedb.DefaultKeys(), 0, nil), "n1")
	require.NoError(t, err)
	l, err = New(Options{Set: mixed, Limits: []Limit{{Profile: "caller", Key: KeyFromURI, Max: 1}}})
	require.NoError(t, err)
	assert.False(t, l.AdmitsInline(), "a shared profile may hold the dialog's counts")
}

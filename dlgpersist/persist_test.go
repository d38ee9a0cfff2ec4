package dlgpersist

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imsdlg/imsdlg/cachedb"
	"github.com/imsdlg/imsdlg/calllimit"
	"github.com/imsdlg/imsdlg/dlgdb"
	"github.com/imsdlg/imsdlg/imsdialog"
	"github.com/imsdlg/imsdlg/internal/dlgtest"
	"github.com/imsdlg/imsdlg/internal/siptest"
	"github.com/imsdlg/imsdlg/profiles"
	"github.com/imsdlg/imsdlg/tm"
)

// persistEnv is a dialog env whose manager keeps its dialogs in store,
// with a shared profile "calls/s" counted in shared for every call.
func persistEnv(t *testing.T, callee *siptest.UA, store dlgdb.Store, shared cachedb.Store, mode int) (*dlgtest.Env, *profiles.Set, *Persister) {
	t.Helper()
	set, err := profiles.New(profiles.Config{NoValue: []string{"calls/s"}}, nil, shared, "node1")
	require.NoError(t, err)
	lim, err := calllimit.New(calllimit.Options{Set: set, Limits: []calllimit.Limit{{Profile: "calls/s", Key: calllimit.KeyNone}}})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { lim.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	p, err := New(Options{Store: store, Node: "node1", Mode: mode, Period: time.Minute,
		Memberships: func(did string) []dlgdb.Membership {
			var out []dlgdb.Membership
			for _, m := range set.Memberships(did) {
				out = append(out, dlgdb.Membership{Profile: m.Profile, Value: m.Value})
			}
			return out
		},
		RestoreMemberships: func(ctx context.Context, did string, ms []dlgdb.Membership) error {
			pm := make([]profiles.Membership, 0, len(ms))
			for _, m := range ms {
				pm = append(pm, profiles.Membership{Profile: m.Profile, Value: m.Value})
			}
			return set.Restore(ctx, did, pm)
		}})
	require.NoError(t, err)
	e := dlgtest.New(t, dlgtest.Options{Limiter: lim, Persister: p}, dlgtest.Route(func(r *tm.Request) tm.Decision {
		return tm.RelayTo(dlgtest.Target(callee, "bob"))
	}))
	return e, set, p
}

// Issue 6 §4: a confirmed call survives the proxy: a new manager on the
// same store restores it with its CSeqs, timeout and profile membership
// (counted once), and terminating it sends BYE to both parties.
func TestIssue6_DBModeRestoreConfirmedCall(t *testing.T) {
	for _, tc := range []struct {
		name string
		mode int
	}{{"realtime", DBModeRealtime}, {"shutdown", DBModeShutdown}} {
		t.Run(tc.name, func(t *testing.T) {
			store := dlgdb.NewMemory()
			shared := cachedb.NewMemory(cachedb.DefaultKeys(), 0, nil)
			uac, a := siptest.NewUA(t), siptest.NewUA(t)
			e1, _, p1 := persistEnv(t, a, store, shared, tc.mode)
			// Issue 13 §5: DLGCB_SAVED after each write, DLGCB_LOADED at restore.
			var saved, loaded atomic.Int32
			e1.M.RegisterCallback(imsdialog.CbSaved, func(*imsdialog.Dialog, imsdialog.Callback, imsdialog.CallbackParams) { saved.Add(1) })
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go p1.Run(ctx)

			inv := uac.Invite("sip:bob@" + e1.Addr)
			uac.Send(e1.Addr, inv)
			ia := a.Request(sip.INVITE)
			a.Reply(ia, 200, "legA")
			r200 := uac.Response(200)
			uac.Send(e1.Addr, uac.AckFor(inv, r200))
			a.Request(sip.ACK)
			d := e1.Only(t)
			e1.WaitState(t, d, imsdialog.Confirmed)
			// A re-INVITE raises the caller's CSeq to 4.
			re := uac.InDialog("INVITE", inv, r200, 4)
			uac.Send(e1.Addr, re)
			a.Reply(a.Request(sip.INVITE), 200, "legA")
			r2 := uac.Response(200)
			uac.Send(e1.Addr, uac.AckFor(re, r2))
			a.Request(sip.ACK)
			d.SetVar("charging", "on")

			if tc.mode == DBModeShutdown {
				recs, err := store.Load(context.Background(), "node1")
				require.NoError(t, err)
				assert.Empty(t, recs, "db_mode 3 writes nothing before shutdown")
				require.NoError(t, p1.Flush(context.Background(), e1.M))
			}
			var recs []dlgdb.Record
			siptest.Eventually(t, func() bool {
				recs, _ = store.Load(context.Background(), "node1")
				return len(recs) == 1 && recs[0].CallerCSeq == 4 && recs[0].Vars["charging"] == "on"
			}, "the dialog written with its latest CSeq and vars: %+v", recs)
			siptest.Eventually(t, func() bool { return saved.Load() > 0 }, "SAVED after the write")
			cancel()

			// A new proxy process: same store, same node.
			e2, set2, p2 := persistEnv(t, a, store, shared, tc.mode)
			e2.M.RegisterCallback(imsdialog.CbLoaded, func(*imsdialog.Dialog, imsdialog.Callback, imsdialog.CallbackParams) { loaded.Add(1) })
			dids, err := p2.Restore(context.Background(), e2.M, e2.P)
			require.NoError(t, err)
			assert.Equal(t, []string{d.DID()}, dids)
			assert.Equal(t, int32(1), loaded.Load(), "LOADED once for the restored dialog")
			_, err = shared.Reconcile(context.Background(), "node1", profiles.KeepRestored(dids))
			require.NoError(t, err)
			n, err := set2.Size(context.Background(), "calls/s", "")
			require.NoError(t, err)
			assert.Equal(t, int64(1), n, "the restored call is counted once")
			d2 := e2.M.Get(d.CallID, d.FromTag, "legA")
			require.NotNil(t, d2)
			assert.Equal(t, d.DID(), d2.DID())
			assert.Equal(t, imsdialog.Confirmed, d2.State())
			v, _ := d2.Var("charging")
			assert.Equal(t, "on", v)
			assert.True(t, set2.IsInProfile(d2.DID(), "calls/s", ""))
			assert.Equal(t, int64(1), e2.M.Stats().Snapshot()["active_dialogs"])

			// A new call of the same table entry does not take the restored
			// did: another INVITE with the same Call-ID (a new dialog).
			other := uac.Invite("sip:bob@" + e2.Addr)
			*other.CallID() = sip.CallIDHeader(d.CallID)
			other.From().Params.Remove("tag")
			other.From().Params.Add("tag", "another")
			uac.Send(e2.Addr, other)
			a.Reply(a.Request(sip.INVITE), 486, "x")
			uac.Final()
			siptest.Eventually(t, func() bool { return e2.M.Stats().Snapshot()["created_dialogs"] == 2 }, "the second dialog")
			assert.Equal(t, d2, e2.M.Lookup(d2.HEntry, d2.HID), "the restored dialog keeps its did")

			require.NoError(t, e2.M.Terminate(d2, imsdialog.SideBoth, 0, "restored"))
			byeA := a.Request(sip.BYE)
			assert.Equal(t, uint32(5), byeA.CSeq().SeqNo, "above the re-INVITE seen before the restart")
			assert.Equal(t, "legA", tm.Tag(byeA.To().Params))
			byeU := uac.Request(sip.BYE)
			assert.Equal(t, "legA", tm.Tag(byeU.From().Params))
			a.Reply(byeA, 200, "")
			uac.Reply(byeU, 200, "")
			e2.WaitGone(t)
			siptest.Eventually(t, func() bool {
				n, err = set2.Size(context.Background(), "calls/s", "")
				return err == nil && n == 0
			}, "the restored call's count released")
			if tc.mode == DBModeShutdown {
				require.NoError(t, p2.Flush(context.Background(), e2.M))
			} else {
				go p2.Run(t.Context())
			}
			siptest.Eventually(t, func() bool {
				recs, _ = store.Load(context.Background(), "node1")
				return len(recs) == 0
			}, "the ended dialog deleted from the store: %+v", recs)
		})
	}
}

// Issue 15 §2: a saved dialog whose deadline passed while the proxy was
// down is a call that can no longer exist (the proxy would have ended it
// then): it is dropped, not restored, its record deleted, and the
// reconcile that follows takes its profile count away. No BYE is sent for
// it.
func TestIssue15_2_RestoredRecordPastItsDeadlineIsDropped(t *testing.T) {
	store := dlgdb.NewMemory()
	shared := cachedb.NewMemory(cachedb.DefaultKeys(), 0, nil)
	uac, a := siptest.NewUA(t), siptest.NewUA(t)
	e1, _, p1 := persistEnv(t, a, store, shared, DBModeRealtime)
	e1.ConfirmedCall(t, uac, a)
	require.NoError(t, p1.Flush(context.Background(), e1.M))
	recs, err := store.Load(context.Background(), "node1")
	require.NoError(t, err)
	require.Len(t, recs, 1)
	assert.True(t, e1.Clock.Now().Add(imsdialog.DefaultConfig().DefaultTimeout).Equal(recs[0].Deadline), "deadline %v", recs[0].Deadline)

	e2, set2, p2 := persistEnv(t, a, store, shared, DBModeRealtime)
	e2.Clock.Advance(imsdialog.DefaultConfig().DefaultTimeout + time.Hour) // the proxy was down past the deadline
	dids, err := p2.Restore(context.Background(), e2.M, e2.P)
	require.NoError(t, err)
	assert.Empty(t, dids)
	assert.Empty(t, e2.M.Dialogs())
	assert.Equal(t, int64(1), p2.Stats().Snapshot()["db_outlived_dropped"])
	recs, err = store.Load(context.Background(), "node1")
	require.NoError(t, err)
	assert.Empty(t, recs, "the outlived record deleted")
	_, err = set2.Reconcile(context.Background(), profiles.KeepRestored(dids))
	require.NoError(t, err)
	n, err := set2.Size(context.Background(), "calls/s", "")
	require.NoError(t, err)
	assert.Zero(t, n, "the outlived call's count reconciled away")
	e2.Clock.Advance(time.Minute)
	isBye := func(m sip.Message) bool { r, ok := m.(*sip.Request); return ok && r.Method == sip.BYE }
	a.Quiet(100*time.Millisecond, "BYE for a dropped dialog", isBye)
	uac.Quiet(100*time.Millisecond, "BYE for a dropped dialog", isBye)
}

// unavailableStore is a dialog store that does not answer.
type unavailableStore struct{ dlgdb.Store }

func (unavailableStore) Load(context.Context, string) ([]dlgdb.Record, error) {
	return nil, fmt.Errorf("dlgdb: read dialogs: %w: dial tcp 127.0.0.1:6379: connect: connection refused", dlgdb.ErrUnavailable)
}

// A store that does not answer restores nothing and says that trying
// again may succeed.
func TestIssue15_2_RestoreFromAnUnavailableStoreCanBeRetried(t *testing.T) {
	a := siptest.NewUA(t)
	e, _, p := persistEnv(t, a, unavailableStore{dlgdb.NewMemory()}, cachedb.NewMemory(cachedb.DefaultKeys(), 0, nil), DBModeRealtime)
	dids, err := p.Restore(context.Background(), e.M, e.P)
	assert.Empty(t, dids)
	assert.ErrorIs(t, err, ErrUnavailable)
}

func TestIssue6_NewNamesTheParameter(t *testing.T) {
	for _, tc := range []struct {
		o    Options
		want string
	}{
		{Options{Mode: 4}, "db_mode: 4"},
		{Options{Mode: 0}, "db_mode: 0"},
		{Options{Mode: 1, Node: "n"}, "db_url"},
		{Options{Mode: 2, Node: "n", Store: dlgdb.NewMemory()}, "db_update_period"},
		{Options{Mode: 1, Store: dlgdb.NewMemory()}, "empty node id"},
	} {
		_, err := New(tc.o)
		assert.ErrorContains(t, err, tc.want)
	}
}

// db_mode 2: changes wait for db_update_period, then go in one flush.
func TestIssue6_DBModeDelayedWritesEveryPeriod(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := dlgdb.NewMemory()
		r := dlgdb.Record{Version: dlgdb.CurrentVersion, HEntry: imsdialog.HashEntry("c1", 4096), HID: 7, CallID: "c1", FromTag: "ft",
			From: "<sip:alice@example.com>;tag=ft", To: "<sip:bob@example.com>", CallerTarget: "sip:alice@127.0.0.1:5070",
			Callee: dlgdb.Leg{ToTag: "tt", RemoteTarget: "sip:bob@127.0.0.1:5080"}, State: int(imsdialog.Confirmed),
			Start: time.Now(), Timeout: time.Hour.Milliseconds(), Deadline: time.Now().Add(time.Hour)}
		require.NoError(t, store.Apply(context.Background(), "n", []dlgdb.Change{{DID: r.DID(), Rec: &r}}))
		p, err := New(Options{Store: store, Node: "n", Mode: DBModeDelayed, Period: time.Minute})
		require.NoError(t, err)
		m, err := imsdialog.New(imsdialog.Options{Config: imsdialog.DefaultConfig(), Persister: p})
		require.NoError(t, err)
		dids, err := p.Restore(context.Background(), m, nopSender{})
		require.NoError(t, err)
		require.Equal(t, []string{r.DID()}, dids)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go p.Run(ctx)

		m.ByDID(r.DID()).SetVar("k", "v")
		time.Sleep(59 * time.Second)
		synctest.Wait()
		recs, err := store.Load(context.Background(), "n")
		require.NoError(t, err)
		assert.Empty(t, recs[0].Vars, "written before db_update_period")
		time.Sleep(time.Second)
		synctest.Wait()
		recs, err = store.Load(context.Background(), "n")
		require.NoError(t, err)
		assert.Equal(t, map[string]string{"k": "v"}, recs[0].Vars, "written at db_update_period")
		assert.Equal(t, int64(1), p.Stats().Snapshot()["db_writes"])
		cancel()
		// The restored dialog's timer must not outlive the bubble.
		for _, d := range m.Dialogs() {
			require.NoError(t, m.SetTimeout(d, time.Hour))
			require.NoError(t, m.Terminate(d, imsdialog.SideBoth, 0, ""))
		}
		synctest.Wait()
	})
}

// nopSender stands for a proxy that sends nothing.
type nopSender struct{}

func (nopSender) Send(*sip.Request, string, func(*sip.Response, error)) error {
	return errors.New("not sent")
}
func (nopSender) ForwardStateless(*sip.Request, string) error { return errors.New("not sent") }
func (nopSender) IsOurURI(*sip.Uri) bool                      { return false }
func (nopSender) IsOurVia(*sip.ViaHeader) bool                { return false }

// OpenSIPS MI dlg_db_sync (001 §1.9.8): a record whose dialog memory holds
// is kept as memory has it, and so is one whose dialog ended here with its
// delete still pending (db_mode 3 writes at shutdown only; a failed flush
// leaves it too): loading it would bring an ended call back.
func TestSeedDialog_1_9_8_DBSyncKeepsWhatMemoryKnows(t *testing.T) {
	store := dlgdb.NewMemory()
	shared := cachedb.NewMemory(cachedb.DefaultKeys(), 0, nil)
	uac, a := siptest.NewUA(t), siptest.NewUA(t)
	e, _, p := persistEnv(t, a, store, shared, DBModeShutdown)
	ctx := context.Background()
	inv := uac.Invite("sip:bob@" + e.Addr)
	_, r200 := e.Answer(t, uac, a, inv)
	require.NoError(t, p.Flush(ctx, e.M))

	res, err := p.SyncDB(ctx, e.M, e.P)
	require.NoError(t, err)
	assert.Equal(t, Sync{Loaded: []string{}, Kept: 1}, res, "the call in memory")

	uac.Send(e.Addr, uac.InDialog("BYE", inv, r200, 2))
	a.Reply(a.Request(sip.BYE), 200, "legA")
	uac.Response(200)
	e.WaitGone(t)
	recs, err := store.Load(ctx, "node1")
	require.NoError(t, err)
	require.Len(t, recs, 1, "db_mode 3: the record stays until shutdown")
	res, err = p.SyncDB(ctx, e.M, e.P)
	require.NoError(t, err)
	assert.Equal(t, Sync{Loaded: []string{}, Kept: 1}, res, "its delete is pending: not loaded")
	assert.Empty(t, e.M.Dialogs(), "the ended call stays ended")
}

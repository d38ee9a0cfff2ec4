package imsdialog

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imsdlg/imsdlg/cachedb"
	"github.com/imsdlg/imsdlg/dlgdb"
	"github.com/imsdlg/imsdlg/internal/siptest"
	"github.com/imsdlg/imsdlg/profiles"
	"github.com/imsdlg/imsdlg/tm"
)

// persistEnv is a dialog env whose manager keeps its dialogs in store,
// with a shared profile "calls/s" counted in shared.
func persistEnv(t *testing.T, callee *siptest.UA, store dlgdb.Store, shared cachedb.Store, mode int) (*env, *profiles.Set) {
	t.Helper()
	e := newEnv(t, DefaultConfig(), func(r *tm.Request) tm.Decision { return tm.RelayTo(target(callee, "bob")) })
	set, err := profiles.New(profiles.Config{NoValue: []string{"calls/s"}}, nil, shared, "node1")
	require.NoError(t, err)
	require.NoError(t, e.m.SetProfiles(ProfileOptions{Set: set, Limits: []Limit{{Profile: "calls/s", Key: KeyNone}}}))
	require.NoError(t, e.m.SetPersistence(PersistOptions{Store: store, Node: "node1", Mode: mode, Period: time.Minute}))
	return e, set
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
			e1, _ := persistEnv(t, a, store, shared, tc.mode)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go e1.m.RunPersistence(ctx)

			inv := uac.Invite("sip:bob@" + e1.addr)
			uac.Send(e1.addr, inv)
			ia := a.Request(sip.INVITE)
			a.Reply(ia, 200, "legA")
			r200 := uac.Response(200)
			uac.Send(e1.addr, uac.AckFor(inv, r200))
			a.Request(sip.ACK)
			d := e1.only(t)
			e1.waitState(t, d, Confirmed)
			// A re-INVITE raises the caller's CSeq to 4.
			re := uac.InDialog("INVITE", inv, r200, 4)
			uac.Send(e1.addr, re)
			a.Reply(a.Request(sip.INVITE), 200, "legA")
			r2 := uac.Response(200)
			uac.Send(e1.addr, uac.AckFor(re, r2))
			a.Request(sip.ACK)
			d.SetVar("charging", "on")

			if tc.mode == DBModeShutdown {
				recs, err := store.Load(context.Background(), "node1")
				require.NoError(t, err)
				assert.Empty(t, recs, "db_mode 3 writes nothing before shutdown")
				require.NoError(t, e1.m.FlushPersistence(context.Background()))
			}
			var recs []dlgdb.Record
			siptest.Eventually(t, func() bool {
				recs, _ = store.Load(context.Background(), "node1")
				return len(recs) == 1 && recs[0].CallerCSeq == 4 && recs[0].Vars["charging"] == "on"
			}, "the dialog written with its latest CSeq and vars: %+v", recs)
			cancel()

			// A new proxy process: same store, same node.
			e2, set2 := persistEnv(t, a, store, shared, tc.mode)
			dids, err := e2.m.Restore(context.Background())
			require.NoError(t, err)
			assert.Equal(t, []string{d.DID()}, dids)
			_, err = shared.Reconcile(context.Background(), "node1", profiles.KeepRestored(dids))
			require.NoError(t, err)
			n, err := set2.Size(context.Background(), "calls/s", "")
			require.NoError(t, err)
			assert.Equal(t, int64(1), n, "the restored call is counted once")
			d2 := e2.m.Get(d.CallID, d.FromTag, "legA")
			require.NotNil(t, d2)
			assert.Equal(t, d.DID(), d2.DID())
			assert.Equal(t, Confirmed, d2.State())
			v, _ := d2.Var("charging")
			assert.Equal(t, "on", v)
			assert.True(t, set2.IsInProfile(d2.DID(), "calls/s", ""))
			assert.Equal(t, int64(1), e2.m.Stats().Snapshot()["active_dialogs"])

			// A new call of the same table entry does not take the restored did.
			en := &e2.m.table[d2.HEntry]
			en.mu.Lock()
			assert.GreaterOrEqual(t, en.nextID, d2.HID)
			en.mu.Unlock()

			require.NoError(t, e2.m.Terminate(d2, SideBoth, 0, "restored"))
			byeA := a.Request(sip.BYE)
			assert.Equal(t, uint32(5), byeA.CSeq().SeqNo, "above the re-INVITE seen before the restart")
			assert.Equal(t, "legA", tagOf(byeA.To().Params))
			byeU := uac.Request(sip.BYE)
			assert.Equal(t, "legA", tagOf(byeU.From().Params))
			a.Reply(byeA, 200, "")
			uac.Reply(byeU, 200, "")
			e2.waitGone(t)
			n, err = set2.Size(context.Background(), "calls/s", "")
			require.NoError(t, err)
			assert.Equal(t, int64(0), n)
			if tc.mode == DBModeShutdown {
				require.NoError(t, e2.m.FlushPersistence(context.Background()))
			} else {
				go e2.m.RunPersistence(t.Context())
			}
			siptest.Eventually(t, func() bool {
				recs, _ = store.Load(context.Background(), "node1")
				return len(recs) == 0
			}, "the ended dialog deleted from the store: %+v", recs)
		})
	}
}

// A restored dialog whose deadline passed while the proxy was down ends
// with BYE both ways once the timer fires.
func TestIssue6_RestoredDialogPastItsDeadlineEnds(t *testing.T) {
	store := dlgdb.NewMemory()
	shared := cachedb.NewMemory(cachedb.DefaultKeys(), 0, nil)
	uac, a := siptest.NewUA(t), siptest.NewUA(t)
	e1, _ := persistEnv(t, a, store, shared, DBModeRealtime)
	e1.confirmedCall(t, uac, a)
	require.NoError(t, e1.m.FlushPersistence(context.Background()))
	recs, err := store.Load(context.Background(), "node1")
	require.NoError(t, err)
	require.Len(t, recs, 1)
	assert.True(t, e1.clock.Now().Add(DefaultConfig().DefaultTimeout).Equal(recs[0].Deadline), "deadline %v", recs[0].Deadline)

	e2, _ := persistEnv(t, a, store, shared, DBModeRealtime)
	e2.clock.Advance(DefaultConfig().DefaultTimeout + time.Hour) // the proxy was down past the deadline
	_, err = e2.m.Restore(context.Background())
	require.NoError(t, err)
	e2.clock.Advance(time.Second)
	a.Reply(a.Request(sip.BYE), 200, "")
	uac.Reply(uac.Request(sip.BYE), 200, "")
	e2.waitGone(t)
	assert.Equal(t, int64(1), e2.m.Stats().Snapshot()["expired_dialogs"])
}

func TestIssue6_SetPersistenceNamesTheParameter(t *testing.T) {
	e := newEnv(t, DefaultConfig(), nil)
	for _, tc := range []struct {
		o    PersistOptions
		want string
	}{
		{PersistOptions{Mode: 4}, "db_mode: 4"},
		{PersistOptions{Mode: 1, Node: "n"}, "db_url"},
		{PersistOptions{Mode: 2, Node: "n", Store: dlgdb.NewMemory()}, "db_update_period"},
		{PersistOptions{Mode: 1, Store: dlgdb.NewMemory()}, "empty node id"},
	} {
		assert.ErrorContains(t, e.m.SetPersistence(tc.o), tc.want)
	}
	assert.NoError(t, e.m.SetPersistence(PersistOptions{Mode: 0}))
}

// db_mode 2: changes wait for db_update_period, then go in one flush.
func TestIssue6_DBModeDelayedWritesEveryPeriod(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := dlgdb.NewMemory()
		r := dlgdb.Record{Version: dlgdb.CurrentVersion, HEntry: 1, HID: 7, CallID: "c1", FromTag: "ft",
			From: "<sip:alice@example.com>;tag=ft", To: "<sip:bob@example.com>", CallerTarget: "sip:alice@127.0.0.1:5070",
			Callee: dlgdb.Leg{ToTag: "tt", RemoteTarget: "sip:bob@127.0.0.1:5080"}, State: int(Confirmed),
			Start: time.Now(), Timeout: time.Hour.Milliseconds(), Deadline: time.Now().Add(time.Hour)}
		require.NoError(t, store.Apply(context.Background(), "n", []dlgdb.Change{{DID: r.DID(), Rec: &r}}))
		m, err := New(DefaultConfig(), tm.RouterFunc(func(*tm.Request) tm.Decision { return tm.RelayTo() }), nil, nil)
		require.NoError(t, err)
		require.NoError(t, m.SetPersistence(PersistOptions{Store: store, Node: "n", Mode: DBModeDelayed, Period: time.Minute}))
		dids, err := m.Restore(context.Background())
		require.NoError(t, err)
		require.Equal(t, []string{"1.7"}, dids)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go m.RunPersistence(ctx)

		m.ByDID("1.7").SetVar("k", "v")
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
		assert.Equal(t, int64(1), m.Stats().Snapshot()["db_writes"])
		cancel()
		for _, d := range m.Dialogs() {
			d.mu.Lock()
			d.timer.Stop()
			d.mu.Unlock()
		}
	})
}

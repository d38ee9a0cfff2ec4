package dlgdb

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imsdlg/imsdlg/internal/redistest"
)

func rec(e, id uint32, callID string) *Record {
	t0 := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	return &Record{
		Version: CurrentVersion, HEntry: e, HID: id, CallID: callID, FromTag: "ft",
		From: `"A" <sip:alice@example.com>;tag=ft`, To: "<sip:bob@example.com>",
		CallerTarget: "sip:alice@10.0.0.1:5060", CallerRoute: []string{"<sip:p1;lr>"}, CallerCSeq: 3, InviteCSeq: 1,
		Callee: Leg{ToTag: "tt", RemoteTarget: "sip:bob@10.0.0.2", LocalCSeq: 3, RemoteCSeq: 7, Transport: "UDP", Source: "10.0.0.2:5060", Created: t0, Updated: t0},
		State:  4, Created: t0, Start: t0, Timeout: (90 * time.Second).Milliseconds(),
		Vars: map[string]string{"k": "v"}, Flags: 5,
		Profiles: []Membership{{Profile: "caller", Value: "alice"}, {Profile: "calls"}},
	}
}

// conformance runs the behaviour both stores must share.
func conformance(t *testing.T, s Store, raw func(node, did, value string)) {
	ctx := context.Background()
	t.Run("write, overwrite, delete, load sorted", func(t *testing.T) {
		a, b, c := rec(2, 1, "c1"), rec(1, 16, "c2"), rec(1, 2, "c3")
		require.NoError(t, s.Apply(ctx, "n1", []Change{{a.DID(), a}, {b.DID(), b}, {c.DID(), c}}))
		c2 := rec(1, 2, "c3")
		c2.CallerCSeq = 9
		require.NoError(t, s.Apply(ctx, "n1", []Change{{c2.DID(), c2}, {a.DID(), nil}}))
		got, err := s.Load(ctx, "n1")
		require.NoError(t, err)
		require.Len(t, got, 2)
		assert.Equal(t, "1.2", got[0].DID())
		assert.Equal(t, uint32(9), got[0].CallerCSeq, "the later write wins")
		assert.Equal(t, "1.10", got[1].DID())
		assert.Equal(t, *b, got[1], "a record comes back as written")
		other, err := s.Load(ctx, "n2")
		require.NoError(t, err)
		assert.Empty(t, other, "nodes do not see each other's dialogs")
		require.NoError(t, s.Apply(ctx, "n1", nil))
	})
	t.Run("replace: the node's records become the given ones (dlg_restore_db)", func(t *testing.T) {
		old, kept := rec(4, 1, "gone"), rec(4, 2, "kept")
		require.NoError(t, s.Apply(ctx, "n4", []Change{{old.DID(), old}, {kept.DID(), kept}}))
		raw("n4", "4.9", "{not json") // an unreadable record goes too
		other := rec(5, 1, "other node")
		require.NoError(t, s.Apply(ctx, "n5", []Change{{other.DID(), other}}))
		kept.CallerCSeq = 11
		added := rec(4, 3, "added")
		require.NoError(t, s.Replace(ctx, "n4", []Record{*kept, *added}))
		got, err := s.Load(ctx, "n4")
		require.NoError(t, err, "the unreadable record is gone")
		require.Len(t, got, 2)
		assert.Equal(t, *kept, got[0])
		assert.Equal(t, *added, got[1])
		theirs, err := s.Load(ctx, "n5")
		require.NoError(t, err)
		assert.Len(t, theirs, 1, "another node's records stay")
		require.NoError(t, s.Replace(ctx, "n4", nil))
		got, err = s.Load(ctx, "n4")
		require.NoError(t, err)
		assert.Empty(t, got)
	})
	t.Run("unreadable records are reported and skipped", func(t *testing.T) {
		ok := rec(3, 1, "good")
		require.NoError(t, s.Apply(ctx, "n3", []Change{{ok.DID(), ok}}))
		raw("n3", "3.2", "{not json")
		raw("n3", "3.3", `{"v":99,"h_entry":3,"h_id":3}`)
		raw("n3", "3.4", `{"v":1,"h_entry":3,"h_id":5}`)
		got, err := s.Load(ctx, "n3")
		require.Error(t, err)
		assert.Contains(t, err.Error(), "dialog 3.2")
		assert.Contains(t, err.Error(), "version 99 is newer")
		assert.Contains(t, err.Error(), "record under 3.4 names dialog 3.5")
		require.Len(t, got, 1)
		assert.Equal(t, "good", got[0].CallID)
	})
}

func TestStoreConformance_Memory(t *testing.T) {
	m := NewMemory()
	conformance(t, m, func(node, did, value string) {
		m.mu.Lock()
		defer m.mu.Unlock()
		if m.nodes[node] == nil {
			m.nodes[node] = map[string][]byte{}
		}
		m.nodes[node][did] = []byte(value)
	})
}

func TestStoreConformance_Redis(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	s, err := NewRedis(RedisOptions{URL: srv.URL()})
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	c := srv.Client(t)
	conformance(t, s, func(node, did, value string) {
		require.NoError(t, c.HSet(context.Background(), Key(node), did, value).Err())
	})
	keys, err := c.Keys(context.Background(), KeyPrefix+"*").Result()
	require.NoError(t, err)
	// n4 was replaced with nothing: no key is left for it.
	assert.ElementsMatch(t, []string{"imsdlg_dlg_n1", "imsdlg_dlg_n3", "imsdlg_dlg_n5"}, keys)
}

func TestRedisDownNamesTheKey(t *testing.T) {
	srv := redistest.Start(t, redistest.Options{})
	s, err := NewRedis(RedisOptions{URL: srv.URL(), Timeout: 200 * time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	srv.Kill()
	err = s.Apply(context.Background(), "n1", []Change{{"1.1", rec(1, 1, "c")}})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "key imsdlg_dlg_n1")
	_, err = s.Load(context.Background(), "n1")
	require.Error(t, err)
	assert.True(t, strings.Contains(err.Error(), "imsdlg_dlg_n1"), err.Error())
	err = s.Replace(context.Background(), "n1", []Record{*rec(1, 1, "c")})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "key imsdlg_dlg_n1")
	_, err = NewRedis(RedisOptions{URL: "http://x"})
	assert.Error(t, err)
}

package tm

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// tkey is a table entry for the tests.
type tkey struct{ k string }

func (t *tkey) txKey() string { return t.k }

// RFC 3261 §17.2.3 / §17.1.3: a transaction is found by its whole key.
// The table keys its maps by a 64-bit hash of it; two keys of one hash
// must still be two transactions (a forced collision: every key hashes
// the same).
func TestRFC3261_17_TxTableKeysCollide(t *testing.T) {
	tb := newTxTable[*tkey]()
	tb.mask = 0 // every key hashes to 0
	a, b, c := &tkey{"z9hG4bKa;INVITE"}, &tkey{"z9hG4bKb;INVITE"}, &tkey{"z9hG4bKc;INVITE"}
	for _, e := range []*tkey{a, b} {
		got, added := tb.add(e.k, e)
		require.True(t, added, e.k)
		require.Same(t, e, got)
	}
	for _, e := range []*tkey{a, b} {
		got, ok := tb.get([]byte(e.k))
		require.True(t, ok, e.k)
		assert.Same(t, e, got, e.k)
	}
	got, added := tb.add(b.k, &tkey{b.k})
	assert.False(t, added, "a spilled key is taken")
	assert.Same(t, b, got)
	_, ok := tb.get([]byte(c.k))
	assert.False(t, ok, "a key of the same hash that is not there")

	tb.remove(a.k, func(v *tkey) bool { return false })
	_, ok = tb.get([]byte(a.k))
	assert.True(t, ok, "remove leaves what same refuses")
	tb.remove(a.k, func(v *tkey) bool { return v == a })
	_, ok = tb.get([]byte(a.k))
	assert.False(t, ok)
	got, ok = tb.get([]byte(b.k))
	require.True(t, ok, "the spilled key outlives the one that held its hash")
	assert.Same(t, b, got)
	_, added = tb.add(c.k, c)
	assert.True(t, added)
	assert.Equal(t, 2, tb.len())
	tb.remove(b.k, func(v *tkey) bool { return v == b })
	tb.remove(c.k, func(v *tkey) bool { return v == c })
	assert.Equal(t, 0, tb.len())
}

// The table against a plain map, with whole hashes and with four values
// (so that collisions are common), over random adds, gets and removes.
func TestTxTableAgainstAMap(t *testing.T) {
	for _, mask := range []uint64{^uint64(0), 3} {
		t.Run(fmt.Sprintf("mask=%x", mask), func(t *testing.T) {
			tb := newTxTable[*tkey]()
			tb.mask = mask
			model := map[string]*tkey{}
			r := rand.New(rand.NewPCG(1, 2))
			for i := range 20000 {
				k := fmt.Sprintf("z9hG4bK%d;%s", r.IntN(500), []string{"INVITE", "BYE", "ACK"}[r.IntN(3)])
				switch r.IntN(3) {
				case 0:
					e := &tkey{k}
					got, added := tb.add(k, e)
					old, had := model[k]
					require.Equal(t, !had, added, "add %q (step %d)", k, i)
					if had {
						require.Same(t, old, got)
					} else {
						model[k] = e
					}
				case 1:
					got, ok := tb.get([]byte(k))
					old, had := model[k]
					require.Equal(t, had, ok, "get %q (step %d)", k, i)
					if had {
						require.Same(t, old, got)
					}
				case 2:
					old := model[k]
					tb.remove(k, func(v *tkey) bool { return v == old })
					delete(model, k)
				}
				require.Equal(t, len(model), tb.len(), "step %d", i)
			}
		})
	}
}

package tm

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestLingerIndexAgainstAMap drives the linger index and a Go map with the
// same random inserts, replacements, removals and trims, and checks that
// every hash looks up alike after each step and that the probe runs hold
// (every entry reachable from its home without crossing an empty slot).
// Hash spaces from 8 values (the same hashes again and again) to 2^64,
// and phases of growth and decline, so the array grows, wraps and shrinks.
func TestLingerIndexAgainstAMap(t *testing.T) {
	for _, space := range []uint64{8, 100, 1000, 0} {
		t.Run(fmt.Sprintf("space %d", space), func(t *testing.T) {
			rng := rand.New(rand.NewPCG(7, space))
			hash := func() uint64 {
				if space == 0 {
					return rng.Uint64()
				}
				return rng.Uint64N(space)
			}
			var x lingerIndex
			model := map[uint64]uint64{}
			var known []uint64
			for i := range 40000 {
				grow := (i/5000)%2 == 0
				switch op := rng.IntN(10); {
				case op < 5 && grow, op < 2:
					h := hash()
					seq := uint64(i)
					x.set(h, seq)
					if _, ok := model[h]; !ok {
						known = append(known, h)
					}
					model[h] = seq
				case op < 9:
					if len(known) == 0 {
						continue
					}
					h := known[rng.IntN(len(known))]
					x.del(h)
					delete(model, h)
				default:
					x.trim()
				}
				require.Equal(t, len(model), x.len(), "op %d", i)
				if i%97 == 0 || space == 8 {
					for _, h := range known {
						seq, ok := x.get(h)
						want, wok := model[h]
						require.Equal(t, wok, ok, "op %d: hash %#x", i, h)
						require.Equal(t, want, seq, "op %d: hash %#x", i, h)
					}
					checkProbeRuns(t, &x)
				}
				if len(known) > 4*len(model)+64 {
					live := known[:0]
					for _, h := range known {
						if _, ok := model[h]; ok {
							live = append(live, h)
						}
					}
					known = live
				}
			}
			for h := range model {
				x.del(h)
			}
			require.Zero(t, x.len())
			x.trim()
			require.LessOrEqual(t, len(x.slots), lingerIdxMin)
			_, ok := x.get(hash())
			require.False(t, ok)
		})
	}
}

// checkProbeRuns: no slot between an entry's home and the entry is empty,
// and the array is at most half full.
func checkProbeRuns(t *testing.T, x *lingerIndex) {
	t.Helper()
	if len(x.slots) == 0 {
		return
	}
	require.LessOrEqual(t, x.n*2, len(x.slots))
	mask := uint64(len(x.slots) - 1)
	for j, s := range x.slots {
		if s.seq == 0 {
			continue
		}
		for i := x.home(s.h); i != uint64(j); i = (i + 1) & mask {
			require.NotZero(t, x.slots[i].seq, "slot %d empty between home %d and entry %d", i, x.home(s.h), j)
		}
	}
}

// The index's lookups, inserts and removals take no allocation once its
// array has its size.
func TestIssue14_LingerIndexAllocatesOnlyToGrow(t *testing.T) {
	var x lingerIndex
	for i := range 1000 {
		x.set(uint64(i)*0x9e3779b97f4a7c15, uint64(i))
	}
	for i := range 1000 {
		x.del(uint64(i) * 0x9e3779b97f4a7c15)
	}
	n := uint64(0)
	allocs := testing.AllocsPerRun(1000, func() {
		h := n * 0xbf58476d1ce4e5b9
		x.set(h, n)
		if _, ok := x.get(h); !ok {
			t.Fatal("lost")
		}
		x.del(h)
		n++
	})
	require.Zero(t, allocs)
}

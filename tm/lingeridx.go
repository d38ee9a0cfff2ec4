package tm

// lingerIndex maps the hash of a lingering record's key to the record's
// sequence number in its shard's ring: open addressing with linear
// probing over a power-of-two array of pointer-free slots, a removal
// shifting the probe run back instead of leaving a tombstone. It replaced
// a Go map[uint64]uint64, whose hashing of an already hashed key and
// group probing were 4 % of the proxy's CPU on a forked call (a lookup per
// new request and response, an insert and a delete per record; issue 14).
// Not safe for concurrent use: its shard's lock guards it.
type lingerIndex struct {
	slots []lingerSlot
	shift uint8 // 64 - log2(len(slots))
	n     int
}

// lingerSlot is one entry; seq 0 marks it empty (sequence numbers are
// stored plus one).
type lingerSlot struct {
	h   uint64
	seq uint64
}

// lingerIdxMin is the smallest array an index keeps (1 KB).
const lingerIdxMin = 64

// home is where h's probe starts: the hash's bits mixed by a Fibonacci
// multiply, so that hashes a test narrows to a few values, or that share
// their low bits (the shard is h%16), still spread.
func (x *lingerIndex) home(h uint64) uint64 { return (h * 0x9e3779b97f4a7c15) >> x.shift }

func (x *lingerIndex) len() int { return x.n }

// get returns the sequence number stored for h.
func (x *lingerIndex) get(h uint64) (uint64, bool) {
	if x.n == 0 {
		return 0, false
	}
	mask := uint64(len(x.slots) - 1)
	for i := x.home(h); ; i = (i + 1) & mask {
		s := &x.slots[i]
		if s.seq == 0 {
			return 0, false
		}
		if s.h == h {
			return s.seq - 1, true
		}
	}
}

// set stores seq for h, replacing what h had.
func (x *lingerIndex) set(h, seq uint64) {
	if (x.n+1)*2 > len(x.slots) {
		x.resize(max(lingerIdxMin, 2*len(x.slots)))
	}
	mask := uint64(len(x.slots) - 1)
	for i := x.home(h); ; i = (i + 1) & mask {
		s := &x.slots[i]
		if s.seq == 0 {
			s.h, s.seq = h, seq+1
			x.n++
			return
		}
		if s.h == h {
			s.seq = seq + 1
			return
		}
	}
}

// del removes h's entry, if any.
func (x *lingerIndex) del(h uint64) {
	if x.n == 0 {
		return
	}
	mask := uint64(len(x.slots) - 1)
	i := x.home(h)
	for ; ; i = (i + 1) & mask {
		s := &x.slots[i]
		if s.seq == 0 {
			return
		}
		if s.h == h {
			break
		}
	}
	// Every entry after the hole, up to the next empty slot, whose probe
	// starts at or before the hole moves into it (Knuth's Algorithm R):
	// a lookup never stops at the hole short of its entry.
	for j := (i + 1) & mask; x.slots[j].seq != 0; j = (j + 1) & mask {
		k := x.home(x.slots[j].h)
		if (j-k)&mask >= (j-i)&mask {
			x.slots[i] = x.slots[j]
			i = j
		}
	}
	x.slots[i] = lingerSlot{}
	x.n--
}

// resize rebuilds the index in an array of size slots (a power of two,
// more than twice the entries).
func (x *lingerIndex) resize(size int) {
	old := x.slots
	x.slots = make([]lingerSlot, size)
	x.shift = uint8(64 - log2(size))
	mask := uint64(size - 1)
	for _, s := range old {
		if s.seq == 0 {
			continue
		}
		i := x.home(s.h)
		for x.slots[i].seq != 0 {
			i = (i + 1) & mask
		}
		x.slots[i] = s
	}
}

// trim gives back the room a peak left mostly empty: an index at under an
// eighth of its array shrinks to four times its entries.
func (x *lingerIndex) trim() {
	if len(x.slots) <= lingerIdxMin || x.n*8 >= len(x.slots) {
		return
	}
	size := lingerIdxMin
	for size < 4*x.n {
		size *= 2
	}
	x.resize(size)
}

// log2 of a power of two.
func log2(n int) int {
	b := 0
	for n > 1 {
		n >>= 1
		b++
	}
	return b
}

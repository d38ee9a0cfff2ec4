package transport

import "sync"

// bufPool hands out buffers of one size. Pointers to slices, so that Put
// does not allocate.
type bufPool struct {
	size int
	p    sync.Pool
}

func newBufPool(size int) *bufPool {
	bp := &bufPool{size: size}
	bp.p.New = func() any {
		b := make([]byte, size)
		return &b
	}
	return bp
}

func (p *bufPool) get() *[]byte { return p.p.Get().(*[]byte) }

func (p *bufPool) put(b *[]byte) {
	if b != nil && len(*b) == p.size {
		p.p.Put(b)
	}
}

// Copies of outgoing messages (a UDP datagram waiting for its socket's
// writer, TCP bytes waiting for a slow peer) come from size classes.
var sendPools = [...]*bufPool{newBufPool(2 << 10), newBufPool(8 << 10), newBufPool(64 << 10)}

// getSendBuf returns a buffer holding a copy of data; put it back with
// putSendBuf.
func getSendBuf(data []byte) *[]byte {
	for _, p := range sendPools {
		if len(data) <= p.size {
			b := p.get()
			n := copy(*b, data)
			*b = (*b)[:n]
			return b
		}
	}
	b := append([]byte(nil), data...)
	return &b
}

func putSendBuf(b *[]byte) {
	c := cap(*b)
	for _, p := range sendPools {
		if c == p.size {
			*b = (*b)[:c]
			p.p.Put(b)
			return
		}
	}
}

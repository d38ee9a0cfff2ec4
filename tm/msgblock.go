package tm

import (
	"reflect"
	"sync"
	"sync/atomic"
	"unsafe"

	"github.com/emiago/sipgo/sip"

	"github.com/imsdlg/imsdlg/internal/poolcheck"
)

// Received messages live in pooled blocks (issue 14: a block per message
// was a third of the bytes the proxy allocated per call). The ownership
// rule, which hooks and observers must keep too: a received response, its
// headers and their parameter lists are valid while the call that handed
// them over runs (ReplyHook, Observer, StrayObserver,
// RetransmissionObserver, FailureHook, the dialog callbacks above them);
// a request with a transaction, and a branch's request, until the
// transaction is done, or for a router that deferred until it decides.
// Whoever keeps something longer copies it; strings may be kept as they
// are, they never point into a block, unless Config.ReuseMessageText puts
// the message's header text in a pooled buffer of its block (msgHdrs.text,
// given back with it; poisoned in tests as the block is): then a string
// kept is copied too (strings.Clone, sipstr.Detach).
//
// Every holder counts a reference. For responses: a branch's final reply
// in the response context (until the transaction compacts), an outcome or
// a failure hook's best reply in flight, and every reply of a local
// request (the caller of Send may keep it: its block is never reused).
// For requests: the transaction (until it compacts; an outcome in flight
// holds one more for the observers that read t.Original()), the router
// (from before the transaction is published until Decide), a branch being
// built (hold), and WithOriginal's callers. A shallow clone (the template,
// a branch's request) counts its own holders (the transaction, t.br[i],
// the branch's client transaction, a CANCEL in flight) and holds one
// reference on the block whose headers it shares; a CANCEL or ACK tm
// builds (derived) likewise holds the branch request it shares. The reader
// holds the first reference until its handler returns; the last one gives
// the block back. The reader's reference on a CANCEL is never given back
// (a CANCEL held for its INVITE is read from a timer, uncounted), so its
// block and its clones go to the collector.
//
// A block is recognised from its message: the message's destination,
// which tm does not otherwise use, is a one-byte string pointing at the
// block's own tag. A copy of the message (a value copied, or cloned)
// carries the string but sits elsewhere, so it is never taken for the
// block.

// blockRef is a block's reference count and tag.
type blockRef struct {
	refs atomic.Int32
	tag  [1]byte
}

// tag marks md (the head of the block r is in) as living in the block;
// after initMessageData, which sets the message data afresh.
func (r *blockRef) tagOf(md *sip.MessageData) {
	r.refs.Store(1)
	md.SetDestination(unsafe.String(&r.tag[0], 1))
}

// tagged tells whether md, at head, carries the tag at head+off: the
// block's. Only addresses are compared: nothing past the message is
// read before the tag proved it is the head of a block.
func tagged(md *sip.MessageData, head unsafe.Pointer, off uintptr) bool {
	d := md.Destination()
	return len(d) == 1 && uintptr(unsafe.Pointer(unsafe.StringData(d))) == uintptr(head)+off
}

// drop gives back one reference; true when it was the last.
func (r *blockRef) drop() bool {
	n := r.refs.Add(-1)
	if n < 0 {
		// Released more often than retained: a bug in tm. Tests see it;
		// in production the block is left to the collector.
		if poolcheck.Poison() {
			panic("tm: message block released twice")
		}
		return false
	}
	return n == 0
}

// recycle tells whether a block (blk, a pointer; md its message's data)
// whose last reference went may be reused. A block released in a test
// binary is poisoned instead (internal/poolcheck).
func (r *blockRef) recycle(blk any, md *sip.MessageData) bool {
	if !poolcheck.Poison() {
		return true
	}
	poisonBlock(reflect.ValueOf(blk).Elem())
	// Still tagged, with a count a further release takes below zero.
	md.SetDestination(unsafe.String(&r.tag[0], 1))
	r.refs.Store(0)
	return false
}

var (
	resBlocks = sync.Pool{New: func() any { return new(resBlock) }}
	reqBlocks = sync.Pool{New: func() any { return new(reqBlock) }}
	// cloneBlocks are shallow clones of received requests whose blocks
	// are reused (pooledClone).
	cloneBlocks = sync.Pool{New: func() any { return new(cloneBlock) }}
	// derivedBlocks are the CANCELs and hop-by-hop ACKs tm builds: two
	// per forked call.
	derivedBlocks = sync.Pool{New: func() any { return new(derived) }}

	resTagOffset     = unsafe.Offsetof(resBlock{}.ref) + unsafe.Offsetof(blockRef{}.tag)
	reqTagOffset     = unsafe.Offsetof(reqBlock{}.ref) + unsafe.Offsetof(blockRef{}.tag)
	cloneTagOffset   = unsafe.Offsetof(cloneBlock{}.ref) + unsafe.Offsetof(blockRef{}.tag)
	derivedTagOffset = unsafe.Offsetof(derived{}.ref) + unsafe.Offsetof(blockRef{}.tag)
)

// resBlockOf is the block res lives in, nil for a response made any
// other way.
func resBlockOf(res *sip.Response) *resBlock {
	if res == nil || !tagged(&res.MessageData, unsafe.Pointer(res), resTagOffset) {
		return nil
	}
	return (*resBlock)(unsafe.Pointer(res))
}

// reqKinds tells which of tm's blocks req heads, reading its tag once: a
// received request's (b), a shallow clone's (c) or a CANCEL's or ACK's tm
// built (d); all nil for a request made any other way. Only addresses are
// compared, as in tagged.
func reqKinds(req *sip.Request) (b *reqBlock, c *cloneBlock, d *derived) {
	if req == nil {
		return nil, nil, nil
	}
	tag := req.Destination()
	if len(tag) != 1 {
		return nil, nil, nil
	}
	head := unsafe.Pointer(req)
	switch uintptr(unsafe.Pointer(unsafe.StringData(tag))) - uintptr(head) {
	case reqTagOffset:
		b = (*reqBlock)(head)
	case cloneTagOffset:
		c = (*cloneBlock)(head)
	case derivedTagOffset:
		d = (*derived)(head)
	}
	return b, c, d
}

// routeReq is the Request a router is handed for req: the room of req's
// block (a received ACK's, a transaction's template), which lives and goes
// back with req, as Router's doc says; a new one for a request without.
func routeReq(req *sip.Request) *Request {
	switch b, c, _ := reqKinds(req); {
	case b != nil:
		return &b.route
	case c != nil:
		return &c.route
	}
	return new(Request)
}

// reqBlockOf is resBlockOf for a received request.
func reqBlockOf(req *sip.Request) *reqBlock {
	b, _, _ := reqKinds(req)
	return b
}

// reqHead is the block of the received request req is, or is a shallow
// clone of (the clone shares its headers). nil for a request made any
// other way.
func reqHead(req *sip.Request) *reqBlock {
	b, c, _ := reqKinds(req)
	if c != nil {
		return c.base
	}
	return b
}

// retainRes takes a reference on res's block, if it has one.
func retainRes(res *sip.Response) {
	if b := resBlockOf(res); b != nil {
		b.ref.refs.Add(1)
	}
}

// releaseRes gives back a reference taken on res's block (or the
// reader's).
func releaseRes(res *sip.Response) {
	if b := resBlockOf(res); b != nil && b.ref.drop() {
		b.hdrs.releaseText()
		if b.ref.recycle(b, &b.res.MessageData) {
			*b = resBlock{}
			resBlocks.Put(b)
		}
	}
}

// retainReq takes a reference on the block req is: a received request's,
// a shallow clone's or a CANCEL's or ACK's tm built (each of the latter
// holds one on the request whose headers it shares for as long as it is
// held itself).
func retainReq(req *sip.Request) {
	switch b, c, d := reqKinds(req); {
	case b != nil:
		b.ref.refs.Add(1)
	case c != nil:
		c.ref.refs.Add(1)
	case d != nil:
		d.ref.refs.Add(1)
	}
}

// releaseReq gives back a reference taken on the block req is (or the
// reader's, or a clone's first).
func releaseReq(req *sip.Request) {
	// Which kind req is, is read before its reference goes: after, another
	// holder's release may poison or reuse it.
	b, c, d := reqKinds(req)
	switch {
	case b != nil:
		releaseReqBlock(b)
	case c != nil && c.ref.drop():
		base := c.base
		// A clone of a CANCEL is read uncounted, as the CANCEL is: left
		// to the collector, never poisoned. pooledClone(base) is what it
		// was when c was made: c holds base.
		if pooledClone(base) && c.ref.recycle(c, &c.req.MessageData) {
			*c = cloneBlock{}
			cloneBlocks.Put(c)
		}
		releaseReqBlock(base)
	case d != nil && d.ref.drop():
		from := d.from
		if d.ref.recycle(d, &d.req.MessageData) {
			*d = derived{}
			derivedBlocks.Put(d)
		}
		releaseReq(from)
	}
}

func releaseReqBlock(b *reqBlock) {
	if b != nil && b.ref.drop() {
		b.hdrs.releaseText()
		if b.ref.recycle(b, &b.req.MessageData) {
			*b = reqBlock{}
			reqBlocks.Put(b)
		}
	}
}

// textBufs hold the header text of received messages when the parser
// reuses it (Config.ReuseMessageText): 2 KB of strings per call otherwise.
var textBufs = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

// maxPooledText bounds the buffers kept: a rare huge message's is not held.
const maxPooledText = 8 << 10

// releaseText gives the block's text back with its last reference: every
// string of the message goes with it. In a test binary the text is
// overwritten instead and never reused (internal/poolcheck), so a string
// kept past the message reads poisonedText's bytes.
func (h *msgHdrs) releaseText() {
	t := h.text
	h.text = nil
	if t != nil && poolcheck.Poison() {
		b := (*t)[:cap(*t)]
		for i := range b {
			b[i] = poisonedText[i%len(poisonedText)]
		}
		return
	}
	putText(t)
}

// poisonedText is what a string of a released message's text reads.
const poisonedText = "#released-text"

func putText(t *[]byte) {
	if t != nil && cap(*t) <= maxPooledText {
		*t = (*t)[:0]
		textBufs.Put(t)
	}
}

// pooledClone tells whether a shallow clone of a request in block base
// goes back to cloneBlocks once its last holder let it go: when base
// does (every method but CANCEL).
func pooledClone(base *reqBlock) bool {
	return base != nil && base.req.Method != sip.CANCEL
}

// poisoned is what every string of a poisoned block reads.
const poisoned = "\x00released-block"

// poisonBlock overwrites the strings and numbers inside v (a block, in
// place; pointers, slices and interfaces are left alone, so a kept header
// or parameter list still reads, but reads garbage).
func poisonBlock(v reflect.Value) {
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			f := v.Field(i)
			if !f.CanSet() {
				f = reflect.NewAt(f.Type(), unsafe.Pointer(f.UnsafeAddr())).Elem()
			}
			poisonBlock(f)
		}
	case reflect.Array:
		for i := range v.Len() {
			poisonBlock(v.Index(i))
		}
	case reflect.String:
		v.SetString(poisoned)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		v.SetInt(-7)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		v.SetUint(7)
	}
}

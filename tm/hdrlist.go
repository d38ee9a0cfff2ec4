package tm

import (
	"reflect"
	"unsafe"

	"github.com/emiago/sipgo/sip"
)

// sipgo keeps a message's header list unexported and allocates it apart
// from the message (sip.NewRequest and sip.NewResponse make room for ten),
// and PrependHeader copies the whole list: three to four heap objects of
// every message the proxy parses or clones, a tenth of its allocations per
// call (issue 14). tm's message blocks carry the list's array inline and
// point the list at it. The list is the first field of sip.MessageData's
// first (embedded) field; headerListAt checks that once against sipgo's
// types, and where a sipgo release moved it every message falls back to
// sipgo's own constructors (TestHeaderListInline fails then, to say so).
var headerListAt = func() bool {
	md := reflect.TypeFor[sip.MessageData]()
	if md.NumField() == 0 {
		return false
	}
	hs := md.Field(0)
	if !hs.Anonymous || hs.Offset != 0 || hs.Type.Kind() != reflect.Struct || hs.Type.NumField() == 0 {
		return false
	}
	order := hs.Type.Field(0)
	return order.Name == "headerOrder" && order.Offset == 0 && order.Type == reflect.TypeFor[[]sip.Header]()
}()

// headerList is the header list of md, or nil where sipgo's layout is not
// the one this was written for.
func headerList(md *sip.MessageData) *[]sip.Header {
	if !headerListAt {
		return nil
	}
	return (*[]sip.Header)(unsafe.Pointer(md))
}

// initMessageData sets md up as sip.NewRequest/NewResponse do, with room
// for its headers in room (an array of the block md lives in) rather than
// an allocation of its own; headers past the room's go to the heap as
// append makes them.
func initMessageData(md *sip.MessageData, room []sip.Header) {
	l := headerList(md)
	if l == nil {
		*md = newMessageData()
		return
	}
	md.SipVersion = "SIP/2.0"
	*l = room[:0:len(room)]
}

// prependInRoom puts hs on top of md's headers without copying the list:
// when the list still lives in room and starts at least len(hs) slots
// into it (shallowCloneTo leaves cloneFront slots free there). It sets
// sipgo's references to the top Via and top Record-Route as PrependHeader
// does (through ReplaceHeader, which finds the first of a name: the one
// just put on top; PrependHeader leaves the reference on the last of two
// Record-Routes, this on the top one); false when there is no room, for
// PrependHeader then.
func prependInRoom(md *sip.MessageData, room []sip.Header, hs []sip.Header) bool {
	l := headerList(md)
	if l == nil || len(*l) == 0 || len(hs) == 0 {
		return false
	}
	start := len(room) - cap(*l)
	if start < len(hs) || start >= len(room) || &room[start] != &(*l)[0] {
		return false
	}
	n := copy(room[start-len(hs):start], hs)
	*l = room[start-n : start+len(*l) : len(room)]
next:
	for i, h := range hs {
		for _, g := range hs[:i] {
			if g.Name() == h.Name() {
				continue next // a second Record-Route: the first is the top one
			}
		}
		md.ReplaceHeader(h)
	}
	return true
}

// prependHeader puts h on top of a message's headers: in the list's own
// spare room where it has some (a parsed message's block leaves room past
// its headers), else by PrependHeader's copy. Only for a message no one
// else holds a view of the list of: the headers below move in place.
func prependHeader(md *sip.MessageData, h sip.Header) {
	l := headerList(md)
	if l == nil || len(*l) == cap(*l) {
		md.PrependHeader(h)
		return
	}
	s := (*l)[:len(*l)+1]
	copy(s[1:], s)
	s[0] = h
	*l = s
	md.ReplaceHeader(h) // sipgo's reference to the top one of its name
}

package txn

import (
	"fmt"
	"testing"
)

var fuzzCodes = [...]int{100, 180, 183, 200, 202, 299, 300, 302, 404, 486, 487, 500, 503, 603, 699, 0, 99, 700}

// FuzzTx feeds random event sequences to each kind of transaction, on
// both transports, and checks what must hold whatever the peer and the TU
// do: actions in the documented order, none after Terminated, exactly one
// Terminated once the state says so, timers armed only in states that own
// them and into a free slot, stops only of pending timers, no timer left
// pending at the end, at most one first final passed up, and nothing the
// kind never does.
func FuzzTx(f *testing.F) {
	f.Add([]byte{0, 0, 0, 1, 1, 3, 5, 0, 5, 0})
	f.Add([]byte{0, 1, 0, 1, 1, 9, 1, 9, 5, 0})
	f.Add([]byte{1, 0, 0, 5, 0, 5, 0, 1, 0, 5, 1})
	f.Add([]byte{2, 0, 4, 1, 4, 9, 5, 0, 2, 0, 3, 0, 5, 0})
	f.Add([]byte{2, 1, 4, 3, 2, 0, 3, 0, 4, 3, 5, 0})
	f.Add([]byte{3, 0, 2, 0, 4, 0, 2, 0, 4, 3, 5, 0})
	f.Add([]byte{0, 0, 0, 0, 1, 1, 8, 0, 5, 1, 1, 10})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 2 {
			return
		}
		k := Kind(data[0]%4 + 1)
		o := &owner{tb: t, tx: New(k, data[1]&1 == 1, Timers{}), pending: map[TimerID]Action{}}
		data = data[2:]
		var nonSuccessFinals, successFinals int
		for len(data) >= 2 {
			op, arg := data[0], data[1]
			data = data[2:]
			var ev Event
			switch op % 9 {
			case 0:
				ev = sendReq
			case 1:
				ev = resp(fuzzCodes[int(arg)%len(fuzzCodes)])
			case 2:
				ev = recvReq
			case 3:
				ev = recvACK
			case 4:
				ev = respond(fuzzCodes[int(arg)%len(fuzzCodes)])
			case 5: // a pending timer fires
				var ids []TimerID
				for id := range o.pending {
					ids = append(ids, id)
				}
				if len(ids) == 0 {
					continue
				}
				// map order is random: pick deterministically
				id := ids[0]
				for _, x := range ids {
					if (x < id) == (arg&1 == 0) {
						id = x
					}
				}
				ev = Event{Kind: EvTimer, Timer: id, Gen: o.pending[id].Gen}
				delete(o.pending, id)
			case 6: // a stale or foreign firing
				ev = Event{Kind: EvTimer, Timer: TimerID(arg % 14), Gen: uint32(arg >> 4)}
				if p, ok := o.pending[ev.Timer]; ok && p.Gen == ev.Gen {
					delete(o.pending, ev.Timer) // it happens to be live
				}
			case 7:
				ev = tpErr
			case 8:
				ev = cancelSent
			}
			before := o.tx.State()
			acts := o.tx.Step(ev, nil)
			if msg := o.check(acts); msg != "" {
				t.Fatalf("%v %v in %v: %s\nactions: %s", k, ev.Kind, before, msg, sig(acts))
			}
			for _, a := range acts {
				if msg := kindMay(k, a); msg != "" {
					t.Fatalf("%v %v in %v: %s", k, ev.Kind, before, msg)
				}
				if a.Kind == ActSendResponse && a.Code >= 200 {
					if a.Code < 300 {
						successFinals++
					} else {
						nonSuccessFinals++
					}
				}
			}
		}
		if o.passFinal > 1 {
			t.Fatalf("%d first finals passed up", o.passFinal)
		}
		switch k {
		case ServerNonInvite:
			if successFinals+nonSuccessFinals > 1 {
				t.Fatalf("%d finals sent by a non-INVITE server", successFinals+nonSuccessFinals)
			}
		case ServerInvite:
			if nonSuccessFinals > 1 || (nonSuccessFinals == 1 && successFinals > 0) {
				t.Fatalf("server INVITE sent %d non-2xx and %d 2xx finals", nonSuccessFinals, successFinals)
			}
		}
		if o.tx.State() == Terminated && len(o.pending) != 0 {
			t.Fatalf("terminated with %v pending", o.pending)
		}
	})
}

// kindMay reports an action the kind never produces, "" if fine.
func kindMay(k Kind, a Action) string {
	bad := false
	switch a.Kind {
	case ActSendRequest, ActResendRequest, ActPassProvisional, ActPassFinal:
		bad = !k.Client()
	case ActSendACK, ActResendACK, ActPass2xxRetransmission:
		bad = k != ClientInvite
	case ActSendResponse, ActResendResponse:
		bad = k.Client()
	case ActPassACK:
		bad = k != ServerInvite
	case ActTimeout:
		want := map[Kind]TimerID{ClientInvite: TimerB, ClientNonInvite: TimerF, ServerInvite: TimerH}[k]
		bad = a.Timer != want
	}
	if bad {
		return fmt.Sprintf("%v produced %v %v", k, a.Kind, a.Timer)
	}
	return ""
}

package txn_test

import (
	"fmt"
	"sync"
	"time"

	"github.com/imsdlg/imsdlg/tm/txn"
	"github.com/imsdlg/imsdlg/tm/wheel"
)

// serverTx is what an owner's table entry may look like: the Tx, its two
// wheel entries, the last response's bytes, and a buffer for the actions.
type serverTx struct {
	mu     sync.Mutex
	tx     txn.Tx
	w      *wheel.Wheel
	timers [2]wheel.Entry // [0] retransmission (A, E, G), [1] lifetime
	fire   func(uint64)   // built once, so arming allocates nothing
	buf    [txn.MaxActions]txn.Action
	last   int // stands for the last response's bytes
	epoch  time.Time
}

func newServerTx(w *wheel.Wheel, epoch time.Time) *serverTx {
	s := &serverTx{tx: txn.New(txn.ServerInvite, false, txn.Timers{}), w: w, epoch: epoch}
	// Timer and generation travel in the wheel entry's arg: a firing that
	// lost its race with Stop carries its own, stale, generation.
	s.fire = func(arg uint64) {
		s.step(txn.Event{Kind: txn.EvTimer, Timer: txn.TimerID(arg >> 32), Gen: uint32(arg)})
	}
	return s
}

func slot(id txn.TimerID) int {
	if id.Retransmission() {
		return 0
	}
	return 1
}

func (s *serverTx) step(ev txn.Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	at := s.w.Now().Sub(s.epoch)
	for _, a := range s.tx.Step(ev, s.buf[:0]) {
		switch a.Kind {
		case txn.ActArmTimer:
			s.w.ScheduleArg(&s.timers[slot(a.Timer)], a.After, s.fire, uint64(a.Timer)<<32|uint64(a.Gen))
		case txn.ActStopTimer:
			s.timers[slot(a.Timer)].Stop()
		case txn.ActSendResponse:
			s.last = a.Code
			fmt.Println(at, "send", a.Code)
		case txn.ActResendResponse:
			fmt.Println(at, "resend", s.last)
		case txn.ActTimeout:
			fmt.Println(at, "no ACK:", a.Timer)
		case txn.ActTerminated:
			fmt.Println(at, "terminated")
		}
	}
}

// A server INVITE transaction over UDP driven by a timer wheel: the 486
// is retransmitted on Timer G until the ACK comes, then Timer I absorbs
// ACK retransmissions for T4.
func Example() {
	epoch := time.Unix(1_700_000_000, 0)
	w := wheel.NewAt(epoch, 10*time.Millisecond, 1024)
	s := newServerTx(w, epoch)

	s.step(txn.Event{Kind: txn.EvSendResponse, Code: 100})
	s.step(txn.Event{Kind: txn.EvSendResponse, Code: 486})
	w.Advance(epoch.Add(2 * time.Second)) // G fires at 0.5s and 1.5s
	s.step(txn.Event{Kind: txn.EvRecvRequest})
	s.step(txn.Event{Kind: txn.EvRecvACK})
	s.step(txn.Event{Kind: txn.EvRecvACK}) // absorbed in Confirmed
	w.Advance(epoch.Add(10 * time.Second))
	fmt.Println("pending timers:", w.Len())
	// Output:
	// 0s send 100
	// 0s send 486
	// 500ms resend 486
	// 1.5s resend 486
	// 2s resend 486
	// 7s terminated
	// pending timers: 0
}

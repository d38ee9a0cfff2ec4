package txn

import (
	"testing"
	"time"
	"unsafe"
)

func TestTxSize(t *testing.T) {
	size := unsafe.Sizeof(Tx{})
	t.Logf("sizeof(Tx) = %d bytes; sizeof(Action) = %d; sizeof(Event) = %d", size, unsafe.Sizeof(Action{}), unsafe.Sizeof(Event{}))
	// 56: the server and client transactions of tm embed it and stay in
	// their allocation size classes (384 and 448 bytes).
	if size > 56 {
		t.Fatalf("Tx grew to %d bytes: a proxy holds tens of thousands", size)
	}
}

// RFC 3261 Table 4 and the reliable-transport rules of §17.
func TestRFC3261_17_TimerValues(t *testing.T) {
	var def Timers
	custom := Timers{T1: 100 * time.Millisecond, T2: 2 * time.Second, T4: 3 * time.Second, TimerB: 7 * time.Second, TimerF: 9 * time.Second, TimerD: 11 * time.Second}
	cases := []struct {
		tm       Timers
		id       TimerID
		reliable bool
		want     time.Duration
	}{
		{def, TimerA, false, t1},
		{def, TimerA, true, 0},
		{def, TimerB, false, 64 * t1},
		{def, TimerB, true, 64 * t1},
		{def, TimerD, false, 32 * time.Second},
		{def, TimerD, true, 0},
		{def, TimerE, false, t1},
		{def, TimerE, true, 0},
		{def, TimerF, true, 64 * t1},
		{def, TimerG, false, t1},
		{def, TimerG, true, 0},
		{def, TimerH, true, 64 * t1},
		{def, TimerI, false, t4},
		{def, TimerI, true, 0},
		{def, TimerJ, false, 64 * t1},
		{def, TimerJ, true, 0},
		{def, TimerK, false, t4},
		{def, TimerK, true, 0},
		{def, TimerL, true, 64 * t1},
		{def, TimerM, true, 64 * t1},
		{custom, TimerB, false, 7 * time.Second},
		{custom, TimerF, false, 9 * time.Second},
		{custom, TimerD, false, 11 * time.Second},
		{custom, TimerD, true, 0},
		{custom, TimerH, false, 6400 * time.Millisecond},
		{custom, TimerK, false, 3 * time.Second},
		// wt_timer (Linger) bounds the lingering states: J (unreliable
		// only), L and M (every transport); H, I, K are not lingering.
		{Timers{Linger: 5 * time.Second}, TimerJ, false, 5 * time.Second},
		{Timers{Linger: 5 * time.Second}, TimerJ, true, 0},
		{Timers{Linger: 5 * time.Second}, TimerL, true, 5 * time.Second},
		{Timers{Linger: 5 * time.Second}, TimerM, false, 5 * time.Second},
		{Timers{Linger: 5 * time.Second}, TimerH, false, 64 * t1},
		{Timers{Linger: 5 * time.Second}, TimerK, false, t4},
		// D never drops under 32s by default: the server's T1 is unknown.
		{Timers{T1: 100 * time.Millisecond}, TimerD, false, 32 * time.Second},
		{Timers{T1: time.Second}, TimerD, false, 64 * time.Second},
	}
	for _, c := range cases {
		if got := c.tm.Duration(c.id, c.reliable); got != c.want {
			t.Errorf("%v %s with %+v: %v, want %v", c.id, reliableName(c.reliable), c.tm, got, c.want)
		}
	}
}

func TestRFC3261_17_1_1_2_TimerAAndB(t *testing.T) {
	o := newOwner(t, ClientInvite, false)
	want(t, o.step(sendReq), "send-request arm-timer(A=500ms) arm-timer(B=32s)")
	if o.tx.State() != Calling {
		t.Fatalf("state %v", o.tx.State())
	}
	// A doubles after each transmission: 1s, 2s, 4s, 8s, 16s, 32s. No cap
	// at T2: that is for non-INVITE requests and for responses.
	for _, next := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 16 * time.Second, 32 * time.Second} {
		acts := o.fire(TimerA)
		want(t, acts, "resend-request arm-timer(A="+next.String()+")")
	}
	// B: tell the TU, no ACK (§17.1.1.2), terminate.
	want(t, o.fire(TimerB), "stop-timer(A) timeout(B) terminated")
	if o.tx.State() != Terminated {
		t.Fatalf("state %v", o.tx.State())
	}
	// 7 transmissions before B, as the RFC counts.
	if n := len(find(o.log, ActSendRequest)) + len(find(o.log, ActResendRequest)); n != 7 {
		t.Fatalf("%d transmissions", n)
	}
}

func TestRFC3261_17_1_1_2_TimerBOverrideAndReliable(t *testing.T) {
	// fr_timeout as Timer B; over TCP no Timer A at all.
	o := newOwnerTimers(t, ClientInvite, true, Timers{TimerB: 5 * time.Second})
	want(t, o.step(sendReq), "send-request arm-timer(B=5s)")
	want(t, o.fire(TimerB), "timeout(B) terminated")

	// A longer Timer B lets A keep doubling past 64*T1.
	o = newOwnerTimers(t, ClientInvite, false, Timers{TimerB: 5 * time.Minute})
	o.step(sendReq)
	var d time.Duration
	for range 8 {
		o.fire(TimerA)
		d, _ = o.armed(TimerA)
	}
	if d != 256*t1 {
		t.Fatalf("A after 8 retransmissions: %v", d)
	}
}

func TestRFC3261_17_1_1_2_Provisional(t *testing.T) {
	for _, reliable := range []bool{false, true} {
		t.Run(reliableName(reliable), func(t *testing.T) {
			o := newOwner(t, ClientInvite, reliable)
			o.step(sendReq)
			stale := o.pending
			staleA, staleB := stale[TimerA], stale[TimerB]
			acts := o.step(resp(100))
			if reliable {
				want(t, acts, "stop-timer(B) pass-provisional(100)")
			} else {
				want(t, acts, "stop-timer(A) stop-timer(B) pass-provisional(100)")
			}
			if o.tx.State() != Proceeding {
				t.Fatalf("state %v", o.tx.State())
			}
			want(t, o.step(resp(180)), "pass-provisional(180)")
			want(t, o.step(resp(183)), "pass-provisional(183)")
			// Stopped timers that fire anyway are ignored: no retransmission
			// in Proceeding, and no Timer B (the TU's Timer C decides).
			want(t, o.step(Event{Kind: EvTimer, Timer: TimerA, Gen: staleA.Gen}), "")
			want(t, o.step(Event{Kind: EvTimer, Timer: TimerB, Gen: staleB.Gen}), "")
		})
	}
}

func TestRFC3261_17_1_1_2_NonSuccessFinalAndTimerD(t *testing.T) {
	cases := []struct {
		name     string
		reliable bool
		ringing  bool
		timers   Timers
		first    string
	}{
		{"calling unreliable", false, false, Timers{},
			"stop-timer(A) stop-timer(B) send-ack(486) arm-timer(D=32s) pass-final(486)"},
		{"proceeding unreliable", false, true, Timers{},
			"send-ack(486) arm-timer(D=32s) pass-final(486)"},
		{"wt_timer as Timer D", false, true, Timers{TimerD: 5 * time.Second},
			"send-ack(486) arm-timer(D=5s) pass-final(486)"},
		// §17.1.1.2: the ACK is sent even over a reliable transport, and
		// Timer D is zero: the transaction ends at once.
		{"calling reliable", true, false, Timers{},
			"stop-timer(B) send-ack(486) pass-final(486) terminated"},
		{"proceeding reliable", true, true, Timers{},
			"send-ack(486) pass-final(486) terminated"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := newOwnerTimers(t, ClientInvite, c.reliable, c.timers)
			o.step(sendReq)
			if c.ringing {
				o.step(resp(180))
			}
			want(t, o.step(resp(486)), c.first)
			if c.reliable {
				return
			}
			if o.tx.State() != Completed {
				t.Fatalf("state %v", o.tx.State())
			}
			// A retransmitted final: resend the ACK, tell the TU nothing.
			want(t, o.step(resp(486)), "resend-ack")
			want(t, o.step(resp(486)), "resend-ack")
			want(t, o.step(resp(180)), "")
			want(t, o.step(resp(200)), "")
			want(t, o.fire(TimerD), "terminated")
		})
	}
}

func TestRFC6026_7_2_ClientAcceptedAndTimerM(t *testing.T) {
	for _, reliable := range []bool{false, true} {
		for _, ringing := range []bool{false, true} {
			name := reliableName(reliable)
			if ringing {
				name += " after 180"
			}
			t.Run(name, func(t *testing.T) {
				o := newOwner(t, ClientInvite, reliable)
				o.step(sendReq)
				if ringing {
					o.step(resp(180))
				}
				acts := o.step(resp(200))
				switch {
				case ringing:
					want(t, acts, "arm-timer(M=32s) pass-final(200)")
				case reliable:
					want(t, acts, "stop-timer(B) arm-timer(M=32s) pass-final(200)")
				default:
					want(t, acts, "stop-timer(A) stop-timer(B) arm-timer(M=32s) pass-final(200)")
				}
				if o.tx.State() != Accepted {
					t.Fatalf("state %v", o.tx.State())
				}
				// Every further 2xx goes up so a proxy forwards it: a
				// retransmission, or another fork's answer.
				want(t, o.step(resp(200)), "pass-2xx-retransmission(200)")
				want(t, o.step(resp(202)), "pass-2xx-retransmission(202)")
				want(t, o.step(resp(180)), "")
				want(t, o.step(resp(486)), "")
				want(t, o.step(cancelSent), "")
				want(t, o.fire(TimerM), "terminated")
				if o.passFinal != 1 {
					t.Fatalf("%d first finals", o.passFinal)
				}
			})
		}
	}
}

func TestRFC3261_9_1_CancelSentArmsTimerB(t *testing.T) {
	o := newOwnerTimers(t, ClientInvite, false, Timers{TimerB: 4 * time.Second})
	o.step(sendReq)
	want(t, o.step(cancelSent), "") // Calling: B already runs
	o.step(resp(180))
	want(t, o.step(cancelSent), "arm-timer(B=4s)")
	want(t, o.step(cancelSent), "") // once
	want(t, o.step(resp(183)), "pass-provisional(183)")
	want(t, o.fire(TimerB), "timeout(B) terminated")

	// The 487 that answers the CANCEL ends it normally.
	o = newOwner(t, ClientInvite, false)
	o.step(sendReq)
	o.step(resp(180))
	o.step(cancelSent)
	want(t, o.step(resp(487)), "stop-timer(B) send-ack(487) arm-timer(D=32s) pass-final(487)")

	// Other kinds ignore it.
	for _, k := range []Kind{ClientNonInvite, ServerInvite, ServerNonInvite} {
		o := newOwner(t, k, false)
		if k.Client() {
			o.step(sendReq)
		}
		want(t, o.step(cancelSent), "")
	}
}

func TestRFC3261_17_1_2_2_TimerEAndF(t *testing.T) {
	o := newOwner(t, ClientNonInvite, false)
	want(t, o.step(sendReq), "send-request arm-timer(E=500ms) arm-timer(F=32s)")
	if o.tx.State() != Trying {
		t.Fatalf("state %v", o.tx.State())
	}
	// 500ms, 1s, 2s, 4s, 4s, 4s: doubling capped at T2.
	for _, next := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 4 * time.Second, 4 * time.Second, 4 * time.Second} {
		want(t, o.fire(TimerE), "resend-request arm-timer(E="+next.String()+")")
	}
	want(t, o.fire(TimerF), "stop-timer(E) timeout(F) terminated")

	o = newOwnerTimers(t, ClientNonInvite, true, Timers{TimerF: 3 * time.Second})
	want(t, o.step(sendReq), "send-request arm-timer(F=3s)")
	want(t, o.step(resp(100)), "pass-provisional(100)")
	want(t, o.fire(TimerF), "timeout(F) terminated")
}

func TestRFC3261_17_1_2_2_TimerEInProceedingIsT2(t *testing.T) {
	o := newOwner(t, ClientNonInvite, false)
	o.step(sendReq)
	// The 1xx does not touch E: it fires on its Trying schedule once more
	// and is then reset to T2.
	want(t, o.step(resp(100)), "pass-provisional(100)")
	if o.tx.State() != Proceeding {
		t.Fatalf("state %v", o.tx.State())
	}
	if d, _ := o.armed(TimerE); d != t1 {
		t.Fatalf("E %v", d)
	}
	want(t, o.fire(TimerE), "resend-request arm-timer(E=4s)")
	want(t, o.fire(TimerE), "resend-request arm-timer(E=4s)")
	want(t, o.step(resp(180)), "pass-provisional(180)")
	want(t, o.fire(TimerF), "stop-timer(E) timeout(F) terminated")
}

func TestRFC3261_17_1_2_2_FinalAndTimerK(t *testing.T) {
	cases := []struct {
		name     string
		reliable bool
		ringing  bool
		code     int
		first    string
	}{
		{"trying unreliable 200", false, false, 200, "stop-timer(E) stop-timer(F) arm-timer(K=5s) pass-final(200)"},
		{"proceeding unreliable 404", false, true, 404, "stop-timer(E) stop-timer(F) arm-timer(K=5s) pass-final(404)"},
		{"trying reliable 200", true, false, 200, "stop-timer(F) pass-final(200) terminated"},
		{"proceeding reliable 503", true, true, 503, "stop-timer(F) pass-final(503) terminated"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := newOwner(t, ClientNonInvite, c.reliable)
			o.step(sendReq)
			if c.ringing {
				o.step(resp(100))
			}
			want(t, o.step(resp(c.code)), c.first)
			if c.reliable {
				return
			}
			// Completed buffers retransmissions: none goes up.
			want(t, o.step(resp(c.code)), "")
			want(t, o.step(resp(100)), "")
			want(t, o.step(resp(500)), "")
			want(t, o.fire(TimerK), "terminated")
		})
	}
}

func TestRFC3261_17_1_ClientIgnoresServerEvents(t *testing.T) {
	for _, k := range []Kind{ClientInvite, ClientNonInvite} {
		o := newOwner(t, k, false)
		for _, ev := range []Event{recvReq, recvACK, respond(200), resp(0), resp(99), resp(700)} {
			want(t, o.step(ev), "")
		}
		if o.tx.State() != Idle {
			t.Fatalf("state %v", o.tx.State())
		}
		// Responses before the request went out are not ours.
		want(t, o.step(resp(200)), "")
		o.step(sendReq)
		want(t, o.step(sendReq), "") // started once
	}
}

func TestRFC3261_17_2_1_Proceeding(t *testing.T) {
	o := newOwner(t, ServerInvite, false)
	if o.tx.State() != Proceeding {
		t.Fatalf("state %v", o.tx.State())
	}
	// Nothing to resend before the TU's first provisional.
	want(t, o.step(recvReq), "")
	want(t, o.step(respond(100)), "send-response(100)")
	want(t, o.step(recvReq), "resend-response")
	want(t, o.step(respond(180)), "send-response(180)")
	want(t, o.step(recvReq), "resend-response")
	want(t, o.step(recvACK), "") // nothing to acknowledge yet
	want(t, o.step(respond(99)), "")
	want(t, o.step(respond(700)), "")
	if o.tx.State() != Proceeding {
		t.Fatalf("state %v", o.tx.State())
	}
}

func TestRFC3261_17_2_1_TimerGAndH(t *testing.T) {
	o := newOwner(t, ServerInvite, false)
	o.step(respond(100))
	want(t, o.step(respond(486)), "send-response(486) arm-timer(G=500ms) arm-timer(H=32s)")
	if o.tx.State() != Completed {
		t.Fatalf("state %v", o.tx.State())
	}
	// G doubles up to T2: 1s, 2s, 4s, 4s.
	for _, next := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 4 * time.Second, 4 * time.Second} {
		want(t, o.fire(TimerG), "resend-response arm-timer(G="+next.String()+")")
	}
	// A retransmitted INVITE gets the final again; the TU's later
	// responses are discarded (a 2xx is for the proxy to forward
	// statelessly, §16.7 step 9).
	want(t, o.step(recvReq), "resend-response")
	want(t, o.step(respond(200)), "")
	want(t, o.step(respond(603)), "")
	want(t, o.step(respond(180)), "")
	// H: the ACK never came.
	want(t, o.fire(TimerH), "stop-timer(G) timeout(H) terminated")

	// Reliable: no G; H still runs (§17.2.1: for all transports).
	o = newOwner(t, ServerInvite, true)
	want(t, o.step(respond(404)), "send-response(404) arm-timer(H=32s)")
	want(t, o.fire(TimerH), "timeout(H) terminated")
}

func TestRFC3261_17_2_1_ACKConfirmsAndTimerI(t *testing.T) {
	o := newOwner(t, ServerInvite, false)
	o.step(respond(486))
	o.fire(TimerG)
	want(t, o.step(recvACK), "stop-timer(G) stop-timer(H) arm-timer(I=5s)")
	if o.tx.State() != Confirmed {
		t.Fatalf("state %v", o.tx.State())
	}
	// Confirmed absorbs ACK and INVITE retransmissions.
	want(t, o.step(recvACK), "")
	want(t, o.step(recvReq), "")
	want(t, o.step(respond(200)), "")
	want(t, o.fire(TimerI), "terminated")

	o = newOwner(t, ServerInvite, true)
	o.step(respond(486))
	want(t, o.step(recvACK), "stop-timer(H) terminated")
}

func TestRFC6026_7_1_ServerAcceptedAndTimerL(t *testing.T) {
	for _, reliable := range []bool{false, true} {
		t.Run(reliableName(reliable), func(t *testing.T) {
			o := newOwner(t, ServerInvite, reliable)
			o.step(respond(180))
			want(t, o.step(respond(200)), "send-response(200) arm-timer(L=32s)")
			if o.tx.State() != Accepted {
				t.Fatalf("state %v", o.tx.State())
			}
			// A retransmitted INVITE is absorbed: the 2xx is the TU's to
			// retransmit, and passing it up would start a new call.
			want(t, o.step(recvReq), "")
			// The TU's 2xx retransmissions, and the 2xx of other
			// branches, go out; nothing else does.
			want(t, o.step(respond(200)), "send-response(200)")
			want(t, o.step(respond(200)), "send-response(200)")
			want(t, o.step(respond(183)), "")
			want(t, o.step(respond(486)), "")
			// The ACK of the 2xx goes up: the proxy relays it. Same for
			// its retransmissions and for an RFC 2543 ACK that reused the
			// INVITE's branch.
			want(t, o.step(recvACK), "pass-ack")
			want(t, o.step(recvACK), "pass-ack")
			want(t, o.fire(TimerL), "terminated")
		})
	}
}

// OpenSIPS tm wt_timer: a completed transaction stays that long, not the
// RFC's 64*T1, in each lingering state (Linger): the Accepted states of RFC
// 6026 (L, M) on every transport, Completed of a non-INVITE server (J) on
// unreliable ones. The other timers keep their RFC values.
func TestSeedTm_WtTimerBoundsLingeringStates(t *testing.T) {
	wt := Timers{Linger: 5 * time.Second}
	for _, reliable := range []bool{false, true} {
		t.Run(reliableName(reliable), func(t *testing.T) {
			o := newOwnerTimers(t, ServerInvite, reliable, wt)
			want(t, o.step(respond(200)), "send-response(200) arm-timer(L=5s)")
			want(t, o.fire(TimerL), "terminated")

			o = newOwnerTimers(t, ClientInvite, reliable, wt)
			o.step(sendReq)
			o.step(resp(180))
			want(t, o.step(resp(200)), "arm-timer(M=5s) pass-final(200)")
			want(t, o.fire(TimerM), "terminated")

			o = newOwnerTimers(t, ServerNonInvite, reliable, wt)
			if reliable {
				want(t, o.step(respond(200)), "send-response(200) terminated")
			} else {
				want(t, o.step(respond(200)), "send-response(200) arm-timer(J=5s)")
				want(t, o.fire(TimerJ), "terminated")
			}

			o = newOwnerTimers(t, ServerInvite, reliable, wt)
			want(t, o.step(respond(486)), map[bool]string{false: "send-response(486) arm-timer(G=500ms) arm-timer(H=32s)",
				true: "send-response(486) arm-timer(H=32s)"}[reliable])
		})
	}
}

func TestRFC3261_17_2_2_NonInviteServer(t *testing.T) {
	cases := []struct {
		name     string
		reliable bool
		ringing  bool
		final    string
	}{
		{"trying unreliable", false, false, "send-response(200) arm-timer(J=32s)"},
		{"proceeding unreliable", false, true, "send-response(200) arm-timer(J=32s)"},
		{"trying reliable", true, false, "send-response(200) terminated"},
		{"proceeding reliable", true, true, "send-response(200) terminated"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := newOwner(t, ServerNonInvite, c.reliable)
			if o.tx.State() != Trying {
				t.Fatalf("state %v", o.tx.State())
			}
			// Trying: retransmissions are discarded; nothing to resend.
			want(t, o.step(recvReq), "")
			want(t, o.step(recvACK), "")
			if c.ringing {
				want(t, o.step(respond(100)), "send-response(100)")
				if o.tx.State() != Proceeding {
					t.Fatalf("state %v", o.tx.State())
				}
				want(t, o.step(recvReq), "resend-response")
				want(t, o.step(respond(183)), "send-response(183)")
			}
			want(t, o.step(respond(200)), c.final)
			if c.reliable {
				return
			}
			want(t, o.step(recvReq), "resend-response")
			want(t, o.step(recvReq), "resend-response")
			// Other finals from the TU are discarded.
			want(t, o.step(respond(500)), "")
			want(t, o.step(respond(180)), "")
			want(t, o.fire(TimerJ), "terminated")
		})
	}
}

// §17.1.4 for clients; RFC 6026 §8.8 (replacing §17.2.4) for servers.
func TestRFC3261_17_1_4_And_RFC6026_8_8_TransportError(t *testing.T) {
	type setup func(o *owner)
	cases := []struct {
		name     string
		kind     Kind
		reliable bool
		to       setup
		state    State
		want     string
	}{
		{"client invite idle", ClientInvite, false, func(o *owner) {}, Idle, "transport-error terminated"},
		{"client invite calling", ClientInvite, false, func(o *owner) { o.step(sendReq) }, Calling,
			"stop-timer(A) stop-timer(B) transport-error terminated"},
		{"client invite calling tcp", ClientInvite, true, func(o *owner) { o.step(sendReq) }, Calling,
			"stop-timer(B) transport-error terminated"},
		{"client invite proceeding", ClientInvite, false, func(o *owner) { o.step(sendReq); o.step(resp(180)) }, Proceeding,
			"transport-error terminated"},
		{"client invite proceeding cancelled", ClientInvite, false, func(o *owner) { o.step(sendReq); o.step(resp(180)); o.step(cancelSent) }, Proceeding,
			"stop-timer(B) transport-error terminated"},
		{"client invite completed (ACK failed)", ClientInvite, false, func(o *owner) { o.step(sendReq); o.step(resp(404)) }, Completed,
			"stop-timer(D) transport-error terminated"},
		{"client invite accepted", ClientInvite, false, func(o *owner) { o.step(sendReq); o.step(resp(200)) }, Accepted, ""},
		{"client non-invite trying", ClientNonInvite, false, func(o *owner) { o.step(sendReq) }, Trying,
			"stop-timer(E) stop-timer(F) transport-error terminated"},
		{"client non-invite proceeding", ClientNonInvite, false, func(o *owner) { o.step(sendReq); o.step(resp(100)) }, Proceeding,
			"stop-timer(E) stop-timer(F) transport-error terminated"},
		{"client non-invite completed", ClientNonInvite, false, func(o *owner) { o.step(sendReq); o.step(resp(200)) }, Completed, ""},
		{"server invite proceeding", ServerInvite, false, func(o *owner) { o.step(respond(180)) }, Proceeding, "transport-error"},
		{"server invite completed", ServerInvite, false, func(o *owner) { o.step(respond(486)) }, Completed, "transport-error"},
		{"server invite confirmed", ServerInvite, false, func(o *owner) { o.step(respond(486)); o.step(recvACK) }, Confirmed, "transport-error"},
		{"server invite accepted", ServerInvite, false, func(o *owner) { o.step(respond(200)) }, Accepted, "transport-error"},
		{"server non-invite trying", ServerNonInvite, false, func(o *owner) {}, Trying, "transport-error"},
		{"server non-invite proceeding", ServerNonInvite, false, func(o *owner) { o.step(respond(100)) }, Proceeding, "transport-error"},
		{"server non-invite completed", ServerNonInvite, false, func(o *owner) { o.step(respond(200)) }, Completed, "transport-error"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := newOwner(t, c.kind, c.reliable)
			c.to(o)
			if o.tx.State() != c.state {
				t.Fatalf("set-up reached %v, want %v", o.tx.State(), c.state)
			}
			rt, lt := o.tx.Pending()
			want(t, o.step(tpErr), c.want)
			if c.kind.Client() {
				return
			}
			// The server stays where it was, timers untouched, and still
			// absorbs or answers retransmissions.
			if o.tx.State() != c.state {
				t.Fatalf("state %v after the error, want %v", o.tx.State(), c.state)
			}
			if rt2, lt2 := o.tx.Pending(); rt2 != rt || lt2 != lt {
				t.Fatalf("timers changed: %v/%v -> %v/%v", rt, lt, rt2, lt2)
			}
		})
	}
	// Server retransmission handling after the error (RFC 6026 §8.8).
	o := newOwner(t, ServerNonInvite, false)
	o.step(respond(200))
	o.step(tpErr)
	want(t, o.step(recvReq), "resend-response")
}

func TestStaleTimerGenerationsIgnored(t *testing.T) {
	// Client INVITE: A fired and re-armed; the first arming fires late.
	o := newOwner(t, ClientInvite, false)
	o.step(sendReq)
	first := o.pending[TimerA]
	o.fire(TimerA)
	want(t, o.step(Event{Kind: EvTimer, Timer: TimerA, Gen: first.Gen}), "")
	// The right generation under the wrong name, and unknown timers.
	b := o.pending[TimerB]
	want(t, o.step(Event{Kind: EvTimer, Timer: TimerF, Gen: b.Gen}), "")
	want(t, o.step(Event{Kind: EvTimer, Timer: 0, Gen: 0}), "")
	want(t, o.step(Event{Kind: EvTimer, Timer: 99, Gen: b.Gen}), "")
	if o.tx.State() != Calling {
		t.Fatalf("state %v", o.tx.State())
	}

	// Server INVITE: G re-armed twice; old G and a stopped H do nothing.
	o = newOwner(t, ServerInvite, false)
	o.step(respond(486))
	g1, h := o.pending[TimerG], o.pending[TimerH]
	o.fire(TimerG)
	g2 := o.pending[TimerG]
	o.fire(TimerG)
	want(t, o.step(Event{Kind: EvTimer, Timer: TimerG, Gen: g1.Gen}), "")
	want(t, o.step(Event{Kind: EvTimer, Timer: TimerG, Gen: g2.Gen}), "")
	o.step(recvACK)
	want(t, o.step(Event{Kind: EvTimer, Timer: TimerH, Gen: h.Gen}), "")
	if o.tx.State() != Confirmed {
		t.Fatalf("state %v", o.tx.State())
	}

	// Client non-INVITE: F stopped by the final fires late.
	o = newOwner(t, ClientNonInvite, false)
	o.step(sendReq)
	f := o.pending[TimerF]
	o.step(resp(200))
	want(t, o.step(Event{Kind: EvTimer, Timer: TimerF, Gen: f.Gen}), "")

	// A fired timer does not fire twice.
	o = newOwner(t, ServerNonInvite, false)
	o.step(respond(200))
	j := o.pending[TimerJ]
	o.fire(TimerJ)
	want(t, o.step(Event{Kind: EvTimer, Timer: TimerJ, Gen: j.Gen}), "")
}

func TestTerminatedIgnoresEverything(t *testing.T) {
	o := newOwner(t, ServerNonInvite, true)
	o.step(respond(200))
	if o.tx.State() != Terminated {
		t.Fatalf("state %v", o.tx.State())
	}
	for _, ev := range []Event{sendReq, recvReq, recvACK, respond(200), resp(200), tpErr, cancelSent, {Kind: EvTimer, Timer: TimerJ, Gen: 1}} {
		want(t, o.step(ev), "")
	}
	// A zero Tx is inert too.
	var z Tx
	if acts := z.Step(sendReq, nil); len(acts) != 0 {
		t.Fatalf("zero Tx: %v", kinds(acts))
	}
}

func TestStepAppendsToOut(t *testing.T) {
	tx := New(ClientInvite, false, Timers{})
	buf := make([]Action, 1, MaxActions+1)
	buf[0] = Action{Kind: ActTerminated, Code: 7}
	out := tx.Step(sendReq, buf)
	if len(out) != 4 || out[0].Code != 7 || &out[0] != &buf[0] {
		t.Fatalf("Step must append to out in place: %v", kinds(out))
	}
}

func TestStepDoesNotAllocate(t *testing.T) {
	buf := make([]Action, 0, MaxActions)
	allocs := testing.AllocsPerRun(100, func() {
		tx := New(ServerInvite, false, Timers{})
		buf = tx.Step(respond(100), buf[:0])
		buf = tx.Step(respond(486), buf[:0])
		buf = tx.Step(Event{Kind: EvTimer, Timer: TimerG, Gen: buf[1].Gen}, buf[:0])
		buf = tx.Step(recvACK, buf[:0])
	})
	if allocs != 0 {
		t.Fatalf("%v allocations", allocs)
	}
}

func TestStrings(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{ClientInvite.String(), "client-invite"},
		{Kind(9).String(), "invalid"},
		{Accepted.String(), "accepted"},
		{State(42).String(), "invalid"},
		{TimerM.String(), "Timer M"},
		{TimerID(42).String(), "Timer ?"},
		{EvCancelSent.String(), "cancel-sent"},
		{ActPass2xxRetransmission.String(), "pass-2xx-retransmission"},
		{ActionKind(99).String(), "invalid"},
		{EventKind(99).String(), "invalid"},
	} {
		if c.got != c.want {
			t.Errorf("%q, want %q", c.got, c.want)
		}
	}
}

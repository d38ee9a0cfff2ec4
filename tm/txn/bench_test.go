package txn

import "testing"

// gen returns the generation of the first arm of id in acts.
func gen(acts []Action, id TimerID) uint32 {
	for _, a := range acts {
		if a.Kind == ActArmTimer && a.Timer == id {
			return a.Gen
		}
	}
	return 0
}

// BenchmarkServerInviteLife is the server side of an answered call over
// UDP: 100, 180, a retransmitted INVITE, 200, the ACK passed up, Timer L.
func BenchmarkServerInviteLife(b *testing.B) {
	out := make([]Action, 0, MaxActions)
	b.ReportAllocs()
	for b.Loop() {
		tx := New(ServerInvite, false, Timers{})
		out = tx.Step(respond(100), out[:0])
		out = tx.Step(respond(180), out[:0])
		out = tx.Step(recvReq, out[:0])
		out = tx.Step(respond(200), out[:0])
		l := gen(out, TimerL)
		out = tx.Step(recvACK, out[:0])
		out = tx.Step(Event{Kind: EvTimer, Timer: TimerL, Gen: l}, out[:0])
		if tx.State() != Terminated {
			b.Fatal(tx.State())
		}
	}
}

// BenchmarkClientInviteLife is a branch of an answered call over UDP: one
// retransmission, 100, 180, 200, a 2xx retransmission, Timer M.
func BenchmarkClientInviteLife(b *testing.B) {
	out := make([]Action, 0, MaxActions)
	b.ReportAllocs()
	for b.Loop() {
		tx := New(ClientInvite, false, Timers{})
		out = tx.Step(sendReq, out[:0])
		out = tx.Step(Event{Kind: EvTimer, Timer: TimerA, Gen: gen(out, TimerA)}, out[:0])
		out = tx.Step(resp(100), out[:0])
		out = tx.Step(resp(180), out[:0])
		out = tx.Step(resp(200), out[:0])
		m := gen(out, TimerM)
		out = tx.Step(resp(200), out[:0])
		out = tx.Step(Event{Kind: EvTimer, Timer: TimerM, Gen: m}, out[:0])
		if tx.State() != Terminated {
			b.Fatal(tx.State())
		}
	}
}

// BenchmarkClientInviteRejected is a branch answered 486 over UDP: the
// ACK, a retransmitted 486, Timer D.
func BenchmarkClientInviteRejected(b *testing.B) {
	out := make([]Action, 0, MaxActions)
	b.ReportAllocs()
	for b.Loop() {
		tx := New(ClientInvite, false, Timers{})
		out = tx.Step(sendReq, out[:0])
		out = tx.Step(resp(180), out[:0])
		out = tx.Step(resp(486), out[:0])
		d := gen(out, TimerD)
		out = tx.Step(resp(486), out[:0])
		out = tx.Step(Event{Kind: EvTimer, Timer: TimerD, Gen: d}, out[:0])
		if tx.State() != Terminated {
			b.Fatal(tx.State())
		}
	}
}

// BenchmarkNonInviteLife is a proxied non-INVITE over UDP, both sides:
// the client sends, gets a 200 and waits Timer K; the server answers and
// absorbs a retransmission until Timer J.
func BenchmarkNonInviteLife(b *testing.B) {
	out := make([]Action, 0, MaxActions)
	b.ReportAllocs()
	for b.Loop() {
		srv := New(ServerNonInvite, false, Timers{})
		cli := New(ClientNonInvite, false, Timers{})
		out = cli.Step(sendReq, out[:0])
		out = cli.Step(resp(200), out[:0])
		k := gen(out, TimerK)
		out = srv.Step(respond(200), out[:0])
		j := gen(out, TimerJ)
		out = srv.Step(recvReq, out[:0])
		out = cli.Step(Event{Kind: EvTimer, Timer: TimerK, Gen: k}, out[:0])
		out = srv.Step(Event{Kind: EvTimer, Timer: TimerJ, Gen: j}, out[:0])
		if srv.State() != Terminated || cli.State() != Terminated {
			b.Fatal(srv.State(), cli.State())
		}
	}
}

// BenchmarkStepAbsorb is the commonest step under retransmission storms:
// a retransmitted request answered from Completed.
func BenchmarkStepAbsorb(b *testing.B) {
	out := make([]Action, 0, MaxActions)
	tx := New(ServerNonInvite, false, Timers{})
	tx.Step(respond(200), nil)
	b.ReportAllocs()
	for b.Loop() {
		out = tx.Step(recvReq, out[:0])
	}
}

func BenchmarkAppendServerKey(b *testing.B) {
	r := invite()
	buf := make([]byte, 0, 128)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendServerKey(buf[:0], &r)
	}
}

func BenchmarkAppendServerKeyRFC2543(b *testing.B) {
	r := invite()
	r.Branch = ""
	buf := make([]byte, 0, 256)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendServerKey(buf[:0], &r)
	}
}

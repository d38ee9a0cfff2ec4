package dlgout

import (
	"testing"

	"github.com/emiago/sipgo/sip"
)

// FuzzOnResponse feeds arbitrary responses, parsed by sipgo, to a Set that
// already holds an early leg: no panic, and the Set stays consistent.
func FuzzOnResponse(f *testing.F) {
	for _, s := range []string{
		"SIP/2.0 180 Ringing\r\nTo: <sip:b@x>;tag=b1\r\nCSeq: 1 INVITE\r\nContact: <sip:b@10.0.0.2>\r\nRecord-Route: <sip:c1;lr>, <sip:" + ourHost + ";lr>\r\n\r\n",
		"SIP/2.0 200 OK\r\nTo: <sip:b@x>;tag=a\r\nCSeq: 1 INVITE\r\nContact: *\r\n\r\n",
		"SIP/2.0 486 Busy\r\nTo: <sip:b@x>;tag=z\r\nCSeq: 1 INVITE\r\n\r\n",
		"SIP/2.0 200 OK\r\nTo: <sip:b@x>\r\nCSeq: 1 INVITE\r\n\r\n",
		"SIP/2.0 200 OK\r\nTo: <sip:b@x>;TAG=a\r\nCSeq: 2 PRACK\r\n\r\n",
		"SIP/2.0 183 OK\r\nt: <sip:b@x>;tag=a\r\nCSeq: 4294967295 INVITE\r\nm: <sip:b@[::1]>\r\n\r\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		m, err := sip.ParseMessage([]byte(text))
		if err != nil {
			return
		}
		res, ok := m.(*sip.Response)
		if !ok {
			return
		}
		var s Set
		if _, _, err := s.OnResponse(t0, 0, rsp(t, 180, "a"), ours); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			leg, created, err := s.OnResponse(t0, 0, res, ours)
			if created && (leg == nil || err != nil || s.Get(leg.ToTag) != leg) {
				t.Fatalf("created %v %v", leg, err)
			}
			if _, err := s.Answer("a"); err != nil && err != ErrNotAnswered && err != ErrLateAnswer && err != ErrUnknownLeg {
				t.Fatal(err)
			}
			s.Prune()
			for _, l := range s.Legs() {
				if l.State != Confirmed {
					t.Fatalf("leg %q in state %s after Prune", l.ToTag, l.State)
				}
			}
		}
	})
}

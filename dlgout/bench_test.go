package dlgout

import (
	"testing"
)

// BenchmarkOnResponse measures the per-reply path of a forked call: a
// retransmitted 18x on an existing leg (the common case, no allocation), the
// 200 that confirms it, and the creation of a leg.
func BenchmarkOnResponse(b *testing.B) {
	rr := []string{
		"Record-Route: <sip:icscf.ims.example.net;lr>",
		"Record-Route: <sip:" + ourHost + ";lr;did=a1b2>",
		"Record-Route: <sip:pcscf.ims.example.net;lr>",
	}
	r180 := rsp(b, 180, "b1", append([]string{"Contact: <sip:bob@10.0.0.2:5062>"}, rr...)...)
	r200 := rsp(b, 200, "b1", append([]string{"Contact: <sip:bob@10.0.0.2:5062>"}, rr...)...)

	b.Run("18x on existing leg", func(b *testing.B) {
		var s Set
		if _, _, err := s.OnResponse(t0, 0, r180, ours); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := s.OnResponse(t0, 0, r180, ours); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("2xx on existing leg", func(b *testing.B) {
		var s Set
		if _, _, err := s.OnResponse(t0, 0, r180, ours); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := s.OnResponse(t0, 0, r200, ours); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("create leg", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			var s Set
			if _, _, err := s.OnResponse(t0, 0, r180, ours); err != nil {
				b.Fatal(err)
			}
		}
	})
}

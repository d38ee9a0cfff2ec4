package spiral

import (
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"
)

// FuzzClassify feeds arbitrary messages through sipgo's parser into
// Classify: it must not panic, and its answer must be consistent.
func FuzzClassify(f *testing.F) {
	msg := func(lines ...string) string {
		return "INVITE sip:bob@ims.example.net SIP/2.0\r\n" + strings.Join(lines, "\r\n") +
			"\r\nFrom: <sip:alice@ims.example.net>;tag=ftag\r\nTo: <sip:bob@ims.example.net>\r\n" +
			"Call-ID: cid\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
	}
	for _, s := range []string{
		msg(asVia, ourVia, ueVia),
		msg(ueVia),
		msg(asVia, ueVia2, ourRte("1f.2a")),
		msg(asVia, ueVia2, ourRR("b.2"), pcscfRR),
		msg(asVia, ueVia2, ourRR("d.3")),
		msg(asVia, ourVia, "Via: SIP/2.0/UDP 10.9.9.9;branch=z9hG4bKdead"),
		msg("Via: SIP/2.0/UDP 10.9.9.9;branch=z9hG4bKdead"),
		msg("Via: SIP/2.0/UDP [2001:db8::1];branch=z9hG4bK-x, SIP/2.0/TLS "+us+";branch=", ueVia),
		msg("Route: <sip:" + us + ";lr;did=>, <sips:[2001:db8::1];DID=1f.2a>"),
		"INVITE sip:" + us + ";lr;did=1f.2a SIP/2.0\r\nVia: SIP/2.0/UDP a\r\n\r\n",
		"INVITE sip:x SIP/2.0\r\n\r\n",
	} {
		f.Add(s)
	}
	dead := Known{DID: "d.3", ViaBranch: "z9hG4bKdead", Terminated: true}
	known := []Known{live, {DID: "b.2", ViaBranch: "z9hG4bKue2"}, dead, {}}
	f.Fuzz(func(t *testing.T, text string) {
		m, err := sip.ParseMessage([]byte(text))
		if err != nil {
			return
		}
		r, ok := m.(*sip.Request)
		if !ok {
			return
		}
		for _, mk := range []Marker{mk, marker("xyz", isOurs), {}} {
			v, i := Classify(r, known, mk)
			switch v {
			case New:
				if i != -1 {
					t.Fatalf("New with index %d", i)
				}
			case Spiral:
				if i < 0 || i >= len(known) || known[i].Terminated {
					t.Fatalf("Spiral of %d", i)
				}
			case Retransmission:
				if i < 0 || i >= len(known) {
					t.Fatalf("Retransmission of %d", i)
				}
			default:
				t.Fatalf("verdict %v", v)
			}
		}
	})
}

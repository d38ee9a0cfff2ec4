package tm

import (
	"testing"

	"github.com/emiago/sipgo/sip"
)

const benchInvite = "INVITE sip:bob@127.0.0.1:5060 SIP/2.0\r\n" +
	"Via: SIP/2.0/UDP 127.0.0.1:5081;branch=z9hG4bK-16507-3227-0\r\n" +
	"From: \"sipp\" <sip:alice@127.0.0.1:5081>;tag=16507SIPpTag003227\r\n" +
	"To: <sip:bob@127.0.0.1:5060>\r\nCall-ID: 3227-16507@127.0.0.1\r\nCSeq: 1 INVITE\r\n" +
	"Contact: <sip:alice@127.0.0.1:5081;transport=UDP>\r\nMax-Forwards: 70\r\n" +
	"Subject: bench\r\nContent-Type: application/sdp\r\nContent-Length: 128\r\n\r\n" +
	"v=0\r\no=uac 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" +
	"m=audio 49170 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n\r\n"

// BenchmarkReadFilterParse is the extra parse the UDP read filter does
// so that unparsable datagrams get a 400 instead of silence.
func BenchmarkReadFilterParse(b *testing.B) {
	p := sip.NewParser()
	data := []byte(benchInvite)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.ParseSIP(data); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkValidateAndLoopHash is the §16.3 work per request.
func BenchmarkValidateAndLoopHash(b *testing.B) {
	m, err := sip.ParseMessage([]byte(benchInvite))
	if err != nil {
		b.Fatal(err)
	}
	req := m.(*sip.Request)
	b.ReportAllocs()
	for b.Loop() {
		if rej := ValidateRequest(req, nil); rej != nil {
			b.Fatal(rej)
		}
		_ = computeLoopHash(req)
	}
}

// BenchmarkRespCtxForkedCall runs the response context of a call forked
// to two branches: both ring, one answers, the other is cancelled.
func BenchmarkRespCtxForkedCall(b *testing.B) {
	cfg := DefaultConfig()
	ts := targets(2)
	r180, r200, r487 := resp(180), resp(200), resp(487)
	b.ReportAllocs()
	for b.Loop() {
		c := newRespCtx(true, cfg, false)
		c.Step(t0, event{kind: evStart, targets: ts}, nil)
		c.Step(t0, event{kind: evReply, branch: 0, res: r180}, nil)
		c.Step(t0, event{kind: evReply, branch: 1, res: r180}, nil)
		c.Step(t0, event{kind: evReply, branch: 0, res: r200}, nil)
		c.Step(t0, event{kind: evReply, branch: 1, res: r487}, nil)
		if !c.done {
			b.Fatal("not done")
		}
	}
}

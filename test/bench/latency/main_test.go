package main

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
)

func TestSipKey(t *testing.T) {
	for _, tc := range []struct {
		name, msg, kind, key string
	}{
		{"request", "INVITE sip:bob@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP x\r\nCall-ID: abc@h\r\nCSeq: 1 INVITE\r\nTo: <sip:bob@h>\r\n\r\nv=0\r\n",
			"INVITE", "INVITE|abc@h|1|"},
		{"response with tag, compact headers", "SIP/2.0 180 Ringing\r\ni: abc@h\r\nCSeq:  1  INVITE\r\nt: \"B\" <sip:bob@h;x=1>;foo;tag=77\r\n\r\n",
			"180/INVITE", "180/INVITE|abc@h|1|77"},
		{"ACK, tag first", "ACK sip:uas@h SIP/2.0\r\ncall-id: c2\r\ncseq: 2 ACK\r\nto: <sip:bob@h>;tag=t9;x=y\r\n\r\n",
			"ACK", "ACK|c2|2|t9"},
		{"LF only", "BYE sip:x SIP/2.0\nCall-ID: c3\nCSeq: 3 BYE\nTo: sip:bob@h;tag=q\n\n",
			"BYE", "BYE|c3|3|q"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			kind, key, ok := sipKey([]byte(tc.msg))
			if !ok || kind != tc.kind || key != tc.key {
				t.Fatalf("sipKey = %q, %q, %v; want %q, %q", kind, key, ok, tc.kind, tc.key)
			}
		})
	}
	if _, _, ok := sipKey([]byte("SIP/2.0 200 OK\r\nCSeq: 1 INVITE\r\n\r\n")); ok {
		t.Fatal("a message without Call-ID must not be keyed")
	}
}

// datagram builds an IPv4/UDP datagram.
func datagram(src, dst uint16, payload string) []byte {
	b := make([]byte, 28+len(payload))
	b[0] = 0x45
	binary.BigEndian.PutUint16(b[2:4], uint16(len(b)))
	b[9] = 17
	binary.BigEndian.PutUint16(b[20:22], src)
	binary.BigEndian.PutUint16(b[22:24], dst)
	copy(b[28:], payload)
	return b
}

func TestPairer(t *testing.T) {
	const proxy, uac, uas, ring = 5060, 5081, 5071, 5072
	invite := "INVITE sip:bob@h SIP/2.0\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nTo: <sip:bob@h>\r\n\r\n"
	ringing := func(tag string) string {
		return "SIP/2.0 180 Ringing\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nTo: <sip:bob@h>;tag=" + tag + "\r\n\r\n"
	}
	trying := "SIP/2.0 100 Trying\r\nCall-ID: c\r\nCSeq: 1 INVITE\r\nTo: <sip:bob@h>\r\n\r\n"
	p := newPairer(proxy)
	p.packet(1000, datagram(uac, proxy, invite))        // in
	p.packet(1100, datagram(proxy, uac, trying))        // out, the proxy's own: unpaired
	p.packet(1300, datagram(proxy, uas, invite))        // branch 1: 300 ns
	p.packet(1500, datagram(proxy, ring, invite))       // branch 2: 500 ns
	p.packet(2000, datagram(ring, proxy, ringing("r"))) // in
	p.packet(2000, datagram(uas, proxy, ringing("a")))  // in
	p.packet(2040, datagram(proxy, uac, ringing("a")))  // 40 ns
	p.packet(2070, datagram(proxy, uac, ringing("r")))  // 70 ns
	p.packet(3000, datagram(uac, uas, invite))          // not the proxy's
	if got := p.samples["INVITE"]; len(got) != 2 || got[0] != 300 || got[1] != 500 {
		t.Fatalf("INVITE samples %v", got)
	}
	if got := p.samples["180/INVITE"]; len(got) != 2 || got[0] != 40 || got[1] != 70 {
		t.Fatalf("180 samples %v", got)
	}
	if p.unpaired != 1 || p.packets != 8 || p.ins != 3 || p.outs != 5 {
		t.Fatalf("counts: unpaired %d packets %d in %d out %d", p.unpaired, p.packets, p.ins, p.outs)
	}
	var out bytes.Buffer
	p.report(&out, captureStats{})
	if !strings.Contains(out.String(), "all                    4") {
		t.Fatalf("report:\n%s", out.String())
	}
}

func TestQuantile(t *testing.T) {
	s := make([]int64, 100)
	for i := range s {
		s[i] = int64(i + 1)
	}
	if q := quantile(s, 0.5); q != 50 {
		t.Fatalf("p50 = %d", q)
	}
	if q := quantile(s, 0.99); q != 99 {
		t.Fatalf("p99 = %d", q)
	}
	if q := quantile(s[:1], 0.99); q != 1 {
		t.Fatalf("p99 of one = %d", q)
	}
}

func TestReadPcap(t *testing.T) {
	var f bytes.Buffer
	le := binary.LittleEndian
	hdr := make([]byte, 24)
	le.PutUint32(hdr[0:], 0xa1b23c4d) // ns resolution
	le.PutUint16(hdr[4:], 2)
	le.PutUint16(hdr[6:], 4)
	le.PutUint32(hdr[16:], 65535)
	le.PutUint32(hdr[20:], 1) // Ethernet
	f.Write(hdr)
	frame := append(make([]byte, 14), datagram(1, 2, "x")...)
	binary.BigEndian.PutUint16(frame[12:], 0x0800)
	rec := make([]byte, 16)
	le.PutUint32(rec[0:], 7)
	le.PutUint32(rec[4:], 5)
	le.PutUint32(rec[8:], uint32(len(frame)))
	le.PutUint32(rec[12:], uint32(len(frame)))
	f.Write(rec)
	f.Write(frame)
	var got []int64
	if err := readPcap(&f, func(ts int64, ip []byte) {
		got = append(got, ts)
		if _, dst, payload, ok := udp(ip); !ok || dst != 2 || string(payload) != "x" {
			t.Errorf("datagram %v", ip)
		}
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != 7e9+5 {
		t.Fatalf("time stamps %v", got)
	}
}

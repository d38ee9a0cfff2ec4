package tm

import (
	"bytes"
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"
)

// ftSeeds are torture-style messages in the spirit of RFC 4475: every check
// of ValidateRequest, every failure sipgo's parser reports, and the shapes
// RawReply must cope with.
func ftSeeds(tb testing.TB) []string {
	head := func(s string) string { return s[:strings.Index(s, "\r\n\r\n")+4] }
	return []string{
		vtInvite,
		vtEdit(tb, "Via:", "v:", "To:", "t:", "From:", "f:", "Call-ID:", "i:", "Content-Length:", "l:"),
		vtEdit(tb, "Via: SIP/2.0/UDP pc33.atlanta.example.com;branch=z9hG4bK776asdhds\r\n", ""),
		vtEdit(tb, "From: Alice <sip:alice@atlanta.example.com>;tag=1928301774\r\n", ""),
		vtEdit(tb, ";tag=1928301774", ""),
		vtEdit(tb, "To: Bob <sip:bob@biloxi.example.com>\r\n", ""),
		vtEdit(tb, "Call-ID: a84b4c76e66710@pc33.atlanta.example.com\r\n", ""),
		vtEdit(tb, "CSeq: 314159 INVITE\r\n", ""),
		vtEdit(tb, "Max-Forwards: 70\r\n", ""),
		vtEdit(tb, "Max-Forwards: 70", "Max-Forwards: 0"),
		vtEdit(tb, "Max-Forwards: 70", "Max-Forwards: -1"),
		vtEdit(tb, "Max-Forwards: 70", "Max-Forwards: 99999999999"),
		vtEdit(tb, "Max-Forwards: 70", "Max-Forwards: 70\r\nMax-Forwards: 0"),
		vtEdit(tb, "314159 INVITE", "314159 BYE"),
		vtEdit(tb, "314159 INVITE", "4294967296 INVITE"),
		vtEdit(tb, "INVITE sip:", "ACK sip:", "314159 INVITE", "314159 ACK"),
		vtEdit(tb, "INVITE sip:", "CANCEL sip:", "314159 INVITE", "314159 CANCEL"),
		vtEdit(tb, "INVITE sip:bob@biloxi.example.com", "INVITE tel:+15551234567"),
		vtEdit(tb, "INVITE sip:bob@biloxi.example.com", "INVITE http://example.com/"),
		vtEdit(tb, "INVITE sip:bob@biloxi.example.com", "INVITE sip:[::1"),
		vtEdit(tb, "SIP/2.0\r\nVia", "SIP/7.0\r\nVia"),
		vtEdit(tb, "Contact:", "Proxy-Require: foo, sec-agree,,bar\r\nProxy-Require: foo\r\nContact:"),
		vtEdit(tb, "Contact:", "Route: <sip:p1.example.net;lr>, <sip:p2.example.net;lr>\r\nProxy-Authorization: Digest a=b\r\nContact:"),
		vtEdit(tb, "Via:", "Via: SIP/2.0/UDP proxy.example.net;branch=z9hG4bK-0123456789abcdef-1.2\r\nVia:"),
		vtEdit(tb, "Contact:", "X-Huge: "+strings.Repeat("x", 8000)+"\r\nContact:"),
		vtEdit(tb, "Contact:", "X-Big: "+strings.Repeat("a", 66000)+"\r\nContact:"),
		vtEdit(tb, "Content-Length: 4", "Content-Length: 40"),
		vtEdit(tb, "Content-Length: 4", "Content-Length: 2"),
		vtEdit(tb, "Content-Length: 4", "Content-Length: -4"),
		vtEdit(tb, "Call-ID: a84b", "Call-ID: a\x00b"),
		vtEdit(tb, "From: Alice", "From: \"Al\\\"ice\x00\""),
		vtEdit(tb, "Via: SIP/2.0/UDP pc33.atlanta.example.com;", "Via: SIP / 2.0 / UDP\r\n  pc33.atlanta.example.com ; rport ;"),
		vtEdit(tb, "Via: SIP/2.0/UDP pc33.atlanta.example.com", "Via: SIP/2.0/UDP [2001:db8::1]:5070"),
		vtEdit(tb, "Via: SIP/2.0/UDP pc33.atlanta.example.com", "Via: SIP/2.0/UDP [2001:db8::1"),
		vtEdit(tb, "Max-Forwards: 70", "Max-Forwards:\r\n 7 0"),
		vtEdit(tb, "Contact:", "Garbage\r\nContact:"),
		vtEdit(tb, "Via:", "\vVia\f:", "CSeq:", "CSeq\u00a0:"),
		vtEdit(tb, "SIP/2.0\r\nVia:", "SIP/2.0\r\n  Via:"),
		strings.ReplaceAll(vtInvite, "\r\n", "\n"),
		strings.ReplaceAll(vtInvite, "\r\n", "\r"),
		"\r\n\r\n" + vtInvite,
		head(vtInvite),
		head(vtInvite)[:len(head(vtInvite))-2],
		"SIP/2.0 200 OK\r\n" + vtInvite[strings.Index(vtInvite, "\r\n")+2:],
		"INVITE\r\n\r\n",
		"\x00\x00\x00\x00",
		"\r\n\r\n",
		"",
	}
}

// ftPrintable reports whether s is a usable reason phrase.
func ftPrintable(s string) bool {
	if s == "" || len(s) > rawMaxReason {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

// ftHeaderSectionCleanLines reports whether every line of the start line and
// header section of data ends in CRLF with no CR or LF elsewhere: then
// sipgo and RawReply split lines alike.
func ftHeaderSectionCleanLines(data []byte) bool {
	end := bytes.Index(data, []byte("\r\n\r\n"))
	if end < 0 {
		return false
	}
	section := bytes.ReplaceAll(data[:end+2], []byte("\r\n"), nil)
	return !bytes.ContainsAny(section, "\r\n")
}

func ftCheckDestination(t *testing.T, data []byte, src string) {
	dest := rawReplyDestination(data, src)
	if dest == src {
		return
	}
	host, port, err := net.SplitHostPort(dest)
	if err != nil {
		t.Fatalf("destination %q from src %q: %v", dest, src, err)
	}
	srcHost, _, _ := net.SplitHostPort(src)
	if host != srcHost {
		t.Fatalf("destination %q left the source host %q", dest, srcHost)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		t.Fatalf("destination port %q", port)
	}
}

func FuzzValidateRequest(f *testing.F) {
	for _, s := range ftSeeds(f) {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		msg, err := sip.ParseMessage(data)
		if err != nil {
			if r := parseFailureReason(err); !ftPrintable(r) {
				t.Fatalf("parseFailureReason(%v) = %q", err, r)
			}
			code, reason := DiagnoseParseFailure(data, err)
			// 416 only for a well-formed scheme tm does not route (§8.2.2.1).
			if code != 400 && code != 513 && (code != 416 || !rawUnsupportedScheme(data)) || !ftPrintable(reason) {
				t.Fatalf("DiagnoseParseFailure = %d %q", code, reason)
			}
			if out := RawReply(data, code, reason); out != nil {
				rtCheckShape(t, out)
				if !bytes.HasPrefix(out, []byte("SIP/2.0 "+strconv.Itoa(code)+" "+reason+"\r\n")) {
					t.Fatalf("status line of %q", out)
				}
			}
			ftCheckDestination(t, data, "192.0.2.1:5060")
			return
		}
		req, ok := msg.(*sip.Request)
		if !ok {
			if RawReply(data, 400, "x") != nil {
				t.Fatalf("answered a response")
			}
			return
		}

		rej := ValidateRequest(req, []string{"sec-agree"})
		if rej != nil {
			if rej.Code < 400 || rej.Code > 599 || !ftPrintable(rej.Reason) {
				t.Fatalf("rejection %d %q", rej.Code, rej.Reason)
			}
			if (rej.Code == 420) != (len(rej.Unsupported) > 0) {
				t.Fatalf("rejection %d with Unsupported %q", rej.Code, rej.Unsupported)
			}
		}

		h := computeLoopHash(req)
		if !loopValidHash(h) || computeLoopHash(req) != h || string(appendLoopHash(nil, req)) != h {
			t.Fatalf("loop hash %q unstable or malformed", h)
		}
		if branchLoopHash(newBranch(h)) != h {
			t.Fatalf("newBranch lost the loop hash")
		}
		sb := statelessBranch(req, h)
		if branchLoopHash(sb) != h || statelessBranch(req, h) != sb {
			t.Fatalf("statelessBranch %q", sb)
		}
		isLoop(req, h, func(*sip.ViaHeader) bool { return true })

		if rej != nil {
			return
		}
		// What the proxy does next with a valid request must work too.
		want := nextMaxForwards(req)
		if mf := req.MaxForwards(); mf != nil && (*mf == 0 || want != uint32(*mf)-1) {
			t.Fatalf("nextMaxForwards %d from %d", want, *mf)
		}
		before := req.String()
		clone := req.Clone()
		setMaxForwards(clone, want)
		if got := clone.MaxForwards(); got == nil || uint32(*got) != want {
			t.Fatalf("setMaxForwards did not stick")
		}
		if req.String() != before {
			t.Fatalf("setMaxForwards on a clone changed the original")
		}
		// A request sipgo accepts must be answerable from its raw bytes,
		// where both read lines alike.
		if ftHeaderSectionCleanLines(data) {
			if _, ok := rawRequestLine([]byte(string(req.Method) + " ")); ok && req.Method != sip.ACK {
				if out := RawReply(data, 400, "x"); out == nil {
					t.Fatalf("RawReply cannot answer a valid request:\n%q", data)
				}
			}
		}
	})
}

func FuzzRawReply(f *testing.F) {
	for i, s := range ftSeeds(f) {
		codes := []int{400, 513, 99, 700, 183}
		srcs := []string{"192.0.2.10:40000", "[2001:db8::1]:5060", "pc33.atlanta.example.com:5060", "garbage"}
		f.Add([]byte(s), codes[i%len(codes)], "Bad Request - x\r\n", srcs[i%len(srcs)])
	}
	f.Fuzz(func(t *testing.T, data []byte, code int, reason, src string) {
		orig := string(data)
		out := RawReply(data, code, reason)
		if code < 100 || code > 699 {
			if out != nil {
				t.Fatalf("answered with code %d", code)
			}
		} else if out != nil {
			rtCheckShape(t, out)
			line := string(out[:bytes.Index(out, []byte("\r\n"))])
			if !strings.HasPrefix(line, "SIP/2.0 "+strconv.Itoa(code)+" ") || !ftPrintable(line[len("SIP/2.0 000 "):]) {
				t.Fatalf("status line %q", line)
			}
		}
		ftCheckDestination(t, data, src)
		_, err := sip.ParseMessage(data)
		code2, reason2 := DiagnoseParseFailure(data, err)
		if code2 != 400 && code2 != 416 && code2 != 513 || !ftPrintable(reason2) {
			t.Fatalf("DiagnoseParseFailure = %d %q", code2, reason2)
		}
		if string(data) != orig {
			t.Fatalf("input modified")
		}
	})
}

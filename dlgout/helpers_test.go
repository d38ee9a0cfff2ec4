package dlgout

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/stretchr/testify/require"

	"github.com/imsdlg/imsdlg/tm"
)

// ourHost is this proxy in the tests: every Record-Route entry on it is ours.
const ourHost = "scscf.ims.example.net"

func ours(u *sip.Uri) bool { return u.Host == ourHost }

var t0 = time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)

// rsp parses a response to the INVITE as it reaches us from a callee. extra
// holds header lines; a "CSeq:" line replaces the default "CSeq: 1 INVITE".
func rsp(tb testing.TB, code int, toTag string, extra ...string) *sip.Response {
	tb.Helper()
	to := "To: <sip:bob@ims.example.net>"
	if toTag != "" {
		to += ";tag=" + toTag
	}
	cseq := "CSeq: 1 INVITE"
	var lines []string
	for _, e := range extra {
		if strings.HasPrefix(e, "CSeq:") {
			cseq = e
			continue
		}
		lines = append(lines, e)
	}
	text := "SIP/2.0 " + strconv.Itoa(code) + " Whatever\r\n" +
		"Via: SIP/2.0/UDP " + ourHost + ";branch=z9hG4bK-0123456789abcdef-1.0\r\n" +
		"Via: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKcaller\r\n" +
		"From: <sip:alice@ims.example.net>;tag=ftag\r\n" +
		to + "\r\n" +
		"Call-ID: cid@10.0.0.1\r\n" +
		cseq + "\r\n"
	for _, l := range lines {
		text += l + "\r\n"
	}
	text += "Content-Length: 0\r\n\r\n"
	msg, err := sip.ParseMessage([]byte(text))
	require.NoError(tb, err, "parse:\n%s", text)
	res, ok := msg.(*sip.Response)
	require.True(tb, ok)
	res.SetTransport("UDP")
	res.SetSource("10.0.0.9:5060")
	return res
}

// uris parses URIs; "ours" stands for our own entry.
func uris(tb testing.TB, ss ...string) []sip.Uri {
	tb.Helper()
	out := make([]sip.Uri, 0, len(ss))
	for _, s := range ss {
		if s == "ours" {
			s = "sip:" + ourHost + ";lr;did=a1b2"
		}
		var u sip.Uri
		require.NoError(tb, sip.ParseUri(s, &u), s)
		out = append(out, u)
	}
	return out
}

// hosts gives the hosts of a route set, which is what the tests compare.
func hosts(us []sip.Uri) []string {
	out := []string{}
	for _, u := range us {
		out = append(out, u.Host)
	}
	return out
}

func mustResp(t *testing.T, s *Set, branch int, res *sip.Response) *Leg {
	t.Helper()
	leg, _, err := s.OnResponse(t0, branch, res, ours)
	require.NoError(t, err)
	require.NotNil(t, leg)
	return leg
}

// OnResponse is OnReply with the facts read off a parsed response, as the
// dialog module reads them: the tests speak SIP, the Set takes facts.
func (s *Set) OnResponse(now time.Time, branch int, res *sip.Response, ourRR func(*sip.Uri) bool) (*Leg, bool, error) {
	if res == nil {
		return nil, false, ErrMalformed
	}
	return s.OnReply(now, branch, replyOf(res), ourRR)
}

func replyOf(res *sip.Response) Reply {
	r := Reply{Code: res.StatusCode, Transport: res.Transport(), Source: res.Source()}
	gotTo := false
	for _, h := range res.Headers() {
		switch h := h.(type) {
		case *sip.ToHeader:
			if !gotTo {
				gotTo = true
				r.ToTag = tm.Tag(h.Params)
			}
		case *sip.CSeqHeader:
			if r.Method == "" {
				r.CSeq, r.Method = h.SeqNo, h.MethodName
			}
		case *sip.ContactHeader:
			if !r.HasContact && !h.Address.Wildcard {
				r.Contact, r.HasContact = h.Address, true
			}
		case *sip.RecordRouteHeader:
			r.RecordRoute = append(r.RecordRoute, h.Address)
		}
	}
	return r
}

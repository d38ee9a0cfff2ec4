package transport

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// framed is what a stream made of a sequence of reads.
type framed struct {
	frames []string
	pongs  int
	err    error
	// consumed counts the bytes skipped or framed.
	consumed int
}

// feedStream drives a stream as a connection's reader does: each chunk is
// one read (split further when the buffer has less room).
func feedStream(s *stream, chunks [][]byte) framed {
	var out framed
	for _, chunk := range chunks {
		for len(chunk) > 0 {
			space := s.space()
			if len(space) == 0 {
				out.err = errNoHeaderEnd
				return out
			}
			n := copy(space, chunk)
			chunk = chunk[n:]
			s.wrote(n)
			for {
				kind, frame, pong, err := s.next()
				if kind == frameMore {
					break
				}
				if kind == frameBroken {
					out.err = err
					return out
				}
				if kind == frameSkip {
					if pong {
						out.pongs++
					}
					continue
				}
				out.frames = append(out.frames, string(frame))
			}
		}
	}
	return out
}

func testStream(max int) *stream {
	return newStream(max, newBufPool(512), newBufPool(max+1))
}

func whole(s ...string) [][]byte { return [][]byte{[]byte(strings.Join(s, ""))} }

func bytewise(s ...string) [][]byte {
	all := strings.Join(s, "")
	out := make([][]byte, len(all))
	for i := range all {
		out[i] = []byte{all[i]}
	}
	return out
}

// TestFramingRFC3261_18_3 covers the framing of SIP over a stream: start
// line and headers to the empty line, then exactly Content-Length bytes.
func TestFramingRFC3261_18_3(t *testing.T) {
	inv := string(invite("f-1"))
	opt := string(request("OPTIONS", "f-2", "", ""))
	withCL := func(m, cl string) string {
		i := strings.Index(m, "Content-Length:")
		j := strings.Index(m[i:], "\r\n")
		return m[:i] + cl + m[i+j:]
	}
	body := "v=0\r\n\r\nl: 999\r\nContent-Length: 1\r\n\r\n"
	trickyBody := strings.Replace(string(request("MESSAGE", "f-3", "", body)), "application/sdp", "text/plain", 1)
	const max = 2048
	var atMax string
	for k := max; len(atMax) != max; k-- {
		atMax = string(request("MESSAGE", "f-4", "", strings.Repeat("x", k)))
	}

	for _, tc := range []struct {
		name   string
		chunks [][]byte
		frames []string
		pongs  int
		err    error
	}{
		{name: "two messages in one write", chunks: whole(inv, opt), frames: []string{inv, opt}},
		{name: "one message split byte by byte", chunks: bytewise(inv, opt), frames: []string{inv, opt}},
		{name: "message and a half, then the rest", chunks: [][]byte{[]byte(inv + opt[:40]), []byte(opt[40:])}, frames: []string{inv, opt}},
		{name: "CRLF before the start line is ignored (7.5)", chunks: whole("\r\n", inv, "\r\n", opt), frames: []string{inv, opt}},
		{name: "CRLFCRLF ping gets a pong (RFC 5626 3.5.1)", chunks: whole("\r\n\r\n", inv, "\r\n\r\n\r\n\r\n", opt, "\r\n\r\n"), frames: []string{inv, opt}, pongs: 4},
		{name: "ping split byte by byte", chunks: bytewise("\r\n\r\n", inv, "\r\n\r\n"), frames: []string{inv}, pongs: 2},
		{name: "a lone CRLF (a pong) is not answered", chunks: whole("\r\n", inv, "\r\n"), frames: []string{inv}},
		{name: "compact form l", chunks: whole(withCL(inv, "l: 87"), opt), frames: []string{withCL(inv, "l: 87"), opt}},
		{name: "compact form L with spaces", chunks: whole(withCL(inv, "L :   87  "), opt), frames: []string{withCL(inv, "L :   87  "), opt}},
		{name: "any case", chunks: whole(withCL(inv, "content-LENGTH:87"), opt), frames: []string{withCL(inv, "content-LENGTH:87"), opt}},
		{name: "folded value", chunks: whole(withCL(inv, "Content-Length:\r\n   87"), opt), frames: []string{withCL(inv, "Content-Length:\r\n   87"), opt}},
		{name: "leading zeros", chunks: whole(withCL(inv, "Content-Length: 0087"), opt), frames: []string{withCL(inv, "Content-Length: 0087"), opt}},
		{name: "the same length twice", chunks: whole(withCL(inv, "Content-Length: 87\r\nl: 87"), opt), frames: []string{withCL(inv, "Content-Length: 87\r\nl: 87"), opt}},
		{name: "body holding an empty line and header-like lines", chunks: bytewise(trickyBody, opt), frames: []string{trickyBody, opt}},
		{name: "bare LF lines keep their framing", chunks: whole(strings.ReplaceAll(opt, "\r\n", "\n"), opt), frames: []string{strings.ReplaceAll(opt, "\r\n", "\n"), opt}},
		{name: "a bad header does not break framing", chunks: whole(inv, strings.Replace(opt, "CSeq: 1 OPTIONS", "CSeq: x", 1), opt), frames: []string{inv, strings.Replace(opt, "CSeq: 1 OPTIONS", "CSeq: x", 1), opt}},
		{name: "garbage start line does not break framing", chunks: whole("HELLO\r\nContent-Length: 2\r\n\r\nhi", opt), frames: []string{"HELLO\r\nContent-Length: 2\r\n\r\nhi", opt}},
		{name: "a message of exactly max_message_size", chunks: bytewise(atMax), frames: []string{atMax}},

		{name: "missing Content-Length", chunks: whole(inv, withCL(opt, "X-Length: 0"), opt), frames: []string{inv}, err: errNoContentLength},
		{name: "Content-Length not a number", chunks: whole(withCL(opt, "Content-Length: zero")), err: errBadContentLength},
		{name: "Content-Length negative", chunks: whole(withCL(opt, "Content-Length: -1")), err: errBadContentLength},
		{name: "Content-Length with a sign", chunks: whole(withCL(opt, "l: +0")), err: errBadContentLength},
		{name: "Content-Length two numbers", chunks: whole(withCL(opt, "Content-Length: 1 2")), err: errBadContentLength},
		{name: "Content-Length empty", chunks: whole(withCL(opt, "Content-Length:")), err: errBadContentLength},
		{name: "Content-Length conflicting", chunks: whole(withCL(opt, "Content-Length: 0\r\nl: 1")), err: errTwoLengths},
		{name: "body past max_message_size", chunks: whole(withCL(opt, "Content-Length: 4096")), err: errTooLarge},
		{name: "huge Content-Length", chunks: whole(withCL(opt, "Content-Length: 99999999999999999999999")), err: errTooLarge},
		{name: "no end of headers within max_message_size", chunks: whole("INVITE sip:x SIP/2.0\r\n", strings.Repeat("X-Pad: yyyyyyyyyyyyyyyy\r\n", 100)), err: errNoHeaderEnd},
		{name: "no end of headers, byte by byte", chunks: bytewise("INVITE sip:x SIP/2.0\r\n", strings.Repeat("X-Pad: yyyyyyyyyyyyyyyy\r\n", 100)), err: errNoHeaderEnd},
		{name: "start line only", chunks: whole("OPTIONS sip:x SIP/2.0\r\n\r\n"), err: errNoContentLength},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := testStream(max)
			got := feedStream(s, tc.chunks)
			require.Equal(t, tc.frames, got.frames)
			require.Equal(t, tc.pongs, got.pongs)
			require.ErrorIs(t, got.err, tc.err)
			if tc.err != nil {
				require.ErrorIs(t, got.err, ErrFraming)
				// Lost for good.
				kind, _, _, err := s.next()
				require.Equal(t, frameBroken, kind)
				require.ErrorIs(t, err, tc.err)
			}
			s.release()
		})
	}
}

// The read buffer grows for a large message and goes back to its small
// size between messages.
func TestStreamBufferGrowsAndShrinks(t *testing.T) {
	s := testStream(4096)
	big := string(request("MESSAGE", "g", "", strings.Repeat("z", 3000)))
	small := string(request("OPTIONS", "s", "", ""))
	got := feedStream(s, whole(big))
	require.Equal(t, []string{big}, got.frames)
	require.Len(t, *s.buf, 4097)
	s.space()
	require.Len(t, *s.buf, 512, "back to the small buffer between messages")
	got = feedStream(s, whole(small[:100]))
	require.Empty(t, got.frames)
	got = feedStream(s, whole(small[100:]))
	require.Equal(t, []string{small}, got.frames)
	s.release()
}

package transport

import (
	"bytes"
	"errors"
	"testing"

	"github.com/emiago/sipgo/sip"
)

// event is one thing the framer did, for comparing runs.
type event struct {
	skip  []byte // CR and LF bytes consumed between messages
	pong  bool
	frame []byte
}

type trace struct {
	events   []event
	err      error
	consumed int
}

// traceStream feeds data to a stream in the chunks cut says (each byte of
// cut is the length of the next chunk, 0 meaning 1) and records every
// event.
func traceStream(data, cut []byte, maxSize int) trace {
	s := newStream(maxSize, newBufPool(512), newBufPool(maxSize+1))
	defer s.release()
	var tr trace
	off := 0
	for i := 0; off < len(data); i++ {
		n := len(data) - off
		if i < len(cut) {
			n = min(max(int(cut[i]), 1), n)
		}
		chunk := data[off : off+n]
		off += n
		for len(chunk) > 0 {
			space := s.space()
			if len(space) == 0 {
				tr.err = errors.New("no space in the read buffer")
				return tr
			}
			k := copy(space, chunk)
			chunk = chunk[k:]
			s.wrote(k)
			for {
				before := s.buffered()
				start := s.r
				buf := *s.buf
				kind, frame, pong, err := s.next()
				used := before - s.buffered()
				switch kind {
				case frameMore:
					if used != 0 {
						tr.err = errors.New("frameMore consumed bytes")
						return tr
					}
				case frameBroken:
					tr.err = err
					return tr
				case frameSkip:
					tr.events = append(tr.events, event{skip: bytes.Clone(buf[start : start+used]), pong: pong})
				case frameMessage:
					if len(frame) != used {
						tr.err = errors.New("frame length differs from the bytes consumed")
						return tr
					}
					tr.events = append(tr.events, event{frame: bytes.Clone(frame)})
				}
				tr.consumed += used
				if kind == frameMore {
					break
				}
			}
		}
	}
	return tr
}

// FuzzFramer checks that the stream framer never panics, never hands up
// more bytes than it read, hands up contiguous pieces of the stream (so it
// resyncs only where the framing is intact), gives the same result however
// the stream is cut into reads, and agrees with sipgo's parser on where a
// body ends.
func FuzzFramer(f *testing.F) {
	inv, opt := invite("fz-1"), request("OPTIONS", "fz-2", "", "")
	for _, seed := range [][]byte{
		append(append([]byte{}, inv...), opt...),
		append([]byte("\r\n\r\n"), inv...),
		[]byte("OPTIONS sip:x SIP/2.0\r\nl: 3\r\n\r\nabc\r\n\r\nOPTIONS sip:y SIP/2.0\r\nContent-Length:\r\n 0\r\n\r\n"),
		[]byte("OPTIONS sip:x SIP/2.0\nl: 1\n\nx"),
		[]byte("OPTIONS sip:x SIP/2.0\r\nContent-Length: 1\r\nl: 2\r\n\r\nxx"),
		[]byte("INVITE sip:x SIP/2.0\r\nX: y\r\n"),
		[]byte("\r\r\n\n\r\n\r\n\r\n"),
		bytes.Replace(opt, []byte("CSeq: 1 OPTIONS"), []byte("CSeq: x"), 1),
	} {
		f.Add(seed, []byte{})
		f.Add(seed, []byte{1})
		f.Add(seed, []byte{7, 3, 200, 1, 1, 64})
	}
	f.Fuzz(func(t *testing.T, data, cut []byte) {
		const maxSize = 1024
		whole := traceStream(data, nil, maxSize)
		parts := traceStream(data, cut, maxSize)

		for _, tr := range []trace{whole, parts} {
			if tr.consumed > len(data) {
				t.Fatalf("consumed %d of %d bytes", tr.consumed, len(data))
			}
			if tr.err != nil && !errors.Is(tr.err, ErrFraming) {
				t.Fatalf("error not a framing error: %v", tr.err)
			}
			// The events are the stream, in order, without gaps.
			var rebuilt []byte
			for _, ev := range tr.events {
				if ev.frame == nil {
					if len(ev.skip) == 0 || len(bytes.Trim(ev.skip, "\r\n")) != 0 {
						t.Fatalf("skipped %q between messages", ev.skip)
					}
					rebuilt = append(rebuilt, ev.skip...)
					continue
				}
				checkFrame(t, ev.frame, maxSize)
				rebuilt = append(rebuilt, ev.frame...)
			}
			if !bytes.Equal(rebuilt, data[:len(rebuilt)]) || len(rebuilt) != tr.consumed {
				t.Fatalf("events do not rebuild the stream")
			}
		}
		// However the stream was cut, the same messages, pongs and error.
		if !errors.Is(parts.err, whole.err) && !errors.Is(whole.err, parts.err) {
			t.Fatalf("error differs: whole %v, in parts %v", whole.err, parts.err)
		}
		wf, wp := summarize(whole)
		pf, pp := summarize(parts)
		if wp != pp || len(wf) != len(pf) {
			t.Fatalf("whole: %d frames %d pongs; in parts: %d frames %d pongs", len(wf), wp, len(pf), pp)
		}
		for i := range wf {
			if !bytes.Equal(wf[i], pf[i]) {
				t.Fatalf("frame %d differs", i)
			}
		}
	})
}

func summarize(tr trace) (frames [][]byte, pongs int) {
	for _, ev := range tr.events {
		if ev.frame != nil {
			frames = append(frames, ev.frame)
		} else if ev.pong {
			pongs++
		}
	}
	return frames, pongs
}

// checkFrame: a frame starts a message, holds its headers and exactly
// Content-Length bytes after them.
func checkFrame(t *testing.T, frame []byte, maxSize int) {
	t.Helper()
	if len(frame) == 0 || len(frame) > maxSize {
		t.Fatalf("frame of %d bytes", len(frame))
	}
	if frame[0] == '\r' || frame[0] == '\n' {
		t.Fatalf("frame starts with CR or LF")
	}
	f := framer{max: maxSize}
	end := f.headerEnd(frame)
	if end < 0 {
		t.Fatalf("frame without end of headers")
	}
	cl, err := contentLength(frame[:end], maxSize)
	if err != nil || end+cl != len(frame) {
		t.Fatalf("frame of %d bytes: headers %d, Content-Length %d (%v)", len(frame), end, cl, err)
	}
	// Where sipgo parses the frame and it has only CRLF line ends, sipgo
	// finds the same body.
	if bytes.Count(frame[:end], []byte("\n")) != bytes.Count(frame[:end], []byte("\r\n")) {
		return
	}
	msg, err := sip.ParseMessage(frame)
	if err != nil {
		return
	}
	if body := msg.Body(); len(body) != cl || !bytes.Equal(body, frame[end:]) {
		t.Fatalf("sipgo's body (%d bytes) is not the framed body (%d bytes)", len(body), cl)
	}
}

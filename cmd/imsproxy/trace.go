package main

import (
	"bytes"
	"log/slog"

	"github.com/emiago/sipgo/sip"
)

// sipTracer writes every SIP message sipgo sends or receives to the log
// (log.sip_trace), one record per message with its Call-ID, so a trace can
// be filtered per call like the rest of the logs.
type sipTracer struct{ log *slog.Logger }

func (t sipTracer) SIPTraceRead(transport, laddr, raddr string, msg []byte) {
	t.trace("recv", transport, laddr, raddr, msg)
}

func (t sipTracer) SIPTraceWrite(transport, laddr, raddr string, msg []byte) {
	t.trace("send", transport, laddr, raddr, msg)
}

func (t sipTracer) trace(dir, transport, laddr, raddr string, msg []byte) {
	t.log.Info("sip message", "dir", dir, "transport", transport, "local", laddr, "remote", raddr,
		"callid", traceCallID(msg), "message", string(msg))
}

// traceCallID finds the Call-ID in raw bytes without parsing the message.
func traceCallID(msg []byte) string {
	for len(msg) > 0 {
		line := msg
		if i := bytes.IndexByte(msg, '\n'); i >= 0 {
			line, msg = msg[:i], msg[i+1:]
		} else {
			msg = nil
		}
		line = bytes.TrimRight(line, "\r")
		if len(line) == 0 {
			break // end of headers
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		name = bytes.TrimSpace(name)
		if bytes.EqualFold(name, []byte("Call-ID")) || bytes.EqualFold(name, []byte("i")) {
			return string(bytes.TrimSpace(value))
		}
	}
	return ""
}

// enableSIPTrace turns sipgo's process-wide message trace on; only main
// calls it, once.
func enableSIPTrace(log *slog.Logger) {
	sip.SIPDebugTracer(sipTracer{log: log.With("component", "trace")})
	sip.SIPDebug = true
}

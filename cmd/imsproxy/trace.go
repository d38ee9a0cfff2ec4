package main

import (
	"bytes"
	"log/slog"
	"net/netip"
)

// sipTracer writes every SIP message tm's transport reads or sends to the
// log (log.sip_trace), one record per message with its Call-ID, so a trace
// can be filtered per call like the rest of the logs.
type sipTracer struct{ log *slog.Logger }

func (t sipTracer) trace(dir, transport string, local, remote netip.AddrPort, msg []byte) {
	t.log.Info("sip message", "dir", dir, "transport", transport, "local", local.String(), "remote", remote.String(),
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

// sipTrace is the transport's trace hook of log.sip_trace.
func sipTrace(log *slog.Logger) func(dir, transport string, local, remote netip.AddrPort, data []byte) {
	return sipTracer{log: log.With("component", "trace")}.trace
}

package main

import (
	"bytes"
	"log/slog"
	"net/netip"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestSIPTraceLogsMessageWithCallID(t *testing.T) {
	var buf bytes.Buffer
	tr := sipTracer{log: slog.New(slog.NewJSONHandler(&buf, nil))}
	msg := "BYE sip:bob@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1\r\ni: abc@host\r\nCSeq: 2 BYE\r\n\r\n"
	a, b, c := netip.MustParseAddrPort("127.0.0.1:5060"), netip.MustParseAddrPort("127.0.0.1:5070"), netip.MustParseAddrPort("127.0.0.1:5080")
	tr.trace("recv", "UDP", a, b, []byte(msg))
	tr.trace("send", "TCP", a, c, []byte("SIP/2.0 200 OK\r\nCall-ID: x1\r\n\r\n"))
	out := buf.String()
	assert.Equal(t, 2, strings.Count(out, "\n"))
	assert.Contains(t, out, `"dir":"recv"`)
	assert.Contains(t, out, `"callid":"abc@host"`)
	assert.Contains(t, out, `"dir":"send"`)
	assert.Contains(t, out, `"callid":"x1"`)
	assert.Contains(t, out, `BYE sip:bob@127.0.0.1`)
	assert.Equal(t, "", traceCallID([]byte("INVITE sip:a SIP/2.0\r\n\r\nCall-ID: in-body\r\n")), "the body is not searched")
}

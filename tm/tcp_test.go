package tm

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/textproto"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imsdlg/imsdlg/internal/siptest"
)

// tcpPeer is a UA on one TCP connection, reading messages as a stream.
type tcpPeer struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func dialTCP(t *testing.T, addr string) *tcpPeer {
	c, err := net.Dial("tcp4", addr)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return &tcpPeer{t: t, conn: c, r: bufio.NewReader(c)}
}

func (p *tcpPeer) send(raw string) {
	_, err := p.conn.Write([]byte(raw))
	require.NoError(p.t, err)
}

// next reads one message as text; io.EOF when the proxy closed the
// connection. (A 400 echoes the headers it could not parse, so the test
// reads start lines and headers as text.)
func (p *tcpPeer) next() (string, error) {
	p.conn.SetReadDeadline(time.Now().Add(siptest.WaitFor))
	tp := textproto.NewReader(p.r)
	var head strings.Builder
	n := 0
	for {
		line, err := tp.ReadLine()
		if err != nil {
			return "", err
		}
		head.WriteString(line + "\r\n")
		if line == "" {
			break
		}
		if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(strings.TrimSpace(k), "Content-Length") {
			n, _ = strconv.Atoi(strings.TrimSpace(v))
		}
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(p.r, body); err != nil {
		return "", err
	}
	return head.String() + string(body), nil
}

// statusAndCallID reads a response's code and Call-ID from its text.
func statusAndCallID(t *testing.T, m string) (int, string) {
	first, rest, _ := strings.Cut(m, "\r\n")
	f := strings.Fields(first)
	require.True(t, len(f) >= 2 && f[0] == "SIP/2.0", "a response: %q", m)
	code, err := strconv.Atoi(f[1])
	require.NoError(t, err)
	for _, line := range strings.Split(rest, "\r\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(k, "Call-ID") {
			return code, strings.TrimSpace(v)
		}
	}
	return code, ""
}

func (p *tcpPeer) request(method, ruri, callID string, cseq string, extra ...string) string {
	local := p.conn.LocalAddr().String()
	return method + " " + ruri + " SIP/2.0\r\n" +
		"Via: SIP/2.0/TCP " + local + ";branch=z9hG4bK-" + callID + ";rport\r\n" +
		"Max-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=a1\r\nTo: <sip:bob@example.com>\r\n" +
		"Call-ID: " + callID + "\r\nCSeq: " + cseq + "\r\n" + strings.Join(extra, "") +
		"Contact: <sip:alice@" + local + ";transport=tcp>\r\nContent-Length: 0\r\n\r\n"
}

// RFC 3261 §18.3 (issue 14): on a stream, a request whose framing is
// intact but whose content is invalid gets its 400 on the same connection,
// which stays open: an INVITE sent before it on the connection still gets
// its final reply there. Only lost framing closes the connection.
func TestRFC3261_18_3_BadRequestOnTCPKeepsTheConnection(t *testing.T) {
	uas := siptest.NewUA(t)
	p := startProxy(t, testCfg(), toUAs(uas))
	c := dialTCP(t, p.tcp)
	c.send(c.request("INVITE", "sip:bob@"+p.tcp, "tcp-good@test", "1 INVITE"))
	inv := uas.Request(sip.INVITE)
	c.send(c.request("OPTIONS", "sip:bob@"+p.tcp, "tcp-bad@test", "notanumber OPTIONS"))
	uas.Reply(inv, 200, "b")

	got := map[string]int{}
	for len(got) < 2 {
		m, err := c.next()
		require.NoError(t, err, "the connection must stay open")
		if code, callID := statusAndCallID(t, m); code >= 200 {
			got[callID] = code
		}
	}
	assert.Equal(t, 400, got["tcp-bad@test"])
	assert.Equal(t, 200, got["tcp-good@test"], "the INVITE's final on the same connection")

	// Framing lost (a Content-Length that is no number): the proxy closes.
	c.send("OPTIONS sip:bob@" + p.tcp + " SIP/2.0\r\nContent-Length: many\r\n\r\n")
	for {
		_, err := c.next()
		if err != nil {
			assert.True(t, errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || strings.Contains(err.Error(), "reset"),
				"closed, not timed out: %v", err)
			break
		}
	}
}

// RFC 3261 §18.2.2 (issue 14): the connection an INVITE came on closed
// before the final reply; the proxy opens a new one to the source address
// and the Via's sent-by port. The sent-by host is a name that resolves
// nowhere: the proxy never looks it up.
func TestRFC3261_18_2_2_ClosedConnectionAnsweredAtSentBy(t *testing.T) {
	uas := siptest.NewUA(t)
	p := startProxy(t, testCfg(), toUAs(uas))
	ln, err := siptest.ListenTCP()
	require.NoError(t, err)
	defer ln.Close()
	sentBy := ln.Addr().(*net.TCPAddr).Port

	c := dialTCP(t, p.tcp)
	c.send("INVITE sip:bob@" + p.tcp + " SIP/2.0\r\n" +
		"Via: SIP/2.0/TCP ua.invalid:" + strconv.Itoa(sentBy) + ";branch=z9hG4bK-closed\r\n" +
		"Max-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=a1\r\nTo: <sip:bob@example.com>\r\n" +
		"Call-ID: tcp-closed@test\r\nCSeq: 1 INVITE\r\nContact: <sip:alice@ua.invalid;transport=tcp>\r\n" +
		"Content-Length: 0\r\n\r\n")
	inv := uas.Request(sip.INVITE)
	c.conn.Close()
	// Until the proxy has read the close, a write still "succeeds" into the
	// dead connection, as it would for any TCP stack.
	siptest.Eventually(t, func() bool { return p.tp.Stats().Snapshot()["tcp_connections_open"] == 0 }, "the proxy saw the close")
	uas.Reply(inv, 486, "b")

	ln.(*net.TCPListener).SetDeadline(time.Now().Add(siptest.WaitFor))
	conn, err := ln.Accept()
	require.NoError(t, err, "the proxy dials received:sent-by port")
	defer conn.Close()
	back := &tcpPeer{t: t, conn: conn, r: bufio.NewReader(conn)}
	for {
		m, err := back.next()
		require.NoError(t, err)
		if code, callID := statusAndCallID(t, m); code >= 200 {
			assert.Equal(t, 486, code)
			assert.Equal(t, "tcp-closed@test", callID)
			break
		}
	}
}

// brokenListener fails every Accept with an error that is not temporary.
type brokenListener struct{ net.Listener }

func (brokenListener) Accept() (net.Conn, error) { return nil, errors.New("accept: listener broken") }

// Issue 15 §5: a SIP listener that stops for good fails readiness (a
// temporary accept error backs off and retries instead: tm/transport).
func TestIssue15_StoppedListenerFailsReady(t *testing.T) {
	p := startProxy(t, testCfg(), toUAs())
	require.NoError(t, p.Ready())
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	_, err = p.tp.AddTCPListener(brokenListener{ln})
	require.NoError(t, err)
	siptest.Eventually(t, func() bool { return p.Ready() != nil }, "Ready still nil")
	assert.Contains(t, p.Ready().Error(), "listener broken")
}

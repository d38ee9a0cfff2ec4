package e2e

import (
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"
)

// Issue 15 §6: the tcp section bounds what TCP connections may hold: a
// connection beyond tcp.max_connections_per_ip is closed at once, an idle
// one after tcp.connection_lifetime, a message that dribbles in after
// tcp.read_timeout. The UDP side serves on meanwhile.
func TestIssue15_TCPConnectionLimits(t *testing.T) {
	RequireTools(t)
	t.Parallel()
	cfg := NewProxyConfig(t)
	cfg.Extra = "tcp: {max_connections_per_ip: 2, connection_lifetime: 2s, read_timeout: 1s}"
	p := StartProxy(t, cfg.YAML())
	addr := p.Addr("tcp")
	dial := func() net.Conn {
		c, err := net.Dial("tcp4", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	closedWithin := func(c net.Conn, d time.Duration) (bool, time.Duration) {
		start := time.Now()
		c.SetReadDeadline(start.Add(d))
		_, err := c.Read(make([]byte, 1))
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return false, time.Since(start)
		}
		return err == io.EOF || err != nil, time.Since(start)
	}
	idle, slow := dial(), dial()
	// The proxy may refuse the third before connect returns: on a busy
	// machine its RST reaches the dialer first, which is the same verdict.
	if third, err := net.Dial("tcp4", addr); err == nil {
		t.Cleanup(func() { third.Close() })
		if closed, _ := closedWithin(third, 2*time.Second); !closed {
			t.Error("a third connection from one address stayed open")
		}
	} else if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("third connection: %v, want it accepted and closed or reset", err)
	}
	if _, err := slow.Write([]byte("OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.1")); err != nil {
		t.Fatal(err)
	}
	if closed, after := closedWithin(slow, 5*time.Second); !closed || after > 1700*time.Millisecond {
		t.Errorf("a half-sent message: closed %v after %v, want closed by read_timeout (1s)", closed, after)
	}
	if closed, _ := closedWithin(idle, 6*time.Second); !closed {
		t.Error("an idle connection outlived connection_lifetime (2s)")
	}
}

package e2e

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// Issue 14: the udp section reaches the transport: two SO_REUSEPORT
// sockets serve the address, their readers wait in the netpoller, and
// calls go through either socket; the read watchdog's counter is exposed.
func TestIssue14_UDPSection(t *testing.T) {
	RequireTools(t)
	if runtime.GOOS != "linux" {
		t.Skip("SO_REUSEPORT sockets are counted in /proc/net/udp")
	}
	t.Parallel()
	uas := StartSipp(t, SippArgs{Scenario: "uas.xml", Transport: "u1", Calls: 20})
	cfg := NewProxyConfig(t)
	cfg.Static["sip:bob@127.0.0.1"] = []string{uas.Contact("bob")}
	cfg.Extra = "udp: {sockets: 2, readers: 1, blocking_reads: false, read_watchdog: 10ms, read_buffer: 1MiB}"
	p := StartProxy(t, cfg.YAML())
	addr := p.Addr("udp")
	_, portText, _ := strings.Cut(addr, ":")
	port, err := strconv.Atoi(portText)
	if err != nil {
		t.Fatalf("proxy address %q: %v", addr, err)
	}
	if n := udpSocketsOn(t, port); n != 2 {
		t.Errorf("%d UDP sockets on port %d, want udp.sockets = 2", n, port)
	}
	uac := StartSipp(t, SippArgs{Scenario: "uac.xml", Remote: addr, Transport: "u1", Service: "bob", Calls: 20, Rate: 20})
	waitAll(t, uac, uas)
	m := settle(t, p)
	if m["2xx_transactions"] < 40 {
		t.Errorf("want 20 INVITE and 20 BYE transactions answered 2xx: %v", m)
	}
	if _, ok := MetricValue(p.Metrics(), "imsdlg_transport_udp_read_kicks_total"); !ok {
		t.Error("imsdlg_transport_udp_read_kicks_total is not exposed")
	}
}

// udpSocketsOn counts the IPv4 UDP sockets bound to port.
func udpSocketsOn(t *testing.T, port int) int {
	t.Helper()
	f, err := os.Open("/proc/net/udp")
	if err != nil {
		t.Skip(err)
	}
	defer f.Close()
	want := fmt.Sprintf(":%04X", port)
	n := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 2 && strings.HasSuffix(fields[1], want) {
			n++
		}
	}
	return n
}

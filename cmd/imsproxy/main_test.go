package main

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imsdlg/imsdlg/internal/buildinfo"
)

func TestRun_CheckAndVersion(t *testing.T) {
	var out, errb bytes.Buffer
	assert.Equal(t, 0, run(context.Background(), []string{"--check"}, &out, &errb))
	assert.Contains(t, out.String(), "valid")

	for _, args := range [][]string{{"--version"}, {"version"}} {
		out.Reset()
		assert.Equal(t, 0, run(context.Background(), args, &out, &errb))
		assert.Equal(t, "imsproxy "+buildinfo.Get().String()+"\n", out.String())
	}
	assert.Equal(t, 2, run(context.Background(), []string{"serve"}, &out, &errb))
	assert.Contains(t, errb.String(), `unexpected argument "serve"`)
}

func TestRun_BadConfigNamesTheKey(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bad.yaml")
	require.NoError(t, os.WriteFile(path, []byte("listen: [\"udp:127.0.0.1:5060\"]\ntm:\n  fr_timout: 3\n"), 0o600))
	var out, errb bytes.Buffer
	assert.Equal(t, 2, run(context.Background(), []string{"--config", path}, &out, &errb))
	assert.Contains(t, errb.String(), `"tm.fr_timout"`)

	errb.Reset()
	assert.Equal(t, 2, run(context.Background(), []string{"--config", filepath.Join(dir, "missing.yaml")}, &out, &errb))
	assert.Contains(t, errb.String(), "missing.yaml")

	errb.Reset()
	assert.Equal(t, 2, run(context.Background(), []string{"--nosuchflag"}, &out, &errb))
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// The daemon serves its management API and stops cleanly when its context
// ends (as on SIGTERM).
func TestRun_ServesAndStops(t *testing.T) {
	prev := runtime.GOMAXPROCS(0) // the daemon sets it (runtime.gomaxprocs)
	t.Cleanup(func() { runtime.GOMAXPROCS(prev) })
	sipPort, mgmtPort := freePort(t), freePort(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "c.yaml")
	cfg := "listen: [\"udp:127.0.0.1:" + strconv.Itoa(sipPort) + "\", \"tcp:127.0.0.1:" + strconv.Itoa(sipPort) + "\"]\n" +
		"mgmt:\n  listen: 127.0.0.1:" + strconv.Itoa(mgmtPort) + "\n"
	require.NoError(t, os.WriteFile(path, []byte(cfg), 0o600))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	var out, errb syncBuffer
	go func() { done <- run(ctx, []string{"--config", path}, &out, &errb) }()

	url := "http://127.0.0.1:" + strconv.Itoa(mgmtPort)
	deadline := time.Now().Add(5 * time.Second)
	for {
		res, err := http.Get(url + "/healthz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				break
			}
		}
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("daemon not healthy: %v\n%s", err, errb.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	ready, err := http.Get(url + "/readyz")
	require.NoError(t, err)
	ready.Body.Close()
	assert.Equal(t, 200, ready.StatusCode)
	res, err := http.Post(url+"/rpc", "application/json", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tm.stats"}`))
	require.NoError(t, err)
	var body bytes.Buffer
	body.ReadFrom(res.Body)
	res.Body.Close()
	assert.Contains(t, body.String(), `"inuse_transactions":0`)
	res, err = http.Get(url + "/metrics")
	require.NoError(t, err)
	body.Reset()
	body.ReadFrom(res.Body)
	res.Body.Close()
	assert.Contains(t, body.String(), "imsdlg_tm_uas_transactions_total")
	assert.Contains(t, body.String(), `imsdlg_build_info{goversion="`+buildinfo.Get().Go+`"`)

	// tm.uac_dlg: the proxy originates an OPTIONS to a peer that answers.
	peer, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	require.NoError(t, err)
	defer peer.Close()
	go answerOnce(peer)
	call := `{"jsonrpc":"2.0","id":2,"method":"tm.uac_dlg","params":{"method":"OPTIONS","ruri":"sip:ping@` + peer.LocalAddr().String() + `","headers":["X-Probe: 1"]}}`
	res, err = http.Post(url+"/rpc", "application/json", strings.NewReader(call))
	require.NoError(t, err)
	body.Reset()
	body.ReadFrom(res.Body)
	res.Body.Close()
	assert.Contains(t, body.String(), `"code":200`)

	res, err = http.Post(url+"/rpc", "application/json", strings.NewReader(`{"jsonrpc":"2.0","id":3,"method":"tm.uac_dlg","params":{"method":"OPTIONS","ruri":"nonsense"}}`))
	require.NoError(t, err)
	body.Reset()
	body.ReadFrom(res.Body)
	res.Body.Close()
	assert.Contains(t, body.String(), `-32602`)
	assert.Contains(t, body.String(), `ruri`)

	cancel()
	select {
	case code := <-done:
		assert.Equal(t, 0, code, errb.String())
	case <-time.After(10 * time.Second):
		t.Fatal("daemon did not stop")
	}
}

// answerOnce answers the first request on c with 200 OK.
func answerOnce(c *net.UDPConn) {
	buf := make([]byte, 65535)
	n, _, err := c.ReadFromUDP(buf)
	if err != nil {
		return
	}
	m, err := sip.ParseMessage(buf[:n])
	if err != nil {
		return
	}
	req := m.(*sip.Request)
	if req.GetHeader("X-Probe") == nil {
		return
	}
	res := sip.NewResponseFromRequest(req, 200, "OK", nil)
	via := req.Via()
	dst, err := net.ResolveUDPAddr("udp", net.JoinHostPort(via.Host, strconv.Itoa(via.Port)))
	if err != nil {
		return
	}
	c.WriteToUDP([]byte(res.String()), dst)
}

// syncBuffer is written by the daemon's logger while the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

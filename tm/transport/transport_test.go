package transport

import (
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"
)

func TestOptions(t *testing.T) {
	_, err := New(Options{})
	require.ErrorContains(t, err, "Handler is required")
	_, err = New(Options{Handler: func(Message) {}, UDPBatch: 5000, MaxMessageSize: 10})
	require.ErrorContains(t, err, "UDPBatch")
	require.ErrorContains(t, err, "MaxMessageSize")
	tr, err := New(Options{Handler: func(Message) {}})
	require.NoError(t, err)
	defer tr.Close()
	o := tr.o
	require.Equal(t, DefaultMaxMessageSize, o.MaxMessageSize)
	require.Equal(t, DefaultUDPBatch, o.UDPBatch)
	require.Equal(t, DefaultSocketBuffer, o.UDPReadBuffer)
	require.Equal(t, DefaultTCPLifetime, o.TCPLifetime)
	require.Equal(t, DefaultTCPMaxConns, o.TCPMaxConns)
	require.Equal(t, DefaultTCPMaxConnsPerIP, o.TCPMaxConnsPerIP)
	require.NotNil(t, o.Parser)
	require.Equal(t, DefaultMaxMessageSize, o.Parser.(*sip.Parser).MaxMessageLength)
	require.Equal(t, DefaultMaxMessageSize+1, tr.udpBufSize)
}

// A handler that panics costs the message, not the reader.
func TestHandlerPanicRecovered(t *testing.T) {
	var h *harness
	h = newHarness(t, Options{Handler: func(m Message) {
		if callID(t, m.Msg) == "boom" {
			panic("boom")
		}
		h.in <- got{m}
	}})
	uaddr, err := h.ListenUDP(any0(lo4))
	require.NoError(t, err)
	taddr, err := h.ListenTCP(any0(lo4))
	require.NoError(t, err)
	u := udpClient(t, lo4)
	c := tcpClient(t, taddr)
	for _, id := range []string{"boom", "after"} {
		_, err := u.WriteToUDPAddrPort(request("OPTIONS", id, "", ""), uaddr)
		require.NoError(t, err)
		_, err = c.Write(request("OPTIONS", id, "", ""))
		require.NoError(t, err)
	}
	for i := 0; i < 2; i++ {
		require.Equal(t, "after", callID(t, h.next(t).Msg))
	}
	// Two UDP readers: the "after" may be handed up while the other reader
	// is still recovering from "boom".
	require.Eventually(t, func() bool { return stat(h.Transport, "handler_panics") == 2 }, 5*time.Second, time.Millisecond)
	stillOpen(t, c)
}

// Stats are a Prometheus collector with every counter described.
func TestStatsCollector(t *testing.T) {
	var s Stats
	s.readBatch.observe(1)
	s.readBatch.observe(32)
	s.readBatch.observe(5000)
	snap := s.Snapshot()
	require.Equal(t, uint64(1), snap["udp_read_batch_le_1"])
	require.Equal(t, uint64(1), snap["udp_read_batch_le_32"])
	require.Equal(t, uint64(1), snap["udp_read_batch_le_1024"])
	require.Equal(t, uint64(3), snap["udp_read_batches"])
	reg := prometheus.NewPedanticRegistry()
	require.NoError(t, reg.Register(&s))
	families, err := reg.Gather()
	require.NoError(t, err)
	n := 0
	for _, f := range families {
		n += len(f.GetMetric())
	}
	require.Greater(t, n, 30)
}

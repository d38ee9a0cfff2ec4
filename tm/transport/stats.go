package transport

import (
	"math/bits"
	"strconv"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// protoStats are the counters kept per transport.
type protoStats struct {
	msgsIn        atomic.Uint64 // messages handed up, parsed or not
	msgsOut       atomic.Uint64 // messages written
	bytesIn       atomic.Uint64
	bytesOut      atomic.Uint64
	parseFailures atomic.Uint64 // messages handed up with Err set
	keepalives    atomic.Uint64 // CRLF keep-alives received
	writeErrors   atomic.Uint64 // messages that could not be written (or queued)
}

// batchBuckets are the upper bounds of the batch size histograms.
var batchBuckets = [...]int{1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024}

// batchHist counts batches by size: bucket i holds the batches of
// 2^(i-1) < size <= 2^i.
type batchHist struct {
	count   [len(batchBuckets)]atomic.Uint64
	batches atomic.Uint64
	items   atomic.Uint64
}

func (h *batchHist) observe(n int) {
	if n <= 0 {
		return
	}
	i := bits.Len(uint(n - 1))
	if i >= len(h.count) {
		i = len(h.count) - 1
	}
	h.count[i].Add(1)
	h.batches.Add(1)
	h.items.Add(uint64(n))
}

// Stats are the transport's live counters: atomics, so the hot path takes
// no lock. Read them with Snapshot, or register Stats with Prometheus (it is
// a prometheus.Collector).
type Stats struct {
	udp, tcp protoStats

	framingFailures atomic.Uint64 // TCP connections closed because framing was lost
	readTimeouts    atomic.Uint64 // TCP connections closed mid-message by TCPReadTimeout
	idleClosed      atomic.Uint64 // TCP connections closed by TCPLifetime
	writeTimeouts   atomic.Uint64 // TCP connections closed: queued bytes not taken in TCPWriteTimeout
	queueOverflows  atomic.Uint64 // TCP connections closed: TCPWriteQueue exceeded
	connsOpen       atomic.Int64
	connsAccepted   atomic.Uint64
	connsDialed     atomic.Uint64
	dialFailures    atomic.Uint64
	refusedMax      atomic.Uint64 // accepted then closed at once: TCPMaxConns reached
	refusedPerIP    atomic.Uint64 // accepted then closed at once: TCPMaxConnsPerIP reached
	acceptErrors    atomic.Uint64 // temporary accept errors, retried
	readErrors      atomic.Uint64 // UDP read errors other than the socket closing
	udpQueueDrops   atomic.Uint64 // datagrams refused by Send: writer queue full
	udpQueued       atomic.Uint64 // datagrams Send handed to the writer goroutine
	udpCongested    atomic.Uint64 // reads that found the queue over half the socket buffer
	udpReadKicks    atomic.Uint64 // sockets woken by the read watchdog
	handlerPanics   atomic.Uint64
	listenersDown   atomic.Uint64

	readBatch  batchHist // datagrams per recvmmsg
	writeBatch batchHist // datagrams per sendmmsg
}

func (s *Stats) proto(transport string) *protoStats {
	if transport == TCP {
		return &s.tcp
	}
	return &s.udp
}

// Snapshot returns the counters by name. Per transport ("udp_", "tcp_"):
// messages_in (handed up, parsed or not; keep-alives excluded),
// messages_out (UDP: written; TCP: written or queued for a slow peer),
// bytes_in, bytes_out, parse_failures (handed up with Err), keepalives,
// write_errors (an empty datagram is counted nowhere). TCP connections:
// connections_open, connections_accepted, connections_dialed,
// dial_failures, refused_max_connections,
// refused_max_per_ip, accept_errors, and the closes by reason:
// framing_failures, read_timeouts, idle_closed, write_timeouts,
// write_queue_overflows. UDP: read_errors, queue_drops, congested_reads (full
// batches read while the socket's queue held more than half its buffer: the
// proxy is behind its offered load; Message.Congested), queued (datagrams
// handed to the socket's writer goroutine rather than written by the
// sender: the socket buffer was full, or another sender held the socket
// where senders do not write side by side), read_kicks (a
// socket whose readers took nothing for a tick while a datagram waited,
// woken by the read watchdog), and the batch histograms udp_read_batches /
// udp_write_batches (calls) with
// udp_read_batch_le_N (calls that moved more than N/2 and at most N
// datagrams). Also handler_panics and listeners_down.
func (s *Stats) Snapshot() map[string]uint64 {
	m := make(map[string]uint64, 64)
	for _, p := range []struct {
		name string
		s    *protoStats
	}{{"udp", &s.udp}, {"tcp", &s.tcp}} {
		m[p.name+"_messages_in"] = p.s.msgsIn.Load()
		m[p.name+"_messages_out"] = p.s.msgsOut.Load()
		m[p.name+"_bytes_in"] = p.s.bytesIn.Load()
		m[p.name+"_bytes_out"] = p.s.bytesOut.Load()
		m[p.name+"_parse_failures"] = p.s.parseFailures.Load()
		m[p.name+"_keepalives"] = p.s.keepalives.Load()
		m[p.name+"_write_errors"] = p.s.writeErrors.Load()
	}
	m["tcp_framing_failures"] = s.framingFailures.Load()
	m["tcp_read_timeouts"] = s.readTimeouts.Load()
	m["tcp_idle_closed"] = s.idleClosed.Load()
	m["tcp_write_timeouts"] = s.writeTimeouts.Load()
	m["tcp_write_queue_overflows"] = s.queueOverflows.Load()
	m["tcp_connections_open"] = uint64(max(s.connsOpen.Load(), 0))
	m["tcp_connections_accepted"] = s.connsAccepted.Load()
	m["tcp_connections_dialed"] = s.connsDialed.Load()
	m["tcp_dial_failures"] = s.dialFailures.Load()
	m["tcp_refused_max_connections"] = s.refusedMax.Load()
	m["tcp_refused_max_per_ip"] = s.refusedPerIP.Load()
	m["tcp_accept_errors"] = s.acceptErrors.Load()
	m["udp_read_errors"] = s.readErrors.Load()
	m["udp_queue_drops"] = s.udpQueueDrops.Load()
	m["udp_queued"] = s.udpQueued.Load()
	m["udp_congested_reads"] = s.udpCongested.Load()
	m["udp_read_kicks"] = s.udpReadKicks.Load()
	m["handler_panics"] = s.handlerPanics.Load()
	m["listeners_down"] = s.listenersDown.Load()
	for _, h := range []struct {
		name string
		h    *batchHist
	}{{"udp_read_batch", &s.readBatch}, {"udp_write_batch", &s.writeBatch}} {
		m[h.name+"es"] = h.h.batches.Load()
		for i, le := range batchBuckets {
			m[h.name+"_le_"+strconv.Itoa(le)] = h.h.count[i].Load()
		}
	}
	return m
}

var (
	descMessages   = prometheus.NewDesc("imsdlg_transport_messages_total", "SIP messages read (in: handed up, parsed or not) and written (out).", []string{"transport", "direction"}, nil)
	descBytes      = prometheus.NewDesc("imsdlg_transport_bytes_total", "Bytes read and written.", []string{"transport", "direction"}, nil)
	descParseFail  = prometheus.NewDesc("imsdlg_transport_parse_failures_total", "Messages whose framing was intact but which did not parse (handed up with their error).", []string{"transport"}, nil)
	descKeepalive  = prometheus.NewDesc("imsdlg_transport_keepalives_total", "CRLF keep-alives received.", []string{"transport"}, nil)
	descWriteErr   = prometheus.NewDesc("imsdlg_transport_write_errors_total", "Messages that could not be written.", []string{"transport"}, nil)
	descClosed     = prometheus.NewDesc("imsdlg_transport_tcp_closed_total", "TCP connections closed by the transport, by reason.", []string{"reason"}, nil)
	descOpen       = prometheus.NewDesc("imsdlg_transport_tcp_connections", "TCP connections open.", nil, nil)
	descAccepted   = prometheus.NewDesc("imsdlg_transport_tcp_accepted_total", "TCP connections accepted and served.", nil, nil)
	descDialed     = prometheus.NewDesc("imsdlg_transport_tcp_dialed_total", "TCP connections dialed.", nil, nil)
	descDialFail   = prometheus.NewDesc("imsdlg_transport_tcp_dial_failures_total", "TCP connections that could not be dialed.", nil, nil)
	descRefused    = prometheus.NewDesc("imsdlg_transport_tcp_refused_total", "TCP connections closed at once on accept, by limit.", []string{"limit"}, nil)
	descAcceptErr  = prometheus.NewDesc("imsdlg_transport_tcp_accept_errors_total", "Temporary accept errors (retried with backoff).", nil, nil)
	descReadErr    = prometheus.NewDesc("imsdlg_transport_udp_read_errors_total", "UDP read errors (retried).", nil, nil)
	descQueueDrops = prometheus.NewDesc("imsdlg_transport_udp_queue_drops_total", "Datagrams refused because the socket's write queue was full.", nil, nil)
	descCongested  = prometheus.NewDesc("imsdlg_transport_udp_congested_reads_total", "Full read batches taken while the UDP socket's queue held more than half its buffer: the proxy is behind its offered load.", nil, nil)
	descQueued     = prometheus.NewDesc("imsdlg_transport_udp_queued_total", "Datagrams handed to the socket's writer goroutine instead of written by their sender (socket buffer full, or socket busy where senders do not write side by side).", nil, nil)
	descKicks      = prometheus.NewDesc("imsdlg_transport_udp_read_kicks_total", "UDP sockets whose readers took nothing for a watchdog tick while a datagram waited, woken with an empty datagram.", nil, nil)
	descPanics     = prometheus.NewDesc("imsdlg_transport_handler_panics_total", "Panics recovered from the message handler.", nil, nil)
	descDown       = prometheus.NewDesc("imsdlg_transport_listeners_down_total", "Listeners that stopped other than by Close.", nil, nil)
	descBatch      = prometheus.NewDesc("imsdlg_transport_udp_batch_size", "Datagrams moved per recvmmsg (read) or sendmmsg (write) call.", []string{"direction"}, nil)
)

// Describe implements prometheus.Collector.
func (s *Stats) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descMessages, descBytes, descParseFail, descKeepalive, descWriteErr,
		descClosed, descOpen, descAccepted, descDialed, descDialFail, descRefused, descAcceptErr, descReadErr,
		descQueueDrops, descQueued, descCongested, descKicks, descPanics, descDown, descBatch} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (s *Stats) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	for _, p := range []struct {
		name string
		s    *protoStats
	}{{"udp", &s.udp}, {"tcp", &s.tcp}} {
		counter(descMessages, p.s.msgsIn.Load(), p.name, "in")
		counter(descMessages, p.s.msgsOut.Load(), p.name, "out")
		counter(descBytes, p.s.bytesIn.Load(), p.name, "in")
		counter(descBytes, p.s.bytesOut.Load(), p.name, "out")
		counter(descParseFail, p.s.parseFailures.Load(), p.name)
		counter(descKeepalive, p.s.keepalives.Load(), p.name)
		counter(descWriteErr, p.s.writeErrors.Load(), p.name)
	}
	counter(descClosed, s.framingFailures.Load(), "framing")
	counter(descClosed, s.readTimeouts.Load(), "read_timeout")
	counter(descClosed, s.idleClosed.Load(), "lifetime")
	counter(descClosed, s.writeTimeouts.Load(), "write_timeout")
	counter(descClosed, s.queueOverflows.Load(), "write_queue")
	ch <- prometheus.MustNewConstMetric(descOpen, prometheus.GaugeValue, float64(s.connsOpen.Load()))
	counter(descAccepted, s.connsAccepted.Load())
	counter(descDialed, s.connsDialed.Load())
	counter(descDialFail, s.dialFailures.Load())
	counter(descRefused, s.refusedMax.Load(), "max_connections")
	counter(descRefused, s.refusedPerIP.Load(), "max_per_ip")
	counter(descAcceptErr, s.acceptErrors.Load())
	counter(descReadErr, s.readErrors.Load())
	counter(descQueueDrops, s.udpQueueDrops.Load())
	counter(descQueued, s.udpQueued.Load())
	counter(descCongested, s.udpCongested.Load())
	counter(descKicks, s.udpReadKicks.Load())
	counter(descPanics, s.handlerPanics.Load())
	counter(descDown, s.listenersDown.Load())
	for _, h := range []struct {
		dir string
		h   *batchHist
	}{{"read", &s.readBatch}, {"write", &s.writeBatch}} {
		buckets := make(map[float64]uint64, len(batchBuckets))
		var cum uint64
		for i, le := range batchBuckets {
			cum += h.h.count[i].Load()
			buckets[float64(le)] = cum
		}
		ch <- prometheus.MustNewConstHistogram(descBatch, h.h.batches.Load(), float64(h.h.items.Load()), buckets, h.dir)
	}
}

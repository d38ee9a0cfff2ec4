package transport

import (
	"log/slog"
	"net"
	"net/netip"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
)

// benchInvite is tm's benchmark INVITE (tm/bench_test.go), a CRLF after
// its body included.
const benchInvite = "INVITE sip:bob@127.0.0.1:5060 SIP/2.0\r\n" +
	"Via: SIP/2.0/UDP 127.0.0.1:5081;branch=z9hG4bK-16507-3227-0\r\n" +
	"From: \"sipp\" <sip:alice@127.0.0.1:5081>;tag=16507SIPpTag003227\r\n" +
	"To: <sip:bob@127.0.0.1:5060>\r\nCall-ID: 3227-16507@127.0.0.1\r\nCSeq: 1 INVITE\r\n" +
	"Contact: <sip:alice@127.0.0.1:5081;transport=UDP>\r\nMax-Forwards: 70\r\n" +
	"Subject: bench\r\nContent-Type: application/sdp\r\nContent-Length: 128\r\n\r\n" +
	"v=0\r\no=uac 53655765 2353687637 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" +
	"m=audio 49170 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n\r\n"

// counter is a handler that counts parsed messages and lets a sender keep
// at most cap(window) datagrams in flight, so that none is dropped.
type counter struct {
	n      atomic.Int64
	target int64
	done   chan struct{}
	window chan struct{}
}

func newCounter(target, window int) *counter {
	return &counter{target: int64(target), done: make(chan struct{}), window: make(chan struct{}, window)}
}

func (c *counter) handle(m Message) {
	if m.Err != nil {
		panic(m.Err)
	}
	if c.window != nil {
		<-c.window
	}
	if c.n.Add(1) == c.target {
		close(c.done)
	}
}

// cpuMeter reports the process's CPU time per operation (sender and
// receiver together: the same sender in every benchmark), a steadier
// measure of the cost per message than wall time on a shared machine.
type cpuMeter struct{ start time.Duration }

func startCPU(b *testing.B) *cpuMeter {
	b.ResetTimer()
	return &cpuMeter{start: processCPU()}
}

func (m *cpuMeter) report(b *testing.B) {
	if used := processCPU() - m.start; used > 0 {
		b.ReportMetric(float64(used.Nanoseconds())/float64(b.N), "cpu-ns/op")
	}
}

func (c *counter) wait(b *testing.B) {
	select {
	case <-c.done:
	case <-time.After(time.Minute):
		b.Fatalf("received %d of %d", c.n.Load(), c.target)
	}
}

// BenchmarkUDPReceiveParse is the receive path per datagram over a real
// socket: recvmmsg, parse, handler call. The sender's allocations are none
// (a connected socket's Write), so allocs/op are the receiver's.
func BenchmarkUDPReceiveParse(b *testing.B) {
	cnt := newCounter(b.N, 512)
	tr, err := New(Options{Handler: cnt.handle, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer tr.Close()
	addr, err := tr.ListenUDP(any0(lo4))
	if err != nil {
		b.Fatal(err)
	}
	c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(addr))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	data := []byte(benchInvite)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	cpu := startCPU(b)
	for i := 0; i < b.N; i++ {
		cnt.window <- struct{}{}
		if _, err := c.Write(data); err != nil {
			b.Fatal(err)
		}
	}
	cnt.wait(b)
	b.StopTimer()
	cpu.report(b)
	s := tr.Stats()
	if n := s.readBatch.batches.Load(); n > 0 {
		b.ReportMetric(float64(s.readBatch.items.Load())/float64(n), "datagrams/recvmmsg")
	}
}

// BenchmarkUDPHandOff is the receive path without the socket: the work
// done per datagram once recvmmsg has returned it.
func BenchmarkUDPHandOff(b *testing.B) {
	tr, err := New(Options{Handler: func(Message) {}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer tr.Close()
	data := []byte(benchInvite)
	local, remote := netip.MustParseAddrPort("127.0.0.1:5060"), netip.MustParseAddrPort("127.0.0.1:5081")
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		tr.datagram(data, local, remote, remote.String(), false)
	}
}

// BenchmarkUDPSend is Send and the writer's sendmmsg per datagram.
func BenchmarkUDPSend(b *testing.B) {
	tr, err := New(Options{Handler: func(Message) {}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer tr.Close()
	if _, err := tr.ListenUDP(any0(lo4)); err != nil {
		b.Fatal(err)
	}
	sink, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(any0(lo4)))
	if err != nil {
		b.Fatal(err)
	}
	defer sink.Close()
	dst := Dest{Transport: UDP, Addr: unmap(sink.LocalAddr().(*net.UDPAddr).AddrPort())}
	data := []byte(benchInvite)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for tr.Send(data, dst) == ErrQueueFull {
			runtime.Gosched()
		}
	}
	for tr.stats.udp.msgsOut.Load()+tr.stats.udp.writeErrors.Load()-tr.stats.udpQueueDrops.Load() < uint64(b.N) {
		runtime.Gosched()
	}
	b.StopTimer()
	if n := tr.stats.writeBatch.batches.Load(); n > 0 {
		b.ReportMetric(float64(tr.stats.writeBatch.items.Load())/float64(n), "datagrams/sendmmsg")
	}
}

// BenchmarkTCPFraming is the framer alone over a stream of INVITEs read
// 8 KiB at a time.
func BenchmarkTCPFraming(b *testing.B) {
	const perRound = 200
	var stream []byte
	for i := 0; i < perRound; i++ {
		stream = append(stream, benchInvite...)
	}
	s := newStream(DefaultMaxMessageSize, newBufPool(DefaultTCPReadBuffer), newBufPool(DefaultMaxMessageSize+1))
	defer s.release()
	b.SetBytes(int64(len(stream)))
	b.ReportAllocs()
	for b.Loop() {
		frames := 0
		for p := stream; len(p) > 0; {
			n := copy(s.space(), p)
			p = p[n:]
			s.wrote(n)
			for {
				kind, _, _, _ := s.next()
				if kind == frameMessage {
					frames++
				} else if kind != frameSkip {
					break
				}
			}
		}
		if frames != perRound {
			b.Fatalf("%d frames", frames)
		}
	}
}

// BenchmarkTCPReceiveParse is the receive path per message over a real
// connection: read, frame, parse, handler call.
func BenchmarkTCPReceiveParse(b *testing.B) {
	cnt := newCounter(b.N, 0)
	cnt.window = nil
	tr, err := New(Options{Handler: cnt.handle, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	defer tr.Close()
	addr, err := tr.ListenTCP(any0(lo4))
	if err != nil {
		b.Fatal(err)
	}
	c, err := net.DialTCP("tcp4", nil, net.TCPAddrFromAddrPort(addr))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	const perWrite = 16
	var chunk []byte
	for i := 0; i < perWrite; i++ {
		chunk = append(chunk, benchInvite...)
	}
	b.SetBytes(int64(len(benchInvite)))
	b.ReportAllocs()
	cpu := startCPU(b)
	for i := 0; i < b.N; i += perWrite {
		w := chunk
		if left := b.N - i; left < perWrite {
			w = chunk[:left*len(benchInvite)]
		}
		if _, err := c.Write(w); err != nil {
			b.Fatal(err)
		}
	}
	cnt.wait(b)
	b.StopTimer()
	cpu.report(b)
}

// BenchmarkSipgoUDPReceiveParse is the baseline: sipgo's transport layer
// reading the same datagrams, with the read filter tm installs today (it
// parses each request once more to answer unparsable ones).
func BenchmarkSipgoUDPReceiveParse(b *testing.B) {
	cnt := newCounter(b.N, 512)
	parser := sip.NewParser()
	filter := func(_ sip.TransportReadProps, data []byte) ([]byte, error) {
		if _, err := parser.ParseSIP(data); err != nil {
			return nil, nil
		}
		return data, nil
	}
	tp := sip.NewTransportLayer(net.DefaultResolver, parser, nil,
		sip.WithTransportLayerLogger(slog.New(slog.DiscardHandler)), sip.WithTransportLayerReadFilter(filter))
	tp.OnMessage(func(m sip.Message) { cnt.handle(Message{Msg: m}) })
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	pc.(*net.UDPConn).SetReadBuffer(DefaultSocketBuffer)
	served := make(chan struct{})
	go func() {
		defer close(served)
		tp.ServeUDP(pc)
	}()
	defer func() {
		pc.Close()
		tp.Close()
		<-served
	}()
	c, err := net.DialUDP("udp4", nil, pc.LocalAddr().(*net.UDPAddr))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	data := []byte(benchInvite)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	cpu := startCPU(b)
	for i := 0; i < b.N; i++ {
		cnt.window <- struct{}{}
		if _, err := c.Write(data); err != nil {
			b.Fatal(err)
		}
	}
	cnt.wait(b)
	b.StopTimer()
	cpu.report(b)
}

// BenchmarkSipgoParse is the parse alone, for scale.
func BenchmarkSipgoParse(b *testing.B) {
	p := sip.NewParser()
	data := []byte(benchInvite)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := p.ParseSIP(data); err != nil {
			b.Fatal(err)
		}
	}
}

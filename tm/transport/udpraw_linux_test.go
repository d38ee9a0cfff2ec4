//go:build linux

package transport

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// inRecvmmsg counts this process's threads blocked in recvmmsg on fd, from
// /proc/self/task/*/syscall ("number arg1 ...", arg1 the descriptor).
func inRecvmmsg(t *testing.T, fd int) int {
	tasks, err := filepath.Glob("/proc/self/task/*/syscall")
	require.NoError(t, err)
	n := 0
	for _, p := range tasks {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // the thread is gone
		}
		f := strings.Fields(string(b))
		if len(f) < 2 || f[0] != strconv.Itoa(unix.SYS_RECVMMSG) {
			continue
		}
		if a, err := strconv.ParseUint(strings.TrimPrefix(f[1], "0x"), 16, 64); err == nil && int(a) == fd {
			n++
		}
	}
	return n
}

// Issue 14: with UDPRawIO a socket's readers wait in the kernel
// together. Through
// x/net's ReadBatch the descriptor's read lock let one reader into
// recvmmsg at a time, the others parked on the lock and were handed it
// with a goroutine wake-up per batch.
func TestUDPReadersWaitInRecvmmsgTogether(t *testing.T) {
	h := newHarness(t, Options{UDPReaders: 3, UDPRawIO: true, UDPBlockingReads: true})
	addr, err := h.ListenUDP(netip.AddrPortFrom(lo4, 0))
	require.NoError(t, err)
	s := (*h.udp.Load())[0].socks[0]
	require.True(t, s.raw, "UDPRawIO on a blocking socket")
	var fd int
	require.NoError(t, s.rc.Control(func(f uintptr) { fd = int(f) }))

	deadline := time.Now().Add(waitFor)
	for inRecvmmsg(t, fd) < 3 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond) // polling a condition, not timing it
	}
	require.Equal(t, 3, inRecvmmsg(t, fd), "every reader waits inside recvmmsg")

	// And they still read: each datagram is handed up once.
	c := udpClient(t, lo4)
	for i := range 20 {
		_, err := c.WriteToUDPAddrPort(request("OPTIONS", fmt.Sprint("together-", i), "", ""), addr)
		require.NoError(t, err)
	}
	seen := map[string]bool{}
	for range 20 {
		m := h.next(t)
		require.NoError(t, m.Err)
		seen[m.Msg.CallID().Value()] = true
		assert.Equal(t, unmap(c.LocalAddr().(*net.UDPAddr).AddrPort()), m.Remote, "the source read from the raw address")
	}
	assert.Len(t, seen, 20)
}

// Issue 14: with UDPRawIO, or UDPRawWrites on the netpoller's sockets,
// senders on one socket write side by side, without the descriptor's
// write lock; every datagram arrives whole, to its address, and none
// waited for the writer goroutine while the socket had room.
func TestUDPConcurrentSendersWriteAtOnce(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    Options
	}{
		{"raw I/O, blocking reads", Options{UDPRawIO: true, UDPBlockingReads: true}},
		{"raw writes, netpoller reads", Options{UDPRawWrites: true}},
	} {
		t.Run(tc.name, func(t *testing.T) { concurrentSenders(t, tc.o) })
	}
}

func concurrentSenders(t *testing.T, o Options) {
	h := newHarness(t, o)
	_, err := h.ListenUDP(netip.AddrPortFrom(lo4, 0))
	require.NoError(t, err)
	const senders, each = 8, 50
	peers := make([]*net.UDPConn, senders)
	for i := range peers {
		peers[i] = udpClient(t, lo4)
		require.NoError(t, peers[i].SetReadBuffer(1<<20))
	}
	var wg sync.WaitGroup
	for i := range senders {
		wg.Go(func() {
			dst := unmap(peers[i].LocalAddr().(*net.UDPAddr).AddrPort())
			for j := range each {
				assert.NoError(t, h.Send(response(200, fmt.Sprintf("s%d-%d", i, j)), Dest{Transport: UDP, Addr: dst}))
			}
		})
	}
	wg.Wait()
	for i, c := range peers {
		for j := range each {
			b, _ := readUDP(t, c)
			assert.Contains(t, string(b), fmt.Sprintf("Call-ID: s%d-%d\r\n", i, j), "peer %d gets its datagrams in order", i)
		}
	}
	snap := h.Stats().Snapshot()
	assert.Equal(t, uint64(senders*each), snap["udp_messages_out"])
	assert.Zero(t, snap["udp_queued"], "no datagram waited for the writer goroutine")
}

// Issue 14: reading a datagram off the socket costs no heap object beyond
// what handing it up costs (parse and all). x/net's ReadBatch made a
// net.UDPAddr per datagram: seven objects per record-routed call.
func TestUDPReadAllocatesNothingPerDatagram(t *testing.T) {
	for _, tc := range []struct{ netpoll, rawReads bool }{{false, false}, {true, false}, {true, true}} {
		t.Run(fmt.Sprintf("netpoll=%v/raw_reads=%v", tc.netpoll, tc.rawReads), func(t *testing.T) {
			const per = 200
			var got sync.WaitGroup
			h := newHarness(t, Options{UDPReaders: 1, UDPBlockingReads: !tc.netpoll, UDPRawReads: tc.rawReads,
				Handler: func(Message) { got.Done() }})
			addr, err := h.ListenUDP(netip.AddrPortFrom(lo4, 0))
			require.NoError(t, err)
			c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(addr))
			require.NoError(t, err)
			defer c.Close()
			data := []byte(benchInvite)
			local, remote := addr, unmap(c.LocalAddr().(*net.UDPAddr).AddrPort())
			handOff := testing.AllocsPerRun(per, func() {
				got.Add(1)
				h.datagram(data, local, remote, remote.String(), false)
			})
			got.Add(1) // warm the reader's caches (the source's string)
			_, err = c.Write(data)
			require.NoError(t, err)
			got.Wait()
			socket := testing.AllocsPerRun(1, func() {
				for range per {
					got.Add(1)
					if _, err := c.Write(data); err != nil {
						panic(err)
					}
					got.Wait() // one at a time: none dropped
				}
			}) / per
			assert.LessOrEqual(t, socket, handOff+0.2, "heap objects per datagram read from the socket (%.1f to hand one up)", handOff)
		})
	}
}

// A reader behind its load: the datagrams of a full batch read while more
// than half the socket buffer waits behind it come up Congested (and are
// counted, udp_congested_reads); once the queue has drained they do not.
// Both read modes.
func TestUDPCongestedBatches(t *testing.T) {
	for _, blocking := range []bool{false, true} {
		t.Run(fmt.Sprintf("blocking=%v", blocking), func(t *testing.T) {
			release := make(chan struct{})
			var mu sync.Mutex
			var flags []bool
			markerCongested := -1
			h := newHarness(t, Options{UDPReaders: 1, UDPBatch: 4, UDPReadBuffer: 32 << 10, UDPBlockingReads: blocking,
				Handler: func(m Message) {
					mu.Lock()
					flags = append(flags, m.Congested)
					first := len(flags) == 1
					if strings.Contains(string(m.Raw), "marker") {
						markerCongested = 0
						if m.Congested {
							markerCongested = 1
						}
					}
					mu.Unlock()
					if first {
						<-release // the reader stalls: the socket's queue fills
					}
				}})
			addr, err := h.ListenUDP(netip.AddrPortFrom(lo4, 0))
			require.NoError(t, err)
			c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(addr))
			require.NoError(t, err)
			defer c.Close()
			_, err = c.Write(invite("first"))
			require.NoError(t, err)
			eventually(t, "the reader holds the first datagram", func() bool {
				mu.Lock()
				defer mu.Unlock()
				return len(flags) == 1
			})
			for i := range 200 {
				_, err := c.Write(invite("queued-" + strconv.Itoa(i)))
				require.NoError(t, err)
			}
			close(release)
			eventually(t, "the queue drained", func() bool {
				mu.Lock()
				defer mu.Unlock()
				return len(flags) > 8 && stat(h.Transport, "udp_messages_in") == uint64(len(flags))
			})
			// Markers until one comes off the drained queue: not congested.
			eventually(t, "a marker read off an empty queue", func() bool {
				mu.Lock()
				done := markerCongested == 0
				mu.Unlock()
				if !done {
					_, _ = c.Write(invite("marker"))
				}
				return done
			})
			mu.Lock()
			defer mu.Unlock()
			congested := 0
			for _, f := range flags {
				if f {
					congested++
				}
			}
			assert.Positive(t, congested, "datagrams read off a queue over half the buffer (of %d)", len(flags))
			assert.Less(t, congested, len(flags), "not all of them")
			assert.Positive(t, stat(h.Transport, "udp_congested_reads"))
		})
	}
}

// Issue 14: UDPRawReads makes the recvmmsg of netpoller readers a raw
// system call, and only theirs: a blocking reader sleeps in the kernel and
// must enter the scheduler's system-call state, or its processor would be
// held for as long as no datagram comes. Each reader mode still reads.
func TestUDPRawReadsOnlyWhereReadsCannotBlock(t *testing.T) {
	for _, tc := range []struct {
		name      string
		o         Options
		unwatched bool
	}{
		{"netpoller reads, raw reads", Options{UDPRawReads: true}, true},
		{"netpoller reads", Options{}, false},
		{"blocking reads, raw reads asked", Options{UDPBlockingReads: true, UDPRawReads: true}, false},
		{"raw I/O, raw reads asked", Options{UDPBlockingReads: true, UDPRawIO: true, UDPRawReads: true}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.o)
			addr, err := h.ListenUDP(netip.AddrPortFrom(lo4, 0))
			require.NoError(t, err)
			s := (*h.udp.Load())[0].socks[0]
			assert.Equal(t, tc.unwatched, s.rawReads, "the socket's read mode")
			bufs := [][1][]byte{{make([]byte, 64)}}
			flags := 0
			if s.blocking {
				flags = readFlags
			}
			assert.Equal(t, tc.unwatched, newRawReader(bufs, nil, flags, s.raw, s.rawReads).unwatched, "the reader's system call")
			c := udpClient(t, lo4)
			for i := range 3 {
				_, err = c.WriteToUDPAddrPort(request("OPTIONS", fmt.Sprint("mode-", i), "", ""), addr)
				require.NoError(t, err)
				m := h.next(t)
				assert.Equal(t, unmap(c.LocalAddr().(*net.UDPAddr).AddrPort()), m.Remote)
			}
		})
	}
}

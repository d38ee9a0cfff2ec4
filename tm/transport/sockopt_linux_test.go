//go:build linux

package transport

import (
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// A UDP socket read in blocking mode carries a receive timeout, so that a
// reader whose wake-up the kernel lost (Linux 6.18, see blockingReads)
// falls back to Go's netpoller within blockedReadTimeout instead of
// sleeping on a queued datagram for good; and the socket still delivers.
func TestUDPBlockingReadersHaveAReceiveTimeout(t *testing.T) {
	h := newHarness(t, Options{})
	addr, err := h.ListenUDP(any0(lo4))
	require.NoError(t, err)
	groups := *h.Transport.udp.Load()
	require.Len(t, groups, 1)
	for _, s := range groups[0].socks {
		require.True(t, s.blocking, "Linux sockets are read in blocking mode")
		rc, err := s.uc.SyscallConn()
		require.NoError(t, err)
		var tv *unix.Timeval
		var gerr error
		require.NoError(t, rc.Control(func(fd uintptr) {
			tv, gerr = unix.GetsockoptTimeval(int(fd), unix.SOL_SOCKET, unix.SO_RCVTIMEO)
		}))
		require.NoError(t, gerr)
		require.Equal(t, blockedReadTimeout.Nanoseconds(), tv.Nano(), "SO_RCVTIMEO")
	}
	c := udpClient(t, lo4)
	for i := range 3 {
		_, err = c.WriteToUDPAddrPort(invite("to-"+string(rune('a'+i))), addr)
		require.NoError(t, err)
		m := h.next(t)
		require.NoError(t, m.Err)
		require.Equal(t, "to-"+string(rune('a'+i)), callID(t, m.Msg))
	}
}

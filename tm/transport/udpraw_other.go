//go:build !linux

package transport

import (
	"errors"
	"net/netip"
	"syscall"

	"golang.org/x/net/ipv4"
)

// rawSupported is false: the readers and senders go through x/net and the
// net package.
const rawSupported = false

type rawReader struct{}

func newRawReader([][1][]byte, [][]byte, int, bool, bool) *rawReader { return &rawReader{} }

func (*rawReader) read(syscall.RawConn, []ipv4.Message, []netip.AddrPort) (int, error) {
	return 0, errors.ErrUnsupported
}

func sendRaw(syscall.RawConn, bool, []byte, netip.AddrPort, []byte) (bool, error) { return false, nil }

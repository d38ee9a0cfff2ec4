//go:build !linux

package transport

import (
	"errors"
	"syscall"
)

// reusePortSupported is false: elsewhere SO_REUSEPORT either does not
// exist or does not spread datagrams over the sockets (BSDs give them all to
// the last one bound), so one socket serves an address.
const reusePortSupported = false

var reusePortControl func(network, address string, c syscall.RawConn) error

func socketBuffers(syscall.RawConn) (rcv, snd int, err error) {
	return 0, 0, errors.ErrUnsupported
}

// blockingReads is false: readers wait in Go's netpoller, and Close wakes
// them with a read deadline.
func blockingReads(syscall.RawConn) bool { return false }

const readFlags = 0

func wakeReaders(syscall.RawConn) {}

// watchdogSupported is false: the readers wait in Go's netpoller, and the
// read watchdog is not started.
const watchdogSupported = false

func pendingDatagram(syscall.RawConn) (int, error) { return 0, errors.ErrUnsupported }

// queueOverHalf: the queue's size is not asked for here.
func queueOverHalf(syscall.RawConn) bool { return false }

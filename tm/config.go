package tm

import (
	"errors"
	"fmt"
	"time"
)

// Config holds the parameters of the transaction layer. Field names follow
// the OpenSIPS tm manual (fr_timeout, fr_inv_timeout, ...); the daemon maps
// its `tm.` config keys onto them one to one.
type Config struct {
	// FrTimeout (fr_timeout) bounds the wait for the first reply of a branch.
	FrTimeout time.Duration
	// FrInvTimeout (fr_inv_timeout) bounds the wait for a final reply of an
	// INVITE branch once it sent a provisional reply.
	FrInvTimeout time.Duration
	// RestartFrOnEachReply (restart_fr_on_each_reply) re-arms fr_inv_timeout
	// on every provisional reply of the branch.
	RestartFrOnEachReply bool
	// Disable6xxBlock (disable_6xx_block): when false a 6xx reply stops any
	// further branch (RFC 3261 §16.7 step 5).
	Disable6xxBlock bool
	// Auto100Trying (auto_100trying) answers every proxied INVITE with 100
	// Trying at once, so the upstream hop stops retransmitting.
	Auto100Trying bool
	// T1, T2 and T4 (T1_timer, T2_timer) are the RFC 3261 §17 base timers;
	// every other RFC timer derives from them.
	T1, T2, T4 time.Duration
	// WtTimer (wt_timer) is how long a completed transaction stays to absorb
	// late messages (Timer D / J / K on unreliable transports).
	WtTimer time.Duration
	// MaxMessageSize is the largest request we accept; bigger ones get 513.
	MaxMessageSize int
	// UDPMaxSize is the size above which a request that would go over UDP
	// is sent over TCP instead (RFC 3261 §18.1.1: 200 bytes below the path
	// MTU of 1500).
	UDPMaxSize int
	// CancelWait is how long a CANCEL that matches no INVITE is held in case
	// its INVITE is still on its way (sipgo handles messages concurrently, so
	// a CANCEL can overtake its INVITE); afterwards it is answered 481.
	CancelWait time.Duration
	// LocalTimeout bounds a locally originated request (t_uac_dlg) that gets
	// no final reply.
	LocalTimeout time.Duration
}

// DefaultConfig returns the defaults of the tm manual.
func DefaultConfig() Config {
	return Config{
		FrTimeout:            30 * time.Second,
		FrInvTimeout:         120 * time.Second,
		RestartFrOnEachReply: true,
		Disable6xxBlock:      false,
		Auto100Trying:        true,
		T1:                   500 * time.Millisecond,
		T2:                   4 * time.Second,
		T4:                   5 * time.Second,
		WtTimer:              5 * time.Second,
		MaxMessageSize:       65535,
		UDPMaxSize:           1300,
		CancelWait:           500 * time.Millisecond,
		LocalTimeout:         32 * time.Second,
	}
}

// Validate names the first parameter whose value cannot work.
func (c Config) Validate() error {
	var errs []error
	pos := func(name string, d time.Duration) {
		if d <= 0 {
			errs = append(errs, fmt.Errorf("%s must be positive, got %v", name, d))
		}
	}
	pos("fr_timeout", c.FrTimeout)
	pos("fr_inv_timeout", c.FrInvTimeout)
	pos("T1_timer", c.T1)
	pos("T2_timer", c.T2)
	pos("T4_timer", c.T4)
	pos("wt_timer", c.WtTimer)
	pos("cancel_wait", c.CancelWait)
	pos("local_timeout", c.LocalTimeout)
	if c.T1 > 0 && c.T2 > 0 && c.T2 < c.T1 {
		errs = append(errs, fmt.Errorf("T2_timer (%v) must not be below T1_timer (%v)", c.T2, c.T1))
	}
	if c.MaxMessageSize < 1024 || c.MaxMessageSize > 65535 {
		errs = append(errs, fmt.Errorf("max_message_size must be within 1024..65535, got %d", c.MaxMessageSize))
	}
	if c.UDPMaxSize < 500 || c.UDPMaxSize > 65000 {
		errs = append(errs, fmt.Errorf("udp_max_size must be within 500..65000, got %d", c.UDPMaxSize))
	}
	return errors.Join(errs...)
}

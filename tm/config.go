package tm

import (
	"errors"
	"fmt"
	"strconv"
	"time"
)

// Config holds the parameters of the transaction layer. Field names follow
// the OpenSIPS tm manual (fr_timeout, fr_inv_timeout, ...).
//
// The tags are for a daemon that reads these parameters from its own
// configuration, so that a new parameter needs no code there: `config` is
// the key (the manual's name, which operators know), and `unit` is what a
// plain integer counts for a duration, as in the manual: "s" or "ms".
type Config struct {
	// FrTimeout (fr_timeout) bounds the wait for the first reply of a branch.
	FrTimeout time.Duration `config:"fr_timeout" unit:"s"`
	// FrInvTimeout (fr_inv_timeout) bounds the wait for a final reply of an
	// INVITE branch once it sent a provisional reply.
	FrInvTimeout time.Duration `config:"fr_inv_timeout" unit:"s"`
	// RestartFrOnEachReply (restart_fr_on_each_reply) re-arms fr_inv_timeout
	// on every provisional reply of the branch.
	RestartFrOnEachReply bool `config:"restart_fr_on_each_reply"`
	// Disable6xxBlock (disable_6xx_block): when false a 6xx reply stops any
	// further branch (RFC 3261 §16.7 step 5).
	Disable6xxBlock bool `config:"disable_6xx_block"`
	// Auto100Trying (auto_100trying) answers every proxied INVITE with 100
	// Trying at once, so the upstream hop stops retransmitting.
	Auto100Trying bool `config:"auto_100trying"`
	// RURIMatching and Via1Matching (ruri_matching, via1_matching): the
	// Request-URI and the top Via take part in matching requests of RFC
	// 2543 elements (no magic cookie) to their transaction, as §17.2.3
	// says. Off only for broken devices whose CANCEL or ACK carries
	// another Request-URI or top Via than their INVITE.
	RURIMatching bool `config:"ruri_matching"`
	Via1Matching bool `config:"via1_matching"`
	// AllowNoCancel (t_relay's flag allow-no-cancel, for every request;
	// Decision.AllowNoCancel per request) follows a caller's
	// Request-Disposition: no-cancel (RFC 3841 §9.1): a 2xx leaves the
	// other branches be.
	AllowNoCancel bool `config:"allow_no_cancel"`
	// T1, T2 and T4 (T1_timer, T2_timer, T4_timer) are the RFC 3261 §17
	// base timers; every other RFC timer derives from them.
	T1 time.Duration `config:"T1_timer" unit:"ms"`
	T2 time.Duration `config:"T2_timer" unit:"ms"`
	T4 time.Duration `config:"T4_timer" unit:"ms"`
	// WtTimer (wt_timer) is how long a completed transaction stays to absorb
	// late messages: Timers D and J on unreliable transports, L and M
	// (RFC 6026's Accepted state, where 2xx retransmissions are relayed)
	// on every transport. The RFC's 64*T1 when set to 32s.
	WtTimer time.Duration `config:"wt_timer" unit:"s"`
	// MaxMessageSize is the largest request we accept; bigger ones get 513.
	MaxMessageSize int `config:"max_message_size"`
	// UDPMaxSize is the size above which a request that would go over UDP
	// is sent over TCP instead (RFC 3261 §18.1.1: 200 bytes below the path
	// MTU of 1500).
	UDPMaxSize int `config:"udp_max_size"`
	// CancelWait is how long a CANCEL that matches no INVITE is held in case
	// its INVITE is still on its way (several readers handle a socket's
	// messages at once, so a CANCEL can overtake its INVITE); afterwards it
	// is answered 481.
	CancelWait time.Duration `config:"cancel_wait" unit:"ms"`
	// LocalTimeout bounds a locally originated request (t_uac_dlg) that gets
	// no final reply.
	LocalTimeout time.Duration `config:"local_timeout" unit:"s"`
	// FollowRedirects (Kamailio uac_redirect, OpenSIPS's failure route):
	// when the best reply of a step is a 3xx, its Contacts are tried as a
	// new serial step, at most this many times per transaction; 0 relays
	// the 3xx upstream (RFC 3261 §16.7 step 5 lets a proxy recurse).
	FollowRedirects int `config:"follow_redirects"`
	// MaxViaHeaders and MaxHeaders bound what one request may hold until
	// its transaction ends (Timer H keeps an INVITE 32 s): a 63 KB INVITE
	// of 1151 Vias cost a megabyte. Beyond them: 400. Max-Forwards 70 and a
	// Via per hop make 70 Vias the most a real request carries.
	MaxViaHeaders int `config:"max_via_headers"`
	MaxHeaders    int `config:"max_headers"`
	// MaxTransactions caps the transactions in progress: an overloaded
	// proxy answers new requests outside dialogs 503 with Retry-After
	// (RFC 3261 §21.5.4) rather than run out of memory; requests within
	// dialogs (a BYE frees what a call holds) still go on. 0: no cap.
	MaxTransactions int `config:"max_transactions"`
	// ShedCongested answers new requests outside dialogs 503 with
	// Retry-After while the UDP socket they came on is congested: a full
	// read batch with more than half the socket buffer queued behind it
	// (transport.Message.Congested, Linux). That queue is work the proxy
	// is not keeping up with; every call taken in makes more, and the
	// retransmissions of calls already late make it grow until the proxy
	// serves none (RFC 3261 §21.5.4). Requests within dialogs, responses,
	// ACK and CANCEL go on. Off by default: against sipp, whose scenario
	// takes no 503 and retransmits the INVITE, it made a fork 3000 step
	// collapse further (docs/DESIGN.md §9); measure with callers that
	// take a 503 before turning it on.
	ShedCongested bool `config:"shed_congested"`
	// CancelHeaders are header lines ("Name: value") added to every CANCEL
	// the proxy sends (a branch cancelled because another answered, the
	// caller's CANCEL passed on, t_cancel_branch), e.g. an operator's
	// X-header that tells a callee's SBC why.
	CancelHeaders []string `config:"cancel_headers"`

	// ReuseMessageText puts the header text of each received message in a
	// pooled buffer, reused once the message is released (issue 14: 2 KB
	// per call less for the collector). Every string read off a received
	// message then lives only as long as the message: a module copies
	// (strings.Clone) what it keeps past the call that hands the message
	// over. Off by default, where such strings may be kept (the ownership
	// rule, DESIGN §9); imsproxy, whose modules copy, turns it on. Not an
	// operator's key: it is a promise of the code embedding tm.
	ReuseMessageText bool `config:"-"`
}

// DefaultConfig returns the defaults of the tm manual.
func DefaultConfig() Config {
	return Config{
		FrTimeout:            30 * time.Second,
		FrInvTimeout:         120 * time.Second,
		RestartFrOnEachReply: true,
		Disable6xxBlock:      false,
		Auto100Trying:        true,
		RURIMatching:         true,
		Via1Matching:         true,
		T1:                   500 * time.Millisecond,
		T2:                   4 * time.Second,
		T4:                   5 * time.Second,
		WtTimer:              5 * time.Second,
		MaxMessageSize:       65535,
		UDPMaxSize:           1300,
		CancelWait:           500 * time.Millisecond,
		LocalTimeout:         32 * time.Second,
		FollowRedirects:      0,
		MaxViaHeaders:        70,
		MaxHeaders:           256,
		MaxTransactions:      100000,
		ShedCongested:        false,
		CancelHeaders:        []string{},
	}
}

// Validate reports every parameter whose value cannot work, joined. Each
// message reads "PARAM = VALUE: what would work", PARAM being the manual's
// name, so a caller can put its own key in front of it.
func (c Config) Validate() error {
	var errs []error
	bad := func(name string, val any, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s = %s: %s", name, paramValue(val), fmt.Sprintf(format, args...)))
	}
	pos := func(name string, d time.Duration) {
		if d <= 0 {
			bad(name, d, "must be positive")
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
		bad("T2_timer", c.T2, "must not be below T1_timer (%v)", c.T1)
	}
	if c.MaxMessageSize < 1024 || c.MaxMessageSize > 65535 {
		bad("max_message_size", c.MaxMessageSize, "must be within 1024..65535")
	}
	if c.UDPMaxSize < 500 || c.UDPMaxSize > 65000 {
		bad("udp_max_size", c.UDPMaxSize, "must be within 500..65000")
	}
	if c.MaxViaHeaders < 2 {
		bad("max_via_headers", c.MaxViaHeaders, "must be at least 2 (the caller's Via and one proxy's)")
	}
	if c.MaxHeaders < 16 {
		bad("max_headers", c.MaxHeaders, "must be at least 16")
	}
	if c.MaxTransactions < 0 {
		bad("max_transactions", c.MaxTransactions, "must not be negative (0: no cap)")
	}
	for i, h := range c.CancelHeaders {
		if _, _, err := CheckHeaderLine(h); err != nil {
			bad(fmt.Sprintf("cancel_headers[%d]", i), h, "%v", err)
		}
	}
	if c.FollowRedirects < 0 || c.FollowRedirects > maxRedirects {
		bad("follow_redirects", c.FollowRedirects, "must be within 0..%d (0: relay 3xx upstream)", maxRedirects)
	}
	return errors.Join(errs...)
}

// paramValue quotes a duration as it would be written ("0s"), so that it
// cannot be mistaken for an integer in the parameter's unit.
func paramValue(v any) string {
	if d, ok := v.(time.Duration); ok {
		return strconv.Quote(d.String())
	}
	return fmt.Sprint(v)
}

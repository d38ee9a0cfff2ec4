package imsdialog

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/imsdlg/imsdlg/tm"
)

// Match modes of dlg_match_mode (ims_dialog manual §5.8).
const (
	MatchDIDOnly     = 0 // sequential requests match by the did cookie of our Route only
	MatchDIDFallback = 1 // the did cookie, else Call-ID and tags
	MatchDIDNone     = 2 // Call-ID and tags only
)

// Config holds the dialog module parameters, named as in the seeds.
//
// The tags are for a daemon that reads these parameters from its own
// configuration, so that a new parameter needs no code there: `config` is
// the key (the seeds' name), and `unit` is what a plain integer counts for
// a duration, as in the seeds: "s" or "ms". ",large" marks a duration whose
// normal values run to thousands of seconds (default_timeout: 43200), which
// a daemon must then not take for milliseconds written as seconds.
type Config struct {
	// Enable creates a dialog for every initial INVITE (dlg_flag set on
	// all of them).
	Enable bool `config:"enable"`
	// HashSize (hash_size) is the number of entries of the dialog table;
	// a power of two.
	HashSize int `config:"hash_size"`
	// RRParam (rr_param) names the Record-Route parameter carrying the
	// dialog cookie.
	RRParam string `config:"rr_param"`
	// DefaultTimeout (default_timeout) is a dialog's lifetime.
	DefaultTimeout time.Duration `config:"default_timeout" unit:"s,large"`
	// DetectSpirals (detect_spirals) joins an INVITE that comes back to us
	// through an AS to its dialog instead of creating a second one.
	DetectSpirals bool `config:"detect_spirals"`
	// MatchMode (dlg_match_mode): MatchDIDOnly, MatchDIDFallback, MatchDIDNone.
	MatchMode int `config:"dlg_match_mode"`
	// ExtraHeaders (dlg_extra_hdrs) go into every BYE the module sends,
	// as "Name: value".
	ExtraHeaders []string `config:"dlg_extra_hdrs"`
	// EarlyTerminateCode is the final reply sent upstream when an early
	// dialog is terminated.
	EarlyTerminateCode int `config:"early_terminate_code"`
	// ByeTimeout bounds the wait for the replies to the BYEs we send.
	ByeTimeout time.Duration `config:"bye_timeout" unit:"s"`
	// Second2xx says what a second answer gets (a 2xx from another callee
	// once one answered, RFC 3261 §16.7 step 5): Second2xxRelay relays it
	// like every 2xx and tracks its leg until the caller's BYE (RFC 5407
	// §3.1.2); Second2xxAbsorb keeps it from the caller and ends it both
	// ways. Never both.
	Second2xx string `config:"second_2xx"`
	// Ping (the create_dialog flags P and p of OpenSIPS) says which parties
	// of every confirmed dialog get an in-dialog OPTIONS each
	// OptionsPingInterval: none, caller, callee or both. A ping answered
	// 408 or 481, or not answered by the next one, ends the dialog with BYE
	// both ways (end reason ping_timeout), which gives back its profile
	// counts: a call whose phone died does not hold its limit until
	// default_timeout. Manager.SetPing changes it per call.
	Ping string `config:"ping"`
	// OptionsPingInterval (options_ping_interval) is the time between two
	// pings of a party.
	OptionsPingInterval time.Duration `config:"options_ping_interval" unit:"s"`
	// ReinvitePing (the create_dialog flags R and r) says which parties get
	// a re-INVITE each ReinvitePingInterval instead: it offers again,
	// unchanged, the session description the other party last sent, so it
	// also proves the media session is still known (a UA that answers
	// OPTIONS from its stack while the call is gone answers a re-INVITE
	// 481). A side pinged so gets no OPTIONS ping. The failure rules are
	// the OPTIONS ping's; a 491 or 488 shows the party is there.
	// Manager.SetReinvitePing changes it per call.
	ReinvitePing string `config:"reinvite_ping"`
	// ReinvitePingInterval (reinvite_ping_interval) is the time between two
	// re-INVITE pings of a party; it must exceed tm.fr_timeout, or a ping
	// would be judged before it could time out (the seed's warning).
	ReinvitePingInterval time.Duration `config:"reinvite_ping_interval" unit:"s"`
	// KeepSDP keeps the parties' last session descriptions in every
	// confirmed dialog, so that dlg.send_sequential can re-INVITE a party
	// with the other party's SDP without being given one. Off by default:
	// an SDP is the largest part of a dialog (dialogs pinged by re-INVITE
	// keep theirs anyway).
	KeepSDP bool `config:"keep_sdp"`
	// AckTimeout bounds how long an answered dialog waits for the caller's
	// ACK (CONFIRMED_NA), and for a new one when the callee repeats its 2xx
	// after an ACK. A caller that never ACKs (its 2xx all lost, or it
	// crashed) leaves a session nobody holds: if the callee was still
	// repeating its 2xx in the second half of the wait, the dialog ends with
	// BYE both ways (end reason no_ack), as RFC 3261 §13.3.1.4 asks of the
	// callee, which may not do it. A callee that stopped repeating early
	// got an ACK we did not see (a caller ignoring Record-Route) or died
	// after answering: both parties then get an in-dialog OPTIONS, and the
	// call ends (no_ack) only if one of them does not answer or answers 408
	// or 481. 64*T1 by default.
	AckTimeout time.Duration `config:"ack_timeout" unit:"s"`
	// TimeoutRefresh: a re-INVITE or UPDATE within a confirmed dialog, from
	// either side, starts its timeout again (Kamailio's timeout_noreset
	// set to 0): a call that renegotiates is alive. Off by default, as in
	// the first round: the timeout then bounds the call from its answer.
	TimeoutRefresh bool `config:"timeout_refresh"`
	// EndRaces is OpenSIPS create_dialog's flag E for every dialog: a call
	// answered across the caller's CANCEL (RFC 5407's 200 OK vs CANCEL:
	// the 2xx goes up, §16.10, to a caller that gave up on the call) is
	// ended with BYE both ways RaceConditionTimeout after the answer,
	// unless it ends sooner (end reason race_condition). Off by default:
	// the caller is expected to ACK and BYE that answer itself. The other
	// race the flag names, a caller's BYE of an early dialog met by a 2xx,
	// needs no timer here: that BYE ends the dialog, and a 2xx after it is
	// ACKed and BYEd by the proxy at once.
	EndRaces bool `config:"end_races"`
	// RaceConditionTimeout is race_condition_timeout (5 s).
	RaceConditionTimeout time.Duration `config:"race_condition_timeout" unit:"s"`
	// ValidateDialog (OpenSIPS validate_dialog, fix_route_dialog) checks
	// every request within a dialog against it: CSeq above the sender's
	// last, Request-URI the remote target, Route the route set. off; log
	// (count and log, relay as is); reject (400 naming the check; the
	// dialog never sees it, so a forged BYE ends nothing); fix (send it
	// along the dialog's route set to its remote target; a CSeq out of
	// order is refused). auto (the default) is off, and fix in the imsproxy
	// daemon when its role is pcscf. Counted per check (dlg.stats
	// invalid_cseq, invalid_remote_target, invalid_route_set).
	ValidateDialog string `config:"validate_dialog"`
}

// Policies of Config.Second2xx.
const (
	Second2xxRelay  = "relay"
	Second2xxAbsorb = "absorb"
)

// DefaultConfig returns the seeds' defaults.
func DefaultConfig() Config {
	return Config{
		Enable:               true,
		HashSize:             4096,
		RRParam:              "did",
		DefaultTimeout:       43200 * time.Second,
		DetectSpirals:        true,
		MatchMode:            MatchDIDFallback,
		EarlyTerminateCode:   487,
		ByeTimeout:           32 * time.Second,
		Second2xx:            Second2xxRelay,
		Ping:                 "none",
		OptionsPingInterval:  30 * time.Second,
		ReinvitePing:         "none",
		ValidateDialog:       ValidateAuto,
		ReinvitePingInterval: 300 * time.Second,
		AckTimeout:           32 * time.Second,
		RaceConditionTimeout: 5 * time.Second,
	}
}

// Validate reports every unusable parameter, joined. Each message reads
// "PARAM = VALUE: what would work", PARAM being the seeds' name, so a
// caller can put its own key in front of it.
func (c Config) Validate() error {
	var errs []error
	bad := func(name string, val any, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s = %s: %s", name, paramValue(val), fmt.Sprintf(format, args...)))
	}
	if c.HashSize < 1 || c.HashSize > 1<<20 || c.HashSize&(c.HashSize-1) != 0 {
		bad("hash_size", c.HashSize, "must be a power of two within 1..1048576")
	}
	if c.RRParam == "" || strings.ContainsAny(c.RRParam, ";=,<>\" \t") {
		bad("rr_param", c.RRParam, "must be a URI parameter name")
	}
	if c.DefaultTimeout <= 0 {
		bad("default_timeout", c.DefaultTimeout, "must be positive")
	}
	if c.MatchMode < MatchDIDOnly || c.MatchMode > MatchDIDNone {
		bad("dlg_match_mode", c.MatchMode, "must be 0, 1 or 2")
	}
	if c.EarlyTerminateCode < 300 || c.EarlyTerminateCode > 699 {
		bad("early_terminate_code", c.EarlyTerminateCode, "must be a final error code 300..699")
	}
	if c.Second2xx != Second2xxRelay && c.Second2xx != Second2xxAbsorb {
		bad("second_2xx", c.Second2xx, "must be %s or %s", Second2xxRelay, Second2xxAbsorb)
	}
	if c.ByeTimeout <= 0 {
		bad("bye_timeout", c.ByeTimeout, "must be positive")
	}
	if _, err := ParsePing(c.Ping); err != nil {
		bad("ping", c.Ping, "must be none, caller, callee or both")
	}
	if c.AckTimeout <= 0 {
		bad("ack_timeout", c.AckTimeout, "must be positive")
	}
	if c.RaceConditionTimeout <= 0 {
		bad("race_condition_timeout", c.RaceConditionTimeout, "must be positive")
	}
	if c.OptionsPingInterval < time.Second {
		bad("options_ping_interval", c.OptionsPingInterval, "must be at least 1s")
	}
	switch c.ValidateDialog {
	case "", ValidateAuto, ValidateOff, ValidateLog, ValidateReject, ValidateFix:
	default:
		bad("validate_dialog", c.ValidateDialog, "must be auto, off, log, reject or fix")
	}
	if _, err := ParsePing(c.ReinvitePing); err != nil {
		bad("reinvite_ping", c.ReinvitePing, "must be none, caller, callee or both")
	}
	if c.ReinvitePingInterval < time.Second {
		bad("reinvite_ping_interval", c.ReinvitePingInterval, "must be at least 1s")
	}
	for i, h := range c.ExtraHeaders {
		if _, _, err := tm.CheckHeaderLine(h); err != nil {
			bad(fmt.Sprintf("dlg_extra_hdrs[%d]", i), h, "must be one \"Name: value\" line: %v", err)
		}
	}
	return errors.Join(errs...)
}

// paramValue quotes strings and durations ("0s"), so that a duration cannot
// be mistaken for an integer in the parameter's unit.
func paramValue(v any) string {
	switch x := v.(type) {
	case string:
		return strconv.Quote(x)
	case time.Duration:
		return strconv.Quote(x.String())
	}
	return fmt.Sprint(v)
}

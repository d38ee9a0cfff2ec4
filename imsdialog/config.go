package imsdialog

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Match modes of dlg_match_mode (ims_dialog manual §5.8).
const (
	MatchDIDOnly     = 0 // sequential requests match by the did cookie of our Route only
	MatchDIDFallback = 1 // the did cookie, else Call-ID and tags
	MatchDIDNone     = 2 // Call-ID and tags only
)

// Config holds the dialog module parameters, named as in the seeds.
type Config struct {
	// Enable creates a dialog for every initial INVITE (dlg_flag set on
	// all of them).
	Enable bool
	// HashSize (hash_size) is the number of entries of the dialog table;
	// a power of two.
	HashSize int
	// RRParam (rr_param) names the Record-Route parameter carrying the
	// dialog cookie.
	RRParam string
	// DefaultTimeout (default_timeout) is a dialog's lifetime.
	DefaultTimeout time.Duration
	// DetectSpirals (detect_spirals) joins an INVITE that comes back to us
	// through an AS to its dialog instead of creating a second one.
	DetectSpirals bool
	// MatchMode (dlg_match_mode): MatchDIDOnly, MatchDIDFallback, MatchDIDNone.
	MatchMode int
	// ExtraHeaders (dlg_extra_hdrs) go into every BYE the module sends,
	// as "Name: value".
	ExtraHeaders []string
	// EarlyTerminateCode is the final reply sent upstream when an early
	// dialog is terminated.
	EarlyTerminateCode int
	// ByeTimeout bounds the wait for the replies to the BYEs we send.
	ByeTimeout time.Duration
}

// DefaultConfig returns the seeds' defaults.
func DefaultConfig() Config {
	return Config{
		Enable:             true,
		HashSize:           4096,
		RRParam:            "did",
		DefaultTimeout:     43200 * time.Second,
		DetectSpirals:      true,
		MatchMode:          MatchDIDFallback,
		EarlyTerminateCode: 487,
		ByeTimeout:         32 * time.Second,
	}
}

// Validate reports every unusable parameter, naming it.
func (c Config) Validate() error {
	var errs []error
	if c.HashSize < 1 || c.HashSize > 1<<20 || c.HashSize&(c.HashSize-1) != 0 {
		errs = append(errs, fmt.Errorf("hash_size must be a power of two within 1..1048576, got %d", c.HashSize))
	}
	if c.RRParam == "" || strings.ContainsAny(c.RRParam, ";=,<>\" \t") {
		errs = append(errs, fmt.Errorf("rr_param %q is not a URI parameter name", c.RRParam))
	}
	if c.DefaultTimeout <= 0 {
		errs = append(errs, fmt.Errorf("default_timeout must be positive, got %v", c.DefaultTimeout))
	}
	if c.MatchMode < MatchDIDOnly || c.MatchMode > MatchDIDNone {
		errs = append(errs, fmt.Errorf("dlg_match_mode must be 0, 1 or 2, got %d", c.MatchMode))
	}
	if c.EarlyTerminateCode < 300 || c.EarlyTerminateCode > 699 {
		errs = append(errs, fmt.Errorf("early_terminate_code must be a final error code 300..699, got %d", c.EarlyTerminateCode))
	}
	if c.ByeTimeout <= 0 {
		errs = append(errs, fmt.Errorf("bye_timeout must be positive, got %v", c.ByeTimeout))
	}
	for i, h := range c.ExtraHeaders {
		name, _, ok := strings.Cut(h, ":")
		if !ok || strings.TrimSpace(name) == "" || strings.ContainsAny(h, "\r\n") {
			errs = append(errs, fmt.Errorf("dlg_extra_hdrs[%d] %q is not one \"Name: value\" line", i, h))
		}
	}
	return errors.Join(errs...)
}

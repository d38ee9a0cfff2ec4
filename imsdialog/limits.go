package imsdialog

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/imsdlg/imsdlg/cachedb"
	"github.com/imsdlg/imsdlg/profiles"
	"github.com/imsdlg/imsdlg/tm"
)

// LimitKey says which part of the initial INVITE is a limit's profile value.
type LimitKey uint8

// Limit keys, as written in the limits config.
const (
	KeyNone     LimitKey = iota // profile without value: one count for all calls
	KeyFromURI                  // the caller's From URI (user@host)
	KeyToURI                    // the callee's To URI
	KeyRURI                     // the Request-URI as received
	KeySourceIP                 // the IP address the INVITE came from
)

var limitKeyNames = [...]string{"none", "from_uri", "to_uri", "ruri", "source_ip"}

func (k LimitKey) String() string {
	if int(k) < len(limitKeyNames) {
		return limitKeyNames[k]
	}
	return fmt.Sprintf("LimitKey(%d)", k)
}

// ParseLimitKey reads a limit key name.
func ParseLimitKey(s string) (LimitKey, error) {
	for i, n := range limitKeyNames {
		if strings.EqualFold(s, n) {
			return LimitKey(i), nil
		}
	}
	return 0, fmt.Errorf("unknown key %q (want one of %s)", s, strings.Join(limitKeyNames[:], ", "))
}

// Limit puts every initial INVITE that creates a dialog in Profile with the
// value Key picks, and rejects the INVITE with Code and Reason when that
// would make the count exceed Max. The check and the increment are one
// atomic step in the profile's store, so two nodes sharing a profile cannot
// both pass the last free place.
type Limit struct {
	Profile string
	Key     LimitKey
	Max     int64 // 0: count only, never reject
	Code    int
	Reason  string
}

// ProfileOptions connect the manager to the dialog profiles.
type ProfileOptions struct {
	Set    *profiles.Set
	Limits []Limit
	// FailOpen accepts a call whose limit could not be checked because the
	// profile store failed (the call is then not counted); otherwise such a
	// call is rejected with 503 (fail_closed).
	FailOpen bool
	// Timeout bounds each store call made while a request waits (default
	// 1s); the store's own timeout applies within it.
	Timeout time.Duration
}

// Limit defaults: 486 is what a busy user agent says, so callers retry
// later rather than elsewhere.
const (
	DefaultLimitCode   = 486
	DefaultLimitReason = "Busy Here"
)

// SetProfiles makes dialogs join and leave profiles: the limits on creation
// and, for every membership however it was set, removal when the dialog is
// destroyed. Call it before traffic flows.
func (m *Manager) SetProfiles(opts ProfileOptions) error {
	if opts.Set == nil {
		return errors.New("imsdialog: profile set is required")
	}
	limits, err := CheckLimits(opts.Set, opts.Limits)
	if err != nil {
		return err
	}
	if opts.Timeout <= 0 {
		opts.Timeout = time.Second
	}
	opts.Limits = limits
	m.prof.Store(&opts)
	return nil
}

// CheckLimits validates limits against the declared profiles and returns
// them with the defaults filled in. Each problem names the limit by its
// index and field, as the limits config is written.
func CheckLimits(set *profiles.Set, in []Limit) ([]Limit, error) {
	declared := map[string]profiles.Info{}
	for _, p := range set.Declared() {
		declared[p.Name] = p
	}
	var errs []error
	limits := make([]Limit, len(in))
	for i, l := range in {
		bare := strings.TrimSuffix(l.Profile, profiles.SharedSuffix)
		p, ok := declared[bare]
		switch {
		case l.Profile == "":
			errs = append(errs, fmt.Errorf("limits[%d].profile: empty", i))
		case !ok:
			errs = append(errs, fmt.Errorf("limits[%d].profile: %q is not declared in profiles.with_value or profiles.no_value", i, l.Profile))
		case p.WithValue && l.Key == KeyNone:
			errs = append(errs, fmt.Errorf("limits[%d].key: profile %q has values, so key cannot be none", i, l.Profile))
		case !p.WithValue && l.Key != KeyNone:
			errs = append(errs, fmt.Errorf("limits[%d].key: profile %q has no value, so key must be none (got %s)", i, l.Profile, l.Key))
		}
		if l.Key > KeySourceIP {
			errs = append(errs, fmt.Errorf("limits[%d].key: %s", i, l.Key))
		}
		if l.Max < 0 {
			errs = append(errs, fmt.Errorf("limits[%d].max: %d is negative", i, l.Max))
		}
		if l.Code == 0 {
			l.Code = DefaultLimitCode
		}
		if l.Code < 300 || l.Code > 699 {
			errs = append(errs, fmt.Errorf("limits[%d].code: %d is not a final error response code (300-699)", i, l.Code))
		}
		if l.Reason == "" {
			l.Reason = DefaultLimitReason
		}
		if strings.ContainsAny(l.Reason, "\r\n") {
			errs = append(errs, fmt.Errorf("limits[%d].reason: contains a line break", i))
		}
		limits[i] = l
	}
	return limits, errors.Join(errs...)
}

// Profiles returns the profile set given to SetProfiles, or nil.
func (m *Manager) Profiles() *profiles.Set {
	if o := m.prof.Load(); o != nil {
		return o.Set
	}
	return nil
}

// limitValue is the value a limit counts an INVITE under; "" when the
// request lacks it.
func limitValue(k LimitKey, r *tm.Request) string {
	switch k {
	case KeyFromURI:
		if f := r.From(); f != nil {
			return aor(f.Address)
		}
	case KeyToURI:
		if t := r.To(); t != nil {
			return aor(t.Address)
		}
	case KeyRURI:
		return r.Recipient.String()
	case KeySourceIP:
		host, _, err := net.SplitHostPort(r.Source)
		if err != nil {
			return r.Source
		}
		return host
	}
	return ""
}

// aor is user@host of a URI, lower-cased host: the parameters and port a
// UA adds must not split one user's count.
func aor(u sip.Uri) string {
	host := strings.ToLower(u.Host)
	if u.User == "" {
		return host
	}
	return u.User + "@" + host
}

// admit applies the limits to a dialog just created by an initial INVITE.
// It returns nil to let the call go on, or the rejection to answer with;
// on rejection the memberships already taken are given back.
func (m *Manager) admit(d *Dialog, r *tm.Request) *tm.Decision {
	o := m.prof.Load()
	if o == nil || len(o.Limits) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.Timeout)
	defer cancel()
	for _, l := range o.Limits {
		value := ""
		if l.Key != KeyNone {
			if value = limitValue(l.Key, r); value == "" {
				m.log.Warn("call limit: request has no value for the key, not counted",
					"callid", d.CallID, "profile", l.Profile, "key", l.Key.String())
				continue
			}
		}
		_, err := o.Set.SetProfile(ctx, d.did, l.Profile, value, l.Max)
		switch {
		case err == nil:
			continue
		case errors.Is(err, cachedb.ErrLimit):
			m.log.Info("call limit reached", "callid", d.CallID, "profile", l.Profile, "value", value, "max", l.Max)
			m.releaseProfiles(d)
			return rejection(l.Code, l.Reason, fmt.Sprintf("limit of %d calls in profile %s reached", l.Max, l.Profile))
		case o.FailOpen:
			o.Set.CountFailOpen()
			m.log.Warn("call limit not checked, call accepted (fail_open)", "callid", d.CallID, "profile", l.Profile, "error", err)
		default:
			o.Set.CountFailClosed()
			m.log.Warn("call limit not checked, call rejected (fail_closed)", "callid", d.CallID, "profile", l.Profile, "error", err)
			m.releaseProfiles(d)
			return rejection(503, "Service Unavailable", "call limit store unavailable")
		}
	}
	return nil
}

func rejection(code int, reason, text string) *tm.Decision {
	dec := tm.Reply(code, reason, sip.NewHeader("Reason", fmt.Sprintf("SIP ;cause=%d ;text=%q", code, text)))
	return &dec
}

// releaseProfiles takes the dialog out of every profile. A store failure
// leaves the decrement pending in the set, which retries it; so the dialog
// can go at once.
func (m *Manager) releaseProfiles(d *Dialog) {
	o := m.prof.Load()
	if o == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), o.Timeout)
	defer cancel()
	if err := o.Set.Release(ctx, d.did); err != nil {
		m.log.Debug("profile decrement pending", "callid", d.CallID, "did", d.did, "error", err)
	}
}

// SetDlgProfile puts the dialog in a profile (set_dlg_profile) with an
// optional limit; the membership ends when the dialog does.
func (m *Manager) SetDlgProfile(ctx context.Context, d *Dialog, profile, value string, limit int64) (int64, error) {
	o := m.prof.Load()
	if o == nil {
		return 0, errors.New("imsdialog: no profiles configured")
	}
	if d.State() >= Terminated {
		return 0, fmt.Errorf("dialog %s has ended", d.did)
	}
	return o.Set.SetProfile(ctx, d.did, profile, value, limit)
}

// UnsetDlgProfile takes the dialog out of a profile (unset_dlg_profile).
func (m *Manager) UnsetDlgProfile(ctx context.Context, d *Dialog, profile, value string) error {
	o := m.prof.Load()
	if o == nil {
		return errors.New("imsdialog: no profiles configured")
	}
	return o.Set.UnsetProfile(ctx, d.did, profile, value)
}

// ByDID finds a dialog by its did ("h_entry.h_id" in hex), the id the
// profiles know it by.
func (m *Manager) ByDID(did string) *Dialog {
	e, id, ok := parseDID(did)
	if !ok {
		return nil
	}
	return m.Lookup(e, id)
}

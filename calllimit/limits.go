package calllimit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/imsdlg/imsdlg/cachedb"
	"github.com/imsdlg/imsdlg/imsdialog"
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

// Options configure a Limiter.
type Options struct {
	Set    *profiles.Set
	Limits []Limit
	// FailOpen accepts a call whose limit could not be checked because the
	// profile store failed (the call is then counted as uncertain);
	// otherwise such a call is rejected with 503 (fail_closed).
	FailOpen bool
	// Timeout bounds the store calls of one admission (default 1s); the
	// store's own timeout applies within it.
	Timeout time.Duration
	// Queue is how many released dialogs may wait for their store call
	// (default 4096); beyond it they are left to the set's retry loop.
	Queue  int
	Logger *slog.Logger
}

// Limit defaults: 486 is what a busy user agent says, so callers retry
// later rather than elsewhere.
const (
	DefaultLimitCode   = 486
	DefaultLimitReason = "Busy Here"
)

// Limiter puts every dialog the module creates in the profiles of its
// limits (imsdialog.Limiter) and takes it out when the dialog is destroyed,
// however it ended. Releases are queued to one goroutine (Run), so that a
// dialog ending in tm's reply path never waits on Redis.
type Limiter struct {
	opts    Options
	log     *slog.Logger
	release chan string
	// shared: some limit counts in Redis. Only then does a call need a
	// deadline; a node-local count never waits.
	shared bool
	// local: the set declares no shared profile at all, so no count of a
	// dialog is ever in Redis: admissions and releases run inline.
	local bool
}

var _ imsdialog.Limiter = (*Limiter)(nil)

// New validates the limits against the declared profiles and returns the
// Limiter; run Run for its releases.
func New(opts Options) (*Limiter, error) {
	if opts.Set == nil {
		return nil, errors.New("calllimit: profile set is required")
	}
	limits, err := CheckLimits(opts.Set, opts.Limits)
	if err != nil {
		return nil, err
	}
	opts.Limits = limits
	if opts.Timeout <= 0 {
		opts.Timeout = time.Second
	}
	if opts.Queue <= 0 {
		opts.Queue = 4096
	}
	l := &Limiter{opts: opts, log: opts.Logger, release: make(chan string, opts.Queue)}
	if l.log == nil {
		l.log = slog.Default()
	}
	shared := map[string]bool{}
	l.local = true
	for _, in := range opts.Set.Declared() {
		shared[in.Name] = in.Shared
		l.local = l.local && !in.Shared
	}
	for _, lim := range limits {
		l.shared = l.shared || shared[strings.TrimSuffix(lim.Profile, profiles.SharedSuffix)]
	}
	return l, nil
}

// deadline bounds ctx by the store timeout when a store may wait.
func (l *Limiter) deadline(ctx context.Context) (context.Context, context.CancelFunc) {
	if !l.shared {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, l.opts.Timeout)
}

// Set returns the profile set the limits count in.
func (l *Limiter) Set() *profiles.Set { return l.opts.Set }

// HasLimits tells whether any limit is configured (imsdialog.Limiter).
func (l *Limiter) HasLimits() bool { return len(l.opts.Limits) > 0 }

// Limits returns the limits with their defaults filled in.
func (l *Limiter) Limits() []Limit { return l.opts.Limits }

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

// limitValue is the value a limit counts an INVITE under; "" when the
// request lacks it.
func limitValue(k LimitKey, r imsdialog.Call) string {
	switch k {
	case KeyFromURI:
		return aor(r.From)
	case KeyToURI:
		return aor(r.To)
	case KeyRURI:
		return r.RURI.String()
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

// Admit applies the limits to a dialog just created by an initial INVITE
// (imsdialog.Limiter). It returns nil to let the call go on, or the
// rejection to answer with; on rejection the memberships already taken are
// given back.
func (l *Limiter) Admit(ctx context.Context, c imsdialog.Call) *imsdialog.Rejection {
	ctx, cancel := l.deadline(ctx)
	defer cancel()
	set := l.opts.Set
	for _, lim := range l.opts.Limits {
		value := ""
		if lim.Key != KeyNone {
			if value = limitValue(lim.Key, c); value == "" {
				l.log.Warn("call limit: request has no value for the key, not counted",
					"callid", c.CallID, "did", c.DID, "profile", lim.Profile, "key", lim.Key.String())
				continue
			}
		}
		_, err := set.SetProfile(ctx, c.DID, lim.Profile, value, lim.Max)
		switch {
		case err == nil:
			continue
		case errors.Is(err, cachedb.ErrLimit):
			l.log.Info("call limit reached", "callid", c.CallID, "did", c.DID, "profile", lim.Profile, "value", value, "max", lim.Max)
			l.releaseNow(c.DID)
			return rejection(lim.Code, lim.Reason, fmt.Sprintf("limit of %d calls in profile %s reached", lim.Max, lim.Profile))
		case l.opts.FailOpen:
			set.CountFailOpen()
			l.log.Warn("call limit not checked, call accepted (fail_open)", "callid", c.CallID, "did", c.DID, "profile", lim.Profile, "error", err)
		default:
			set.CountFailClosed()
			l.log.Warn("call limit not checked, call rejected (fail_closed)", "callid", c.CallID, "did", c.DID, "profile", lim.Profile, "error", err)
			l.releaseNow(c.DID)
			return rejection(503, "Service Unavailable", "call limit store unavailable")
		}
	}
	return nil
}

func rejection(code int, reason, text string) *imsdialog.Rejection {
	return &imsdialog.Rejection{Code: code, Reason: reason,
		Headers: []imsdialog.Header{{Name: "Reason", Value: tm.ReasonValue("SIP", code, text)}}}
}

// releaseNow gives back what a rejected admission took, on the admission's
// own goroutine (it is off tm's path already). A store failure leaves the
// decrement pending in the set, which retries it.
func (l *Limiter) releaseNow(did string) {
	ctx, cancel := l.deadline(context.Background())
	defer cancel()
	if err := l.opts.Set.Release(ctx, did); err != nil {
		l.log.Debug("profile decrement pending", "did", did, "error", err)
	}
}

// Release takes a destroyed dialog out of its profiles (imsdialog.Limiter):
// nothing to do for a dialog counted nowhere, else queued for Run. When the
// queue is full the dialog is left to the set's retry loop.
func (l *Limiter) Release(did string) {
	if !l.opts.Set.Counts(did) {
		return
	}
	if l.local {
		// Node-local counts: a map update, no network. Handing it to Run
		// cost two context switches per call (issue 14).
		l.releaseNow(did)
		return
	}
	select {
	case l.release <- did:
	default:
		l.opts.Set.MarkPending(did)
	}
}

// AdmitsInline tells the dialog module that Admit never waits on the
// network (imsdialog.InlineLimiter): with no shared profile declared every
// count is node-local, so the INVITE is admitted on tm's request path
// rather than deferred to a goroutine.
func (l *Limiter) AdmitsInline() bool { return l.local }

// Run carries out the queued releases until ctx ends; the ones still
// queued then are left pending in the set (a restarted node reconciles
// them).
func (l *Limiter) Run(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			for {
				select {
				case did := <-l.release:
					l.opts.Set.MarkPending(did)
				default:
					return
				}
			}
		case did := <-l.release:
			l.releaseNow(did)
		}
	}
}

// SetDlgProfile puts the dialog in a profile (set_dlg_profile) with an
// optional limit; the membership ends when the dialog does.
func (l *Limiter) SetDlgProfile(ctx context.Context, d *imsdialog.Dialog, profile, value string, limit int64) (int64, error) {
	if d.State() >= imsdialog.Terminated {
		return 0, fmt.Errorf("dialog %s has ended", d.DID())
	}
	return l.opts.Set.SetProfile(ctx, d.DID(), profile, value, limit)
}

// UnsetDlgProfile takes the dialog out of a profile (unset_dlg_profile).
func (l *Limiter) UnsetDlgProfile(ctx context.Context, d *imsdialog.Dialog, profile, value string) error {
	return l.opts.Set.UnsetProfile(ctx, d.DID(), profile, value)
}

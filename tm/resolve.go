package tm

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/imsdlg/imsdlg/internal/ratelog"
)

// resolver turns the host of a next hop (a Route, a Request-URI, a
// configured next_hop) into an address: IP literals at once, names through
// the system resolver with a small cache. Hosts read from a Via are never
// looked up: responses go to the request's source (responseDest) or to the
// received parameter stamped on the request (stampVia).
type resolver struct {
	mu    sync.Mutex
	cache map[string]dnsEntry
}

type dnsEntry struct {
	addr    netip.Addr
	err     error
	expires time.Time
}

// dnsTTL is how long a lookup is trusted; failures are kept shorter, so a
// fixed record is seen soon.
const (
	dnsTTL         = 60 * time.Second
	dnsNegativeTTL = 5 * time.Second
	dnsTimeout     = 2 * time.Second
	dnsCacheMax    = 4096
)

func (r *resolver) addr(ctx context.Context, host string, port int) (netip.AddrPort, error) {
	if a, err := netip.ParseAddr(trimBrackets(host)); err == nil {
		return netip.AddrPortFrom(a.Unmap(), uint16(port)), nil
	}
	now := time.Now()
	r.mu.Lock()
	e, ok := r.cache[host]
	r.mu.Unlock()
	if !ok || now.After(e.expires) {
		e = r.lookup(ctx, host, now)
	}
	if e.err != nil {
		return netip.AddrPort{}, e.err
	}
	return netip.AddrPortFrom(e.addr, uint16(port)), nil
}

func (r *resolver) lookup(ctx context.Context, host string, now time.Time) dnsEntry {
	ctx, cancel := context.WithTimeout(ctx, dnsTimeout)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupNetIP(ctx, "ip", host)
	e := dnsEntry{expires: now.Add(dnsTTL)}
	switch {
	case err != nil:
		e.err, e.expires = fmt.Errorf("resolve %s: %w", host, err), now.Add(dnsNegativeTTL)
	case len(addrs) == 0:
		e.err, e.expires = fmt.Errorf("resolve %s: no address", host), now.Add(dnsNegativeTTL)
	default:
		e.addr = addrs[0].Unmap()
		// An IPv4 address first: most SIP networks still are.
		for _, a := range addrs {
			if a.Unmap().Is4() {
				e.addr = a.Unmap()
				break
			}
		}
	}
	r.mu.Lock()
	if r.cache == nil || len(r.cache) >= dnsCacheMax {
		r.cache = make(map[string]dnsEntry)
	}
	r.cache[strings.Clone(host)] = e // host may be a message's text, reused
	r.mu.Unlock()
	return e
}

// logSummary logs a kind of problem a peer can cause at will (garbage
// datagrams, malformed requests) at most once a second, with the count of
// those not logged, and never the message itself.
type logSummary struct {
	msg string
	lim ratelog.Limiter
}

func (l *logSummary) observe(log *slog.Logger, now time.Time, src netip.AddrPort, err error) {
	skipped, ok := l.lim.AllowAt(now)
	if !ok {
		return
	}
	reason := "unknown"
	if err != nil {
		reason = err.Error()
		if len(reason) > 200 {
			reason = reason[:200] // a parse error may quote the message
		}
	}
	log.Warn(l.msg, "source", src.String(), "reason", reason, "not_logged_since_last", skipped)
}

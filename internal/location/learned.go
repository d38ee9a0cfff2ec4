package location

import (
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/imsdlg/imsdlg/internal/sipstr"
)

// Learned is what a P-CSCF knows about the UEs registered through it
// (RFC 3327 §5, 3GPP TS 24.229 §5.2.2): the contacts of every REGISTER it
// forwarded, with the lifetime the registrar granted in its 2xx. It is not
// a registrar: it never answers a REGISTER, it only remembers what the
// registrar accepted, so that a terminating request whose Request-URI is one
// of those contacts is recognised and sent on to the UE.
//
// Contacts are keyed by themselves, not by AOR: the terminating request
// names the contact in its Request-URI. Learned is safe for concurrent use.
type Learned struct {
	now func() time.Time

	mu        sync.RWMutex
	byContact map[string]Binding
	lastSweep time.Time
}

// sweepEvery bounds how long expired entries are kept in memory: Save
// drops them when this much time passed since the last sweep.
const sweepEvery = time.Minute

// NewLearned returns an empty table; now is the clock (time.Now when nil).
func NewLearned(now func() time.Time) *Learned {
	if now == nil {
		now = time.Now
	}
	return &Learned{now: now, byContact: make(map[string]Binding)}
}

// defaultLearnedExpires is the lifetime of a contact the 2xx lists without
// any expires (RFC 3261 §10.2.1.1's default).
const defaultLearnedExpires = 3600 * time.Second

// Save records the outcome of a REGISTER forwarded to the registrar. It
// only acts on a 2xx: every contact of req that the 2xx lists with a
// non-zero lifetime is (re)learned with that lifetime; a contact of req the
// 2xx does not list (it was removed, expires=0) is forgotten, and so is
// every contact of the AOR when req had "Contact: *". Contacts the 2xx lists
// that req did not carry were registered through another path and are left
// alone. It returns how many contacts are learned for the AOR afterwards.
func (l *Learned) Save(req *sip.Request, res *sip.Response) int {
	if res == nil || res.StatusCode < 200 || res.StatusCode > 299 || req == nil {
		return 0
	}
	to := req.To()
	if to == nil {
		return 0
	}
	aor := NormalizeAOR(to.Address)
	if aor == "" {
		return 0
	}
	reqContacts, f := requestContacts(req)
	if f != nil {
		return 0
	}
	granted, f := contactsOf(res.Headers())
	if f != nil {
		granted = nil
	}
	headerExpires := time.Duration(-1)
	if h := res.GetHeader("Expires"); h != nil {
		if d, ok := parseDeltaSeconds(h.Value()); ok {
			headerExpires = d
		}
	}
	now := l.now()
	callID, cseq := "", uint32(0)
	if h := req.CallID(); h != nil {
		callID = h.Value()
	}
	if h := req.CSeq(); h != nil {
		cseq = h.SeqNo
	}
	received := req.Source()
	if host, _, err := net.SplitHostPort(received); err != nil || host == "" {
		received = ""
	}

	l.mu.Lock()
	defer l.mu.Unlock()
	for _, c := range reqContacts {
		if c.Address.Wildcard {
			for k, b := range l.byContact {
				if b.AOR == aor {
					delete(l.byContact, k)
				}
			}
			continue
		}
		key := contactKey(&c.Address)
		i := slices.IndexFunc(granted, func(g *sip.ContactHeader) bool { return uriEqual(&g.Address, &c.Address) })
		if i < 0 {
			delete(l.byContact, key)
			continue
		}
		exp := headerExpires
		if v, ok := paramFold(granted[i].Params, "expires"); ok {
			if d, ok := parseDeltaSeconds(v); ok {
				exp = d
			}
		}
		if exp < 0 {
			exp = defaultLearnedExpires
		}
		if exp == 0 {
			delete(l.byContact, key)
			continue
		}
		q := 1.0
		if v, ok := paramFold(granted[i].Params, "q"); ok {
			if x, ok := parseQ(v); ok {
				q = x
			}
		}
		b := Binding{
			AOR:      aor,
			Contact:  sipstr.URI(c.Address),
			Q:        q,
			Expires:  now.Add(exp),
			CallID:   callID,
			CSeq:     cseq,
			Received: received,
		}
		sipstr.Detach([]*string{&b.AOR, &b.CallID, &b.Received}) // the REGISTER's text is not kept
		l.byContact[key] = b
	}
	if now.Sub(l.lastSweep) >= sweepEvery {
		l.sweepLocked(now)
	}
	n := 0
	for _, b := range l.byContact {
		if b.AOR == aor && b.live(now) {
			n++
		}
	}
	return n
}

// Lookup returns the live learned binding whose contact is u (RFC 3261
// §19.1.4 comparison), e.g. the Request-URI of a terminating request.
func (l *Learned) Lookup(u sip.Uri) (Binding, bool) {
	key := contactKey(&u)
	l.mu.RLock()
	b, ok := l.byContact[key]
	l.mu.RUnlock()
	if !ok || !b.live(l.now()) || !uriEqual(&b.Contact, &u) {
		return Binding{}, false
	}
	return b.clone(), true
}

// Bindings returns every live learned binding, ordered by AOR and contact.
func (l *Learned) Bindings() []Binding {
	now := l.now()
	l.mu.RLock()
	out := make([]Binding, 0, len(l.byContact))
	for _, b := range l.byContact {
		if b.live(now) {
			out = append(out, b.clone())
		}
	}
	l.mu.RUnlock()
	slices.SortFunc(out, func(a, b Binding) int {
		if c := strings.Compare(a.AOR, b.AOR); c != 0 {
			return c
		}
		return strings.Compare(a.Contact.String(), b.Contact.String())
	})
	return out
}

// Expire drops expired entries and returns how many it dropped; Lookup
// already ignores them.
func (l *Learned) Expire() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.sweepLocked(l.now())
}

func (l *Learned) sweepLocked(now time.Time) int {
	l.lastSweep = now
	n := 0
	for k, b := range l.byContact {
		if !b.live(now) {
			delete(l.byContact, k)
			n++
		}
	}
	return n
}

// contactKey is the part of a contact URI that §19.1.4 always compares:
// scheme, user, host, port and transport; the rest is checked by uriEqual.
func contactKey(u *sip.Uri) string {
	var b strings.Builder
	scheme := strings.ToLower(u.Scheme)
	if scheme == "" {
		scheme = "sip"
	}
	b.WriteString(scheme)
	b.WriteByte(':')
	b.WriteString(unescape(u.User))
	b.WriteByte('@')
	b.WriteString(strings.ToLower(strings.Trim(u.Host, "[]")))
	b.WriteByte(':')
	b.WriteString(strconv.Itoa(u.Port))
	if tp, ok := paramFold(u.UriParams, "transport"); ok {
		b.WriteString(";transport=")
		b.WriteString(strings.ToLower(tp))
	}
	return b.String()
}

package location

import (
	"fmt"
	"math"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/imsdlg/imsdlg/internal/sipstr"
)

const (
	statusIntervalTooBrief = 423
	// dateLayout is the RFC 1123 form RFC 3261 §20.17 requires (always GMT).
	dateLayout = "Mon, 02 Jan 2006 15:04:05 GMT"
	// maxDeltaSeconds is the top of the delta-seconds range (§20.19); larger
	// values are saturated rather than rejected, and clamped later anyway.
	maxDeltaSeconds = 1<<32 - 1
)

// failure is a non-2xx outcome of Register.
type failure struct {
	code   int
	reason string
}

func badRequest(format string, args ...any) *failure {
	return &failure{code: sip.StatusBadRequest, reason: fmt.Sprintf(format, args...)}
}

// contactUpdate is one Contact of the request with its lifetime resolved.
type contactUpdate struct {
	uri     sip.Uri
	q       float64
	expires time.Duration // 0 means remove
}

// registerRequest is what Register needs from the REGISTER, validated.
type registerRequest struct {
	aor      string
	callID   string
	cseq     uint32
	wildcard bool
	contacts []contactUpdate
	path     []string
	received string
}

// Register processes a REGISTER per RFC 3261 §10.3 steps 5–8 and returns the
// response to send. The caller has already checked the Request-URI domain
// and authenticated the request (steps 1–4).
func (s *Store) Register(req *sip.Request) *sip.Response {
	now := s.opts.Now()

	r, f := s.parseRegister(req)
	if f != nil {
		return s.fail(req, f)
	}

	var current []Binding
	if r.wildcard || len(r.contacts) > 0 {
		current, f = s.apply(r, now)
		if f != nil {
			return s.fail(req, f)
		}
	} else {
		// §10.2.3: a REGISTER without Contact only fetches the bindings.
		sh := s.shardFor(r.aor)
		sh.mu.RLock()
		current = sh.aors[r.aor]
		sh.mu.RUnlock()
	}

	res := sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil)
	for _, b := range liveSorted(current, now) {
		res.AppendHeader(s.contactHeader(b, now))
	}
	res.AppendHeader(sip.NewHeader("Date", now.UTC().Format(dateLayout)))
	if len(r.path) > 0 && supports(req, "path") {
		// RFC 3327 §5.3: the UE learns the route the home network will use.
		for _, h := range req.GetHeaders("Path") {
			res.AppendHeader(sip.NewHeader("Path", h.Value()))
		}
	}
	return res
}

func (s *Store) fail(req *sip.Request, f *failure) *sip.Response {
	res := sip.NewResponseFromRequest(req, f.code, sanitizeReason(f.reason), nil)
	if f.code == statusIntervalTooBrief {
		res.AppendHeader(sip.NewHeader("Min-Expires", strconv.FormatInt(ceilSeconds(s.opts.MinExpires), 10)))
	}
	return res
}

func (s *Store) contactHeader(b Binding, now time.Time) *sip.ContactHeader {
	left := s.opts.MaxExpires
	if !b.Static && !b.Expires.IsZero() {
		left = b.Expires.Sub(now)
	}
	h := &sip.ContactHeader{Address: b.Contact, Params: sip.NewParams()}
	if b.Q != 1 {
		h.Params.Add("q", strconv.FormatFloat(b.Q, 'f', -1, 64))
	}
	h.Params.Add("expires", strconv.FormatInt(ceilSeconds(left), 10))
	return h
}

// ceilSeconds rounds up so a binding with 0.4s left is not reported as
// expires=0, which the UE would read as "removed".
func ceilSeconds(d time.Duration) int64 {
	return int64(math.Ceil(d.Seconds()))
}

// parseRegister does all checks that need no binding state, so that 400 and
// 423 never depend on what is stored.
func (s *Store) parseRegister(req *sip.Request) (*registerRequest, *failure) {
	r := &registerRequest{}

	to := req.To()
	if to == nil {
		if hasHeader(req, "to", "t") {
			return nil, badRequest("Malformed To header")
		}
		return nil, badRequest("Missing To header")
	}
	// §10.2: an address-of-record is a SIP or SIPS URI.
	if to.Address.Scheme != "sip" && to.Address.Scheme != "sips" {
		return nil, badRequest("To header URI must be sip or sips, not %q", to.Address.Scheme)
	}
	r.aor = NormalizeAOR(to.Address)
	if r.aor == "" {
		return nil, badRequest("Malformed To header: no address-of-record")
	}

	callID := req.CallID()
	if callID == nil || strings.TrimSpace(callID.Value()) == "" {
		if hasHeader(req, "call-id", "i") {
			return nil, badRequest("Malformed Call-ID header")
		}
		return nil, badRequest("Missing Call-ID header")
	}
	r.callID = callID.Value()

	cseq := req.CSeq()
	if cseq == nil {
		if hasHeader(req, "cseq") {
			return nil, badRequest("Malformed CSeq header")
		}
		return nil, badRequest("Missing CSeq header")
	}
	if cseq.MethodName != sip.REGISTER {
		return nil, badRequest("Malformed CSeq header: method %q is not REGISTER", cseq.MethodName)
	}
	r.cseq = cseq.SeqNo

	headerExpires, hasHeaderExpires := time.Duration(0), false
	if h := req.GetHeader("Expires"); h != nil {
		d, ok := parseDeltaSeconds(h.Value())
		if !ok {
			return nil, badRequest("Malformed Expires header %q", h.Value())
		}
		headerExpires, hasHeaderExpires = d, true
	}

	contacts, f := requestContacts(req)
	if f != nil {
		return nil, f
	}

	tooBrief := false
	for _, c := range contacts {
		if c.Address.Wildcard {
			// §10.3 step 6.
			if len(contacts) > 1 {
				return nil, badRequest("Contact: * must be the only Contact")
			}
			if !hasHeaderExpires || headerExpires != 0 {
				return nil, badRequest("Contact: * requires Expires: 0")
			}
			r.wildcard = true
			break
		}

		u := contactUpdate{uri: *c.Address.Clone(), q: 1, expires: s.opts.DefaultExpires}
		if v, ok := paramFold(c.Params, "q"); ok {
			q, ok := parseQ(v)
			if !ok {
				return nil, badRequest("Invalid q value %q in Contact %s", v, c.Address.String())
			}
			u.q = q
		}
		if hasHeaderExpires {
			u.expires = headerExpires
		}
		if v, ok := paramFold(c.Params, "expires"); ok {
			d, ok := parseDeltaSeconds(v)
			if !ok {
				return nil, badRequest("Invalid expires value %q in Contact %s", v, c.Address.String())
			}
			u.expires = d
		}
		if u.expires > 0 && u.expires < s.opts.MinExpires {
			tooBrief = true
		}
		u.expires = min(u.expires, s.opts.MaxExpires)
		r.contacts = append(r.contacts, u)
	}
	if tooBrief {
		return nil, &failure{code: statusIntervalTooBrief, reason: "Interval Too Brief"}
	}

	for _, h := range req.GetHeaders("Path") {
		r.path = append(r.path, splitList(h.Value())...)
	}
	r.received = req.Source()
	if host, _, err := net.SplitHostPort(r.received); err != nil || host == "" {
		// sipgo falls back to ":0" when it knows no source; storing that
		// would look like an address.
		r.received = ""
	}
	return r, nil
}

// requestContacts collects Contact values whether they came from the parser
// (already split per value) or were added as generic headers by code.
func requestContacts(req *sip.Request) ([]*sip.ContactHeader, *failure) {
	return contactsOf(req.Headers())
}

// contactsOf is requestContacts over any message's headers.
func contactsOf(hdrs []sip.Header) ([]*sip.ContactHeader, *failure) {
	var out []*sip.ContactHeader
	parser := sip.HeadersParser(sip.DefaultHeadersParser())
	for _, h := range hdrs {
		name := strings.ToLower(h.Name())
		if name != "contact" && name != "m" {
			continue
		}
		if c, ok := h.(*sip.ContactHeader); ok {
			out = append(out, c)
			continue
		}
		parsed, err := parser.ParseHeader(nil, []byte("Contact: "+h.Value()))
		if err != nil {
			return nil, badRequest("Malformed Contact header %q", h.Value())
		}
		for _, p := range parsed {
			c, ok := p.(*sip.ContactHeader)
			if !ok {
				return nil, badRequest("Malformed Contact header %q", h.Value())
			}
			out = append(out, c)
		}
	}
	return out, nil
}

// apply runs §10.3 step 7 for every contact under the shard lock and commits
// only if all of them succeed.
func (s *Store) apply(r *registerRequest, now time.Time) ([]Binding, *failure) {
	type entry struct {
		b       Binding
		gone    bool
		touched bool // changed by this request: a repeated Contact in it is not "out of order"
	}

	sh := s.shardFor(r.aor)
	sh.mu.Lock()
	defer sh.mu.Unlock()

	cur := sh.aors[r.aor]
	entries := make([]entry, 0, len(cur)+len(r.contacts))
	for _, b := range cur {
		if b.live(now) {
			entries = append(entries, entry{b: b})
		}
	}

	outOfOrder := func(b *Binding) *failure {
		return &failure{
			code: sip.StatusInternalServerError,
			reason: fmt.Sprintf("Request out of order: CSeq %d is not higher than %d for Call-ID %s",
				r.cseq, b.CSeq, r.callID),
		}
	}

	if r.wildcard {
		for i := range entries {
			e := &entries[i]
			if e.b.Static {
				continue
			}
			if e.b.CallID == r.callID && r.cseq <= e.b.CSeq {
				return nil, outOfOrder(&e.b)
			}
			e.gone = true
		}
	}

	for _, c := range r.contacts {
		i := slices.IndexFunc(entries, func(e entry) bool { return !e.gone && uriEqual(&e.b.Contact, &c.uri) })
		if i >= 0 && entries[i].b.Static {
			continue
		}
		if i >= 0 {
			e := &entries[i]
			if !e.touched && e.b.CallID == r.callID && r.cseq <= e.b.CSeq {
				return nil, outOfOrder(&e.b)
			}
			e.touched = true
			if c.expires == 0 {
				e.gone = true
				continue
			}
			e.b = s.newBinding(r, c, now)
			continue
		}
		if c.expires > 0 {
			entries = append(entries, entry{b: s.newBinding(r, c, now), touched: true})
		}
	}

	next := make([]Binding, 0, len(entries))
	dynamic := 0
	for _, e := range entries {
		if e.gone {
			continue
		}
		if !e.b.Static {
			dynamic++
		}
		next = append(next, e.b)
	}
	if dynamic > s.opts.MaxContacts {
		return nil, &failure{
			code:   sip.StatusForbidden,
			reason: fmt.Sprintf("Too Many Contacts: %d exceeds the limit of %d", dynamic, s.opts.MaxContacts),
		}
	}

	if len(next) == 0 {
		delete(sh.aors, r.aor)
		return nil, nil
	}
	sh.aors[r.aor] = next
	return next, nil
}

func (s *Store) newBinding(r *registerRequest, c contactUpdate, now time.Time) Binding {
	b := Binding{
		AOR:      r.aor,
		Contact:  sipstr.URI(c.uri),
		Q:        c.q,
		Expires:  now.Add(c.expires),
		CallID:   r.callID,
		CSeq:     r.cseq,
		Path:     slices.Clone(r.path),
		Received: r.received,
	}
	// A binding lives for its expiry: it keeps nothing of the REGISTER's
	// text (sipstr).
	ptrs := []*string{&b.AOR, &b.CallID, &b.Received}
	for i := range b.Path {
		ptrs = append(ptrs, &b.Path[i])
	}
	sipstr.Detach(ptrs)
	return b
}

// parseDeltaSeconds parses RFC 3261 delta-seconds (digits only).
func parseDeltaSeconds(v string) (time.Duration, bool) {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0, false
	}
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil || n > maxDeltaSeconds {
		n = maxDeltaSeconds
	}
	return time.Duration(n) * time.Second, true
}

func hasHeader(req *sip.Request, names ...string) bool {
	for _, n := range names {
		if req.GetHeader(n) != nil {
			return true
		}
	}
	return false
}

func supports(req *sip.Request, option string) bool {
	for _, h := range req.GetHeaders("Supported") {
		for _, tok := range strings.Split(h.Value(), ",") {
			if strings.EqualFold(strings.TrimSpace(tok), option) {
				return true
			}
		}
	}
	return false
}

// splitList splits a header value on commas that are outside <> and quotes.
func splitList(v string) []string {
	var (
		out          []string
		start        int
		inAngle, inQ bool
	)
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == '"':
			inQ = !inQ
		case inQ:
		case c == '<':
			inAngle = true
		case c == '>':
			inAngle = false
		case c == ',' && !inAngle:
			if p := strings.TrimSpace(v[start:i]); p != "" {
				out = append(out, p)
			}
			start = i + 1
		}
	}
	if p := strings.TrimSpace(v[start:]); p != "" {
		out = append(out, p)
	}
	return out
}

// sanitizeReason keeps request-derived text from breaking the status line.
func sanitizeReason(s string) string {
	const maxLen = 200
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
	if len(s) > maxLen {
		s = strings.ToValidUTF8(s[:maxLen], "")
	}
	return s
}

package location

import (
	"strconv"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRFC3261_10_3_Step5_AORFromTo(t *testing.T) {
	s, _ := newTestStore(Options{})
	req := register(t,
		"To: <sip:alice@IMS.Example.COM:5060;user=phone>",
		"Call-ID: c1",
		"CSeq: 1 REGISTER",
		"Contact: <sip:alice@192.0.2.10:5060>",
	)
	mustOK(t, s.Register(req))

	tests := []struct {
		name string
		aor  string
		want int
	}{
		{"normalised key", "sip:alice@ims.example.com", 1},
		{"user part is case-sensitive", "sip:Alice@ims.example.com", 0},
		{"sips is a different AOR", "sips:alice@ims.example.com", 0},
		{"non-default port is a different AOR", "sip:alice@ims.example.com:5080", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := s.Lookup(tc.aor)
			assert.Len(t, got, tc.want)
			for _, b := range got {
				assert.Equal(t, "sip:alice@ims.example.com", b.AOR)
			}
		})
	}

	var u sip.Uri
	require.NoError(t, sip.ParseUri("sip:alice@ims.EXAMPLE.com;transport=tcp", &u))
	assert.Len(t, s.LookupURI(u), 1, "LookupURI normalises like Register")
}

// header builds a REGISTER in code so that header values can be malformed,
// which sip.ParseMessage would refuse.
func header(name, value string) sip.Header { return sip.NewHeader(name, value) }

func TestRFC3261_10_3_BadRequestNamesTheProblem(t *testing.T) {
	to := header("To", "<sip:alice@ims.example.com>")
	callID := header("Call-ID", "c1")
	cseq := header("CSeq", "1 REGISTER")
	contact := header("Contact", "<sip:alice@192.0.2.10>")

	tests := []struct {
		name    string
		headers []sip.Header
		want    string // must appear in the reason phrase
	}{
		{"missing To", []sip.Header{callID, cseq, contact}, "Missing To"},
		{"malformed To", []sip.Header{header("To", "<sip:alice@ims.example.com"), callID, cseq, contact}, "Malformed To"},
		{"To is not a SIP URI", []sip.Header{header("To", "<tel:+15551234>"), callID, cseq, contact}, "To header"},
		{"missing Call-ID", []sip.Header{to, cseq, contact}, "Missing Call-ID"},
		{"empty Call-ID", []sip.Header{to, header("Call-ID", " "), cseq, contact}, "Malformed Call-ID"},
		{"missing CSeq", []sip.Header{to, callID, contact}, "Missing CSeq"},
		{"malformed CSeq", []sip.Header{to, callID, header("CSeq", "one REGISTER"), contact}, "Malformed CSeq"},
		{"CSeq method is not REGISTER", []sip.Header{to, callID, header("CSeq", "1 INVITE"), contact}, "CSeq"},
		{"malformed Expires", []sip.Header{to, callID, cseq, header("Expires", "soon"), contact}, "Expires header"},
		{"negative Expires", []sip.Header{to, callID, cseq, header("Expires", "-1"), contact}, "Expires header"},
		{"malformed Contact", []sip.Header{to, callID, cseq, header("Contact", "<sip:alice@192.0.2.10")}, "Contact"},
		{"bad q", []sip.Header{to, callID, cseq, header("Contact", "<sip:alice@192.0.2.10>;q=2")}, "q value"},
		{"bad expires param", []sip.Header{to, callID, cseq, header("Contact", "<sip:alice@192.0.2.10>;expires=1h")}, "expires value"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := newTestStore(Options{})
			req := sip.NewRequest(sip.REGISTER, sip.Uri{Scheme: "sip", Host: "ims.example.com"})
			req.AppendHeader(header("Via", "SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-1"))
			for _, h := range tc.headers {
				req.AppendHeader(h)
			}
			res := s.Register(req)
			assert.Equal(t, sip.StatusBadRequest, res.StatusCode)
			assert.Contains(t, res.Reason, tc.want)
			assert.Zero(t, s.Len(), "a rejected REGISTER changes nothing")
		})
	}
}

func TestRFC3261_10_3_Step6_ContactStar(t *testing.T) {
	tests := []struct {
		name        string
		lines       []string
		cseq        int
		callID      string
		wantCode    int
		wantReason  string
		wantDynamic int
	}{
		{"star with Expires 0 from another Call-ID removes all", []string{"Contact: *", "Expires: 0"}, 1, "c2", 200, "", 0},
		{"star with Expires 0 and higher CSeq removes all", []string{"Contact: *", "Expires: 0"}, 6, "c1", 200, "", 0},
		{"star without Expires", []string{"Contact: *"}, 6, "c1", 400, "Expires: 0", 2},
		{"star with only an expires param", []string{"Contact: *;expires=0"}, 6, "c1", 400, "Expires: 0", 2},
		{"star with non-zero Expires", []string{"Contact: *", "Expires: 60"}, 6, "c1", 400, "Expires: 0", 2},
		{"star with another contact", []string{"Contact: *", "Contact: <sip:alice@192.0.2.30>", "Expires: 0"}, 6, "c1", 400, "only Contact", 2},
		{"star listed second", []string{"Contact: <sip:alice@192.0.2.30>", "Contact: *", "Expires: 0"}, 6, "c1", 400, "only Contact", 2},
		{"star out of order", []string{"Contact: *", "Expires: 0"}, 5, "c1", 500, "out of order", 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := newTestStore(Options{})
			require.NoError(t, s.AddStatic(aliceAOR, []string{"sip:alice@10.0.0.1"}))
			mustOK(t, s.Register(reg(t, "c1", 5,
				"Contact: <sip:alice@192.0.2.10>, <sip:alice@192.0.2.20>")))

			res := s.Register(reg(t, tc.callID, tc.cseq, tc.lines...))
			assert.Equal(t, tc.wantCode, res.StatusCode, "reason: %s", res.Reason)
			assert.Contains(t, res.Reason, tc.wantReason)

			got := s.Lookup(aliceAOR)
			assert.Equal(t, tc.wantDynamic, dynamicCount(got))
			assert.Len(t, got, tc.wantDynamic+1, "static binding survives REGISTER")
			if tc.wantCode == 200 {
				assert.Equal(t, []listed{{uri: "sip:alice@10.0.0.1", expires: "3600"}}, responseContacts(t, res),
					"static bindings are listed")
			}
		})
	}
}

func TestRFC3261_10_3_Step6_ExpirationInterval(t *testing.T) {
	opts := Options{MinExpires: 60 * time.Second, MaxExpires: 3600 * time.Second, DefaultExpires: 1200 * time.Second}
	tests := []struct {
		name           string
		lines          []string
		wantCode       int
		wantMinExpires string
		want           map[string]int // contact -> granted seconds
	}{
		{"default when nothing is requested",
			[]string{"Contact: <sip:a@192.0.2.1>"}, 200, "", map[string]int{"sip:a@192.0.2.1": 1200}},
		{"Expires header",
			[]string{"Contact: <sip:a@192.0.2.1>", "Expires: 300"}, 200, "", map[string]int{"sip:a@192.0.2.1": 300}},
		{"contact param overrides Expires header",
			[]string{"Contact: <sip:a@192.0.2.1>;expires=600", "Expires: 300"}, 200, "", map[string]int{"sip:a@192.0.2.1": 600}},
		{"param applies per contact",
			[]string{"Contact: <sip:a@192.0.2.1>;expires=600, <sip:b@192.0.2.2>", "Expires: 300"}, 200, "",
			map[string]int{"sip:a@192.0.2.1": 600, "sip:b@192.0.2.2": 300}},
		{"above MaxExpires is clamped",
			[]string{"Contact: <sip:a@192.0.2.1>", "Expires: 7200"}, 200, "", map[string]int{"sip:a@192.0.2.1": 3600}},
		{"beyond delta-seconds range is clamped",
			[]string{"Contact: <sip:a@192.0.2.1>;expires=99999999999999999999"}, 200, "", map[string]int{"sip:a@192.0.2.1": 3600}},
		{"exactly MinExpires is accepted",
			[]string{"Contact: <sip:a@192.0.2.1>", "Expires: 60"}, 200, "", map[string]int{"sip:a@192.0.2.1": 60}},
		{"param rescues a brief Expires header",
			[]string{"Contact: <sip:a@192.0.2.1>;expires=120", "Expires: 30"}, 200, "", map[string]int{"sip:a@192.0.2.1": 120}},
		{"expires 0 for an unknown contact adds nothing",
			[]string{"Contact: <sip:a@192.0.2.1>;expires=0"}, 200, "", map[string]int{}},
		{"Expires header below MinExpires",
			[]string{"Contact: <sip:a@192.0.2.1>", "Expires: 30"}, 423, "60", nil},
		{"one brief contact fails the whole request",
			[]string{"Contact: <sip:a@192.0.2.1>, <sip:b@192.0.2.2>;expires=59", "Expires: 3600"}, 423, "60", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := newTestStore(opts)
			res := s.Register(reg(t, "c1", 1, tc.lines...))
			require.Equal(t, tc.wantCode, res.StatusCode, "reason: %s", res.Reason)

			minExp := res.GetHeader("Min-Expires")
			if tc.wantMinExpires == "" {
				assert.Nil(t, minExp)
			} else {
				require.NotNil(t, minExp, "423 carries Min-Expires")
				assert.Equal(t, tc.wantMinExpires, minExp.Value())
				assert.Nil(t, s.Lookup(aliceAOR), "423 stores nothing")
				return
			}

			got := map[string]int{}
			for _, b := range s.Lookup(aliceAOR) {
				got[b.Contact.String()] = int(b.Expires.Sub(t0) / time.Second)
			}
			assert.Equal(t, tc.want, got, "stored lifetimes")

			inResponse := map[string]int{}
			for _, c := range responseContacts(t, res) {
				n, err := strconv.Atoi(c.expires)
				require.NoError(t, err)
				inResponse[c.uri] = n
			}
			assert.Equal(t, tc.want, inResponse, "granted lifetimes in the 200")
		})
	}
}

func TestRFC3261_10_3_Step7_CallIDAndCSeq(t *testing.T) {
	const contactA = "Contact: <sip:alice@192.0.2.10:5060>"
	tests := []struct {
		name        string
		callID      string
		cseq        int
		lines       []string
		wantCode    int
		wantCallID  string // "" means the binding must be gone
		wantCSeq    uint32
		wantExpires time.Duration
		wantLen     int
	}{
		{"same Call-ID higher CSeq updates", "c1", 11, []string{contactA, "Expires: 600"}, 200, "c1", 11, 600 * time.Second, 1},
		{"same Call-ID equal CSeq is out of order", "c1", 10, []string{contactA, "Expires: 600"}, 500, "c1", 10, 3600 * time.Second, 1},
		{"same Call-ID lower CSeq is out of order", "c1", 9, []string{contactA, "Expires: 600"}, 500, "c1", 10, 3600 * time.Second, 1},
		{"different Call-ID replaces regardless of CSeq", "c2", 1, []string{contactA, "Expires: 600"}, 200, "c2", 1, 600 * time.Second, 1},
		{"different Call-ID with expires 0 removes", "c2", 1, []string{contactA, "Expires: 0"}, 200, "", 0, 0, 0},
		{"same Call-ID higher CSeq with expires 0 removes", "c1", 11, []string{contactA + ";expires=0"}, 200, "", 0, 0, 0},
		{"same Call-ID lower CSeq cannot remove", "c1", 9, []string{contactA + ";expires=0"}, 500, "c1", 10, 3600 * time.Second, 1},
		{"§19.1.4 ignores a parameter present on one side only", "c1", 10,
			[]string{"Contact: <sip:alice@192.0.2.10:5060;foo=bar>"}, 500, "c1", 10, 3600 * time.Second, 1},
		{"out of order aborts the other contacts too", "c1", 10,
			[]string{"Contact: <sip:alice@192.0.2.99>", contactA}, 500, "c1", 10, 3600 * time.Second, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := newTestStore(Options{})
			mustOK(t, s.Register(reg(t, "c1", 10, contactA, "Expires: 3600")))

			res := s.Register(reg(t, tc.callID, tc.cseq, tc.lines...))
			require.Equal(t, tc.wantCode, res.StatusCode, "reason: %s", res.Reason)
			if tc.wantCode == 500 {
				assert.Contains(t, res.Reason, "out of order")
			}

			got := s.Lookup(aliceAOR)
			require.Len(t, got, tc.wantLen)
			if tc.wantCallID == "" {
				return
			}
			b := got[0]
			assert.Equal(t, "sip:alice@192.0.2.10:5060", b.Contact.String())
			assert.Equal(t, tc.wantCallID, b.CallID)
			assert.Equal(t, tc.wantCSeq, b.CSeq)
			assert.Equal(t, t0.Add(tc.wantExpires), b.Expires)
		})
	}
}

func TestRFC3261_10_3_Step7_RepeatedContactInOneRequest(t *testing.T) {
	s, _ := newTestStore(Options{})
	res := s.Register(reg(t, "c1", 1,
		"Contact: <sip:alice@192.0.2.10>;expires=600",
		"Contact: <sip:alice@192.0.2.10>;expires=900;q=0.3"))
	mustOK(t, res)

	got := s.Lookup(aliceAOR)
	require.Len(t, got, 1, "one URI is one binding")
	assert.Equal(t, t0.Add(900*time.Second), got[0].Expires, "the later value wins")
	assert.Equal(t, 0.3, got[0].Q)
}

func TestRFC3261_10_3_Step7_QValue(t *testing.T) {
	tests := []struct {
		name  string
		param string
		want  float64
		ok    bool
	}{
		{"absent defaults to 1", "", 1, true},
		{"half", ";q=0.5", 0.5, true},
		{"zero", ";q=0", 0, true},
		{"three decimals", ";q=0.123", 0.123, true},
		{"one", ";q=1.000", 1, true},
		{"upper-case name", ";Q=0.7", 0.7, true},
		{"above one", ";q=1.5", 0, false},
		{"one with non-zero decimals", ";q=1.001", 0, false},
		{"four decimals", ";q=0.1234", 0, false},
		{"negative", ";q=-0.5", 0, false},
		{"not a number", ";q=high", 0, false},
		{"exponent form", ";q=5e-1", 0, false},
		{"empty", ";q=", 0, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := newTestStore(Options{})
			res := s.Register(reg(t, "c1", 1, "Contact: <sip:alice@192.0.2.10>"+tc.param))
			if !tc.ok {
				assert.Equal(t, sip.StatusBadRequest, res.StatusCode)
				assert.Contains(t, res.Reason, "q value")
				assert.Contains(t, res.Reason, "sip:alice@192.0.2.10", "reason names the contact")
				assert.Nil(t, s.Lookup(aliceAOR))
				return
			}
			mustOK(t, res)
			got := s.Lookup(aliceAOR)
			require.Len(t, got, 1)
			assert.Equal(t, tc.want, got[0].Q)
		})
	}
}

func TestRFC3261_10_3_Step7_MaxContacts(t *testing.T) {
	tests := []struct {
		name     string
		callID   string
		contacts string
		wantCode int
		wantLen  int
	}{
		{"refreshing existing bindings is fine", "c1", "Contact: <sip:a@192.0.2.1>, <sip:a@192.0.2.2>", 200, 2},
		{"one more than the limit", "c1", "Contact: <sip:a@192.0.2.3>", 403, 2},
		{"swapping one binding for another stays at the limit", "c1",
			"Contact: <sip:a@192.0.2.1>;expires=0, <sip:a@192.0.2.3>", 200, 2},
		{"a contact equal to a static one is not a new binding", "c1", "Contact: <sip:a@10.0.0.1>", 200, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := newTestStore(Options{MaxContacts: 2})
			require.NoError(t, s.AddStatic(aliceAOR, []string{"sip:a@10.0.0.1"}))
			mustOK(t, s.Register(reg(t, "c1", 1, "Contact: <sip:a@192.0.2.1>, <sip:a@192.0.2.2>")))

			res := s.Register(reg(t, tc.callID, 2, tc.contacts))
			require.Equal(t, tc.wantCode, res.StatusCode, "reason: %s", res.Reason)
			if tc.wantCode == sip.StatusForbidden {
				assert.Contains(t, res.Reason, "Too Many Contacts")
			}
			got := s.Lookup(aliceAOR)
			assert.Equal(t, tc.wantLen, dynamicCount(got), "static bindings do not count towards MaxContacts")
			assert.Len(t, got, tc.wantLen+1)
		})
	}
}

func TestRFC3261_10_3_Step8_ResponseListsAllBindings(t *testing.T) {
	s, clk := newTestStore(Options{MaxExpires: 7200 * time.Second})
	require.NoError(t, s.AddStatic(aliceAOR, []string{"<sip:alice@10.0.0.1;transport=tcp>"}))
	mustOK(t, s.Register(reg(t, "c1", 1, "Contact: <sip:alice@192.0.2.10>;q=0.5", "Expires: 3600")))
	clk.Advance(100*time.Second + 400*time.Millisecond)

	res := mustOK(t, s.Register(reg(t, "c2", 1, "Contact: \"Alice\" <sip:alice@192.0.2.20;ob>", "Expires: 600")))

	assert.Equal(t, []listed{
		{uri: "sip:alice@10.0.0.1;transport=tcp", expires: "7200"},
		{uri: "sip:alice@192.0.2.20;ob", expires: "600"},
		{uri: "sip:alice@192.0.2.10", q: "0.5", expires: "3500"},
	}, responseContacts(t, res), "every binding, q-ordered, seconds left rounded up")

	date := res.GetHeader("Date")
	require.NotNil(t, date, "§10.3 step 8: Date header")
	assert.Equal(t, "Wed, 01 May 2024 12:01:40 GMT", date.Value())
}

func TestRFC3261_10_2_3_QueryWithoutContact(t *testing.T) {
	s, clk := newTestStore(Options{})
	res := mustOK(t, s.Register(reg(t, "c1", 1)))
	assert.Empty(t, responseContacts(t, res), "no bindings yet")
	assert.NotNil(t, res.GetHeader("Date"))

	mustOK(t, s.Register(reg(t, "c1", 2, "Contact: <sip:alice@192.0.2.10>", "Expires: 600")))
	clk.Advance(10 * time.Second)
	before := s.Lookup(aliceAOR)

	// Lower CSeq on the same Call-ID: a query changes nothing, so it is not
	// subject to step 7 ordering.
	res = mustOK(t, s.Register(reg(t, "c1", 1)))
	assert.Equal(t, []listed{{uri: "sip:alice@192.0.2.10", expires: "590"}}, responseContacts(t, res))
	assert.Equal(t, before, s.Lookup(aliceAOR))
}

func TestRFC3327_PathAndSourceKept(t *testing.T) {
	tests := []struct {
		name      string
		supported []string
		wantEcho  bool
	}{
		{"UE supports path", []string{"Supported: path, outbound"}, true},
		{"UE supports path in second header", []string{"Supported: timer", "Supported: Path"}, true},
		{"UE does not support path", nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, _ := newTestStore(Options{})
			lines := append([]string{
				"Contact: <sip:alice@10.45.0.7:5060>",
				"Path: <sip:term@pcscf1.ims.example.com;lr>",
				"Path: <sip:a@p2.example.com;lr>, <sip:b@p3.example.com;lr>",
			}, tc.supported...)
			res := mustOK(t, s.Register(reg(t, "c1", 1, lines...)))

			got := s.Lookup(aliceAOR)
			require.Len(t, got, 1)
			assert.Equal(t, []string{
				"<sip:term@pcscf1.ims.example.com;lr>",
				"<sip:a@p2.example.com;lr>",
				"<sip:b@p3.example.com;lr>",
			}, got[0].Path)
			assert.Equal(t, "198.51.100.7:41000", got[0].Received)

			echoed := res.GetHeaders("Path")
			if tc.wantEcho {
				assert.Len(t, echoed, 2)
			} else {
				assert.Empty(t, echoed)
			}
		})
	}
}

func TestRegister_SourceFromViaWhenUnset(t *testing.T) {
	s, _ := newTestStore(Options{})
	req := reg(t, "c1", 1, "Contact: <sip:alice@10.45.0.7>")
	req.SetSource("")
	mustOK(t, s.Register(req))
	got := s.Lookup(aliceAOR)
	require.Len(t, got, 1)
	assert.Equal(t, "192.0.2.10:5060", got[0].Received, "sipgo falls back to the top Via")
}

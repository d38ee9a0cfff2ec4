package location

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/stretchr/testify/require"
)

var t0 = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

const aliceAOR = "sip:alice@ims.example.com"

type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func newTestStore(o Options) (*Store, *fakeClock) {
	clk := &fakeClock{now: t0}
	o.Now = clk.Now
	return New(o), clk
}

// register parses a REGISTER whose variable headers are given as raw lines;
// Via, From, Max-Forwards and Content-Length are added.
func register(t testing.TB, lines ...string) *sip.Request {
	t.Helper()
	var b strings.Builder
	b.WriteString("REGISTER sip:ims.example.com SIP/2.0\r\n")
	b.WriteString("Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-1\r\n")
	b.WriteString("From: <sip:alice@ims.example.com>;tag=a1\r\n")
	b.WriteString("Max-Forwards: 70\r\n")
	for _, l := range lines {
		b.WriteString(l)
		b.WriteString("\r\n")
	}
	b.WriteString("Content-Length: 0\r\n\r\n")
	msg, err := sip.ParseMessage([]byte(b.String()))
	require.NoError(t, err, "test REGISTER must parse")
	req, ok := msg.(*sip.Request)
	require.True(t, ok)
	req.SetSource("198.51.100.7:41000")
	return req
}

// reg is a REGISTER for alice with the given Call-ID and CSeq.
func reg(t testing.TB, callID string, cseq int, lines ...string) *sip.Request {
	t.Helper()
	base := []string{
		"To: <" + aliceAOR + ">",
		"Call-ID: " + callID,
		fmt.Sprintf("CSeq: %d REGISTER", cseq),
	}
	return register(t, append(base, lines...)...)
}

func mustOK(t testing.TB, res *sip.Response) *sip.Response {
	t.Helper()
	require.Equal(t, sip.StatusOK, res.StatusCode, "reason: %s", res.Reason)
	return res
}

type listed struct {
	uri     string
	q       string // "" when absent
	expires string
}

func responseContacts(t testing.TB, res *sip.Response) []listed {
	t.Helper()
	var out []listed
	for _, h := range res.GetHeaders("Contact") {
		c, ok := h.(*sip.ContactHeader)
		require.True(t, ok, "Contact header %T", h)
		q, _ := c.Params.Get("q")
		e, ok := c.Params.Get("expires")
		require.True(t, ok, "§10.3 step 8: every listed contact carries expires: %s", c.Value())
		out = append(out, listed{uri: c.Address.String(), q: q, expires: e})
	}
	return out
}

func contactURIs(bs []Binding) []string {
	out := make([]string, len(bs))
	for i := range bs {
		out[i] = bs[i].Contact.String()
	}
	return out
}

func dynamicCount(bs []Binding) int {
	n := 0
	for _, b := range bs {
		if !b.Static {
			n++
		}
	}
	return n
}

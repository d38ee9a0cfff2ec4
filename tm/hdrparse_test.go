package tm

import (
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var fastParsers = []struct {
	name string
	fast func(string) sip.Header
}{
	{"via", fastVia}, {"from", fastFrom}, {"to", fastTo}, {"contact", fastContact},
	{"route", fastRoute}, {"record-route", fastRecordRoute},
}

var headerValues = []string{
	"SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds;rport",
	"SIP/2.0/TCP [2001:db8::1]:5070;branch=z9hG4bK-2;received=192.0.2.9;rport=5060",
	"SIP/2.0/UDP host.example.com;branch=z9hG4bK1",
	"SIP/2.0/UDP host.example.com",
	"SIP/2.0/UDP [::1]",
	"SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1, SIP/2.0/UDP 192.0.2.2;branch=z9hG4bK2",
	"SIP / 2.0 / UDP 192.0.2.1;branch=z9hG4bK1",
	"SIP/2.0/UDP 192.0.2.1:50x0;branch=z9hG4bK1",
	"SIP/2.0/UDP 192.0.2.1;branch=\"quoted value\"",
	"SIP/2.0/UDP 192.0.2.1;branch=a;branch=b",
	"SIP/2.0/UDP 192.0.2.1;;rport",
	"SIP/2.0/UDP 192.0.2.1;rport;",
	"<sip:alice@example.com>;tag=1928301774",
	"\"Alice Example\" <sip:alice:pw@example.com:5062;transport=tcp>;tag=abc;x",
	"Bob <sips:bob@[2001:db8::9]:5061;lr>",
	"sip:carol@example.com;tag=887s",
	"sip:carol@example.com",
	"<sip:127.0.0.1:5060;lr;did=a1b.2c3;ftag=x>",
	"<sip:proxy.example.com;lr>",
	"<tel:+15551234567;phone-context=example.com>",
	"<sip:alice@example.com?Subject=hi>;tag=1",
	"<sip:alice@example.com>;expires=60;+sip.instance=\"<urn:uuid:1>\"",
	"<sip:a@example.com>, <sip:b@example.com>",
	"*",
	"\"A \\\"quoted\\\" name\" <sip:a@example.com>",
	"<SIP:alice@example.com>",
	"<sip:alice@example.com>; tag=1",
	"<sip:alice@example.com>;tag=1=2",
	"<sip:user@host;maddr=a@b>",
	"<sip:[::1]>",
	"<sip:alice@ex:ample.com:50>",
	"<sip:alice@example.com:99999>",
	"<sip:%61lice@example.com>",
	"<sip:alice@example.com;lr=on;lr>",
}

// The fast parsers give what sipgo's parsers give, whenever they answer.
func TestFastHeaders_SameAsSipgo(t *testing.T) {
	def := sip.DefaultHeadersParser()
	answered := 0
	for _, p := range fastParsers {
		for _, v := range headerValues {
			if checkFast(t, def, p.name, p.fast, v) {
				answered++
			}
		}
	}
	assert.Greater(t, answered, 20, "the fast path takes the common forms")
}

// The plain forms real traffic uses are taken by the fast path.
func TestFastHeaders_TakeTheCommonForms(t *testing.T) {
	for _, c := range []struct{ name, v string }{
		{"via", "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds;rport"},
		{"via", "SIP/2.0/TCP [2001:db8::1]:5070;branch=z9hG4bK-2;received=192.0.2.9;rport=5060"},
		{"from", "\"Alice Example\" <sip:alice@example.com>;tag=1928301774"},
		{"to", "<sip:bob@example.com>"},
		{"contact", "<sip:bob@192.0.2.4:5062;transport=tcp>;expires=3600"},
		{"record-route", "<sip:127.0.0.1:5060;lr;did=a1b.2c3>"},
		{"route", "<sip:[2001:db8::1]:5060;lr>"},
	} {
		for _, p := range fastParsers {
			if p.name == c.name {
				assert.NotNil(t, p.fast(c.v), "%s: %s", c.name, c.v)
			}
		}
	}
}

func checkFast(t testing.TB, def map[string]sip.HeaderParser, name string, fast func(string) sip.Header, v string) bool {
	got := fast(v)
	if got == nil {
		return false
	}
	want, err := def[name]([]byte(name), v)
	require.NoError(t, err, "%s: %q: the fast path took what sipgo refuses", name, v)
	if !reflect.DeepEqual(normalize(want), normalize(got)) {
		t.Fatalf("%s: %q:\n sipgo %#v\n fast  %#v", name, v, want, got)
	}
	return true
}

// normalize treats an empty parameter list as none: sipgo makes both.
func normalize(h sip.Header) any {
	fix := func(p *sip.HeaderParams) {
		if len(*p) == 0 {
			*p = nil
		}
	}
	fixURI := func(u *sip.Uri) sip.Uri {
		c := *u
		fix(&c.UriParams)
		fix(&c.Headers)
		return c
	}
	switch h := h.(type) {
	case *sip.ViaHeader:
		c := *h
		fix(&c.Params)
		return c
	case *sip.FromHeader:
		c := *h
		fix(&c.Params)
		c.Address = fixURI(&c.Address)
		return c
	case *sip.ToHeader:
		c := *h
		fix(&c.Params)
		c.Address = fixURI(&c.Address)
		return c
	case *sip.ContactHeader:
		c := *h
		fix(&c.Params)
		c.Address = fixURI(&c.Address)
		return c
	case *sip.RouteHeader:
		return fixURI(&h.Address)
	case *sip.RecordRouteHeader:
		return fixURI(&h.Address)
	}
	return h
}

func FuzzFastHeaders(f *testing.F) {
	for _, v := range headerValues {
		f.Add(v)
	}
	def := sip.DefaultHeadersParser()
	f.Fuzz(func(t *testing.T, v string) {
		for _, p := range fastParsers {
			checkFast(t, def, p.name, p.fast, v)
		}
	})
}

func BenchmarkParseInvite(b *testing.B) {
	raw := []byte("INVITE sip:bob@127.0.0.1 SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK-1;rport\r\n" +
		"Max-Forwards: 70\r\n" +
		"From: \"Alice\" <sip:alice@127.0.0.1>;tag=1\r\nTo: <sip:bob@127.0.0.1>\r\n" +
		"Call-ID: c@h\r\nCSeq: 1 INVITE\r\nContact: <sip:alice@127.0.0.1:5062>\r\n" +
		"Content-Type: application/sdp\r\nContent-Length: 0\r\n\r\n")
	for _, c := range []struct {
		name string
		p    interface {
			ParseSIP([]byte) (sip.Message, error)
		}
	}{{"sipgo", sip.NewParser()}, {"tm", NewParser(0)}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				if _, err := c.p.ParseSIP(raw); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// onlyBytes' sets answer as strings.ContainsAny does, for any input (UTF-8
// or not), where the hot paths used it.
func TestOnlyBytesIsContainsAny(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	alphabet := []byte("ab; \t\"[]=,\\\xc3\xa9\xff\x00")
	for _, chars := range []string{" \t\"", " \t", "[]", ",\\"} {
		set := onlyBytes(chars)
		for range 5000 {
			b := make([]byte, r.IntN(20))
			for i := range b {
				b[i] = alphabet[r.IntN(len(alphabet))]
			}
			s := string(b)
			require.Equal(t, strings.ContainsAny(s, chars), !set.clean(s), "%q in %q", chars, s)
		}
	}
}

package routing

import (
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imsdlg/imsdlg/internal/location"
	"github.com/imsdlg/imsdlg/tm"
)

func parse(t *testing.T, raw string) *sip.Request {
	t.Helper()
	m, err := sip.ParseMessage([]byte(raw))
	require.NoError(t, err)
	return m.(*sip.Request)
}

func request(t *testing.T, method, ruri, toTag string, extra string) *tm.Request {
	t.Helper()
	to := "<" + ruri + ">"
	if toTag != "" {
		to += ";tag=" + toTag
	}
	raw := method + " " + ruri + " SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-1\r\n" +
		"Max-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=a\r\nTo: " + to + "\r\n" +
		"Call-ID: c1\r\nCSeq: 1 " + method + "\r\nContact: <sip:alice@127.0.0.1:5070>\r\n" + extra +
		"Content-Length: 0\r\n\r\n"
	req := parse(t, raw)
	return &tm.Request{Request: req, Initial: toTag == "", Source: "127.0.0.1:5070", Transport: "UDP"}
}

func newRouter(t *testing.T, cfg Config) *Router {
	t.Helper()
	now := time.Unix(1_700_000_000, 0)
	loc := location.New(location.Options{Now: func() time.Time { return now }})
	require.NoError(t, loc.AddStatic("sip:bob@example.com", []string{"sip:bob@127.0.0.1:5071", "sip:bob@127.0.0.1:5072;q=0.5"}))
	return New(cfg, loc, nil)
}

func TestRouter_RFC3261_16_5_TargetSet(t *testing.T) {
	r := newRouter(t, Config{Domains: []string{"example.com"}, RecordRoute: true, NextHop: "udp:127.0.0.1:5999"})
	cases := []struct {
		name    string
		req     *tm.Request
		kind    tm.DecisionKind
		code    int
		targets []string
		dst     string
		rr      bool
	}{
		{name: "INVITE for our user forks to all contacts, record-routed",
			req: request(t, "INVITE", "sip:bob@example.com", "", ""), kind: tm.Relay,
			targets: []string{"sip:bob@127.0.0.1:5071", "sip:bob@127.0.0.1:5072"}, rr: true},
		{name: "the proxy port in the R-URI does not change the AOR",
			req: request(t, "INVITE", "sip:bob@example.com:5060", "", ""), kind: tm.Relay,
			targets: []string{"sip:bob@127.0.0.1:5071", "sip:bob@127.0.0.1:5072"}, rr: true},
		{name: "MESSAGE is not record-routed",
			req: request(t, "MESSAGE", "sip:bob@example.com", "", ""), kind: tm.Relay,
			targets: []string{"sip:bob@127.0.0.1:5071", "sip:bob@127.0.0.1:5072"}, rr: false},
		{name: "unknown user is 404",
			req: request(t, "INVITE", "sip:carol@example.com", "", ""), kind: tm.Respond, code: 404},
		{name: "other domain goes to the next hop",
			req: request(t, "INVITE", "sip:dave@other.net", "", ""), kind: tm.Relay, dst: "udp:127.0.0.1:5999", rr: true},
		{name: "OPTIONS to the proxy itself is answered",
			req: request(t, "OPTIONS", "sip:example.com", "", ""), kind: tm.Respond, code: 200},
		{name: "in-dialog request follows its route set",
			req: request(t, "BYE", "sip:bob@127.0.0.1:5071", "b", "Route: <sip:127.0.0.1:5080;lr>\r\n"), kind: tm.Relay},
		{name: "in-dialog request to our user without a route set is looked up",
			req: request(t, "BYE", "sip:bob@example.com", "b", ""), kind: tm.Relay,
			targets: []string{"sip:bob@127.0.0.1:5071", "sip:bob@127.0.0.1:5072"}},
		{name: "pre-loaded route is followed, not looked up",
			req: request(t, "INVITE", "sip:bob@example.com", "", "Route: <sip:127.0.0.1:5090;lr>\r\n"), kind: tm.Relay, rr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := r.Route(tc.req)
			require.Equal(t, tc.kind, d.Kind)
			if tc.kind == tm.Respond {
				code := d.Code
				if d.Response != nil {
					code = d.Response.StatusCode
				}
				assert.Equal(t, tc.code, code)
				return
			}
			assert.Equal(t, tc.rr, d.RecordRoute)
			var got []string
			for _, tg := range d.Targets {
				if tg.URI.Host != "" {
					got = append(got, tg.URI.String())
				}
				if tc.dst != "" {
					assert.Equal(t, tc.dst, tg.Dst)
				}
			}
			assert.Equal(t, tc.targets, got)
			if len(d.Targets) == 0 {
				assert.Equal(t, tc.dst, d.Dst, "the default branch's outbound proxy")
			}
		})
	}
}

func TestRouter_RFC3261_10_3_RegisterForOurDomain(t *testing.T) {
	r := newRouter(t, Config{Domains: []string{"example.com"}})
	req := request(t, "REGISTER", "sip:example.com", "", "Expires: 600\r\n")
	req.Request.ReplaceHeader(&sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: "alice", Host: "example.com"}, Params: sip.NewParams()})
	d := r.Route(req)
	require.Equal(t, tm.Respond, d.Kind)
	require.NotNil(t, d.Response)
	assert.Equal(t, 200, d.Response.StatusCode)

	inv := request(t, "INVITE", "sip:alice@example.com", "", "")
	d = r.Route(inv)
	require.Equal(t, tm.Relay, d.Kind)
	require.Len(t, d.Targets, 1)
	assert.Equal(t, "sip:alice@127.0.0.1:5070", d.Targets[0].URI.String())

	other := request(t, "REGISTER", "sip:other.net", "", "")
	assert.Equal(t, tm.Relay, r.Route(other).Kind, "REGISTER for another domain is proxied")
}

func TestRouter_IsOurDomainIPv6(t *testing.T) {
	r := newRouter(t, Config{Domains: []string{"[::1]", "Example.COM"}})
	assert.True(t, r.IsOurDomain("0:0:0:0:0:0:0:1"))
	assert.True(t, r.IsOurDomain("[::1]"))
	assert.True(t, r.IsOurDomain("example.com"))
	assert.False(t, r.IsOurDomain("example.org"))
}

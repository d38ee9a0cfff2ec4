package routing

import (
	"regexp"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imsdlg/imsdlg/internal/location"
	"github.com/imsdlg/imsdlg/tm"
)

func uri(t *testing.T, s string) sip.Uri {
	t.Helper()
	var u sip.Uri
	require.NoError(t, sip.ParseUri(s, &u))
	return u
}

func params(kv ...string) sip.HeaderParams {
	p := sip.NewParams()
	for i := 0; i+1 < len(kv); i += 2 {
		p.Add(kv[i], kv[i+1])
	}
	return p
}

func routes(req *sip.Request) []string {
	var out []string
	for _, h := range req.GetHeaders("Route") {
		out = append(out, h.Value())
	}
	return out
}

func newPCSCF(t *testing.T, path bool) *PCSCF {
	t.Helper()
	return NewPCSCF(Config{Domains: []string{"ims.example.com"}, RecordRoute: true},
		PCSCFConfig{SCSCF: uri(t, "sip:scscf.ims.example.com:6060"), Path: path, Self: uri(t, "sip:127.0.0.1:5060")},
		nil, nil)
}

// 3GPP TS 24.229 §5.2.2 / RFC 3327 §5.2: a UE's REGISTER goes to the
// S-CSCF with our Path on top and Supported: path.
func TestPCSCF_RFC3327_RegisterGetsPathAndGoesToSCSCF(t *testing.T) {
	r := newPCSCF(t, true)
	req := request(t, "REGISTER", "sip:ims.example.com", "", "Path: <sip:other.example.com;lr>\r\n")
	d := r.Route(req)
	require.Equal(t, tm.Relay, d.Kind)
	assert.Empty(t, d.Targets, "follows the Route pushed")
	assert.False(t, d.RecordRoute, "REGISTER is not record-routed")
	assert.Equal(t, []string{"<sip:scscf.ims.example.com:6060;lr>"}, routes(req.Request))
	paths := req.GetHeaders("Path")
	require.Len(t, paths, 2)
	assert.Equal(t, "<sip:127.0.0.1:5060;lr;term>", paths[0].Value(), "ours first")
	assert.Equal(t, "<sip:other.example.com;lr>", paths[1].Value())
	assert.True(t, hasOption(req.Request, "Supported", "path"))

	// Supported: path already there is not repeated; Path off adds none.
	req = request(t, "REGISTER", "sip:ims.example.com", "", "Supported: timer, path\r\n")
	r.Route(req)
	assert.Len(t, req.GetHeaders("Supported"), 1)
	req = request(t, "REGISTER", "sip:ims.example.com", "", "")
	newPCSCF(t, false).Route(req)
	assert.Empty(t, req.GetHeaders("Path"))
	assert.Empty(t, req.GetHeaders("Supported"))
	assert.Equal(t, []string{"<sip:scscf.ims.example.com:6060;lr>"}, routes(req.Request))
}

func TestPCSCF_OriginatingAndTerminating(t *testing.T) {
	r := newPCSCF(t, true)
	// A UE registers sip:alice@127.0.0.1:5070 through us; the registrar's
	// 200 teaches us the contact.
	reg := request(t, "REGISTER", "sip:ims.example.com", "", "")
	reg.Request.SetSource("127.0.0.1:5070")
	res := sip.NewResponseFromRequest(reg.Request, 200, "OK", nil)
	res.AppendHeader(sip.NewHeader("Contact", "<sip:alice@127.0.0.1:5070>;expires=600"))
	assert.Equal(t, 1, r.Learned().Save(reg.Request, res))

	t.Run("originating INVITE goes to the S-CSCF, record-routed", func(t *testing.T) {
		req := request(t, "INVITE", "sip:bob@ims.example.com", "", "")
		d := r.Route(req)
		require.Equal(t, tm.Relay, d.Kind)
		assert.True(t, d.RecordRoute)
		assert.Empty(t, d.Targets)
		assert.Equal(t, []string{"<sip:scscf.ims.example.com:6060;lr>"}, routes(req.Request))
	})
	t.Run("a route the UE pre-loaded beyond us is followed", func(t *testing.T) {
		req := request(t, "INVITE", "sip:bob@ims.example.com", "", "Route: <sip:orig@scscf2.example.com;lr>\r\n")
		req.RouteConsumed = true
		r.Route(req)
		assert.Equal(t, []string{"<sip:orig@scscf2.example.com;lr>"}, routes(req.Request))
	})
	t.Run("terminating by our Path entry", func(t *testing.T) {
		req := request(t, "INVITE", "sip:carol@10.9.9.9:5090", "", "")
		req.RouteConsumed = true
		req.RouteParams = params("lr", "", TermParam, "")
		assert.True(t, r.Terminating(req))
		d := r.Route(req)
		require.Equal(t, tm.Relay, d.Kind)
		assert.True(t, d.RecordRoute)
		assert.Empty(t, routes(req.Request), "to the Request-URI, not the S-CSCF")
	})
	t.Run("terminating by a learned contact", func(t *testing.T) {
		req := request(t, "INVITE", "sip:alice@127.0.0.1:5070", "", "")
		assert.True(t, r.Terminating(req))
		r.Route(req)
		assert.Empty(t, routes(req.Request))
	})
	t.Run("a consumed Route without our Path marker is originating", func(t *testing.T) {
		req := request(t, "INVITE", "sip:alice@127.0.0.1:5071", "", "")
		req.RouteConsumed = true
		req.RouteParams = params("lr", "")
		assert.False(t, r.Terminating(req))
	})
	t.Run("in-dialog requests follow the route set", func(t *testing.T) {
		req := request(t, "BYE", "sip:bob@127.0.0.1:5071", "b", "Route: <sip:127.0.0.1:6060;lr>\r\n")
		d := r.Route(req)
		assert.Equal(t, tm.Relay, d.Kind)
		assert.Equal(t, []string{"<sip:127.0.0.1:6060;lr>"}, routes(req.Request))
	})
	t.Run("OPTIONS to the P-CSCF itself", func(t *testing.T) {
		assert.Equal(t, tm.Respond, r.Route(request(t, "OPTIONS", "sip:ims.example.com", "", "")).Kind)
	})
}

func newSCSCF(t *testing.T, rules ...ASRule) (*SCSCF, *location.Store) {
	t.Helper()
	loc := location.New(location.Options{Now: func() time.Time { return time.Unix(1_700_000_000, 0) }})
	return NewSCSCF(Config{Domains: []string{"ims.example.com"}, RecordRoute: true},
		SCSCFConfig{Self: uri(t, "sip:127.0.0.1:6060"), Rules: rules}, loc, nil), loc
}

func TestSCSCF_ASRulesInOrderThenTerminating(t *testing.T) {
	r, loc := newSCSCF(t,
		ASRule{RURI: regexp.MustCompile(`^sip:bob@`), AS: uri(t, "sip:as1.example.com:7000")},
		ASRule{Method: sip.MESSAGE, AS: uri(t, "sip:as-msg.example.com;lr")},
		ASRule{From: regexp.MustCompile(`alice`), AS: uri(t, "sip:as3.example.com")},
	)
	require.NoError(t, loc.AddStatic("sip:bob@ims.example.com", []string{"sip:bob@127.0.0.1:5071"}))

	// First pass: rule 0 matches.
	req := request(t, "INVITE", "sip:bob@ims.example.com", "", "")
	d := r.Route(req)
	require.Equal(t, tm.Relay, d.Kind)
	assert.True(t, d.RecordRoute)
	assert.Empty(t, d.Targets)
	assert.Equal(t, []string{"<sip:as1.example.com:7000;lr>", "<sip:127.0.0.1:6060;lr;asnext=1>"}, routes(req.Request))

	// Back from AS 1: rule 1 is for MESSAGE, rule 2 matches the From.
	req = request(t, "INVITE", "sip:bob@ims.example.com", "", "")
	req.RouteConsumed, req.RouteParams = true, params("lr", "", ASNextParam, "1")
	r.Route(req)
	assert.Equal(t, []string{"<sip:as3.example.com;lr>", "<sip:127.0.0.1:6060;lr;asnext=3>"}, routes(req.Request))

	// Back from AS 3: no rule left, the callee's contacts.
	req = request(t, "INVITE", "sip:bob@ims.example.com", "", "")
	req.RouteConsumed, req.RouteParams = true, params("lr", "", ASNextParam, "3")
	d = r.Route(req)
	require.Equal(t, tm.Relay, d.Kind)
	require.Len(t, d.Targets, 1)
	assert.Equal(t, "sip:bob@127.0.0.1:5071", d.Targets[0].URI.String())
	assert.Empty(t, routes(req.Request))

	// A garbled asnext ends AS routing (no loop through an AS).
	req = request(t, "INVITE", "sip:bob@ims.example.com", "", "")
	req.RouteConsumed, req.RouteParams = true, params(ASNextParam, "x")
	d = r.Route(req)
	require.Len(t, d.Targets, 1)

	// MESSAGE from someone else: rule 1 only.
	req = request(t, "MESSAGE", "sip:carol@ims.example.com", "", "")
	req.Request.ReplaceHeader(&sip.FromHeader{Address: uri(t, "sip:dave@ims.example.com"), Params: params("tag", "d")})
	d = r.Route(req)
	assert.False(t, d.RecordRoute, "MESSAGE does not form a dialog")
	assert.Equal(t, []string{"<sip:as-msg.example.com;lr>", "<sip:127.0.0.1:6060;lr;asnext=2>"}, routes(req.Request))

	// No rule, unknown user: 404.
	req = request(t, "INVITE", "sip:carol@ims.example.com", "", "")
	req.Request.ReplaceHeader(&sip.FromHeader{Address: uri(t, "sip:dave@ims.example.com"), Params: params("tag", "d")})
	d = r.Route(req)
	require.Equal(t, tm.Respond, d.Kind)
	assert.Equal(t, 404, d.Code)
}

func TestSCSCF_RegisterStoresPath(t *testing.T) {
	r, loc := newSCSCF(t)
	req := request(t, "REGISTER", "sip:ims.example.com", "",
		"Path: <sip:127.0.0.1:5060;lr;term>\r\nSupported: path\r\nExpires: 600\r\n")
	req.Request.ReplaceHeader(&sip.ToHeader{Address: uri(t, "sip:alice@ims.example.com"), Params: sip.NewParams()})
	d := r.Route(req)
	require.Equal(t, tm.Respond, d.Kind)
	require.Equal(t, 200, d.Response.StatusCode)
	assert.Len(t, d.Response.GetHeaders("Path"), 1, "echoed: the UE said Supported: path")
	bs := loc.Lookup("sip:alice@ims.example.com")
	require.Len(t, bs, 1)
	assert.Equal(t, []string{"<sip:127.0.0.1:5060;lr;term>"}, bs[0].Path)
}

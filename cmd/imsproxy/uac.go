package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"strings"

	"github.com/emiago/sipgo/sip"

	"github.com/imsdlg/imsdlg/internal/mgmt"
	"github.com/imsdlg/imsdlg/tm"
)

// uacDlgParams are the arguments of tm.uac_dlg, after the OpenSIPS MI
// command t_uac_dlg: a request the proxy originates itself.
type uacDlgParams struct {
	Method  string   `json:"method" mgmt:"required"`
	RURI    string   `json:"ruri" mgmt:"required"`
	NextHop string   `json:"next_hop"` // "udp:host:port"; default: Route set / R-URI
	From    string   `json:"from"`     // default <sip:imsproxy@R-URI host>
	To      string   `json:"to"`       // default the R-URI
	Headers []string `json:"headers"`  // extra "Name: value" lines
	Body    string   `json:"body"`
}

func randomToken() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func uacDlg(ctx context.Context, proxy *tm.Proxy, raw json.RawMessage) (any, error) {
	var p uacDlgParams
	if err := mgmt.DecodeParams(raw, &p); err != nil {
		return nil, err
	}
	for _, a := range []struct{ name, v string }{{"method", p.Method}, {"ruri", p.RURI}, {"next_hop", p.NextHop},
		{"from", p.From}, {"to", p.To}} {
		if i := strings.IndexFunc(a.v, func(r rune) bool { return r < 0x20 || r == 0x7f }); i >= 0 {
			return nil, mgmt.InvalidParams("argument %q: control byte 0x%02x at offset %d", a.name, a.v[i], i)
		}
	}
	if strings.IndexByte(p.Body, 0) >= 0 {
		return nil, mgmt.InvalidParams("argument \"body\": contains a NUL byte")
	}
	method := sip.RequestMethod(strings.ToUpper(p.Method))
	switch method {
	case sip.ACK, sip.CANCEL, sip.INVITE:
		return nil, mgmt.InvalidParams("argument \"method\": %s needs a transaction context; use OPTIONS, MESSAGE, NOTIFY, INFO, BYE ...", method)
	}
	var ruri sip.Uri
	if err := sip.ParseUri(p.RURI, &ruri); err != nil {
		return nil, mgmt.InvalidParams("argument \"ruri\": %v", err)
	}
	if p.NextHop != "" {
		if _, _, _, err := tm.ParseDst(p.NextHop); err != nil {
			return nil, mgmt.InvalidParams("argument \"next_hop\": %v", err)
		}
	}
	req := sip.NewRequest(method, ruri)
	from := sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: "imsproxy", Host: ruri.Host}, Params: sip.NewParams()}
	if p.From != "" {
		if err := sip.ParseUri(strings.Trim(p.From, "<>"), &from.Address); err != nil {
			return nil, mgmt.InvalidParams("argument \"from\": %v", err)
		}
	}
	from.Params.Add("tag", randomToken())
	to := sip.ToHeader{Address: ruri, Params: sip.NewParams()}
	if p.To != "" {
		if err := sip.ParseUri(strings.Trim(p.To, "<>"), &to.Address); err != nil {
			return nil, mgmt.InvalidParams("argument \"to\": %v", err)
		}
	}
	req.AppendHeader(&from)
	req.AppendHeader(&to)
	cid := sip.CallIDHeader(randomToken() + "@imsproxy")
	req.AppendHeader(&cid)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: 1, MethodName: method})
	for i, h := range p.Headers {
		name, value, err := tm.CheckHeaderLine(h)
		if err != nil {
			return nil, mgmt.InvalidParams("argument \"headers[%d]\" %q: %v", i, h, err)
		}
		req.AppendHeader(sip.NewHeader(name, value))
	}
	if p.Body != "" {
		req.SetBody([]byte(p.Body))
	}
	res, err := proxy.SendRequest(ctx, req, p.NextHop)
	if err != nil {
		return nil, err
	}
	out := map[string]any{"code": res.StatusCode, "reason": res.Reason, "callid": cid.Value()}
	return out, nil
}

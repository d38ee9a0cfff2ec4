package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strings"

	"github.com/emiago/sipgo/sip"

	"github.com/imsdlg/imsdlg/internal/mgmt"
	"github.com/imsdlg/imsdlg/tm"
)

// uacDlgParams are the arguments of tm.uac_dlg, after the OpenSIPS MI
// command t_uac_dlg: a request the proxy originates itself. from, to
// (with their tags), callid and cseq, and Contact and Route lines among
// the headers, make it a request within a dialog: the BYE of a call an
// INVITE of this method made, with what its reply returned.
type uacDlgParams struct {
	Method  string   `json:"method" mgmt:"required"`
	RURI    string   `json:"ruri" mgmt:"required"`
	NextHop string   `json:"next_hop"` // "udp:host:port"; default: Route set / R-URI
	Socket  string   `json:"socket"`   // "udp:ip:port", a listener to send from; default: one picked
	From    string   `json:"from"`     // default <sip:imsproxy@R-URI host>, a new tag
	To      string   `json:"to"`       // default the R-URI
	CallID  string   `json:"callid"`   // default a new one
	CSeq    uint32   `json:"cseq"`     // default 1
	Headers []string `json:"headers"`  // extra "Name: value" lines
	Body    string   `json:"body"`
}

// dialogHeaders are the header lines tm.uac_dlg reads instead of passing
// them on as they are (compact forms included).
var dialogHeaders = map[string]string{"contact": "Contact", "m": "Contact", "route": "Route"}

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
		{"socket", p.Socket}, {"from", p.From}, {"to", p.To}, {"callid", p.CallID}} {
		if i := strings.IndexFunc(a.v, func(r rune) bool { return r < 0x20 || r == 0x7f }); i >= 0 {
			return nil, mgmt.InvalidParams("argument %q: control byte 0x%02x at offset %d", a.name, a.v[i], i)
		}
	}
	if strings.IndexByte(p.Body, 0) >= 0 {
		return nil, mgmt.InvalidParams("argument \"body\": contains a NUL byte")
	}
	method := sip.RequestMethod(strings.ToUpper(p.Method))
	switch method {
	case sip.ACK, sip.CANCEL:
		return nil, mgmt.InvalidParams("argument \"method\": %s belongs to another request's transaction (tm.t_cancel cancels)", method)
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
		if _, err := sip.ParseAddressValue(p.From, &from.Address, &from.Params); err != nil {
			return nil, mgmt.InvalidParams("argument \"from\": %v", err)
		}
	}
	to := sip.ToHeader{Address: ruri, Params: sip.NewParams()}
	if p.To != "" {
		if _, err := sip.ParseAddressValue(p.To, &to.Address, &to.Params); err != nil {
			return nil, mgmt.InvalidParams("argument \"to\": %v", err)
		}
	}
	cid := sip.CallIDHeader(randomToken() + "@imsproxy")
	if p.CallID != "" {
		if strings.ContainsAny(p.CallID, " \t") {
			return nil, mgmt.InvalidParams("argument \"callid\": %q has blanks", p.CallID)
		}
		cid = sip.CallIDHeader(p.CallID)
	}
	cseq := sip.CSeqHeader{SeqNo: 1, MethodName: method}
	if p.CSeq != 0 {
		if p.CSeq >= 1<<31 {
			return nil, mgmt.InvalidParams("argument \"cseq\": %d is not below 2^31", p.CSeq)
		}
		cseq.SeqNo = p.CSeq
	}
	var contact *sip.ContactHeader
	var route []sip.Header
	var extra []sip.Header
	for i, h := range p.Headers {
		name, value, err := tm.CheckHeaderLine(h)
		if err != nil {
			return nil, mgmt.InvalidParams("argument \"headers[%d]\" %q: %v", i, h, err)
		}
		bad := func(err error) error {
			return mgmt.InvalidParams("argument \"headers[%d]\" %q: %v", i, h, err)
		}
		switch dialogHeaders[strings.ToLower(name)] {
		case "Contact":
			contact = &sip.ContactHeader{Params: sip.NewParams()}
			if contact.DisplayName, err = sip.ParseAddressValue(value, &contact.Address, &contact.Params); err != nil {
				return nil, bad(err)
			}
		case "Route":
			for _, v := range strings.Split(value, ",") {
				r := &sip.RouteHeader{}
				var params sip.HeaderParams
				if _, err := sip.ParseAddressValue(strings.TrimSpace(v), &r.Address, &params); err != nil {
					return nil, bad(err)
				}
				route = append(route, r)
			}
		default:
			extra = append(extra, sip.NewHeader(name, value))
		}
	}
	if from.Params.GetOr("tag", "") == "" {
		from.Params.Add("tag", randomToken())
	}
	if method == sip.INVITE && contact == nil {
		return nil, mgmt.InvalidParams("argument \"headers\": an INVITE needs a Contact header (the UA that will hold the session, RFC 3261 8.1.1.8)")
	}
	for _, r := range route {
		req.AppendHeader(r)
	}
	req.AppendHeader(&from)
	req.AppendHeader(&to)
	req.AppendHeader(&cid)
	req.AppendHeader(&cseq)
	if contact != nil {
		req.AppendHeader(contact)
	}
	for _, h := range extra {
		req.AppendHeader(h)
	}
	if p.Body != "" {
		req.SetBody([]byte(p.Body))
	}
	res, err := proxy.SendRequestFrom(ctx, req, p.NextHop, p.Socket)
	if errors.Is(err, tm.ErrNoSocket) {
		return nil, mgmt.InvalidParams("argument \"socket\": %v", err)
	}
	if err != nil {
		return nil, err
	}
	out := map[string]any{"code": res.StatusCode, "reason": res.Reason, "callid": cid.Value(),
		"from_tag": from.Params.GetOr("tag", ""), "cseq": cseq.SeqNo}
	if method == sip.INVITE && res.StatusCode < 300 {
		// What the BYE of this session needs (tm ACKed the 2xx).
		out["to_tag"] = tm.Tag(res.To().Params)
		if c := res.Contact(); c != nil {
			out["contact"] = c.Address.String()
		}
		rs := []string{}
		rr := res.GetHeaders("Record-Route")
		for i := len(rr) - 1; i >= 0; i-- {
			rs = append(rs, rr[i].Value())
		}
		out["route_set"] = rs
	}
	return out, nil
}

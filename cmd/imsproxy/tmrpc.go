package main

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/imsdlg/imsdlg/internal/mgmt"
	"github.com/imsdlg/imsdlg/tm"
)

// registerTransactionMethods adds the tm calls on pending INVITE
// transactions (issue 13 §7; the tm manual's t_reply, and t_cancel):
// tm.list shows them with the trans_id the others take.
func registerTransactionMethods(api *mgmt.Server, p *tm.Proxy) {
	type txJSON struct {
		TransID  string `json:"trans_id"`
		CallID   string `json:"callid"`
		CSeq     string `json:"cseq"`
		From     string `json:"from"`
		To       string `json:"to"`
		RURI     string `json:"ruri"`
		Branches int    `json:"branches"`
		AgeMS    int64  `json:"age_ms"`
	}
	api.Register("tm.list", func(context.Context, json.RawMessage) (any, error) {
		out := []txJSON{}
		now := time.Now()
		for _, t := range p.PendingInvites() {
			j := txJSON{TransID: strconv.FormatUint(t.ID(), 10), Branches: len(t.Branches()),
				AgeMS: now.Sub(t.Created()).Milliseconds()}
			// Held while read: the call may end meanwhile, and tm reuses
			// its INVITE's memory then.
			held := t.WithOriginal(func(r *sip.Request) {
				j.RURI = r.Recipient.String()
				if h := r.CallID(); h != nil {
					j.CallID = strings.Clone(h.Value()) // a slice of the INVITE's text; j outlives the hold
				}
				if h := r.CSeq(); h != nil {
					j.CSeq = h.Value()
				}
				if h := r.From(); h != nil {
					j.From = h.Address.String()
				}
				if h := r.To(); h != nil {
					j.To = h.Address.String()
				}
			})
			if held {
				out = append(out, j)
			}
		}
		sort.Slice(out, func(i, j int) bool { return out[i].TransID < out[j].TransID })
		return out, nil
	})
	find := func(id string) (*tm.Transaction, error) {
		n, err := strconv.ParseUint(strings.TrimSpace(id), 10, 64)
		if err != nil {
			return nil, mgmt.InvalidParams("argument \"trans_id\" %q is not a transaction id (see tm.list)", id)
		}
		t := p.PendingInvite(n)
		if t == nil {
			return nil, mgmt.NotFound("no pending INVITE transaction %s (answered already, or never was)", id)
		}
		return t, nil
	}
	// findBy is find, or by Call-ID and CSeq (t_reply_by_callid) when no
	// trans_id is given; the name to report it by comes back.
	findBy := func(id transID, callID string, cseq transID) (*tm.Transaction, string, error) {
		switch {
		case id != "" && callID != "":
			return nil, "", mgmt.InvalidParams("arguments \"trans_id\" and \"callid\": give one of them")
		case id != "":
			t, err := find(string(id))
			return t, string(id), err
		case callID == "":
			return nil, "", mgmt.InvalidParams("argument \"trans_id\" (or \"callid\" and \"cseq\") is required")
		}
		n, err := parseInviteCSeq(cseq)
		if err != nil {
			return nil, "", err
		}
		t := p.PendingInviteByCallID(callID, n)
		if t == nil {
			return nil, "", mgmt.NotFound("no pending INVITE with Call-ID %q and CSeq %d", callID, n)
		}
		return t, strconv.FormatUint(t.ID(), 10), nil
	}
	type replyParams struct {
		Code       *int     `json:"code" mgmt:"required"`
		Reason     string   `json:"reason"`
		TransID    transID  `json:"trans_id"`
		CallID     string   `json:"callid"` // with cseq, instead of trans_id (t_reply_by_callid)
		CSeq       transID  `json:"cseq"`
		ToTag      string   `json:"to_tag"`
		NewHeaders []string `json:"new_headers"`
		// Body goes with a Content-Type among new_headers (as in the
		// manual).
		Body string `json:"body"`
	}
	api.Register("tm.t_reply", mgmt.Positional(func(_ context.Context, raw json.RawMessage) (any, error) {
		var rp replyParams
		if err := mgmt.DecodeParams(raw, &rp); err != nil {
			return nil, err
		}
		if *rp.Code < 200 || *rp.Code > 699 {
			return nil, mgmt.InvalidParams("argument \"code\" must be a final reply code 200..699, got %d", *rp.Code)
		}
		var hdrs []sip.Header
		for i, line := range rp.NewHeaders {
			name, value, err := tm.CheckHeaderLine(line)
			if err != nil {
				return nil, mgmt.InvalidParams("argument \"new_headers[%d]\" %q: %v", i, line, err)
			}
			hdrs = append(hdrs, sip.NewHeader(name, value))
		}
		var body []byte
		if rp.Body != "" {
			if !slices.ContainsFunc(hdrs, func(h sip.Header) bool { return strings.EqualFold(h.Name(), "Content-Type") }) {
				return nil, mgmt.InvalidParams("argument \"body\" needs a Content-Type line in \"new_headers\"")
			}
			if strings.IndexByte(rp.Body, 0) >= 0 {
				return nil, mgmt.InvalidParams("argument \"body\": contains a NUL byte")
			}
			body = []byte(rp.Body)
		}
		t, id, err := findBy(rp.TransID, rp.CallID, rp.CSeq)
		if err != nil {
			return nil, err
		}
		if rp.ToTag != "" {
			t.SetLocalToTag(rp.ToTag)
		}
		if err := t.ReplyWithBody(*rp.Code, rp.Reason, body, hdrs...); err != nil {
			if errors.Is(err, tm.ErrFinalSent) {
				return nil, mgmt.NotFound("transaction %s was answered meanwhile", id)
			}
			return nil, mgmt.InvalidParams("%v", err)
		}
		return map[string]any{"trans_id": id, "code": *rp.Code, "replied": true}, nil
	}, "code", "reason", "trans_id", "to_tag", "new_headers", "body"))
	type cancelParams struct {
		TransID transID `json:"trans_id" mgmt:"required"`
		Reason  string  `json:"reason"`
		// Branch cancels that branch only (t_cancel_branch); the
		// transaction goes on with the others.
		Branch *int `json:"branch"`
	}
	api.Register("tm.t_cancel", mgmt.Positional(func(_ context.Context, raw json.RawMessage) (any, error) {
		var cp cancelParams
		if err := mgmt.DecodeParams(raw, &cp); err != nil {
			return nil, err
		}
		t, err := find(string(cp.TransID))
		if err != nil {
			return nil, err
		}
		reason := ""
		if cp.Reason != "" {
			reason = tm.ReasonValue("SIP", 487, cp.Reason)
		}
		if cp.Branch != nil {
			if n := len(t.Branches()); *cp.Branch < 0 || *cp.Branch >= n {
				return nil, mgmt.InvalidParams("argument \"branch\" must be 0..%d (the transaction's branches), got %d", n-1, *cp.Branch)
			}
			if err := t.CancelBranch(*cp.Branch, reason); err != nil {
				return nil, mgmt.NotFound("transaction %s was answered meanwhile", cp.TransID)
			}
			return map[string]any{"trans_id": cp.TransID, "branch": *cp.Branch, "cancelled": true}, nil
		}
		if err := t.Cancel(reason); err != nil {
			return nil, mgmt.NotFound("transaction %s was answered meanwhile", cp.TransID)
		}
		return map[string]any{"trans_id": cp.TransID, "cancelled": true}, nil
	}, "trans_id", "reason"))
	api.Register("tm.t_uac_cancel", mgmt.Positional(func(_ context.Context, raw json.RawMessage) (any, error) {
		return uacCancel(p, raw)
	}, "callid", "cseq", "reason"))
}

// uacCancel is tm.t_uac_cancel (OpenSIPS MI t_uac_cancel): cancel the
// pending INVITE of a Call-ID and CSeq, one the proxy sent itself
// (tm.uac_dlg) or, failing that, one it relays.
func uacCancel(p *tm.Proxy, raw json.RawMessage) (any, error) {
	var cp struct {
		CallID string  `json:"callid" mgmt:"required"`
		CSeq   transID `json:"cseq" mgmt:"required"` // "1 INVITE", "1" or 1
		Reason string  `json:"reason"`
	}
	if err := mgmt.DecodeParams(raw, &cp); err != nil {
		return nil, err
	}
	n, err := parseInviteCSeq(cp.CSeq)
	if err != nil {
		return nil, err
	}
	reason := ""
	if cp.Reason != "" {
		reason = tm.ReasonValue("SIP", 487, cp.Reason)
	}
	out := map[string]any{"callid": cp.CallID, "cseq": n, "cancelled": true}
	err = p.CancelLocalInvite(cp.CallID, n, reason)
	if err == nil {
		out["local"] = true
		return out, nil
	}
	if !errors.Is(err, tm.ErrNotPending) {
		return nil, err
	}
	if t := p.PendingInviteByCallID(cp.CallID, n); t != nil && t.Cancel(reason) == nil {
		out["local"] = false
		out["trans_id"] = strconv.FormatUint(t.ID(), 10)
		return out, nil
	}
	return nil, mgmt.NotFound("no pending INVITE with Call-ID %q and CSeq %d", cp.CallID, n)
}

// parseInviteCSeq reads the CSeq argument naming a pending INVITE: "1
// INVITE", "1" or 1.
func parseInviteCSeq(v transID) (uint32, error) {
	num, method, _ := strings.Cut(strings.TrimSpace(string(v)), " ")
	n, err := strconv.ParseUint(num, 10, 32)
	if err != nil || n == 0 || n >= 1<<31 {
		return 0, mgmt.InvalidParams("argument \"cseq\": %q is not a CSeq (\"1 INVITE\" or a number 1..2^31-1)", string(v))
	}
	if m := strings.TrimSpace(method); m != "" && !strings.EqualFold(m, "INVITE") {
		return 0, mgmt.InvalidParams("argument \"cseq\": %q: only an INVITE is pending here", string(v))
	}
	return uint32(n), nil
}

// transID is a trans_id as a client sends it: the string tm.list shows, or
// the same number unquoted (positional callers often send numbers).
type transID string

func (t *transID) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*t = transID(s)
		return nil
	}
	var n json.Number
	if err := json.Unmarshal(b, &n); err != nil {
		return err
	}
	*t = transID(n.String())
	return nil
}

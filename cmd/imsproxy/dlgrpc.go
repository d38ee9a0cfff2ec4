package main

import (
	"context"
	"encoding/json"
	"errors"
	"sort"
	"strings"
	"time"

	"github.com/imsdlg/imsdlg/dlgdb"
	"github.com/imsdlg/imsdlg/imsdialog"
	"github.com/imsdlg/imsdlg/internal/mgmt"
	"github.com/imsdlg/imsdlg/tm"
)

// dlgSelector names one dialog: by callid and tags, or by table position.
type dlgSelector struct {
	CallID  string  `json:"callid"`
	FromTag string  `json:"from_tag"`
	ToTag   string  `json:"to_tag"`
	HEntry  *uint32 `json:"h_entry"`
	HID     *uint32 `json:"h_id"`
}

func (s dlgSelector) find(m *imsdialog.Manager) (*imsdialog.Dialog, error) {
	switch {
	case s.HEntry != nil || s.HID != nil:
		if s.HEntry == nil || s.HID == nil {
			return nil, mgmt.InvalidParams("arguments \"h_entry\" and \"h_id\" go together")
		}
		if d := m.Lookup(*s.HEntry, *s.HID); d != nil {
			return d, nil
		}
		return nil, mgmt.NotFound("dialog h_entry=%d h_id=%d not found", *s.HEntry, *s.HID)
	case s.CallID == "":
		return nil, mgmt.InvalidParams("missing argument \"callid\" (or \"h_entry\" and \"h_id\")")
	case s.FromTag == "":
		// A Call-ID alone names its dialog when it has only one, as
		// Kamailio operators are used to.
		switch ds := m.ByCallID(s.CallID); len(ds) {
		case 0:
			return nil, mgmt.NotFound("dialog callid=%q not found", s.CallID)
		case 1:
			return ds[0], nil
		default:
			return nil, mgmt.InvalidParams("%d dialogs have callid %q: add \"from_tag\" (and \"to_tag\") or give \"h_entry\" and \"h_id\"", len(ds), s.CallID)
		}
	}
	if d := m.Get(s.CallID, s.FromTag, s.ToTag); d != nil {
		return d, nil
	}
	return nil, mgmt.NotFound("dialog callid=%q from_tag=%q to_tag=%q not found", s.CallID, s.FromTag, s.ToTag)
}

type terminateParams struct {
	dlgSelector
	Side    string   `json:"side"`
	Reason  string   `json:"reason"`
	Headers []string `json:"headers"`
}

func parseSide(s string) (imsdialog.Side, error) {
	switch strings.ToLower(s) {
	case "", "both":
		return imsdialog.SideBoth, nil
	case "caller":
		return imsdialog.SideCaller, nil
	case "callee":
		return imsdialog.SideCallee, nil
	}
	return 0, mgmt.InvalidParams("argument \"side\" must be caller, callee or both, got %q", s)
}

// legJSON is one callee leg in dlg.list (a contract).
type legJSON struct {
	ToTag        string   `json:"to_tag"`
	State        string   `json:"state"`
	RemoteTarget string   `json:"remote_target"`
	RouteSet     []string `json:"route_set"`
	CallerCSeq   uint32   `json:"caller_cseq"`
	CalleeCSeq   uint32   `json:"callee_cseq"`
	Branch       int      `json:"branch"`
	LastCode     int      `json:"last_code"`
	Source       string   `json:"source"`
	Created      int64    `json:"created"`
	Updated      int64    `json:"updated"`
}

// dialogJSON is a dialog in dlg.list, dlg.get and dlg.profile_list_dlgs:
// the shape operators' scripts read, so a contract.
type dialogJSON struct {
	HEntry      uint32            `json:"h_entry"`
	HID         uint32            `json:"h_id"`
	DID         string            `json:"did"`
	CallID      string            `json:"callid"`
	FromTag     string            `json:"from_tag"`
	ToTag       string            `json:"to_tag"`
	FromURI     string            `json:"from_uri"`
	ToURI       string            `json:"to_uri"`
	State       string            `json:"state"`
	EndReason   string            `json:"end_reason,omitempty"`
	Created     int64             `json:"created"`
	Start       int64             `json:"start,omitempty"`
	Ended       int64             `json:"ended,omitempty"`
	Timeout     int64             `json:"timeout"` // seconds of lifetime
	CallerCSeq  uint32            `json:"caller_cseq"`
	CallerRoute []string          `json:"caller_route_set"`
	CallerURI   string            `json:"caller_contact"`
	DlgOuts     []legJSON         `json:"dlg_outs"`
	Vars        map[string]string `json:"vars,omitempty"`
	Flags       uint32            `json:"flags,omitempty"`
	// Profiles are the dialog's profile memberships (dlg.get only).
	Profiles []membershipJSON `json:"profiles,omitempty"`
}

type membershipJSON struct {
	Profile string `json:"profile"`
	Value   string `json:"value,omitempty"`
}

// listFilter is what dlg.list and dlg.list_ctx accept: filters (all must
// match) and a page of the list in (h_entry, h_id) order.
type listFilter struct {
	State   string `json:"state"`
	CallID  string `json:"callid"`
	FromTag string `json:"from_tag"`
	FromURI string `json:"from_uri"` // substring
	ToURI   string `json:"to_uri"`   // substring
	// VarName and VarValue keep the dialogs whose variable VarName is
	// VarValue (get_dialogs_by_val); VarValue "" keeps those that have it.
	VarName  string `json:"var_name"`
	VarValue string `json:"var_value"`
	Offset   int    `json:"offset"`
	Limit    int    `json:"limit"` // 0: all
}

func (f *listFilter) check() error {
	if f.Offset < 0 || f.Limit < 0 {
		return mgmt.InvalidParams("arguments \"offset\" and \"limit\" must not be negative")
	}
	if f.State != "" {
		if _, ok := imsdialog.ParseState(f.State); !ok {
			return mgmt.InvalidParams("argument \"state\" %q is not a dialog state (UNCONFIRMED, EARLY, CONFIRMED_NA, CONFIRMED, TERMINATED)", f.State)
		}
	}
	return nil
}

func (f *listFilter) match(d *dialogJSON) bool {
	return (f.State == "" || strings.EqualFold(d.State, f.State)) &&
		(f.CallID == "" || d.CallID == f.CallID) &&
		(f.FromTag == "" || d.FromTag == f.FromTag) &&
		(f.FromURI == "" || strings.Contains(d.FromURI, f.FromURI)) &&
		(f.ToURI == "" || strings.Contains(d.ToURI, f.ToURI))
}

func unix(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.Unix()
}

func dialogView(in imsdialog.Info) dialogJSON {
	out := dialogJSON{HEntry: in.HEntry, HID: in.HID, DID: in.DID, CallID: in.CallID, FromTag: in.FromTag, ToTag: in.ToTag,
		FromURI: in.FromURI, ToURI: in.ToURI, State: in.State.String(), Created: unix(in.Created), Start: unix(in.Start),
		Ended: unix(in.Ended), Timeout: int64(in.Timeout / time.Second), CallerCSeq: in.CallerCSeq,
		CallerRoute: in.CallerRoute, CallerURI: in.CallerURI, DlgOuts: make([]legJSON, 0, len(in.DlgOuts)),
		Vars: in.Vars, Flags: in.Flags}
	if in.EndReason != imsdialog.NotEnded {
		out.EndReason = in.EndReason.String()
	}
	if out.CallerRoute == nil {
		out.CallerRoute = []string{}
	}
	for _, l := range in.DlgOuts {
		route := l.RouteSet
		if route == nil {
			route = []string{}
		}
		out.DlgOuts = append(out.DlgOuts, legJSON{ToTag: l.ToTag, State: l.State, RemoteTarget: l.RemoteTarget, RouteSet: route,
			CallerCSeq: l.CallerCSeq, CalleeCSeq: l.CalleeCSeq, Branch: l.Branch, LastCode: l.LastCode, Source: l.Source,
			Created: unix(l.Created), Updated: unix(l.Updated)})
	}
	return out
}

// listDialogs returns the dialogs sorted by table position.
func listDialogs(m *imsdialog.Manager, ctx bool, f listFilter) []dialogJSON {
	var ds []*imsdialog.Dialog
	if f.CallID != "" {
		ds = m.ByCallID(f.CallID)
	} else {
		ds = m.Dialogs()
	}
	out := make([]dialogJSON, 0, len(ds))
	for _, d := range ds {
		if f.VarName != "" {
			// get_dialogs_by_val: looked up before the dialog's view is built.
			if v, ok := d.Var(f.VarName); !ok || (f.VarValue != "" && v != f.VarValue) {
				continue
			}
		}
		var v dialogJSON
		if ctx {
			v = dialogView(m.InfoCtx(d))
		} else {
			v = dialogView(d.Info(false))
		}
		if f.match(&v) {
			out = append(out, v)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].HEntry != out[j].HEntry {
			return out[i].HEntry < out[j].HEntry
		}
		return out[i].HID < out[j].HID
	})
	out = out[min(f.Offset, len(out)):]
	if f.Limit > 0 && len(out) > f.Limit {
		out = out[:f.Limit]
	}
	return out
}

// registerDialogMethods adds the dlg.* management calls (ims_dialog RPC
// commands); their JSON shapes are a contract for operators' scripts.
// extra adds counters of the dialog module's plug-ins to dlg.stats.
func registerDialogMethods(api *mgmt.Server, m *imsdialog.Manager, extra func() map[string]int64, members func(did string) []dlgdb.Membership) {
	list := func(ctx bool) mgmt.Handler {
		return func(_ context.Context, p json.RawMessage) (any, error) {
			var f listFilter
			if err := mgmt.DecodeParams(p, &f); err != nil {
				return nil, err
			}
			if err := f.check(); err != nil {
				return nil, err
			}
			return listDialogs(m, ctx, f), nil
		}
	}
	api.Register("dlg.list", list(false))
	api.Register("dlg.list_ctx", list(true))
	// Kamailio's names (the ims_dialog manual lists them, unimplemented
	// there): the dialogs of a Call-ID, and From tag, as kamcmd sends them.
	api.Register("dlg.dlg_list", mgmt.Positional(list(false), "callid", "from_tag"))
	api.Register("dlg.dlg_list_ctx", mgmt.Positional(list(true), "callid", "from_tag"))
	api.Register("dlg.get", mgmt.Positional(func(_ context.Context, p json.RawMessage) (any, error) {
		var s dlgSelector
		if err := mgmt.DecodeParams(p, &s); err != nil {
			return nil, err
		}
		d, err := s.find(m)
		if err != nil {
			return nil, err
		}
		v := dialogView(d.Info(true))
		if members != nil {
			for _, ms := range members(d.DID()) {
				v.Profiles = append(v.Profiles, membershipJSON{Profile: ms.Profile, Value: ms.Value})
			}
		}
		return v, nil
	}, "callid", "from_tag", "to_tag"))
	terminate := func(p json.RawMessage, defaultSide string) (any, error) {
		var tp terminateParams
		if err := mgmt.DecodeParams(p, &tp); err != nil {
			return nil, err
		}
		if tp.Side == "" {
			tp.Side = defaultSide
		}
		side, err := parseSide(tp.Side)
		if err != nil {
			return nil, err
		}
		for i, h := range tp.Headers {
			if _, _, err := tm.CheckHeaderLine(h); err != nil {
				return nil, mgmt.InvalidParams("argument \"headers[%d]\" %q: %v", i, h, err)
			}
		}
		d, err := tp.find(m)
		if err != nil {
			return nil, err
		}
		before := d.Info(false)
		if err := m.Terminate(d, side, 0, tp.Reason, tp.Headers...); err != nil {
			if errors.Is(err, imsdialog.ErrNotFound) {
				return nil, mgmt.NotFound("dialog %s has already ended", d.DID())
			}
			return nil, mgmt.InvalidParams("argument \"headers\": %v", err)
		}
		return map[string]any{"h_entry": before.HEntry, "h_id": before.HID, "callid": before.CallID,
			"state": before.State.String(), "terminated": true}, nil
	}
	// Positional arguments as the seeds' commands take them: ims_dialog's
	// dlg_terminate_dlg callid ftag ttag, Kamailio's dlg.end_dlg h_entry
	// h_id.
	api.Register("dlg.terminate_dlg", mgmt.Positional(func(_ context.Context, p json.RawMessage) (any, error) {
		return terminate(p, "both")
	}, "callid", "from_tag", "to_tag"))
	api.Register("dlg.end_dlg", mgmt.Positional(func(_ context.Context, p json.RawMessage) (any, error) {
		return terminate(p, "both")
	}, "h_entry", "h_id"))
	registerDialogControl(api, m)
	api.Register("dlg.stats", func(context.Context, json.RawMessage) (any, error) {
		out := m.Stats().Snapshot()
		if extra != nil {
			for k, v := range extra() {
				out[k] = v
			}
		}
		return out, nil
	})
}

// registerDialogControl adds the methods that change a dialog from
// outside (issue 13 §2, §4): its timeout (dlg_set_timeout), its variables
// ($dlg_val, dlg_set_var) and its flags (dlg_setflag), by the selectors of
// dlg.terminate_dlg.
func registerDialogControl(api *mgmt.Server, m *imsdialog.Manager) {
	type timeoutParams struct {
		dlgSelector
		Timeout *int64 `json:"timeout" mgmt:"required"` // seconds from now
	}
	api.Register("dlg.set_timeout", func(_ context.Context, p json.RawMessage) (any, error) {
		var tp timeoutParams
		if err := mgmt.DecodeParams(p, &tp); err != nil {
			return nil, err
		}
		if *tp.Timeout <= 0 || *tp.Timeout > int64(maxTimeout/time.Second) {
			return nil, mgmt.InvalidParams("argument \"timeout\" must be 1..%d seconds, got %d", int64(maxTimeout/time.Second), *tp.Timeout)
		}
		d, err := tp.find(m)
		if err != nil {
			return nil, err
		}
		if err := m.SetTimeout(d, time.Duration(*tp.Timeout)*time.Second); err != nil {
			return nil, mgmt.NotFound("dialog %s has already ended", d.DID())
		}
		return map[string]any{"h_entry": d.HEntry, "h_id": d.HID, "callid": d.CallID, "timeout": *tp.Timeout}, nil
	})
	type varParams struct {
		dlgSelector
		Name  string  `json:"name" mgmt:"required"`
		Value *string `json:"value"`
	}
	api.Register("dlg.set_var", func(_ context.Context, p json.RawMessage) (any, error) {
		var vp varParams
		if err := mgmt.DecodeParams(p, &vp); err != nil {
			return nil, err
		}
		if vp.Name == "" {
			return nil, mgmt.InvalidParams("argument \"name\" must not be empty")
		}
		d, err := vp.find(m)
		if err != nil {
			return nil, err
		}
		val := ""
		if vp.Value != nil {
			val = *vp.Value // "" or null removes it, as set_dlg_var does
		}
		d.SetVar(vp.Name, val)
		return map[string]any{"h_entry": d.HEntry, "h_id": d.HID, "name": vp.Name, "value": val}, nil
	})
	api.Register("dlg.push_var", mgmt.PositionalRest(func(_ context.Context, p json.RawMessage) (any, error) {
		return pushVar(m, p)
	}, "dids", "dlg_val_name", "dlg_val_value"))
	type getVarParams struct {
		dlgSelector
		Name string `json:"name" mgmt:"required"`
	}
	api.Register("dlg.get_var", func(_ context.Context, p json.RawMessage) (any, error) {
		var vp getVarParams
		if err := mgmt.DecodeParams(p, &vp); err != nil {
			return nil, err
		}
		d, err := vp.find(m)
		if err != nil {
			return nil, err
		}
		v, ok := d.Var(vp.Name)
		return map[string]any{"h_entry": d.HEntry, "h_id": d.HID, "name": vp.Name, "value": v, "set": ok}, nil
	})
	type flagParams struct {
		dlgSelector
		Flag *uint `json:"flag" mgmt:"required"`
	}
	flag := func(set bool) mgmt.Handler {
		return func(_ context.Context, p json.RawMessage) (any, error) {
			var fp flagParams
			if err := mgmt.DecodeParams(p, &fp); err != nil {
				return nil, err
			}
			if *fp.Flag > 31 {
				return nil, mgmt.InvalidParams("argument \"flag\" must be 0..31, got %d", *fp.Flag)
			}
			d, err := fp.find(m)
			if err != nil {
				return nil, err
			}
			if set {
				d.SetFlag(*fp.Flag)
			} else {
				d.ResetFlag(*fp.Flag)
			}
			return map[string]any{"h_entry": d.HEntry, "h_id": d.HID, "flag": *fp.Flag, "set": d.IsFlagSet(*fp.Flag)}, nil
		}
	}
	api.Register("dlg.set_flag", flag(true))
	api.Register("dlg.reset_flag", flag(false))
	type sequentialParams struct {
		dlgSelector
		Side        string   `json:"side" mgmt:"required"`
		Method      string   `json:"method" mgmt:"required"`
		Body        string   `json:"body"`
		ContentType string   `json:"content_type"`
		Headers     []string `json:"headers"`
	}
	// dlg_send_sequential (issue 13 §3): a re-INVITE (the body given, or
	// the other party's last SDP), UPDATE, OPTIONS or INFO to one side, as
	// the other party would send it; the reply comes back.
	api.Register("dlg.send_sequential", func(ctx context.Context, p json.RawMessage) (any, error) {
		var sp sequentialParams
		if err := mgmt.DecodeParams(p, &sp); err != nil {
			return nil, err
		}
		side, err := parseSide(sp.Side)
		if err != nil || side == imsdialog.SideBoth {
			return nil, mgmt.InvalidParams("argument \"side\" must be caller or callee, got %q", sp.Side)
		}
		switch strings.ToUpper(sp.Method) {
		case "INVITE", "UPDATE", "OPTIONS", "INFO":
		default:
			return nil, mgmt.InvalidParams("argument \"method\" must be INVITE, UPDATE, OPTIONS or INFO, got %q", sp.Method)
		}
		for i, h := range sp.Headers {
			if _, _, err := tm.CheckHeaderLine(h); err != nil {
				return nil, mgmt.InvalidParams("argument \"headers[%d]\" %q: %v", i, h, err)
			}
		}
		d, err := sp.find(m)
		if err != nil {
			return nil, err
		}
		res, err := m.SendSequential(ctx, d, side, sp.Method, []byte(sp.Body), sp.ContentType, sp.Headers...)
		switch {
		case errors.Is(err, imsdialog.ErrNotConfirmed), errors.Is(err, imsdialog.ErrNoSDP), errors.Is(err, imsdialog.ErrInviteInProgress):
			return nil, mgmt.InvalidParams("%v", err)
		case err != nil:
			return nil, err
		}
		out := map[string]any{"h_entry": d.HEntry, "h_id": d.HID, "callid": d.CallID, "side": sp.Side,
			"method": strings.ToUpper(sp.Method), "code": res.StatusCode, "reason": res.Reason}
		if b := res.Body(); len(b) > 0 {
			out["body"] = string(b)
		}
		return out, nil
	})
}

// maxTimeout bounds dlg.set_timeout: a year is beyond any call.
const maxTimeout = 365 * 24 * time.Hour

// pushVar is dlg.push_var (OpenSIPS MI dlg_push_var): one dialog value set
// in every dialog of a list of DIDs or Call-IDs. Positional as
// opensips-cli sends it: name, value, then the IDs; or named
// {dlg_val_name, dlg_val_value, dids}. An empty or null value removes it.
func pushVar(m *imsdialog.Manager, raw json.RawMessage) (any, error) {
	var pp struct {
		Name  string   `json:"dlg_val_name" mgmt:"required"`
		Value *string  `json:"dlg_val_value"`
		DIDs  []string `json:"dids" mgmt:"required"`
	}
	if err := mgmt.DecodeParams(raw, &pp); err != nil {
		return nil, err
	}
	if pp.Name == "" {
		return nil, mgmt.InvalidParams("argument \"dlg_val_name\" must not be empty")
	}
	if len(pp.DIDs) == 0 {
		return nil, mgmt.InvalidParams("argument \"dids\": name at least one dialog (DID or Call-ID)")
	}
	val := ""
	if pp.Value != nil {
		val = *pp.Value
	}
	updated, missing := 0, []string{}
	for _, id := range pp.DIDs {
		ds := m.ByCallID(id)
		if d := m.ByDID(id); d != nil {
			ds = []*imsdialog.Dialog{d}
		}
		if len(ds) == 0 {
			missing = append(missing, id)
			continue
		}
		for _, d := range ds {
			d.SetVar(pp.Name, val)
			updated++
		}
	}
	if updated == 0 {
		return nil, mgmt.NotFound("no dialog with DID or Call-ID %s", strings.Join(pp.DIDs, ", "))
	}
	return map[string]any{"name": pp.Name, "value": val, "updated": updated, "not_found": missing}, nil
}

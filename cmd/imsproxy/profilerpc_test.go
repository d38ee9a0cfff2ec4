package main

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imsdlg/imsdlg/dlgdb"
	"github.com/imsdlg/imsdlg/dlgpersist"
	"github.com/imsdlg/imsdlg/imsdialog"
	"github.com/imsdlg/imsdlg/internal/mgmt"
	"github.com/imsdlg/imsdlg/profiles"
)

// Issue 5 §4: the dlg.profile_* methods over JSON-RPC, on two confirmed
// dialogs (restored from a dialog store, so no SIP is needed to make them).
func TestIssue5_ProfileRPC(t *testing.T) {
	set, err := profiles.New(profiles.Config{WithValue: []string{"caller"}, NoValue: []string{"calls"}}, nil, nil, "n")
	require.NoError(t, err)
	prof := &profileRuntime{set: set, node: "n"}
	lim, err := prof.limiter(&Config{}, nil)
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go lim.Run(ctx)
	m, err := imsdialog.New(imsdialog.Options{Config: imsdialog.DefaultConfig(), Limiter: lim})
	require.NoError(t, err)
	var recs []*dlgdb.Record
	for i, who := range []string{"alice", "bob"} {
		r := confirmedRecord("call-"+who, "f"+who, "t"+who, uint32(i+1))
		r.From, r.To = "<sip:"+who+"@example.com>;tag=f"+who, "<sip:carol@example.com>"
		r.Profiles = []dlgdb.Membership{{Profile: "caller", Value: who}, {Profile: "calls"}}
		recs = append(recs, r)
	}
	restoreInto(t, m, prof.restoreMemberships, recs...)

	api := mgmt.New(nil, prometheus.NewRegistry())
	registerProfileMethods(api, m, set)
	registerDialogMethods(api, m, nil, prof.memberships)
	call := rpcCaller(t, api)
	for _, tc := range []struct {
		name, method, params string
		want                 []string
	}{
		{"list_all_profiles", "dlg.list_all_profiles", `{}`, []string{`"profiles":[{"name":"caller","with_value":true,"shared":false},{"name":"calls","with_value":false,"shared":false}]`}},
		{"size of a value", "dlg.profile_get_size", `{"profile":"caller","value":"alice"}`, []string{`"size":1`, `"profile":"caller"`, `"value":"alice"`}},
		{"size of a profile", "dlg.profile_get_size", `{"profile":"calls"}`, []string{`"size":2`}},
		{"values", "dlg.profile_get_values", `{"profile":"caller"}`, []string{`"values":[{"value":"alice","count":1},{"value":"bob","count":1}]`}},
		{"list_dlgs", "dlg.profile_list_dlgs", `{"profile":"caller","value":"bob"}`, []string{`"callid":"call-bob"`, `"dialogs":[{`}},
		{"Kamailio's dlg.profile_list", "dlg.profile_list", `["caller","bob"]`, []string{`"callid":"call-bob"`, `"dialogs":[{`}},
		{"undeclared profile", "dlg.profile_get_size", `{"profile":"nope"}`, []string{`-32004`, `nope\" is not declared`}},
		{"missing profile", "dlg.profile_list_dlgs", `{}`, []string{`-32602`, `profile`}},
		{"value on a profile without value", "dlg.profile_end_dlgs", `{"profile":"calls","value":"x","force":1}`, []string{`-32602`, `force`}},
		// Issue 12 §10: Kamailio habits.
		{"positional size (profile value)", "dlg.profile_get_size", `["caller","bob"]`, []string{`"size":1`, `"value":"bob"`}},
		{"positional values (profile)", "dlg.profile_get_values", `["caller"]`, []string{`"value":"alice"`}},
		{"dlg.get by Call-ID alone shows the memberships", "dlg.get", `{"callid":"call-alice"}`,
			[]string{`"callid":"call-alice"`, `"profiles":[{"profile":"caller","value":"alice"},{"profile":"calls"}]`}},
		{"positional dlg.get (callid ftag)", "dlg.get", `["call-bob","fbob"]`, []string{`"callid":"call-bob"`}},
		{"dlg.list filtered by the caller", "dlg.list", `{"from_uri":"bob@"}`, []string{`"callid":"call-bob"`}},
		{"dlg.list filtered by state", "dlg.list", `{"state":"early"}`, []string{`"result":[]`}},
		{"dlg.list paged", "dlg.list", `{"offset":1,"limit":1}`, []string{`"result":[{"h_entry"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := call(tc.method, tc.params)
			for _, w := range tc.want {
				assert.Contains(t, out, w)
			}
		})
	}
	out := call("dlg.profile_list_dlgs", `{"profile":"caller","value":"bob"}`)
	assert.NotContains(t, out, "call-alice", "only bob's dialog")
	assert.NotContains(t, call("dlg.list", `{"from_uri":"bob@"}`), "call-alice", "the filter leaves alice out")
	all, page := call("dlg.list", `{}`), call("dlg.list", `{"offset":1,"limit":1}`)
	assert.Equal(t, 2, strings.Count(all, `"h_entry"`))
	assert.Equal(t, 1, strings.Count(page, `"h_entry"`))
	second := all[strings.LastIndex(all, `"callid"`):]
	assert.Contains(t, page, second[:strings.Index(second, ",")], "the page is the second dialog of the whole list")

	out = call("dlg.profile_end_dlgs", `{"profile":"caller","value":"alice"}`)
	assert.Contains(t, out, `"ended":1`)
	assert.Eventually(t, func() bool { return len(m.Dialogs()) == 1 }, 5*time.Second, 10*time.Millisecond, "alice's call ended, bob's stays")
	assert.Equal(t, "call-bob", m.Dialogs()[0].CallID)
	assert.Contains(t, call("dlg.profile_get_size", `{"profile":"calls"}`), `"size":1`)
}

// nopSender stands for a proxy that sends nothing.
type nopSender struct{}

func (nopSender) Send(*sip.Request, string, func(*sip.Response, error)) error {
	return errors.New("not sent")
}
func (nopSender) ForwardStateless(*sip.Request, string) error { return errors.New("not sent") }
func (nopSender) IsOurURI(*sip.Uri) bool                      { return false }
func (nopSender) IsOurVia(*sip.ViaHeader) bool                { return false }

// Issue 12 §10: a Call-ID alone names a dialog only when it has one; with
// two (a forked or spiralled call) the error says how to choose.
func TestIssue12_10_CallIDAloneMustBeUnique(t *testing.T) {
	m, err := imsdialog.New(imsdialog.Options{Config: imsdialog.DefaultConfig()})
	require.NoError(t, err)
	restoreInto(t, m, nil, confirmedRecord("shared", "f1", "tf1", 1), confirmedRecord("shared", "f2", "tf2", 2))
	api := mgmt.New(nil, prometheus.NewRegistry())
	registerDialogMethods(api, m, nil, nil)
	b := rpcCaller(t, api)("dlg.terminate_dlg", `{"callid":"shared"}`)
	assert.Contains(t, b, `-32602`)
	assert.Contains(t, b, `2 dialogs have callid \"shared\": add \"from_tag\"`)
	assert.Len(t, m.Dialogs(), 2, "neither was ended")
}

// Issue 13 §2, §4: a dialog's timeout, variables and flags changed from
// the management API, seen in dlg.get (and so saved with the dialog).
func TestIssue13_DialogControlRPC(t *testing.T) {
	m, err := imsdialog.New(imsdialog.Options{Config: imsdialog.DefaultConfig()})
	require.NoError(t, err)
	restoreInto(t, m, nil, confirmedRecord("c1", "f", "t", 1))
	api := mgmt.New(nil, prometheus.NewRegistry())
	registerDialogMethods(api, m, nil, nil)
	call := rpcCaller(t, api)
	for _, tc := range []struct {
		name, method, params string
		want                 []string
	}{
		{"set a variable", "dlg.set_var", `{"callid":"c1","name":"charging","value":"on"}`, []string{`"value":"on"`}},
		{"read it", "dlg.get_var", `{"callid":"c1","name":"charging"}`, []string{`"value":"on"`, `"set":true`}},
		{"dlg.get shows it", "dlg.get", `{"callid":"c1"}`, []string{`"vars":{"charging":"on"}`}},
		// get_dialogs_by_val, and Kamailio's dlg.dlg_list (positional).
		{"dialogs by variable value", "dlg.list", `{"var_name":"charging","var_value":"on"}`, []string{`"callid":"c1"`}},
		{"no dialog with that value", "dlg.list", `{"var_name":"charging","var_value":"off"}`, []string{`"result":[]`}},
		{"dlg.dlg_list callid from_tag", "dlg.dlg_list", `["c1","f"]`, []string{`"callid":"c1"`, `"from_tag":"f"`}},
		{"dlg.dlg_list with another From tag", "dlg.dlg_list", `["c1","other"]`, []string{`"result":[]`}},
		{"null removes it", "dlg.set_var", `{"callid":"c1","name":"charging","value":null}`, []string{`"value":""`}},
		{"gone", "dlg.get_var", `{"callid":"c1","name":"charging"}`, []string{`"set":false`}},
		{"a variable needs a name", "dlg.set_var", `{"callid":"c1","value":"x"}`, []string{`-32602`, `name`}},
		{"set flag 3", "dlg.set_flag", `{"callid":"c1","flag":3}`, []string{`"set":true`}},
		{"dlg.get shows the flags", "dlg.get", `{"callid":"c1"}`, []string{`"flags":8`}},
		{"reset it", "dlg.reset_flag", `{"callid":"c1","flag":3}`, []string{`"set":false`}},
		{"flags are 0..31", "dlg.set_flag", `{"callid":"c1","flag":32}`, []string{`-32602`, `0..31`}},
		{"a timeout", "dlg.set_timeout", `{"callid":"c1","timeout":90}`, []string{`"timeout":90`}},
		{"a timeout must be positive", "dlg.set_timeout", `{"callid":"c1","timeout":0}`, []string{`-32602`, `timeout`}},
		{"a timeout is required", "dlg.set_timeout", `{"callid":"c1"}`, []string{`-32602`, `timeout`}},
		{"an unknown dialog", "dlg.set_timeout", `{"callid":"nope","timeout":5}`, []string{`-32004`}},
		// Issue 13 §3 (the request itself: imsdialog TestSeedDialog_SendSequential).
		{"send_sequential needs a side", "dlg.send_sequential", `{"callid":"c1","method":"OPTIONS"}`, []string{`-32602`, `side`}},
		{"both is not a side to send to", "dlg.send_sequential", `{"callid":"c1","side":"both","method":"OPTIONS"}`, []string{`-32602`, `caller or callee`}},
		{"BYE is terminate_dlg's", "dlg.send_sequential", `{"callid":"c1","side":"callee","method":"BYE"}`, []string{`-32602`, `INVITE, UPDATE, OPTIONS or INFO`}},
		{"a re-INVITE needs an offer", "dlg.send_sequential", `{"callid":"c1","side":"callee","method":"INVITE"}`, []string{`-32602`, `no SDP to offer`}},
		{"a bad header line", "dlg.send_sequential", `{"callid":"c1","side":"callee","method":"INFO","headers":["nocolon"]}`, []string{`-32602`, `headers[0]`}},
		{"the send error is told", "dlg.send_sequential", `{"callid":"c1","side":"callee","method":"OPTIONS"}`, []string{`not sent`}},
		{"send_sequential to an unknown dialog", "dlg.send_sequential", `{"callid":"nope","side":"caller","method":"OPTIONS"}`, []string{`-32004`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := call(tc.method, tc.params)
			for _, w := range tc.want {
				assert.Contains(t, out, w)
			}
		})
	}
	d := m.Get("c1", "f", "t")
	require.NotNil(t, d)
	left := time.Until(d.Info(false).Deadline)
	assert.InDelta(t, 90, left.Seconds(), 5, "the new deadline is 90 s from the call")
}

// confirmedRecord is a saved confirmed dialog of an hour, for tests that
// need dialogs without SIP.
func confirmedRecord(callID, fromTag, toTag string, hid uint32) *dlgdb.Record {
	return &dlgdb.Record{Version: dlgdb.CurrentVersion, HEntry: imsdialog.HashEntry(callID, imsdialog.DefaultConfig().HashSize),
		HID: hid, CallID: callID, FromTag: fromTag, From: "<sip:a@example.com>;tag=" + fromTag, To: "<sip:b@example.com>",
		CallerTarget: "sip:a@127.0.0.1:5070", Callee: dlgdb.Leg{ToTag: toTag, RemoteTarget: "sip:b@127.0.0.1:5080"},
		State: int(imsdialog.Confirmed), Start: time.Now(), Timeout: time.Hour.Milliseconds(), Deadline: time.Now().Add(time.Hour)}
}

// restoreInto puts the records in m as db_mode does at start (with their
// memberships through members, when given); the dialogs are ended when the
// test ends.
func restoreInto(t *testing.T, m *imsdialog.Manager, members func(context.Context, string, []dlgdb.Membership) error, recs ...*dlgdb.Record) {
	t.Helper()
	store := dlgdb.NewMemory()
	changes := make([]dlgdb.Change, 0, len(recs))
	for _, r := range recs {
		changes = append(changes, dlgdb.Change{DID: r.DID(), Rec: r})
	}
	require.NoError(t, store.Apply(context.Background(), "n", changes))
	p, err := dlgpersist.New(dlgpersist.Options{Store: store, Node: "n", Mode: dlgpersist.DBModeShutdown, RestoreMemberships: members})
	require.NoError(t, err)
	dids, err := p.Restore(context.Background(), m, nopSender{})
	require.NoError(t, err)
	require.Len(t, dids, len(recs))
	t.Cleanup(func() {
		for _, d := range m.Dialogs() {
			_ = m.Terminate(d, imsdialog.SideBoth, 0, "")
		}
	})
}

// rpcCaller serves api and returns a JSON-RPC call's raw answer.
func rpcCaller(t *testing.T, api *mgmt.Server) func(method, params string) string {
	srv := httptest.NewServer(api.Handler())
	t.Cleanup(srv.Close)
	return func(method, params string) string {
		t.Helper()
		res, err := http.Post(srv.URL+"/rpc", "application/json",
			strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"`+method+`","params":`+params+`}`))
		require.NoError(t, err)
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return string(b)
	}
}

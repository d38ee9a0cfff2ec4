package main

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imsdlg/imsdlg/imsdialog"
	"github.com/imsdlg/imsdlg/internal/mgmt"
)

// Bad calls of the dlg.* methods get a JSON-RPC error naming the argument;
// unknown dialogs get "not found" (issue 4, item 11).
func TestDialogRPC_Arguments(t *testing.T) {
	m, err := imsdialog.New(imsdialog.Options{Config: imsdialog.DefaultConfig()})
	require.NoError(t, err)
	api := mgmt.New(nil, prometheus.NewRegistry())
	registerDialogMethods(api, m, (&dialogDB{}).stats, nil)
	srv := httptest.NewServer(api.Handler())
	defer srv.Close()
	call := func(body string) string {
		res, err := http.Post(srv.URL+"/rpc", "application/json", strings.NewReader(body))
		require.NoError(t, err)
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return string(b)
	}
	cases := []struct {
		name, params string
		method       string
		want         []string
	}{
		{"list is an empty array", `{}`, "dlg.list", []string{`"result":[]`}},
		{"list_ctx is an empty array", `{}`, "dlg.list_ctx", []string{`"result":[]`}},
		{"list refuses what it does not filter on", `{"force":true}`, "dlg.list", []string{`-32602`, `force`}},
		{"list filters by a state it knows", `{"state":"ringing"}`, "dlg.list", []string{`-32602`, `state`, `ringing`}},
		{"list pages from a non-negative offset", `{"offset":-1}`, "dlg.list", []string{`-32602`, `offset`}},
		{"system.listMethods", `[]`, "system.listMethods", []string{`"dlg.terminate_dlg"`, `"system.listMethods"`}},
		{"positional terminate (callid ftag ttag)", `["c","a","b"]`, "dlg.terminate_dlg", []string{`-32004`, `callid=\"c\" from_tag=\"a\" to_tag=\"b\"`}},
		{"positional end_dlg (h_entry h_id)", `[3,9]`, "dlg.end_dlg", []string{`-32004`, `h_entry=3 h_id=9`}},
		{"too many positional arguments", `["c","a","b","d"]`, "dlg.terminate_dlg", []string{`-32602`, `at most 3 positional arguments (callid, from_tag, to_tag)`}},
		{"positional where a method takes none", `["x"]`, "dlg.list", []string{`-32602`, `positional`}},
		{"stats", `{}`, "dlg.stats", []string{`"active_dialogs":0`, `"failed_dialogs":0`, `"db_writes":0`}},
		{"missing callid", `{"from_tag":"a"}`, "dlg.get", []string{`-32602`, `callid`}},
		{"callid alone, no such dialog", `{"callid":"c"}`, "dlg.terminate_dlg", []string{`-32004`, `callid=\"c\" not found`}},
		{"h_entry without h_id", `{"h_entry":1}`, "dlg.end_dlg", []string{`-32602`, `h_id`}},
		{"unknown argument", `{"callid":"c","from_tag":"a","force":true}`, "dlg.terminate_dlg", []string{`-32602`, `force`}},
		{"bad side", `{"callid":"c","from_tag":"a","side":"up"}`, "dlg.terminate_dlg", []string{`-32602`, `side`}},
		{"wrong type", `{"callid":7,"from_tag":"a"}`, "dlg.get", []string{`-32602`, `callid`}},
		{"unknown dialog", `{"callid":"c","from_tag":"a"}`, "dlg.terminate_dlg", []string{`-32004`, `not found`}},
		{"header smuggling a Via", `{"callid":"c","from_tag":"a","headers":["X-A: 1\r\nVia: SIP/2.0/UDP evil"]}`, "dlg.terminate_dlg",
			[]string{`-32602`, `headers`, `control byte`}},
		{"unknown position", `{"h_entry":3,"h_id":9}`, "dlg.get", []string{`-32004`, `h_entry=3 h_id=9`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := call(`{"jsonrpc":"2.0","id":1,"method":"` + tc.method + `","params":` + tc.params + `}`)
			for _, w := range tc.want {
				assert.Contains(t, out, w)
			}
		})
	}
}

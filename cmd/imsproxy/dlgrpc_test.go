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
	registerDialogMethods(api, m, (&dialogDB{}).stats)
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
		{"list takes no arguments", `{"callid":"c"}`, "dlg.list", []string{`-32602`, `callid`}},
		{"stats", `{}`, "dlg.stats", []string{`"active_dialogs":0`, `"failed_dialogs":0`, `"db_writes":0`}},
		{"missing callid", `{"from_tag":"a"}`, "dlg.get", []string{`-32602`, `callid`}},
		{"missing from_tag", `{"callid":"c"}`, "dlg.terminate_dlg", []string{`-32602`, `from_tag`}},
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

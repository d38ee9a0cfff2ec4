package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// testNow is the clock of every test run, so AGE columns are fixed.
var testNow = time.Unix(1700000100, 0)

// reply is a canned answer of the fake daemon: a raw JSON result, or a
// JSON-RPC error when code is not zero.
type reply struct {
	result  string
	code    int
	message string
}

// gotCall is one request the fake daemon received; params is "" when the
// request had no params member.
type gotCall struct {
	method string
	params string
}

// allowedArgs mirrors the daemon's strict argument checking (mgmt.DecodeParams
// refuses unknown names), so a misspelt parameter fails here as it would in
// production, besides failing the params comparison.
var allowedArgs = map[string][]string{
	"dlg.get":              {"callid", "from_tag", "to_tag", "h_entry", "h_id"},
	"dlg.terminate_dlg":    {"callid", "from_tag", "to_tag", "h_entry", "h_id", "side", "reason", "headers"},
	"dlg.end_dlg":          {"callid", "from_tag", "to_tag", "h_entry", "h_id", "side", "reason", "headers"},
	"dlg.profile_get_size": {"profile", "value"},
}

// fakeDaemon is an httptest server speaking the daemon's JSON-RPC dialect
// with canned replies, recording what it was sent.
type fakeDaemon struct {
	srv     *httptest.Server
	replies map[string]reply

	mu    sync.Mutex
	calls []gotCall
}

func newFakeDaemon(t *testing.T, replies map[string]reply) *fakeDaemon {
	t.Helper()
	f := &fakeDaemon{replies: replies}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

// addr is HOST:PORT, the form dlgctl takes.
func (f *fakeDaemon) addr() string { return strings.TrimPrefix(f.srv.URL, "http://") }

func (f *fakeDaemon) got() []gotCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

func (f *fakeDaemon) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost || r.URL.Path != "/rpc" {
		http.Error(w, "not here", http.StatusNotFound)
		return
	}
	var req struct {
		JSONRPC string          `json:"jsonrpc"`
		ID      json.RawMessage `json:"id"`
		Method  string          `json:"method"`
		Params  json.RawMessage `json:"params"`
	}
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.JSONRPC != "2.0" || req.ID == nil {
		writeRPC(w, req.ID, "", -32600, "bad request")
		return
	}
	f.mu.Lock()
	f.calls = append(f.calls, gotCall{method: req.Method, params: string(req.Params)})
	f.mu.Unlock()

	rep, ok := f.replies[req.Method]
	if !ok {
		writeRPC(w, req.ID, "", -32601, `method "`+req.Method+`" not found`)
		return
	}
	if len(req.Params) > 0 {
		var args map[string]json.RawMessage
		if err := json.Unmarshal(req.Params, &args); err != nil {
			writeRPC(w, req.ID, "", -32602, "params must be an object of named arguments")
			return
		}
		for k := range args {
			if !slices.Contains(allowedArgs[req.Method], k) {
				writeRPC(w, req.ID, "", -32602, `unknown argument "`+k+`"`)
				return
			}
		}
	}
	writeRPC(w, req.ID, rep.result, rep.code, rep.message)
}

func writeRPC(w http.ResponseWriter, id json.RawMessage, result string, code int, message string) {
	if id == nil {
		id = json.RawMessage("null")
	}
	resp := map[string]any{"jsonrpc": "2.0", "id": id}
	if code != 0 {
		resp["error"] = map[string]any{"code": code, "message": message}
	} else {
		resp["result"] = json.RawMessage(result)
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(resp)
}

// runApp runs a dlgctl command line in-process with $DLGCTL_ADDR set to
// addr and the fixed test clock.
func runApp(t *testing.T, addr string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	a := &app{
		stdout: &out, stderr: &errOut,
		getenv: func(k string) string {
			if k == "DLGCTL_ADDR" {
				return addr
			}
			return ""
		},
		now: func() time.Time { return testNow },
		ctx: context.Background(),
	}
	code = a.run(args)
	return code, out.String(), errOut.String()
}

// rpcCase is a command line run against the fake daemon: what it must send,
// print and return.
type rpcCase struct {
	name    string
	args    []string
	replies map[string]reply
	// wantCalls are the requests the daemon must see, in order; params is
	// compared as JSON ("" = no params member at all).
	wantCalls  []gotCall
	wantCode   int
	wantStdout string
	wantStderr string
}

func runRPCCases(t *testing.T, cases []rpcCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFakeDaemon(t, tc.replies)
			code, stdout, stderr := runApp(t, f.addr(), tc.args...)
			assert.Equal(t, tc.wantCode, code, "exit status; stderr: %s", stderr)
			assert.Equal(t, tc.wantStdout, stdout, "stdout")
			assert.Equal(t, tc.wantStderr, stderr, "stderr")
			got := f.got()
			require.Len(t, got, len(tc.wantCalls), "requests: %+v", got)
			for i, w := range tc.wantCalls {
				assert.Equal(t, w.method, got[i].method, "method of request %d", i)
				if w.params == "" {
					assert.Empty(t, got[i].params, "request %d must have no params", i)
				} else {
					assert.JSONEq(t, w.params, got[i].params, "params of %s", w.method)
				}
			}
		})
	}
}

// closedAddr is a loopback address where nothing listens any more.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

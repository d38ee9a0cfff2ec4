package main

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imsdlg/imsdlg/internal/buildinfo"
)

// TestUsageErrors: a bad command line is refused before any request, exit 2,
// with a first line naming the problem (the flag) and then the usage of the
// command concerned.
func TestUsageErrors(t *testing.T) {
	cases := []struct {
		name      string
		args      []string
		wantFirst string // first line of stderr
		wantUsage string // a line of the usage that must follow
	}{
		{"no command", nil, "dlgctl: missing command", "Usage: dlgctl [--addr"},
		{"unknown command", []string{"frobnicate"}, `dlgctl: unknown command "frobnicate"`, "Usage: dlgctl [--addr"},
		{"unknown global flag", []string{"--verbose", "stats"}, "dlgctl: flag provided but not defined: -verbose", "Usage: dlgctl [--addr"},
		{"dlg without command", []string{"dlg"}, "dlgctl: missing dlg command", "Usage: dlgctl dlg COMMAND"},
		{"unknown dlg command", []string{"dlg", "kill"}, `dlgctl: unknown dlg command "kill"`, "Usage: dlgctl dlg COMMAND"},
		{"get: no selector", []string{"dlg", "get"}, "dlgctl: missing --callid (or --id H_ENTRY:H_ID)", "Usage: dlgctl dlg get"},
		{"get: --ttag alone", []string{"dlg", "get", "--ttag", "t"}, "dlgctl: missing --callid (or --id H_ENTRY:H_ID)", "Usage: dlgctl dlg get"},
		{"get: --ttag without --ftag", []string{"dlg", "get", "--callid", "c", "--ttag", "t"}, `dlgctl: --ttag needs --ftag (the From tag of dialog "c")`, "Usage: dlgctl dlg get"},
		{"terminate: no --callid", []string{"dlg", "terminate", "--ftag", "f"}, "dlgctl: missing --callid (or --id H_ENTRY:H_ID)", "Usage: dlgctl dlg terminate"},
		{"terminate: --id and --callid", []string{"dlg", "terminate", "--id", "1:2", "--callid", "c", "--ftag", "f"},
			"dlgctl: --id and --callid/--ftag/--ttag are exclusive: name the dialog one way", "Usage: dlgctl dlg terminate"},
		{"terminate: --id and --ttag", []string{"dlg", "terminate", "--id", "1:2", "--ttag", "t"},
			"dlgctl: --id and --callid/--ftag/--ttag are exclusive: name the dialog one way", "Usage: dlgctl dlg terminate"},
		{"terminate: --id without colon", []string{"dlg", "terminate", "--id", "12"},
			`dlgctl: bad --id "12": want H_ENTRY:H_ID (e.g. 3:1207) or the did of the logs (e.g. 3.4b7)`, "Usage: dlgctl dlg terminate"},
		{"terminate: --id not numbers", []string{"dlg", "terminate", "--id", "a:b"},
			`dlgctl: bad --id "a:b": want H_ENTRY:H_ID, two unsigned numbers, e.g. 3:1207`, "Usage: dlgctl dlg terminate"},
		{"terminate: --id half empty", []string{"dlg", "terminate", "--id", "3:"},
			`dlgctl: bad --id "3:": want H_ENTRY:H_ID, two unsigned numbers, e.g. 3:1207`, "Usage: dlgctl dlg terminate"},
		{"terminate: --id negative", []string{"dlg", "terminate", "--id", "-1:2"},
			`dlgctl: bad --id "-1:2": want H_ENTRY:H_ID, two unsigned numbers, e.g. 3:1207`, "Usage: dlgctl dlg terminate"},
		{"terminate: --id too big", []string{"dlg", "terminate", "--id", "4294967296:1"},
			`dlgctl: bad --id "4294967296:1": want H_ENTRY:H_ID, two unsigned numbers, e.g. 3:1207`, "Usage: dlgctl dlg terminate"},
		{"terminate: bad --side", []string{"dlg", "terminate", "--id", "1:2", "--side", "up"},
			`dlgctl: bad --side "up": want caller, callee or both`, "Usage: dlgctl dlg terminate"},
		{"terminate: bad --header", []string{"dlg", "terminate", "--id", "1:2", "--header", "NoColon"},
			`dlgctl: bad --header "NoColon": want "Name: value"`, "Usage: dlgctl dlg terminate"},
		{"terminate: header without name", []string{"dlg", "terminate", "--id", "1:2", "--header", " : v"},
			`dlgctl: bad --header " : v": want "Name: value"`, "Usage: dlgctl dlg terminate"},
		{"terminate: flag value missing", []string{"dlg", "terminate", "--id"},
			"dlgctl: flag needs an argument: -id", "Usage: dlgctl dlg terminate"},
		{"terminate: stray argument", []string{"dlg", "terminate", "--id", "1:2", "now"},
			`dlgctl: unexpected argument "now"`, "Usage: dlgctl dlg terminate"},
		{"end: no selector", []string{"dlg", "end"}, "dlgctl: missing --callid (or --id H_ENTRY:H_ID)", "Usage: dlgctl dlg end --id"},
		{"get: bad did", []string{"dlg", "get", "--id", "1g.2"},
			`dlgctl: bad --id "1g.2": want a did, two hex numbers, e.g. 3.4b7`, "Usage: dlgctl dlg get"},
		{"end: bad --id", []string{"dlg", "end", "--id", ":"},
			`dlgctl: bad --id ":": want H_ENTRY:H_ID, two unsigned numbers, e.g. 3:1207`, "Usage: dlgctl dlg end --id"},
		{"list: unknown flag", []string{"dlg", "list", "--all"}, "dlgctl: flag provided but not defined: -all", "Usage: dlgctl dlg list"},
		{"list: stray argument", []string{"dlg", "list", "x"}, `dlgctl: unexpected argument "x"`, "Usage: dlgctl dlg list"},
		{"profile without command", []string{"profile"}, "dlgctl: missing profile command (size)", "Usage: dlgctl profile size"},
		{"unknown profile command", []string{"profile", "list"}, `dlgctl: unknown profile command "list"`, "Usage: dlgctl profile size"},
		{"profile size: no NAME", []string{"profile", "size"}, "dlgctl: missing NAME", "Usage: dlgctl profile size"},
		{"profile size: too many", []string{"profile", "size", "a", "b", "c"}, `dlgctl: unexpected argument "c"`, "Usage: dlgctl profile size"},
		{"stats: stray argument", []string{"stats", "tm"}, `dlgctl: unexpected argument "tm"`, "Usage: dlgctl stats"},
		{"version: stray argument", []string{"version", "x"}, `dlgctl: unexpected argument "x"`, "Usage: dlgctl version"},
		{"call: no METHOD", []string{"call"}, "dlgctl: missing METHOD", "Usage: dlgctl call"},
		{"call: empty METHOD", []string{"call", ""}, "dlgctl: missing METHOD", "Usage: dlgctl call"},
		{"call: params not JSON", []string{"call", "dlg.get", "callid=x"}, `dlgctl: JSON-PARAMS "callid=x" is not a JSON object`, "Usage: dlgctl call"},
		{"call: params an array", []string{"call", "dlg.get", `["x"]`}, `dlgctl: JSON-PARAMS "[\"x\"]" is not a JSON object`, "Usage: dlgctl call"},
		{"call: params empty", []string{"call", "dlg.get", ""}, `dlgctl: JSON-PARAMS "" is not a JSON object`, "Usage: dlgctl call"},
		{"bad -o", []string{"-o", "yaml", "stats"}, `dlgctl: bad -o "yaml": want table or json`, "Usage: dlgctl stats"},
		{"bad -o after the command", []string{"dlg", "list", "-o", "wide"}, `dlgctl: bad -o "wide": want table or json`, "Usage: dlgctl dlg list"},
		{"bad --addr", []string{"--addr", "localhost", "stats"},
			`dlgctl: bad --addr "localhost" (or $DLGCTL_ADDR): want HOST:PORT, e.g. 127.0.0.1:8080`, "Usage: dlgctl stats"},
		{"--addr is a URL", []string{"--addr", "http://127.0.0.1:8080", "stats"},
			`dlgctl: bad --addr "http://127.0.0.1:8080" (or $DLGCTL_ADDR): want HOST:PORT, e.g. 127.0.0.1:8080`, "Usage: dlgctl stats"},
		{"--addr without port", []string{"version", "--addr", "127.0.0.1:"},
			`dlgctl: bad --addr "127.0.0.1:" (or $DLGCTL_ADDR): want HOST:PORT, e.g. 127.0.0.1:8080`, "Usage: dlgctl version"},
		{"bad --timeout", []string{"--timeout", "soon", "stats"},
			`dlgctl: invalid value "soon" for flag -timeout: parse error`, "Usage: dlgctl [--addr"},
		{"zero --timeout", []string{"stats", "--timeout", "0s"},
			"dlgctl: bad --timeout 0s: want a positive duration, e.g. 5s", "Usage: dlgctl stats"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// Every reply would succeed: an exit 2 proves dlgctl refused
			// by itself, and the call count that it sent nothing.
			f := newFakeDaemon(t, nil)
			code, stdout, stderr := runApp(t, f.addr(), tc.args...)
			assert.Equal(t, exitUsage, code)
			assert.Empty(t, stdout)
			first, rest, _ := strings.Cut(stderr, "\n")
			assert.Equal(t, tc.wantFirst, first)
			assert.Contains(t, rest, tc.wantUsage)
			assert.Empty(t, f.got(), "no request may be sent")
		})
	}
}

// TestHelp: asked-for help goes to stdout with exit 0, so `dlgctl -h | less`
// works.
func TestHelp(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"-h"}, "Usage: dlgctl [--addr"},
		{[]string{"--help"}, "Usage: dlgctl [--addr"},
		{[]string{"help"}, "Usage: dlgctl [--addr"},
		{[]string{"dlg", "-h"}, "Usage: dlgctl dlg COMMAND"},
		{[]string{"dlg", "help"}, "Usage: dlgctl dlg COMMAND"},
		{[]string{"dlg", "list", "-h"}, "Usage: dlgctl dlg list"},
		{[]string{"dlg", "get", "--help"}, "Usage: dlgctl dlg get"},
		{[]string{"dlg", "terminate", "-h"}, "Usage: dlgctl dlg terminate"},
		{[]string{"dlg", "end", "-h"}, "Usage: dlgctl dlg end"},
		{[]string{"profile", "-h"}, "Usage: dlgctl profile size"},
		{[]string{"profile", "size", "-h"}, "Usage: dlgctl profile size"},
		{[]string{"stats", "-h"}, "Usage: dlgctl stats"},
		{[]string{"version", "-h"}, "Usage: dlgctl version"},
		{[]string{"call", "-h"}, "Usage: dlgctl call"},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			t.Parallel()
			f := newFakeDaemon(t, nil)
			code, stdout, stderr := runApp(t, f.addr(), tc.args...)
			assert.Equal(t, exitOK, code)
			assert.True(t, strings.HasPrefix(stdout, tc.want), "stdout: %s", stdout)
			assert.Empty(t, stderr)
			assert.Empty(t, f.got())
		})
	}
}

// TestTransportErrors: when no JSON-RPC answer comes back the message says
// where dlgctl looked and why it failed.
func TestTransportErrors(t *testing.T) {
	t.Run("unreachable: nothing listens", func(t *testing.T) {
		addr := closedAddr(t)
		code, stdout, stderr := runApp(t, addr, "dlg", "list")
		assert.Equal(t, exitUsage, code)
		assert.Empty(t, stdout)
		assert.True(t, strings.HasPrefix(stderr, "dlgctl: cannot reach imsproxy at "+addr+": "), stderr)
		assert.Contains(t, stderr, "connection refused")
		assert.Equal(t, 1, strings.Count(stderr, "\n"), "one line, no usage: %s", stderr)
		assert.NotContains(t, stderr, "Post ", "the cause, not Go's request wrapping")
	})

	t.Run("timeout", func(t *testing.T) {
		release := make(chan struct{})
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}))
		t.Cleanup(srv.Close)
		t.Cleanup(func() { close(release) }) // runs before srv.Close
		addr := strings.TrimPrefix(srv.URL, "http://")
		start := time.Now()
		code, stdout, stderr := runApp(t, addr, "--timeout", "100ms", "dlg", "terminate", "--id", "1:2")
		assert.Less(t, time.Since(start), 3*time.Second)
		assert.Equal(t, exitUsage, code)
		assert.Empty(t, stdout)
		assert.Equal(t, "dlgctl: cannot reach imsproxy at "+addr+": no answer within 100ms (--timeout)\n", stderr)
	})

	answers := []struct {
		name       string
		status     int
		body       string
		wantStderr string
	}{
		{"another web server", http.StatusNotFound, "404 page not found\n",
			"dlgctl: imsproxy at %s: answered HTTP 404 Not Found, not JSON-RPC (is --addr the management API, mgmt.listen?)\n"},
		{"200 but not JSON", http.StatusOK, "<html>hello</html>",
			"dlgctl: imsproxy at %s: answer is not JSON-RPC 2.0 (is --addr the management API, mgmt.listen?)\n"},
		{"200 JSON but not JSON-RPC", http.StatusOK, `{"status":"ok"}`,
			"dlgctl: imsproxy at %s: answer is not JSON-RPC 2.0 (is --addr the management API, mgmt.listen?)\n"},
		{"JSON-RPC error with an HTTP error status", http.StatusRequestEntityTooLarge,
			`{"jsonrpc":"2.0","error":{"code":-32600,"message":"request body exceeds 1048576 bytes"},"id":null}`,
			"dlgctl: dlg.list: request body exceeds 1048576 bytes (code -32600)\n"},
	}
	for _, tc := range answers {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
				w.WriteHeader(tc.status)
				_, _ = w.Write([]byte(tc.body))
			}))
			t.Cleanup(srv.Close)
			addr := strings.TrimPrefix(srv.URL, "http://")
			code, stdout, stderr := runApp(t, addr, "dlg", "list")
			assert.Equal(t, exitFailed, code)
			assert.Empty(t, stdout)
			want := tc.wantStderr
			if strings.Contains(want, "%s") {
				want = strings.Replace(want, "%s", addr, 1)
			}
			assert.Equal(t, want, stderr)
		})
	}
}

// TestRun goes through the real entry point: os.Getenv for $DLGCTL_ADDR
// and the default address when it is unset.
func TestRun(t *testing.T) {
	f := newFakeDaemon(t, map[string]reply{"core.version": {result: versionResult}})
	t.Setenv("DLGCTL_ADDR", f.addr())
	var out, errOut bytes.Buffer
	require.Equal(t, exitOK, run([]string{"version"}, &out, &errOut), errOut.String())
	assert.Equal(t, "NAME      imsdlg\nVERSION   v0.4.0\nREVISION  0123456789abcdef\nGO        go1.26.8\nDLGCTL    "+buildinfo.Get().String()+"\n", out.String())

	// Unset: the default address, named in the message when nothing is
	// there (a daemon on the host's 8080 would answer instead, so only
	// the failure wording is checked, and only if it fails).
	t.Setenv("DLGCTL_ADDR", "")
	out.Reset()
	errOut.Reset()
	if code := run([]string{"--timeout", "200ms", "version"}, &out, &errOut); code != exitOK {
		assert.True(t, strings.HasPrefix(errOut.String(), "dlgctl: cannot reach imsproxy at 127.0.0.1:8080: ") ||
			strings.HasPrefix(errOut.String(), "dlgctl: imsproxy at 127.0.0.1:8080: "), errOut.String())
	}
}

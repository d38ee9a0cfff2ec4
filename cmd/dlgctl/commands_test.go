package main

import (
	"testing"

	"github.com/imsdlg/imsdlg/internal/buildinfo"
)

const (
	tmStatsResult  = `{"UAS_transactions":10,"inuse_transactions":1,"2xx_transactions":7,"relayed_replies":12}`
	dlgStatsResult = `{"active_dialogs":2,"early_dialogs":1,"processed_dialogs":5,"expired_dialogs":0,"failed_dialogs":1,"created_dialogs":8}`
	versionResult  = `{"name":"imsdlg","version":"v0.4.0","revision":"0123456789abcdef","go":"go1.26.8"}`
)

func TestProfileSize(t *testing.T) {
	size := map[string]reply{"dlg.profile_get_size": {result: `{"profile":"caller","value":"alice","size":2}`}}
	runRPCCases(t, []rpcCase{
		{
			name:      "name only: value left out",
			args:      []string{"profile", "size", "caller"},
			replies:   map[string]reply{"dlg.profile_get_size": {result: `{"profile":"caller","size":3}`}},
			wantCalls: []gotCall{{"dlg.profile_get_size", `{"profile":"caller"}`}},
			wantStdout: lines(
				"PROFILE  caller",
				"SIZE     3",
			),
		},
		{
			name:      "name and value",
			args:      []string{"profile", "size", "caller", "alice"},
			replies:   size,
			wantCalls: []gotCall{{"dlg.profile_get_size", `{"profile":"caller","value":"alice"}`}},
			wantStdout: lines(
				"PROFILE  caller",
				"SIZE     2",
				"VALUE    alice",
			),
		},
		{
			name:       "a plain count prints as is",
			args:       []string{"profile", "size", "trunk", "t1"},
			replies:    map[string]reply{"dlg.profile_get_size": {result: `7`}},
			wantCalls:  []gotCall{{"dlg.profile_get_size", `{"profile":"trunk","value":"t1"}`}},
			wantStdout: "7\n",
		},
		{
			name:      "json, flag after the arguments",
			args:      []string{"profile", "size", "caller", "alice", "-o", "json"},
			replies:   size,
			wantCalls: []gotCall{{"dlg.profile_get_size", `{"profile":"caller","value":"alice"}`}},
			wantStdout: lines(
				"{",
				`  "profile": "caller",`,
				`  "value": "alice",`,
				`  "size": 2`,
				"}",
			),
		},
		{
			name:       "a value starting with a dash after --",
			args:       []string{"profile", "size", "--", "caller", "-1"},
			replies:    map[string]reply{"dlg.profile_get_size": {result: `0`}},
			wantCalls:  []gotCall{{"dlg.profile_get_size", `{"profile":"caller","value":"-1"}`}},
			wantStdout: "0\n",
		},
		{
			name:       "daemon without the method: its error, clearly",
			args:       []string{"profile", "size", "caller"},
			wantCalls:  []gotCall{{"dlg.profile_get_size", `{"profile":"caller"}`}},
			wantCode:   exitFailed,
			wantStderr: "dlgctl: dlg.profile_get_size: method \"dlg.profile_get_size\" not found (code -32601)\n",
		},
		{
			name:       "unknown profile",
			args:       []string{"profile", "size", "nope"},
			replies:    map[string]reply{"dlg.profile_get_size": {code: -32004, message: `profile "nope" not found`}},
			wantCalls:  []gotCall{{"dlg.profile_get_size", `{"profile":"nope"}`}},
			wantCode:   exitFailed,
			wantStderr: "dlgctl: dlg.profile_get_size: profile \"nope\" not found (code -32004)\n",
		},
	})
}

func TestStats(t *testing.T) {
	both := map[string]reply{"tm.stats": {result: tmStatsResult}, "dlg.stats": {result: dlgStatsResult}}
	runRPCCases(t, []rpcCase{
		{
			name:      "table: one section per method, names sorted",
			args:      []string{"stats"},
			replies:   both,
			wantCalls: []gotCall{{method: "tm.stats"}, {method: "dlg.stats"}},
			wantStdout: lines(
				"SECTION  NAME                VALUE",
				"tm       2xx_transactions    7",
				"tm       UAS_transactions    10",
				"tm       inuse_transactions  1",
				"tm       relayed_replies     12",
				"dlg      active_dialogs      2",
				"dlg      created_dialogs     8",
				"dlg      early_dialogs       1",
				"dlg      expired_dialogs     0",
				"dlg      failed_dialogs      1",
				"dlg      processed_dialogs   5",
			),
		},
		{
			name:       "json: one object, each result as returned",
			args:       []string{"stats", "-o", "json"},
			replies:    both,
			wantCalls:  []gotCall{{method: "tm.stats"}, {method: "dlg.stats"}},
			wantStdout: indented(t, `{"tm":`+tmStatsResult+`,"dlg":`+dlgStatsResult+`}`),
		},
		{
			name:       "dlg.stats fails: the error names it",
			args:       []string{"stats"},
			replies:    map[string]reply{"tm.stats": {result: tmStatsResult}},
			wantCalls:  []gotCall{{method: "tm.stats"}, {method: "dlg.stats"}},
			wantCode:   exitFailed,
			wantStderr: "dlgctl: dlg.stats: method \"dlg.stats\" not found (code -32601)\n",
		},
		{
			name:       "tm.stats fails: dlg.stats is not asked",
			args:       []string{"stats"},
			replies:    map[string]reply{"tm.stats": {code: -32603, message: "internal error"}},
			wantCalls:  []gotCall{{method: "tm.stats"}},
			wantCode:   exitFailed,
			wantStderr: "dlgctl: tm.stats: internal error (code -32603)\n",
		},
		{
			name:       "not an object",
			args:       []string{"stats"},
			replies:    map[string]reply{"tm.stats": {result: `[1]`}, "dlg.stats": {result: dlgStatsResult}},
			wantCalls:  []gotCall{{method: "tm.stats"}, {method: "dlg.stats"}},
			wantCode:   exitFailed,
			wantStderr: "dlgctl: tm.stats: unexpected result: json: cannot unmarshal array into Go value of type map[string]json.RawMessage\n",
		},
	})
}

func TestVersion(t *testing.T) {
	v := map[string]reply{"core.version": {result: versionResult}}
	runRPCCases(t, []rpcCase{
		{
			name:      "table",
			args:      []string{"version"},
			replies:   v,
			wantCalls: []gotCall{{method: "core.version"}},
			wantStdout: lines(
				"NAME      imsdlg",
				"VERSION   v0.4.0",
				"REVISION  0123456789abcdef",
				"GO        go1.26.8",
				"DLGCTL    "+buildinfo.Get().String(),
			),
		},
		{
			name:       "json",
			args:       []string{"-o", "json", "version"},
			replies:    v,
			wantCalls:  []gotCall{{method: "core.version"}},
			wantStdout: indented(t, versionResult),
		},
	})
}

func TestCall(t *testing.T) {
	runRPCCases(t, []rpcCase{
		{
			name:       "no params: none sent, raw result printed",
			args:       []string{"call", "core.version"},
			replies:    map[string]reply{"core.version": {result: versionResult}},
			wantCalls:  []gotCall{{method: "core.version"}},
			wantStdout: indented(t, versionResult),
		},
		{
			name:       "params passed through untouched",
			args:       []string{"call", "dlg.get", `{"callid":"77@host","from_tag":"f2"}`},
			replies:    map[string]reply{"dlg.get": {result: dlgGetResult}},
			wantCalls:  []gotCall{{"dlg.get", `{"callid":"77@host","from_tag":"f2"}`}},
			wantStdout: indented(t, dlgGetResult),
		},
		{
			name:       "json even with -o table",
			args:       []string{"-o", "table", "call", "ul.dump"},
			replies:    map[string]reply{"ul.dump": {result: `[]`}},
			wantCalls:  []gotCall{{method: "ul.dump"}},
			wantStdout: "[]\n",
		},
		{
			name:       "null result",
			args:       []string{"call", "x.noop", "{}"},
			replies:    map[string]reply{"x.noop": {result: `null`}},
			wantCalls:  []gotCall{{"x.noop", `{}`}},
			wantStdout: "null\n",
		},
		{
			name:       "unknown method",
			args:       []string{"call", "dlg.nope"},
			wantCalls:  []gotCall{{method: "dlg.nope"}},
			wantCode:   exitFailed,
			wantStderr: "dlgctl: dlg.nope: method \"dlg.nope\" not found (code -32601)\n",
		},
		{
			name:       "misspelt argument: the daemon's refusal",
			args:       []string{"call", "dlg.get", `{"callid":"x","ftag":"y"}`},
			replies:    map[string]reply{"dlg.get": {result: dlgGetResult}},
			wantCalls:  []gotCall{{"dlg.get", `{"callid":"x","ftag":"y"}`}},
			wantCode:   exitFailed,
			wantStderr: "dlgctl: dlg.get: unknown argument \"ftag\" (code -32602)\n",
		},
	})
}

// TestGlobalFlags checks that the global flags work before and after the
// command, and that --addr wins over $DLGCTL_ADDR.
func TestGlobalFlags(t *testing.T) {
	v := map[string]reply{"core.version": {result: versionResult}}
	for _, args := range [][]string{
		{"-o", "json", "version"},
		{"--o=json", "version"},
		{"version", "-o", "json"},
		{"--timeout", "2s", "version", "-o=json"},
	} {
		t.Run(args[0]+" "+args[1], func(t *testing.T) {
			f := newFakeDaemon(t, v)
			code, stdout, stderr := runApp(t, f.addr(), args...)
			if code != exitOK || stdout != indented(t, versionResult) || stderr != "" {
				t.Errorf("%q: exit %d, stdout %q, stderr %q", args, code, stdout, stderr)
			}
		})
	}

	t.Run("--addr wins over DLGCTL_ADDR", func(t *testing.T) {
		f := newFakeDaemon(t, v)
		for _, args := range [][]string{
			{"--addr", f.addr(), "version"},
			{"version", "--addr", f.addr()},
		} {
			code, stdout, stderr := runApp(t, closedAddr(t), args...)
			if code != exitOK || stdout == "" || stderr != "" {
				t.Errorf("%q: exit %d, stdout %q, stderr %q", args, code, stdout, stderr)
			}
		}
	})
}

package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// The canned daemon answers, in the daemon's own member order, so the json
// output tests also prove that dlgctl does not reorder what it prints.
const (
	dlgListResult = `[{"h_entry":3,"h_id":7,"did":"3.7","callid":"a84b4c76e66710@pc33","from_tag":"1928301774","to_tag":"","from_uri":"sip:alice@example.com","to_uri":"sip:bob@example.com","state":"EARLY","created":1700000000,"timeout":43200,"caller_cseq":314159,"caller_route_set":[],"caller_contact":"sip:alice@192.0.2.4","dlg_outs":[{"to_tag":"b1","state":"EARLY","remote_target":"sip:bob@192.0.2.7","route_set":[],"caller_cseq":314159,"callee_cseq":0,"branch":0,"last_code":180,"source":"192.0.2.7:5060","created":1700000001,"updated":1700000002},{"to_tag":"b2","state":"EARLY","remote_target":"sip:bob@192.0.2.8","route_set":[],"caller_cseq":314159,"callee_cseq":0,"branch":1,"last_code":183,"source":"192.0.2.8:5060","created":1700000001,"updated":1700000003}]},` +
		`{"h_entry":12,"h_id":1,"did":"c.1","callid":"77@host","from_tag":"f2","to_tag":"c1","from_uri":"sip:carol@example.com","to_uri":"sip:dave@example.com","state":"CONFIRMED","created":1699996400,"start":1699996410,"timeout":43200,"caller_cseq":2,"caller_route_set":["sip:pcscf.example.com;lr"],"caller_contact":"sip:carol@192.0.2.9","dlg_outs":[{"to_tag":"c1","state":"CONFIRMED","remote_target":"sip:dave@192.0.2.10","route_set":["sip:as.example.com;lr","sip:scscf.example.com;lr"],"caller_cseq":2,"callee_cseq":5,"branch":0,"last_code":200,"source":"192.0.2.10:5060","created":1699996401,"updated":1699996410}]}]`

	dlgListCtxResult = `[{"h_entry":12,"h_id":1,"did":"c.1","callid":"77@host","from_tag":"f2","to_tag":"c1","state":"CONFIRMED","created":1699996400,"timeout":43200,"dlg_outs":[],"vars":{"who":"carol","acct":"7"},"flags":4},` +
		`{"h_entry":13,"h_id":2,"did":"d.2","callid":"78@host","from_tag":"f3","to_tag":"","state":"UNCONFIRMED","created":1700000100,"timeout":43200,"dlg_outs":[]}]`

	dlgGetResult = `{"h_entry":12,"h_id":1,"did":"c.1","callid":"77@host","from_tag":"f2","to_tag":"c1","from_uri":"sip:carol@example.com","to_uri":"sip:dave@example.com","state":"CONFIRMED","created":1699996400,"start":1699996410,"timeout":43200,"caller_cseq":2,"caller_route_set":["sip:pcscf.example.com;lr"],"caller_contact":"sip:carol@192.0.2.9","dlg_outs":[{"to_tag":"c1","state":"CONFIRMED","remote_target":"sip:dave@192.0.2.10","route_set":["sip:as.example.com;lr","sip:scscf.example.com;lr"],"caller_cseq":2,"callee_cseq":5,"branch":0,"last_code":200,"source":"192.0.2.10:5060","created":1699996401,"updated":1699996410}]}`

	terminateResult = `{"callid":"77@host","h_entry":12,"h_id":1,"state":"CONFIRMED","terminated":true}`
)

// indented is what -o json must print for a compact daemon answer: the same
// members in the same order, two-space indented, one final newline.
func indented(t *testing.T, compact string) string {
	t.Helper()
	var buf bytes.Buffer
	require.NoError(t, json.Indent(&buf, []byte(compact), "", "  "))
	return buf.String() + "\n"
}

func TestDlgList(t *testing.T) {
	runRPCCases(t, []rpcCase{
		{
			name:      "table",
			args:      []string{"dlg", "list"},
			replies:   map[string]reply{"dlg.list": {result: dlgListResult}},
			wantCalls: []gotCall{{method: "dlg.list"}},
			wantStdout: lines(
				"H_ENTRY:H_ID  CALLID               FROM_TAG    TO_TAG  STATE      LEGS             AGE",
				"3:7           a84b4c76e66710@pc33  1928301774  -       EARLY      2 (EARLY,EARLY)  1m40s",
				"12:1          77@host              f2          c1      CONFIRMED  1 (CONFIRMED)    1h1m",
			),
		},
		{
			name:       "json",
			args:       []string{"dlg", "list", "-o", "json"},
			replies:    map[string]reply{"dlg.list": {result: dlgListResult}},
			wantCalls:  []gotCall{{method: "dlg.list"}},
			wantStdout: indented(t, dlgListResult),
		},
		{
			name:      "ctx adds VARS and FLAGS",
			args:      []string{"dlg", "list", "--ctx"},
			replies:   map[string]reply{"dlg.list_ctx": {result: dlgListCtxResult}},
			wantCalls: []gotCall{{method: "dlg.list_ctx"}},
			wantStdout: lines(
				"H_ENTRY:H_ID  CALLID   FROM_TAG  TO_TAG  STATE        LEGS  AGE   VARS              FLAGS",
				"12:1          77@host  f2        c1      CONFIRMED    0     1h1m  acct=7,who=carol  4",
				"13:2          78@host  f3        -       UNCONFIRMED  0     0s    -                 0",
			),
		},
		{
			name:       "ctx json",
			args:       []string{"-o", "json", "dlg", "list", "--ctx"},
			replies:    map[string]reply{"dlg.list_ctx": {result: dlgListCtxResult}},
			wantCalls:  []gotCall{{method: "dlg.list_ctx"}},
			wantStdout: indented(t, dlgListCtxResult),
		},
		{
			name:       "no dialogs: empty stdout, a note on stderr",
			args:       []string{"dlg", "list"},
			replies:    map[string]reply{"dlg.list": {result: `[]`}},
			wantCalls:  []gotCall{{method: "dlg.list"}},
			wantStderr: "no dialogs\n",
		},
		{
			name:       "no dialogs json",
			args:       []string{"dlg", "list", "-o", "json"},
			replies:    map[string]reply{"dlg.list": {result: `[]`}},
			wantCalls:  []gotCall{{method: "dlg.list"}},
			wantStdout: "[]\n",
		},
		{
			name:       "a result of the wrong shape is an error, not a panic",
			args:       []string{"dlg", "list"},
			replies:    map[string]reply{"dlg.list": {result: `{"h_entry":1}`}},
			wantCalls:  []gotCall{{method: "dlg.list"}},
			wantCode:   exitFailed,
			wantStderr: "dlgctl: dlg.list: unexpected result: json: cannot unmarshal object into Go value of type []main.dialog\n",
		},
	})
}

func TestDlgGet(t *testing.T) {
	get := map[string]reply{"dlg.get": {result: dlgGetResult}}
	runRPCCases(t, []rpcCase{
		{
			name:      "by callid and tags, table",
			args:      []string{"dlg", "get", "--callid", "77@host", "--ftag", "f2", "--ttag", "c1"},
			replies:   get,
			wantCalls: []gotCall{{"dlg.get", `{"callid":"77@host","from_tag":"f2","to_tag":"c1"}`}},
			wantStdout: lines(
				"H_ENTRY:H_ID      12:1",
				"DID               c.1",
				"CALLID            77@host",
				"FROM_TAG          f2",
				"TO_TAG            c1",
				"FROM_URI          sip:carol@example.com",
				"TO_URI            sip:dave@example.com",
				"STATE             CONFIRMED",
				"CREATED           2023-11-14T21:13:20Z (1h1m ago)",
				"START             2023-11-14T21:13:30Z (1h1m ago)",
				"TIMEOUT           43200s",
				"CALLER_CSEQ       2",
				"CALLER_CONTACT    sip:carol@192.0.2.9",
				"CALLER_ROUTE_SET  sip:pcscf.example.com;lr",
				"",
				"DLG_OUT  TO_TAG  STATE      LAST_CODE  BRANCH  CSEQ(CALLER/CALLEE)  REMOTE_TARGET        ROUTE_SET                                       SOURCE           UPDATED",
				"0        c1      CONFIRMED  200        0       2/5                  sip:dave@192.0.2.10  sip:as.example.com;lr,sip:scscf.example.com;lr  192.0.2.10:5060  1h1m ago",
			),
		},
		{
			name: "ended dialog with context: end reason, vars, flags, no legs",
			args: []string{"dlg", "get", "--id", "13:2"},
			replies: map[string]reply{"dlg.get": {result: `{"h_entry":13,"h_id":2,"did":"d.2","callid":"78@host","from_tag":"f3",` +
				`"to_tag":"","state":"TERMINATED","end_reason":"CANCELLED","created":1700000000,"ended":1700000090,"timeout":60,` +
				`"caller_cseq":1,"caller_route_set":[],"caller_contact":"sip:x@192.0.2.1","dlg_outs":[],"vars":{"k":"v"},"flags":1,"future_member":true}`}},
			wantCalls: []gotCall{{"dlg.get", `{"h_entry":13,"h_id":2}`}},
			wantStdout: lines(
				"H_ENTRY:H_ID      13:2",
				"DID               d.2",
				"CALLID            78@host",
				"FROM_TAG          f3",
				"TO_TAG            -",
				"FROM_URI          -",
				"TO_URI            -",
				"STATE             TERMINATED",
				"END_REASON        CANCELLED",
				"CREATED           2023-11-14T22:13:20Z (1m40s ago)",
				"START             -",
				"ENDED             2023-11-14T22:14:50Z (10s ago)",
				"TIMEOUT           60s",
				"CALLER_CSEQ       1",
				"CALLER_CONTACT    sip:x@192.0.2.1",
				"CALLER_ROUTE_SET  -",
				"VARS              k=v",
				"FLAGS             1",
				"",
				"DLG_OUT  TO_TAG  STATE  LAST_CODE  BRANCH  CSEQ(CALLER/CALLEE)  REMOTE_TARGET  ROUTE_SET  SOURCE  UPDATED",
			),
		},
		{
			name:       "by callid and from tag only: to_tag left out",
			args:       []string{"dlg", "get", "--callid", "77@host", "--ftag", "f2", "-o", "json"},
			replies:    get,
			wantCalls:  []gotCall{{"dlg.get", `{"callid":"77@host","from_tag":"f2"}`}},
			wantStdout: indented(t, dlgGetResult),
		},
		{
			name:       "by id",
			args:       []string{"dlg", "get", "--id", "12:1", "-o", "json"},
			replies:    get,
			wantCalls:  []gotCall{{"dlg.get", `{"h_entry":12,"h_id":1}`}},
			wantStdout: indented(t, dlgGetResult),
		},
		{
			name:       "by the Call-ID alone",
			args:       []string{"dlg", "get", "--callid", "77@host", "-o", "json"},
			replies:    get,
			wantCalls:  []gotCall{{"dlg.get", `{"callid":"77@host"}`}},
			wantStdout: indented(t, dlgGetResult),
		},
		{
			name:       "by the did of the logs (hex)",
			args:       []string{"dlg", "get", "--id", "c.1", "-o", "json"},
			replies:    get,
			wantCalls:  []gotCall{{"dlg.get", `{"h_entry":12,"h_id":1}`}},
			wantStdout: indented(t, dlgGetResult),
		},
		{
			name:       "by a did as large as it gets",
			args:       []string{"dlg", "get", "--id", "ffffffff.FFFFFFFF", "-o", "json"},
			replies:    get,
			wantCalls:  []gotCall{{"dlg.get", `{"h_entry":4294967295,"h_id":4294967295}`}},
			wantStdout: indented(t, dlgGetResult),
		},
		{
			name:       "by id 0:0: zero is sent, not dropped",
			args:       []string{"dlg", "get", "--id", "0:0", "-o", "json"},
			replies:    get,
			wantCalls:  []gotCall{{"dlg.get", `{"h_entry":0,"h_id":0}`}},
			wantStdout: indented(t, dlgGetResult),
		},
		{
			name:       "largest id",
			args:       []string{"dlg", "get", "--id", "4294967295:4294967295", "-o", "json"},
			replies:    get,
			wantCalls:  []gotCall{{"dlg.get", `{"h_entry":4294967295,"h_id":4294967295}`}},
			wantStdout: indented(t, dlgGetResult),
		},
		{
			name:       "not found",
			args:       []string{"dlg", "get", "--id", "9:9"},
			replies:    map[string]reply{"dlg.get": {code: -32004, message: "dialog h_entry=9 h_id=9 not found"}},
			wantCalls:  []gotCall{{"dlg.get", `{"h_entry":9,"h_id":9}`}},
			wantCode:   exitFailed,
			wantStderr: "dlgctl: dlg.get: dialog h_entry=9 h_id=9 not found (code -32004)\n",
		},
	})
}

func TestDlgTerminate(t *testing.T) {
	term := map[string]reply{"dlg.terminate_dlg": {result: terminateResult}}
	runRPCCases(t, []rpcCase{
		{
			name: "every option",
			args: []string{"dlg", "terminate", "--callid", "77@host", "--ftag", "f2", "--ttag", "c1",
				"--side", "callee", "--reason", "operator request", "--header", "X-Op: 42", "--header", "Priority: emergency"},
			replies: term,
			wantCalls: []gotCall{{"dlg.terminate_dlg",
				`{"callid":"77@host","from_tag":"f2","to_tag":"c1","side":"callee","reason":"operator request","headers":["X-Op: 42","Priority: emergency"]}`}},
			wantStdout: "terminated dialog 12:1 callid 77@host (was CONFIRMED)\n",
		},
		{
			name:       "minimal: the daemon's defaults apply",
			args:       []string{"dlg", "terminate", "--callid", "77@host", "--ftag", "f2"},
			replies:    term,
			wantCalls:  []gotCall{{"dlg.terminate_dlg", `{"callid":"77@host","from_tag":"f2"}`}},
			wantStdout: "terminated dialog 12:1 callid 77@host (was CONFIRMED)\n",
		},
		{
			name:      "by id, side both, json",
			args:      []string{"dlg", "terminate", "--id", "12:1", "--side", "both", "-o", "json"},
			replies:   term,
			wantCalls: []gotCall{{"dlg.terminate_dlg", `{"h_entry":12,"h_id":1,"side":"both"}`}},
			wantStdout: lines(
				"{",
				`  "callid": "77@host",`,
				`  "h_entry": 12,`,
				`  "h_id": 1,`,
				`  "state": "CONFIRMED",`,
				`  "terminated": true`,
				"}",
			),
		},
		{
			name:       "side caller",
			args:       []string{"dlg", "terminate", "--id", "12:1", "--side", "caller", "--reason", "fraud"},
			replies:    term,
			wantCalls:  []gotCall{{"dlg.terminate_dlg", `{"h_entry":12,"h_id":1,"side":"caller","reason":"fraud"}`}},
			wantStdout: "terminated dialog 12:1 callid 77@host (was CONFIRMED)\n",
		},
		{
			name:       "already ended: the daemon's message and code, exit 1",
			args:       []string{"dlg", "terminate", "--callid", "77@host", "--ftag", "f2"},
			replies:    map[string]reply{"dlg.terminate_dlg": {code: -32004, message: "dialog c.1 has already ended"}},
			wantCalls:  []gotCall{{"dlg.terminate_dlg", `{"callid":"77@host","from_tag":"f2"}`}},
			wantCode:   exitFailed,
			wantStderr: "dlgctl: dlg.terminate_dlg: dialog c.1 has already ended (code -32004)\n",
		},
		{
			name:       "header refused by the daemon",
			args:       []string{"dlg", "terminate", "--id", "12:1", "--header", "Via: x"},
			replies:    map[string]reply{"dlg.terminate_dlg": {code: -32602, message: `argument "headers": Via may not be added`}},
			wantCalls:  []gotCall{{"dlg.terminate_dlg", `{"h_entry":12,"h_id":1,"headers":["Via: x"]}`}},
			wantCode:   exitFailed,
			wantStderr: "dlgctl: dlg.terminate_dlg: argument \"headers\": Via may not be added (code -32602)\n",
		},
	})
}

func TestDlgEnd(t *testing.T) {
	end := map[string]reply{"dlg.end_dlg": {result: terminateResult}}
	runRPCCases(t, []rpcCase{
		{
			name:       "by id",
			args:       []string{"dlg", "end", "--id", "12:1"},
			replies:    end,
			wantCalls:  []gotCall{{"dlg.end_dlg", `{"h_entry":12,"h_id":1}`}},
			wantStdout: "terminated dialog 12:1 callid 77@host (was CONFIRMED)\n",
		},
		{
			name:       "by callid, with reason",
			args:       []string{"dlg", "end", "--callid", "77@host", "--ftag", "f2", "--reason", "bye"},
			replies:    end,
			wantCalls:  []gotCall{{"dlg.end_dlg", `{"callid":"77@host","from_tag":"f2","reason":"bye"}`}},
			wantStdout: "terminated dialog 12:1 callid 77@host (was CONFIRMED)\n",
		},
		{
			name:       "json",
			args:       []string{"-o", "json", "dlg", "end", "--id", "12:1"},
			replies:    end,
			wantCalls:  []gotCall{{"dlg.end_dlg", `{"h_entry":12,"h_id":1}`}},
			wantStdout: indented(t, terminateResult),
		},
		{
			name:       "unknown dialog",
			args:       []string{"dlg", "end", "--id", "1:2"},
			replies:    map[string]reply{"dlg.end_dlg": {code: -32004, message: "dialog h_entry=1 h_id=2 not found"}},
			wantCalls:  []gotCall{{"dlg.end_dlg", `{"h_entry":1,"h_id":2}`}},
			wantCode:   exitFailed,
			wantStderr: "dlgctl: dlg.end_dlg: dialog h_entry=1 h_id=2 not found (code -32004)\n",
		},
	})
}

// lines joins table lines as printed: each ends with a newline.
func lines(ls ...string) string { return strings.Join(ls, "\n") + "\n" }

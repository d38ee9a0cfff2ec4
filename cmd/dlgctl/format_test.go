package main

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
)

func TestFmtAge(t *testing.T) {
	cases := []struct {
		d    time.Duration
		want string
	}{
		{-3 * time.Second, "0s"}, // daemon clock ahead of ours
		{0, "0s"},
		{59*time.Second + 999*time.Millisecond, "59s"},
		{time.Minute, "1m0s"},
		{3*time.Minute + 12*time.Second, "3m12s"},
		{time.Hour + 30*time.Second, "1h0m"},
		{23*time.Hour + 59*time.Minute, "23h59m"},
		{50 * time.Hour, "2d2h"},
	}
	for _, tc := range cases {
		assert.Equal(t, tc.want, fmtAge(tc.d), "fmtAge(%s)", tc.d)
	}
}

func TestLegsSummary(t *testing.T) {
	cases := []struct {
		outs []dlgOut
		want string
	}{
		{nil, "0"},
		{[]dlgOut{{State: "CONFIRMED"}}, "1 (CONFIRMED)"},
		{[]dlgOut{{State: "EARLY"}, {State: "EARLY"}}, "2 (EARLY,EARLY)"},
		{[]dlgOut{{State: "EARLY"}, {State: "CONFIRMED"}, {State: "TERMINATED"}}, "3 (EARLY,CONFIRMED,TERMINATED)"},
	}
	for _, tc := range cases {
		assert.Equal(t, tc.want, legsSummary(tc.outs))
	}
}

func TestCell(t *testing.T) {
	assert.Equal(t, "-", cell(""))
	assert.Equal(t, "a b c", cell("a\tb\nc"), "a tab would break the columns")
}

// FuzzRun feeds arbitrary command lines to dlgctl against a daemon that
// answers every method: whatever the input, dlgctl must return one of its
// exit statuses and never panic.
func FuzzRun(f *testing.F) {
	for _, seed := range []string{
		"dlg list", "dlg list --ctx -o json", "dlg get --id 1:2", "dlg get --callid a --ftag b --ttag c",
		"dlg terminate --id 3:4 --side callee --reason x --header A:b", "dlg end --id :", "profile size a b",
		"stats", "version -o json", "call dlg.get {}", "-- dlg list", "dlg -- list", "call -- -x", "",
	} {
		f.Add(seed)
	}
	replies := map[string]reply{
		"dlg.list": {result: dlgListResult}, "dlg.list_ctx": {result: dlgListCtxResult}, "dlg.get": {result: dlgGetResult},
		"dlg.terminate_dlg": {result: terminateResult}, "dlg.end_dlg": {result: terminateResult},
		"dlg.profile_get_size": {result: `{"size":1}`}, "tm.stats": {result: tmStatsResult},
		"dlg.stats": {result: dlgStatsResult}, "core.version": {result: versionResult},
	}
	f.Fuzz(func(t *testing.T, line string) {
		d := newFakeDaemon(t, replies)
		code, _, _ := runApp(t, d.addr(), strings.Fields(line)...)
		if code != exitOK && code != exitFailed && code != exitUsage {
			t.Fatalf("%q: exit status %d", line, code)
		}
	})
}

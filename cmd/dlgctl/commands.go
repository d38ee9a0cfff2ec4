package main

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/imsdlg/imsdlg/internal/buildinfo"
)

const usageProfile = `Usage: dlgctl profile size NAME [VALUE]

Prints how many dialogs are in profile NAME, or with VALUE in it
(dlg.profile_get_size with params {profile, value}).
` + globalsHint

const usageStats = `Usage: dlgctl stats

Prints the transaction (tm.stats) and dialog (dlg.stats) counters in one
table; with -o json, one object {"tm": {...}, "dlg": {...}}.
` + globalsHint

const usageVersion = `Usage: dlgctl version

Prints the daemon's name, version and Go version (core.version).
` + globalsHint

const usageCall = `Usage: dlgctl call METHOD [JSON-PARAMS]

Calls any management method and prints its result as JSON, whatever -o says.
JSON-PARAMS is an object of named arguments, e.g.
  dlgctl call dlg.get '{"callid":"a84b4c76e66710","from_tag":"1928301774"}'
` + globalsHint

func (a *app) profile(args []string) error {
	if len(args) == 0 {
		return usagef(usageProfile, "missing profile command (size)")
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		return &helpRequest{usage: usageProfile}
	case "size":
	default:
		return usagef(usageProfile, "unknown profile command %q", args[0])
	}
	pos, err := a.parseCommand(newFlagSet("profile size"), args[1:], usageProfile, []string{"NAME"}, 2)
	if err != nil {
		return err
	}
	// value is left out, not sent empty, when not given: the daemon then
	// counts the whole profile.
	params := struct {
		Profile string  `json:"profile"`
		Value   *string `json:"value,omitempty"`
	}{Profile: pos[0]}
	if len(pos) == 2 {
		params.Value = &pos[1]
	}
	const method = "dlg.profile_get_size"
	raw, err := a.client().call(a.ctx, method, params)
	if err != nil {
		return err
	}
	if a.jsonOutput() {
		return printJSON(a.stdout, raw)
	}
	// The result shape is the daemon's to define; a count or an object
	// such as {profile, value, size} both print sensibly.
	return printValue(a.stdout, raw)
}

func (a *app) stats(args []string) error {
	if _, err := a.parseCommand(newFlagSet("stats"), args, usageStats, nil, 0); err != nil {
		return err
	}
	c := a.client()
	tm, err := c.call(a.ctx, "tm.stats", nil)
	if err != nil {
		return err
	}
	dlg, err := c.call(a.ctx, "dlg.stats", nil)
	if err != nil {
		return err
	}
	if a.jsonOutput() {
		// A struct, not a map, so "tm" comes first as in the docs.
		b, err := json.Marshal(struct {
			TM  json.RawMessage `json:"tm"`
			DLG json.RawMessage `json:"dlg"`
		}{tm, dlg})
		if err != nil {
			return fmt.Errorf("stats: %v", err)
		}
		return printJSON(a.stdout, b)
	}
	sections := []struct {
		name string
		raw  json.RawMessage
	}{{"tm", tm}, {"dlg", dlg}}
	var rows [][]string
	for _, s := range sections {
		kv, err := objectRows(s.raw)
		if err != nil {
			return fmt.Errorf("%s.stats: unexpected result: %v", s.name, err)
		}
		for _, r := range kv {
			rows = append(rows, []string{s.name, r[0], r[1]})
		}
	}
	printTable(a.stdout, []string{"SECTION", "NAME", "VALUE"}, rows)
	return nil
}

func (a *app) version(args []string) error {
	if _, err := a.parseCommand(newFlagSet("version"), args, usageVersion, nil, 0); err != nil {
		return err
	}
	own := buildinfo.Get()
	raw, err := a.client().call(a.ctx, "core.version", nil)
	if err != nil {
		// dlgctl's own version is worth printing even without a daemon.
		fmt.Fprintf(a.stdout, "dlgctl %s\n", own)
		return err
	}
	if a.jsonOutput() {
		return printJSON(a.stdout, raw)
	}
	var v struct {
		Name     string `json:"name"`
		Version  string `json:"version"`
		Revision string `json:"revision"`
		Go       string `json:"go"`
	}
	if err := json.Unmarshal(raw, &v); err != nil {
		return fmt.Errorf("core.version: unexpected result: %v", err)
	}
	printKV(a.stdout, [][2]string{{"NAME", v.Name}, {"VERSION", v.Version}, {"REVISION", v.Revision}, {"GO", v.Go},
		{"DLGCTL", own.String()}})
	return nil
}

func (a *app) call(args []string) error {
	pos, err := a.parseCommand(newFlagSet("call"), args, usageCall, []string{"METHOD"}, 2)
	if err != nil {
		return err
	}
	if pos[0] == "" {
		return usagef(usageCall, "missing METHOD")
	}
	var params any
	if len(pos) == 2 {
		p := strings.TrimSpace(pos[1])
		// Checked here because the daemon would only say "parse error" for
		// the whole request, without pointing at the argument.
		if !json.Valid([]byte(p)) || p[0] != '{' {
			return usagef(usageCall, "JSON-PARAMS %q is not a JSON object", pos[1])
		}
		params = json.RawMessage(p)
	}
	raw, err := a.client().call(a.ctx, pos[0], params)
	if err != nil {
		return err
	}
	return printJSON(a.stdout, raw)
}

package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"strconv"
	"strings"
)

const usageDlg = `Usage: dlgctl dlg COMMAND [FLAGS]

Commands:
  list [--ctx]                       list dialogs
  get SELECTOR                       show one dialog
  terminate SELECTOR [OPTIONS]       end a call (dlg.terminate_dlg)
  end --id H_ENTRY:H_ID [OPTIONS]    end a call (dlg.end_dlg)

SELECTOR is --callid X [--ftag Y [--ttag Z]] (the Call-ID alone when it has one
dialog), or --id H_ENTRY:H_ID (or the did of the logs, hex E.I).
Run 'dlgctl dlg COMMAND -h' for a command's flags; 'dlgctl -h' for the global flags.
`

const usageDlgList = `Usage: dlgctl dlg list [--ctx]

Lists every dialog (dlg.list): H_ENTRY:H_ID, CALLID, FROM_TAG, TO_TAG, STATE,
LEGS (the dlg_outs and their states) and AGE.

Flags:
  --ctx   use dlg.list_ctx, which adds the dialog variables and flags (VARS, FLAGS)
` + globalsHint

const usageDlgGet = `Usage: dlgctl dlg get --callid X --ftag Y [--ttag Z]
       dlgctl dlg get --id H_ENTRY:H_ID

Shows one dialog (dlg.get) and one line per dlg_out (call leg).

Flags:
  --callid X         Call-ID of the dialog
  --ftag Y           From tag (the caller's tag)
  --ttag Z           To tag, to pick the dialog of one answered leg
  --id E:I           the dialog's h_entry:h_id, as shown by 'dlg list', or its did (hex e.i, as in the logs)
` + globalsHint

const usageDlgTerminate = `Usage: dlgctl dlg terminate --callid X --ftag Y [--ttag Z] [OPTIONS]
       dlgctl dlg terminate --id H_ENTRY:H_ID [OPTIONS]

Ends a call (dlg.terminate_dlg): an early call gets CANCEL towards the callee
and an error reply towards the caller, a confirmed one BYE to the chosen sides.

Flags:
  --callid X         Call-ID of the dialog
  --ftag Y           From tag (the caller's tag)
  --ttag Z           To tag, to pick the dialog of one answered leg
  --id E:I           the dialog's h_entry:h_id, as shown by 'dlg list', or its did (hex e.i, as in the logs)
  --side SIDE        caller, callee or both (the daemon's default: both)
  --reason TEXT      text of the Reason header sent with the requests
  --header "N: v"    extra header for the requests; repeat for more
` + globalsHint

const usageDlgEnd = `Usage: dlgctl dlg end --id H_ENTRY:H_ID [OPTIONS]
       dlgctl dlg end --callid X --ftag Y [--ttag Z] [OPTIONS]

Ends a call through dlg.end_dlg (Kamailio's name, usually given the dialog's
h_entry:h_id); the same effect and options as 'dlg terminate'.

Flags:
  --id E:I           the dialog's h_entry:h_id, as shown by 'dlg list', or its did (hex e.i, as in the logs)
  --callid X         Call-ID of the dialog
  --ftag Y           From tag (the caller's tag)
  --ttag Z           To tag
  --side SIDE        caller, callee or both (the daemon's default: both)
  --reason TEXT      text of the Reason header sent with the requests
  --header "N: v"    extra header for the requests; repeat for more
` + globalsHint

func (a *app) dlg(args []string) error {
	if len(args) == 0 {
		return usagef(usageDlg, "missing dlg command")
	}
	switch args[0] {
	case "help", "-h", "-help", "--help":
		return &helpRequest{usage: usageDlg}
	case "list":
		return a.dlgList(args[1:])
	case "get":
		return a.dlgGet(args[1:])
	case "terminate":
		return a.dlgTerminate(args[1:], "dlg.terminate_dlg", usageDlgTerminate)
	case "end":
		return a.dlgTerminate(args[1:], "dlg.end_dlg", usageDlgEnd)
	}
	return usagef(usageDlg, "unknown dlg command %q", args[0])
}

// dlgParams are the daemon's argument names for naming a dialog and ending
// it. Empty members are left out so the daemon applies its own defaults.
type dlgParams struct {
	CallID  string   `json:"callid,omitempty"`
	FromTag string   `json:"from_tag,omitempty"`
	ToTag   string   `json:"to_tag,omitempty"`
	HEntry  *uint32  `json:"h_entry,omitempty"`
	HID     *uint32  `json:"h_id,omitempty"`
	Side    string   `json:"side,omitempty"`
	Reason  string   `json:"reason,omitempty"`
	Headers []string `json:"headers,omitempty"`
}

// selector is the pair of ways to name a dialog on the command line.
type selector struct {
	id, callid, ftag, ttag string
}

func (s *selector) register(fs *flag.FlagSet) {
	fs.StringVar(&s.id, "id", "", "dialog as H_ENTRY:H_ID")
	fs.StringVar(&s.callid, "callid", "", "Call-ID")
	fs.StringVar(&s.ftag, "ftag", "", "From tag")
	fs.StringVar(&s.ttag, "ttag", "", "To tag")
}

// params checks the selector locally, so a typo costs no round trip and the
// message names the flag rather than the daemon's argument.
func (s selector) params(usage string) (dlgParams, error) {
	if s.id != "" {
		if s.callid != "" || s.ftag != "" || s.ttag != "" {
			return dlgParams{}, usagef(usage, "--id and --callid/--ftag/--ttag are exclusive: name the dialog one way")
		}
		e, i, err := parseID(s.id)
		if err != nil {
			return dlgParams{}, usagef(usage, "bad --id %q: %v", s.id, err)
		}
		return dlgParams{HEntry: &e, HID: &i}, nil
	}
	switch {
	case s.callid == "":
		return dlgParams{}, usagef(usage, "missing --callid (or --id H_ENTRY:H_ID)")
	case s.ftag == "" && s.ttag != "":
		return dlgParams{}, usagef(usage, "--ttag needs --ftag (the From tag of dialog %q)", s.callid)
	}
	// --callid alone names the dialog when its Call-ID has only one; the
	// daemon says so otherwise.
	return dlgParams{CallID: s.callid, FromTag: s.ftag, ToTag: s.ttag}, nil
}

// parseID reads "H_ENTRY:H_ID", both unsigned 32-bit numbers as dlg.list
// shows them, or the did "e.i" (both in hex) as the logs, the events and
// the dialog store spell it.
func parseID(id string) (hEntry, hID uint32, err error) {
	base, sep := 10, ":"
	if !strings.Contains(id, ":") && strings.Contains(id, ".") {
		base, sep = 16, "."
	}
	es, is, ok := strings.Cut(id, sep)
	if !ok {
		return 0, 0, fmt.Errorf("want H_ENTRY:H_ID (e.g. 3:1207) or the did of the logs (e.g. 3.4b7)")
	}
	e, err1 := strconv.ParseUint(es, base, 32)
	i, err2 := strconv.ParseUint(is, base, 32)
	if err1 != nil || err2 != nil {
		if base == 16 {
			return 0, 0, fmt.Errorf("want a did, two hex numbers, e.g. 3.4b7")
		}
		return 0, 0, fmt.Errorf("want H_ENTRY:H_ID, two unsigned numbers, e.g. 3:1207")
	}
	return uint32(e), uint32(i), nil
}

func (a *app) dlgList(args []string) error {
	fs := newFlagSet("dlg list")
	withCtx := fs.Bool("ctx", false, "use dlg.list_ctx")
	if _, err := a.parseCommand(fs, args, usageDlgList, nil, 0); err != nil {
		return err
	}
	method := "dlg.list"
	if *withCtx {
		method = "dlg.list_ctx"
	}
	raw, err := a.client().call(a.ctx, method, nil)
	if err != nil {
		return err
	}
	if a.jsonOutput() {
		return printJSON(a.stdout, raw)
	}
	var ds []dialog
	if err := json.Unmarshal(raw, &ds); err != nil {
		return fmt.Errorf("%s: unexpected result: %v", method, err)
	}
	if len(ds) == 0 {
		// On stderr, so that stdout stays a plain table for pipes.
		fmt.Fprintln(a.stderr, "no dialogs")
		return nil
	}
	printDialogList(a.stdout, ds, *withCtx, a.now())
	return nil
}

func (a *app) dlgGet(args []string) error {
	fs := newFlagSet("dlg get")
	var sel selector
	sel.register(fs)
	if _, err := a.parseCommand(fs, args, usageDlgGet, nil, 0); err != nil {
		return err
	}
	p, err := sel.params(usageDlgGet)
	if err != nil {
		return err
	}
	raw, err := a.client().call(a.ctx, "dlg.get", p)
	if err != nil {
		return err
	}
	if a.jsonOutput() {
		return printJSON(a.stdout, raw)
	}
	var d dialog
	if err := json.Unmarshal(raw, &d); err != nil {
		return fmt.Errorf("dlg.get: unexpected result: %v", err)
	}
	printDialog(a.stdout, d, a.now())
	return nil
}

// dlgTerminate serves both terminate and end: the daemon gives the two
// methods the same arguments and effect.
func (a *app) dlgTerminate(args []string, method, usage string) error {
	fs := newFlagSet("dlg terminate")
	var (
		sel     selector
		side    string
		reason  string
		headers stringList
	)
	sel.register(fs)
	fs.StringVar(&side, "side", "", "caller, callee or both")
	fs.StringVar(&reason, "reason", "", "Reason header text")
	fs.Var(&headers, "header", `extra header "Name: value"`)
	if _, err := a.parseCommand(fs, args, usage, nil, 0); err != nil {
		return err
	}
	p, err := sel.params(usage)
	if err != nil {
		return err
	}
	switch side {
	case "", "caller", "callee", "both":
	default:
		return usagef(usage, "bad --side %q: want caller, callee or both", side)
	}
	for _, h := range headers {
		if name, _, ok := strings.Cut(h, ":"); !ok || strings.TrimSpace(name) == "" {
			return usagef(usage, "bad --header %q: want \"Name: value\"", h)
		}
	}
	p.Side, p.Reason, p.Headers = side, reason, headers

	raw, err := a.client().call(a.ctx, method, p)
	if err != nil {
		return err
	}
	if a.jsonOutput() {
		return printJSON(a.stdout, raw)
	}
	var res struct {
		HEntry uint64 `json:"h_entry"`
		HID    uint64 `json:"h_id"`
		CallID string `json:"callid"`
		State  string `json:"state"`
	}
	if err := json.Unmarshal(raw, &res); err != nil {
		return fmt.Errorf("%s: unexpected result: %v", method, err)
	}
	fmt.Fprintf(a.stdout, "terminated dialog %d:%d callid %s (was %s)\n", res.HEntry, res.HID, res.CallID, res.State)
	return nil
}

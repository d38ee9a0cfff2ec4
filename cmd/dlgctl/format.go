package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// dialog is the client's reading of one dlg.list / dlg.get entry. It is a
// copy of the documented JSON shape, not an import of the daemon's type, and
// unknown members are ignored so a newer daemon does not break an older
// dlgctl.
type dialog struct {
	HEntry        uint64            `json:"h_entry"`
	HID           uint64            `json:"h_id"`
	DID           string            `json:"did"`
	CallID        string            `json:"callid"`
	FromTag       string            `json:"from_tag"`
	ToTag         string            `json:"to_tag"`
	FromURI       string            `json:"from_uri"`
	ToURI         string            `json:"to_uri"`
	State         string            `json:"state"`
	EndReason     string            `json:"end_reason"`
	Created       int64             `json:"created"`
	Start         int64             `json:"start"`
	Ended         int64             `json:"ended"`
	Timeout       int64             `json:"timeout"`
	CallerCSeq    uint64            `json:"caller_cseq"`
	CallerRoute   []string          `json:"caller_route_set"`
	CallerContact string            `json:"caller_contact"`
	DlgOuts       []dlgOut          `json:"dlg_outs"`
	Vars          map[string]string `json:"vars"`
	Flags         uint64            `json:"flags"`
}

// dlgOut is one call leg of a dialog (a dlg_outs entry).
type dlgOut struct {
	ToTag        string   `json:"to_tag"`
	State        string   `json:"state"`
	RemoteTarget string   `json:"remote_target"`
	RouteSet     []string `json:"route_set"`
	CallerCSeq   uint64   `json:"caller_cseq"`
	CalleeCSeq   uint64   `json:"callee_cseq"`
	Branch       int      `json:"branch"`
	LastCode     int      `json:"last_code"`
	Source       string   `json:"source"`
	Created      int64    `json:"created"`
	Updated      int64    `json:"updated"`
}

// printJSON prints a result as the daemon sent it, only indented: members
// keep their order and numbers their spelling, which re-encoding through Go
// values would not guarantee.
func printJSON(w io.Writer, raw []byte) error {
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		return fmt.Errorf("result is not valid JSON: %v", err)
	}
	buf.WriteByte('\n')
	_, err := w.Write(buf.Bytes())
	return err
}

func newTabWriter(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
}

// cell makes a value safe for a tab-separated row and shows an empty value
// as "-", so columns stay aligned and readable by awk.
func cell(s string) string {
	if s == "" {
		return "-"
	}
	return strings.NewReplacer("\t", " ", "\n", " ", "\r", " ").Replace(s)
}

func printTable(w io.Writer, header []string, rows [][]string) {
	tw := newTabWriter(w)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		cs := make([]string, len(r))
		for i, c := range r {
			cs[i] = cell(c)
		}
		fmt.Fprintln(tw, strings.Join(cs, "\t"))
	}
	tw.Flush()
}

func printKV(w io.Writer, kv [][2]string) {
	tw := newTabWriter(w)
	for _, p := range kv {
		fmt.Fprintf(tw, "%s\t%s\n", p[0], cell(p[1]))
	}
	tw.Flush()
}

// scalarText renders a JSON value for a table cell: strings unquoted,
// numbers as spelt, anything nested as compact JSON.
func scalarText(raw json.RawMessage) string {
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err == nil {
		return buf.String()
	}
	return string(raw)
}

// objectRows returns an object's members as name/value pairs sorted by name,
// which is how the counters of tm.stats and dlg.stats are easiest to scan.
func objectRows(raw json.RawMessage) ([][2]string, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	if m == nil {
		return nil, fmt.Errorf("want an object, got %s", raw)
	}
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	rows := make([][2]string, 0, len(names))
	for _, k := range names {
		rows = append(rows, [2]string{k, scalarText(m[k])})
	}
	return rows, nil
}

// printValue prints a result whose shape dlgctl does not fix: an object as
// name/value lines, anything else on one line.
func printValue(w io.Writer, raw json.RawMessage) error {
	if rows, err := objectRows(raw); err == nil {
		kv := make([][2]string, len(rows))
		for i, r := range rows {
			kv[i] = [2]string{strings.ToUpper(r[0]), r[1]}
		}
		printKV(w, kv)
		return nil
	}
	_, err := fmt.Fprintln(w, scalarText(raw))
	return err
}

// legsSummary is the LEGS column: "2 (EARLY,EARLY)", or "0" before any
// branch has answered.
func legsSummary(outs []dlgOut) string {
	if len(outs) == 0 {
		return "0"
	}
	states := make([]string, len(outs))
	for i, o := range outs {
		states[i] = o.State
	}
	return fmt.Sprintf("%d (%s)", len(outs), strings.Join(states, ","))
}

// fmtAge prints a duration the way ps and kubectl do, two units at most:
// an operator wants "3m12s" or "2d4h", not nanoseconds.
func fmtAge(d time.Duration) string {
	if d < 0 {
		d = 0 // the daemon's clock may be slightly ahead
	}
	s := int64(d / time.Second)
	switch {
	case s < 60:
		return fmt.Sprintf("%ds", s)
	case s < 3600:
		return fmt.Sprintf("%dm%ds", s/60, s%60)
	case s < 86400:
		return fmt.Sprintf("%dh%dm", s/3600, s%3600/60)
	}
	return fmt.Sprintf("%dd%dh", s/86400, s%86400/3600)
}

func age(unix int64, now time.Time) string {
	if unix == 0 {
		return ""
	}
	return fmtAge(now.Sub(time.Unix(unix, 0)))
}

func ago(unix int64, now time.Time) string {
	if unix == 0 {
		return ""
	}
	return age(unix, now) + " ago"
}

// fmtTime prints a Unix time in UTC (unambiguous across hosts) with its age.
func fmtTime(unix int64, now time.Time) string {
	if unix == 0 {
		return ""
	}
	return fmt.Sprintf("%s (%s)", time.Unix(unix, 0).UTC().Format(time.RFC3339), ago(unix, now))
}

func fmtVars(vars map[string]string) string {
	names := make([]string, 0, len(vars))
	for k := range vars {
		names = append(names, k)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, k := range names {
		parts[i] = k + "=" + vars[k]
	}
	return strings.Join(parts, ",")
}

func dialogID(d dialog) string { return fmt.Sprintf("%d:%d", d.HEntry, d.HID) }

func printDialogList(w io.Writer, ds []dialog, withCtx bool, now time.Time) {
	header := []string{"H_ENTRY:H_ID", "CALLID", "FROM_TAG", "TO_TAG", "STATE", "LEGS", "AGE"}
	if withCtx {
		header = append(header, "VARS", "FLAGS")
	}
	rows := make([][]string, 0, len(ds))
	for _, d := range ds {
		r := []string{dialogID(d), d.CallID, d.FromTag, d.ToTag, d.State, legsSummary(d.DlgOuts), age(d.Created, now)}
		if withCtx {
			r = append(r, fmtVars(d.Vars), strconv.FormatUint(d.Flags, 10))
		}
		rows = append(rows, r)
	}
	printTable(w, header, rows)
}

// printDialog prints dlg.get: the dialog as name/value lines, then its legs
// as a table, one line per dlg_out.
func printDialog(w io.Writer, d dialog, now time.Time) {
	kv := [][2]string{
		{"H_ENTRY:H_ID", dialogID(d)},
		{"DID", d.DID},
		{"CALLID", d.CallID},
		{"FROM_TAG", d.FromTag},
		{"TO_TAG", d.ToTag},
		{"FROM_URI", d.FromURI},
		{"TO_URI", d.ToURI},
		{"STATE", d.State},
	}
	if d.EndReason != "" {
		kv = append(kv, [2]string{"END_REASON", d.EndReason})
	}
	kv = append(kv,
		[2]string{"CREATED", fmtTime(d.Created, now)},
		[2]string{"START", fmtTime(d.Start, now)},
	)
	if d.Ended != 0 {
		kv = append(kv, [2]string{"ENDED", fmtTime(d.Ended, now)})
	}
	kv = append(kv,
		[2]string{"TIMEOUT", fmt.Sprintf("%ds", d.Timeout)},
		[2]string{"CALLER_CSEQ", strconv.FormatUint(d.CallerCSeq, 10)},
		[2]string{"CALLER_CONTACT", d.CallerContact},
		[2]string{"CALLER_ROUTE_SET", strings.Join(d.CallerRoute, ",")},
	)
	if len(d.Vars) > 0 || d.Flags != 0 {
		kv = append(kv,
			[2]string{"VARS", fmtVars(d.Vars)},
			[2]string{"FLAGS", strconv.FormatUint(d.Flags, 10)},
		)
	}
	printKV(w, kv)

	fmt.Fprintln(w)
	rows := make([][]string, 0, len(d.DlgOuts))
	for i, o := range d.DlgOuts {
		rows = append(rows, []string{
			strconv.Itoa(i), o.ToTag, o.State, strconv.Itoa(o.LastCode), strconv.Itoa(o.Branch),
			fmt.Sprintf("%d/%d", o.CallerCSeq, o.CalleeCSeq), o.RemoteTarget, strings.Join(o.RouteSet, ","),
			o.Source, ago(o.Updated, now),
		})
	}
	printTable(w, []string{"DLG_OUT", "TO_TAG", "STATE", "LAST_CODE", "BRANCH", "CSEQ(CALLER/CALLEE)",
		"REMOTE_TARGET", "ROUTE_SET", "SOURCE", "UPDATED"}, rows)
}

package main

import (
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"
)

// Exit statuses; scripts branch on them, so they are a contract.
const (
	exitOK     = 0
	exitFailed = 1 // the daemon refused the call or answered nonsense
	exitUsage  = 2 // bad command line, or the daemon is unreachable
)

const defaultAddr = "127.0.0.1:8080"

const usageTop = `Usage: dlgctl [--addr HOST:PORT] [--token TOKEN] [--cacert FILE] [-o table|json] [--timeout 5s] COMMAND [ARGS]

Client of imsproxy's JSON-RPC management API.

Commands:
  dlg list [--ctx]                    list dialogs (dlg.list; --ctx: dlg.list_ctx with vars and flags)
  dlg get SELECTOR                    show one dialog and its dlg_outs (dlg.get)
  dlg terminate SELECTOR [--side caller|callee|both] [--reason TEXT] [--header "Name: value"]...
                                      end a call: CANCEL if early, BYE if confirmed (dlg.terminate_dlg)
  dlg end --id H_ENTRY:H_ID [...]     the same through dlg.end_dlg
  profile size NAME [VALUE]           dialogs in a profile, or with VALUE in it (dlg.profile_get_size)
  stats                               transaction and dialog counters (tm.stats, dlg.stats)
  version                             the daemon's version (core.version)
  call METHOD [JSON-PARAMS]           call any method; prints its raw JSON result

SELECTOR is --callid X --ftag Y [--ttag Z], or --id H_ENTRY:H_ID.

Global flags (also accepted after the command):
  --addr HOST:PORT     management API (default $DLGCTL_ADDR, else 127.0.0.1:8080)
  --token TOKEN        bearer token of the API, mgmt.token (default $IMSDLG_MGMT_TOKEN)
  --cacert FILE        CA certificate (PEM) of an API served over HTTPS (mgmt.tls_cert_file;
                       default $DLGCTL_CACERT)
  -o table|json        table for people; json prints the result as the daemon returned it
  --timeout DURATION   how long to wait for an answer (default 5s)

Exit status: 0 done, 1 the daemon refused the call, 2 bad usage or daemon unreachable.
`

// globalsHint ends every command's usage: the global flags work there too.
const globalsHint = `
Global flags: --addr HOST:PORT, -o table|json, --timeout DURATION (see 'dlgctl -h').
`

// usageError is a mistake on the command line; run prints it with the
// usage of the command concerned, so the fix is on screen.
type usageError struct {
	msg   string
	usage string
}

func (e *usageError) Error() string { return e.msg }

func usagef(usage, format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...), usage: usage}
}

// helpRequest is returned for -h/--help/help: usage on stdout, exit 0.
type helpRequest struct{ usage string }

func (h *helpRequest) Error() string { return "help requested" }

// globals are the flags every command accepts.
type globals struct {
	addr    string
	token   string
	cacert  string
	output  string
	timeout time.Duration
	// roots is cacert, loaded by checkGlobals.
	roots *x509.CertPool
}

// app holds what a command run depends on, so tests can replace the
// environment and the clock instead of touching process-wide state.
type app struct {
	stdout, stderr io.Writer
	getenv         func(string) string
	now            func() time.Time
	ctx            context.Context

	g globals
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes one dlgctl command line and returns the exit status. It never
// calls os.Exit, so tests can run it in-process.
func run(args []string, stdout, stderr io.Writer) int {
	a := &app{stdout: stdout, stderr: stderr, getenv: os.Getenv, now: time.Now, ctx: context.Background()}
	return a.run(args)
}

func (a *app) run(args []string) int {
	err := a.dispatch(args)
	var (
		help  *helpRequest
		usage *usageError
		unr   *unreachableError
	)
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &help):
		fmt.Fprint(a.stdout, help.usage)
		return exitOK
	case errors.As(err, &usage):
		fmt.Fprintf(a.stderr, "dlgctl: %s\n\n%s", usage.msg, usage.usage)
		return exitUsage
	case errors.As(err, &unr):
		fmt.Fprintf(a.stderr, "dlgctl: %v\n", err)
		return exitUsage
	default:
		fmt.Fprintf(a.stderr, "dlgctl: %v\n", err)
		return exitFailed
	}
}

// addGlobals registers the global flags on fs. Each command's flag set gets
// them too, bound to the same variables with the value parsed so far as the
// default, so `dlgctl -o json dlg list` and `dlgctl dlg list -o json` agree.
func (a *app) addGlobals(fs *flag.FlagSet) {
	fs.StringVar(&a.g.addr, "addr", a.g.addr, "management API HOST:PORT")
	fs.StringVar(&a.g.token, "token", a.g.token, "bearer token of the management API (mgmt.token)")
	fs.StringVar(&a.g.cacert, "cacert", a.g.cacert, "PEM file of the CA that signed the API's certificate: talk HTTPS (mgmt.tls_cert_file)")
	fs.StringVar(&a.g.output, "o", a.g.output, "output: table or json")
	fs.DurationVar(&a.g.timeout, "timeout", a.g.timeout, "how long to wait for an answer")
}

// dispatch parses the global flags, finds the command and runs it.
func (a *app) dispatch(args []string) error {
	a.g = globals{addr: a.getenv("DLGCTL_ADDR"), token: a.getenv("IMSDLG_MGMT_TOKEN"), cacert: a.getenv("DLGCTL_CACERT"),
		output: "table", timeout: 5 * time.Second}
	if a.g.addr == "" {
		a.g.addr = defaultAddr
	}
	fs := newFlagSet("dlgctl")
	a.addGlobals(fs)
	// The top level stops at the command name: what follows belongs to it.
	if err := fs.Parse(args); err != nil {
		return flagError(err, usageTop)
	}
	rest := fs.Args()
	if len(rest) == 0 {
		return usagef(usageTop, "missing command")
	}
	switch rest[0] {
	case "help":
		return &helpRequest{usage: usageTop}
	case "dlg":
		return a.dlg(rest[1:])
	case "profile":
		return a.profile(rest[1:])
	case "stats":
		return a.stats(rest[1:])
	case "version":
		return a.version(rest[1:])
	case "call":
		return a.call(rest[1:])
	}
	return usagef(usageTop, "unknown command %q", rest[0])
}

// checkGlobals validates the global flags once the command's own flags are
// parsed (they may have been given there).
func (a *app) checkGlobals(usage string) error {
	host, port, err := net.SplitHostPort(a.g.addr)
	if err != nil || port == "" || strings.Contains(host, "/") {
		return usagef(usage, "bad --addr %q (or $DLGCTL_ADDR): want HOST:PORT, e.g. %s", a.g.addr, defaultAddr)
	}
	switch a.g.output {
	case "table", "json":
	default:
		return usagef(usage, "bad -o %q: want table or json", a.g.output)
	}
	if a.g.timeout <= 0 {
		return usagef(usage, "bad --timeout %s: want a positive duration, e.g. 5s", a.g.timeout)
	}
	a.g.roots = nil
	if a.g.cacert != "" {
		pem, err := os.ReadFile(a.g.cacert)
		if err != nil {
			return usagef(usage, "bad --cacert (or $DLGCTL_CACERT): %v", err)
		}
		a.g.roots = x509.NewCertPool()
		if !a.g.roots.AppendCertsFromPEM(pem) {
			return usagef(usage, "bad --cacert %q (or $DLGCTL_CACERT): no PEM certificate in it", a.g.cacert)
		}
	}
	return nil
}

// client returns a JSON-RPC client for the validated global flags.
func (a *app) client() *client {
	c := newClient(a.g.addr, a.g.timeout)
	c.token = a.g.token
	if a.g.roots != nil {
		c.useTLS(a.g.roots)
	}
	return c
}

func (a *app) jsonOutput() bool { return a.g.output == "json" }

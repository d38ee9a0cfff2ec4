package main

import (
	"errors"
	"flag"
	"io"
	"strings"
)

// newFlagSet returns a flag set that reports errors to its caller instead
// of printing and exiting: run decides what is printed and the exit status.
func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

// flagError turns a flag package error into a usage error (its text already
// names the flag, e.g. "flag provided but not defined: -x") or a help request.
func flagError(err error, usage string) error {
	if errors.Is(err, flag.ErrHelp) {
		return &helpRequest{usage: usage}
	}
	return usagef(usage, "%v", err)
}

// parseCommand parses a command's arguments: its flags, the global flags
// (anywhere on the line) and its positional arguments, the first
// len(required) of which must be there (named in the error), at most
// maxArgs in all. Flags may follow positional arguments, as operators type
// them (`dlgctl profile size caller -o json`); "--" ends the flags.
func (a *app) parseCommand(fs *flag.FlagSet, args []string, usage string, required []string, maxArgs int) ([]string, error) {
	a.addGlobals(fs)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, flagError(err, usage)
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		if used := len(args) - len(rest); used > 0 && args[used-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	switch {
	case len(pos) < len(required):
		return nil, usagef(usage, "missing %s", required[len(pos)])
	case len(pos) > maxArgs:
		return nil, usagef(usage, "unexpected argument %q", pos[maxArgs])
	}
	if err := a.checkGlobals(usage); err != nil {
		return nil, err
	}
	return pos, nil
}

// stringList is a repeatable string flag (--header A --header B).
type stringList []string

func (l *stringList) String() string { return strings.Join(*l, ", ") }

func (l *stringList) Set(v string) error {
	*l = append(*l, v)
	return nil
}

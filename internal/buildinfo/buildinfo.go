// Package buildinfo says which build of imsdlg is running: the version
// stamped at link time, else the module version or the VCS revision and
// time the Go toolchain records in a binary built from a git checkout.
package buildinfo

import (
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
)

// version is set at link time by the release build:
//
//	go build -ldflags "-X github.com/imsdlg/imsdlg/internal/buildinfo.version=v1.2.0"
var version string

// Info describes the running build.
type Info struct {
	// Version is the release version ("v1.2.0"), the module version go
	// install recorded, or "devel" (go run, or a build without VCS data).
	Version string
	// Revision is the VCS commit, "" when unknown; Modified says the
	// working tree had uncommitted changes.
	Revision string
	Modified bool
	// Time is the commit time (RFC 3339), "" when unknown.
	Time string
	Go   string
}

var read = sync.OnceValue(func() Info {
	in := Info{Version: version, Go: runtime.Version()}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		if in.Version == "" {
			in.Version = "devel"
		}
		return in
	}
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			in.Revision = s.Value
		case "vcs.time":
			in.Time = s.Value
		case "vcs.modified":
			in.Modified = s.Value == "true"
		}
	}
	if in.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		in.Version = bi.Main.Version
	}
	if in.Version == "" {
		in.Version = "devel"
	}
	return in
})

// Get returns the running build's Info.
func Get() Info { return read() }

// String is the one-line form the commands print: the version, and the
// revision (12 hex digits, "+dirty" for a modified tree) with its time when
// the version does not already name it.
func (in Info) String() string {
	var b strings.Builder
	b.WriteString(in.Version)
	if in.Revision != "" && !strings.Contains(in.Version, shortRev(in.Revision)) {
		b.WriteString(" (")
		b.WriteString(shortRev(in.Revision))
		if in.Modified {
			b.WriteString("+dirty")
		}
		if in.Time != "" {
			b.WriteString(" ")
			b.WriteString(in.Time)
		}
		b.WriteString(")")
	}
	b.WriteString(" ")
	b.WriteString(in.Go)
	return b.String()
}

func shortRev(r string) string {
	if len(r) > 12 {
		return r[:12]
	}
	return r
}

//go:build linux

package transport

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestIssue14_PerMessageSyscallsStayRaw: a system call made through the
// Go scheduler's system-call state (syscall.Syscall, the x/sys helpers)
// wakes sysmon when it sleeps and resets its polling to every 20 µs; one
// getsockopt per full read batch cost a few hundred sysmon wake-ups a
// second and 5 % of the CPU per forked call (issue 14). Such calls may
// only sit in the functions listed here, none of which runs per message:
// anything else the readers and senders call must be a raw system call.
// What goes through the net package and x/net (the writer goroutine's
// sendmmsg after a full socket buffer, the paths udp.raw_reads and
// udp.raw_writes false choose) is not looked at.
func TestIssue14_PerMessageSyscallsStayRaw(t *testing.T) {
	allowed := map[string]string{
		"socketBuffers":      "once per socket, at listen",
		"reusePortControl":   "once per socket, at listen",
		"pendingDatagram":    "the read watchdog, every read_watchdog",
		"rawReader.recvmmsg": "blocking reads wait in the kernel: the scheduler must know",
	}
	watched := []string{"Syscall", "Syscall6", "Syscall9", "GetsockoptInt", "IoctlGetInt", "Getsockopt",
		"Setsockopt", "SetsockoptInt", "Recvmmsg", "Sendmmsg", "Sendmsg", "SendmsgN", "Recvmsg", "Sendto", "Recvfrom"}
	files, err := filepath.Glob("*.go")
	require.NoError(t, err)
	fset := token.NewFileSet()
	var found []string
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") || strings.HasSuffix(name, "_other.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		require.NoError(t, err)
		for _, d := range f.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Body == nil {
				continue
			}
			where := fn.Name.Name
			if fn.Recv != nil && len(fn.Recv.List) == 1 {
				typ := fn.Recv.List[0].Type
				if st, ok := typ.(*ast.StarExpr); ok {
					typ = st.X
				}
				if id, ok := typ.(*ast.Ident); ok {
					where = id.Name + "." + where
				}
			}
			ast.Inspect(fn.Body, func(n ast.Node) bool {
				call, ok := n.(*ast.CallExpr)
				if !ok {
					return true
				}
				sel, ok := call.Fun.(*ast.SelectorExpr)
				if !ok {
					return true
				}
				pkg, ok := sel.X.(*ast.Ident)
				if !ok || (pkg.Name != "syscall" && pkg.Name != "unix") || !slices.Contains(watched, sel.Sel.Name) {
					return true
				}
				found = append(found, where)
				if _, ok := allowed[where]; !ok {
					t.Errorf("%s: %s.%s in %s goes through the scheduler's system-call state: use a raw system call (or list the function here, with why it does not run per message)",
						fset.Position(call.Pos()), pkg.Name, sel.Sel.Name, where)
				}
				return true
			})
		}
	}
	// The guard must see what it guards: each allowed function still holds
	// its call (else the list is stale, or the scan broke).
	for fn := range allowed {
		assert.Contains(t, found, fn, "no watched system call found in %s", fn)
	}
}

package e2e

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

var dlgctlBuild struct {
	once sync.Once
	bin  string
	err  error
}

// buildDlgctl builds ./cmd/dlgctl once per test binary.
func buildDlgctl(t *testing.T) string {
	t.Helper()
	dlgctlBuild.once.Do(func() {
		dir, err := sharedTempDir("imsdlg-dlgctl-")
		if err != nil {
			dlgctlBuild.err = err
			return
		}
		bin := filepath.Join(dir, "dlgctl")
		cmd := exec.Command(goTool(), "build", "-o", bin, "./cmd/dlgctl")
		cmd.Dir = ModuleRoot(t)
		if out, err := cmd.CombinedOutput(); err != nil {
			dlgctlBuild.err = err
			t.Logf("%s", out)
			return
		}
		dlgctlBuild.bin = bin
	})
	if dlgctlBuild.err != nil {
		t.Fatalf("building dlgctl: %v", dlgctlBuild.err)
	}
	return dlgctlBuild.bin
}

// The operator's path of issue 6: dlgctl lists the call and ends it; the
// caller and the callee get BYE.
func TestE2E_DlgctlListAndTerminate(t *testing.T) {
	RequireTools(t)
	t.Parallel()
	bin := buildDlgctl(t)
	p, uac, uas := oneCallee(t, SippArgs{Scenario: "uas.xml"},
		SippArgs{Scenario: "uac_recv_bye.xml", Vars: map[string]string{"require_reason": "1"}}, "")
	waitDialogs(t, p, "a confirmed dialog", func(ds []dlgInfo) bool { return len(ds) == 1 && ds[0].State == "CONFIRMED" })

	ctl := func(args ...string) (string, error) {
		all := append([]string{"--addr", p.MgmtAddr}, args...)
		out, err := exec.Command(bin, all...).CombinedOutput()
		return string(out), err
	}
	out, err := ctl("-o", "json", "dlg", "list")
	if err != nil {
		t.Fatalf("dlgctl dlg list: %v\n%s", err, out)
	}
	var ds []dlgInfo
	if err := json.Unmarshal([]byte(out), &ds); err != nil || len(ds) != 1 {
		t.Fatalf("dlgctl -o json dlg list: %v\n%s", err, out)
	}
	table, err := ctl("dlg", "list")
	if err != nil || !strings.Contains(table, ds[0].CallID) || !strings.Contains(table, "CONFIRMED") {
		t.Errorf("dlgctl dlg list (table): %v\n%s", err, table)
	}
	if out, err := ctl("dlg", "terminate", "--callid", ds[0].CallID, "--ftag", ds[0].FromTag, "--reason", "operator"); err != nil {
		t.Fatalf("dlgctl dlg terminate: %v\n%s", err, out)
	}
	waitAll(t, uac, uas)
	out, err = ctl("dlg", "terminate", "--callid", ds[0].CallID, "--ftag", ds[0].FromTag)
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 || !strings.Contains(out, "-32004") {
		t.Errorf("terminating an ended dialog: %v\n%s", err, out)
	}
}

package release

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const version = "v0.0.0-test.1"

func run(t *testing.T, dir string, env []string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func root(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found")
		}
		dir = parent
	}
}

func need(t *testing.T, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("CI") != "" {
				t.Fatalf("%s not found and CI is set", tool)
			}
			t.Skipf("%s not found", tool)
		}
	}
}

// Issue 12 §3: scripts/release.sh builds static, stamped binaries, a .deb
// and checksums; the .deb carries the binaries, the default configuration
// as a conffile, a hardened systemd unit and the scripts that create the
// imsdlg user.
func TestIssue12_3_ReleaseArtefacts(t *testing.T) {
	need(t, "dpkg-deb", "sha256sum")
	rt := root(t)
	out := t.TempDir()
	run(t, rt, []string{"RELEASE_ARCHES=amd64", "RELEASE_OUT=" + out}, "scripts/release.sh", version)

	run(t, out, nil, "sha256sum", "-c", "SHA256SUMS")
	bin := filepath.Join(out, "imsproxy_"+version+"_linux_amd64")
	if v := run(t, out, nil, bin, "version"); !strings.Contains(v, version) {
		t.Errorf("imsproxy version = %q, want %s", v, version)
	}
	// dlgctl version prints its own version, then asks the daemon (none
	// here: exit 2).
	if v, _ := exec.Command(filepath.Join(out, "dlgctl_"+version+"_linux_amd64"), "version").CombinedOutput(); !strings.Contains(string(v), "dlgctl "+version) {
		t.Errorf("dlgctl version = %q, want %s", v, version)
	}
	if _, err := exec.LookPath("file"); err == nil {
		if f := run(t, out, nil, "file", bin); !strings.Contains(f, "statically linked") {
			t.Errorf("imsproxy is not static: %s", f)
		}
	}

	deb := filepath.Join(out, "imsdlg_"+version+"_amd64.deb")
	fields := map[string]string{"Package": "imsdlg", "Version": "0.0.0~test.1", "Architecture": "amd64"}
	for k, want := range fields {
		if got := strings.TrimSpace(run(t, out, nil, "dpkg-deb", "-f", deb, k)); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}
	contents := run(t, out, nil, "dpkg-deb", "-c", deb)
	for _, path := range []string{"./usr/bin/imsproxy", "./usr/bin/dlgctl", "./etc/imsdlg/imsproxy.yaml",
		"./lib/systemd/system/imsproxy.service", "./usr/share/doc/imsdlg/copyright"} {
		if !strings.Contains(contents, path) {
			t.Errorf("the .deb lacks %s:\n%s", path, contents)
		}
	}
	x := t.TempDir()
	run(t, out, nil, "dpkg-deb", "-x", deb, x)
	ctl := t.TempDir()
	run(t, out, nil, "dpkg-deb", "-e", deb, ctl)
	if b, _ := os.ReadFile(filepath.Join(ctl, "conffiles")); strings.TrimSpace(string(b)) != "/etc/imsdlg/imsproxy.yaml" {
		t.Errorf("conffiles = %q", b)
	}
	for _, s := range []string{"postinst", "prerm", "postrm"} {
		if st, err := os.Stat(filepath.Join(ctl, s)); err != nil || st.Mode()&0o111 == 0 {
			t.Errorf("maintainer script %s missing or not executable (%v)", s, err)
		}
	}
	unit, err := os.ReadFile(filepath.Join(x, "lib/systemd/system/imsproxy.service"))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"User=imsdlg", "NoNewPrivileges=yes", "ProtectSystem=strict",
		"ExecStart=/usr/bin/imsproxy --config /etc/imsdlg/imsproxy.yaml"} {
		if !strings.Contains(string(unit), line) {
			t.Errorf("the unit lacks %q", line)
		}
	}
	// The packaged configuration is valid for the packaged binary.
	run(t, x, nil, filepath.Join(x, "usr/bin/imsproxy"), "--check", "--config", filepath.Join(x, "etc/imsdlg/imsproxy.yaml"))

	if os.Getenv("CI") == "" && os.Getenv("TEST_INSTALL_DEB") == "" {
		t.Log("not installing the .deb here (set TEST_INSTALL_DEB=1, as root)")
		return
	}
	installAndStart(t, deb)
}

// installAndStart installs the .deb for real, starts what the unit starts
// as the imsdlg user, and purges it.
func installAndStart(t *testing.T, deb string) {
	need(t, "dpkg", "getent")
	if os.Geteuid() != 0 {
		t.Skip("installing a .deb needs root")
	}
	run(t, "/", nil, "dpkg", "-i", deb)
	t.Cleanup(func() { exec.Command("dpkg", "--purge", "imsdlg").Run() })
	run(t, "/", nil, "getent", "passwd", "imsdlg")
	if st, err := os.Stat("/etc/imsdlg/imsproxy.yaml"); err != nil || st.Mode().Perm() != 0o640 {
		t.Errorf("/etc/imsdlg/imsproxy.yaml: %v %v, want mode 0640", st.Mode(), err)
	}
	if _, err := exec.LookPath("systemd-analyze"); err == nil {
		if out, err := exec.Command("systemd-analyze", "verify", "/lib/systemd/system/imsproxy.service").CombinedOutput(); err != nil {
			t.Errorf("systemd-analyze verify: %v\n%s", err, out)
		}
	}
	// The unit's ExecStart, as its user, with the management port moved
	// off 8080 (the tests may run beside something there).
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mgmt := l.Addr().String()
	l.Close()
	u, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	sipAddr := u.LocalAddr().String()
	u.Close()
	uid, gid := ids(t, "imsdlg")
	cmd := exec.Command("/usr/bin/imsproxy", "--config", "/etc/imsdlg/imsproxy.yaml")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: gid}}
	cmd.Env = append(os.Environ(), "IMSDLG_MGMT_LISTEN="+mgmt, "IMSDLG_LISTEN=udp:"+sipAddr)
	out := &lockedBuf{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		res, err := http.Get(fmt.Sprintf("http://%s/healthz", mgmt))
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				break
			}
		}
		select {
		case <-exited:
			t.Fatalf("the installed service exited: %s", out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the installed service did not answer /healthz: %v\n%s", err, out.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
	case <-time.After(60 * time.Second):
		t.Fatalf("the service did not stop on SIGTERM:\n%s", out.String())
	}
	run(t, "/", nil, "dpkg", "--purge", "imsdlg")
	if exec.Command("getent", "passwd", "imsdlg").Run() == nil {
		t.Errorf("the imsdlg user is still there after the purge")
	}
}

// ids reads a user's uid and gid from the passwd database.
func ids(t *testing.T, user string) (uint32, uint32) {
	t.Helper()
	f := strings.Split(strings.TrimSpace(run(t, "/", nil, "getent", "passwd", user)), ":")
	if len(f) < 4 {
		t.Fatalf("getent passwd %s: %v", user, f)
	}
	uid, err1 := strconv.ParseUint(f[2], 10, 32)
	gid, err2 := strconv.ParseUint(f[3], 10, 32)
	if err1 != nil || err2 != nil {
		t.Fatalf("getent passwd %s: %v", user, f)
	}
	return uint32(uid), uint32(gid)
}

type lockedBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

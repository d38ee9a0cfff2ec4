package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"github.com/imsdlg/imsdlg/internal/redistest"
)

// Issue 12 §7: the alert rules and the Grafana dashboard under deploy/
// use only series the proxy exports (with every optional part on: shared
// profiles, db_mode, events), so neither silently shows nothing.
func TestIssue12_7_DeployFilesUseExportedSeries(t *testing.T) {
	RequireTools(t)
	t.Parallel()
	srv := redistest.Start(t, redistest.Options{})
	uas, yaml0 := persistedNode(t, srv, "node-m", fmt.Sprintf(`events: {redis_stream: {url: %q}}`, srv.URL()))
	p := StartProxy(t, yaml0)
	uac := StartSipp(t, SippArgs{Scenario: "uac.xml", Remote: p.Addr("udp"), Service: "bob"})
	waitAll(t, uac, uas)

	exported := map[string]bool{}
	for line := range strings.Lines(p.Metrics()) {
		if f := strings.Fields(line); len(f) >= 4 && f[0] == "#" && f[1] == "TYPE" {
			exported[f[2]] = true
			if f[3] == "histogram" {
				for _, s := range []string{"_bucket", "_sum", "_count"} {
					exported[f[2]+s] = true
				}
			}
		}
	}
	if !exported["imsdlg_tm_sent_replies_total"] {
		t.Fatalf("the proxy exports no replies by code after a call:\n%s", p.Metrics())
	}

	root := ModuleRoot(t)
	series := regexp.MustCompile(`\b(?:imsdlg|process|go)_[a-z0-9_]+`)
	var exprs []string
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert string `yaml:"alert"`
				Expr  string `yaml:"expr"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	raw, err := os.ReadFile(filepath.Join(root, "deploy/prometheus/imsdlg-alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, &rules); err != nil {
		t.Fatalf("alert rules are not YAML: %v", err)
	}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" || r.Expr == "" {
				t.Errorf("rule %+v: an alert needs a name and an expr", r)
			}
			exprs = append(exprs, r.Expr)
		}
	}
	dash, err := os.ReadFile(filepath.Join(root, "deploy/grafana/imsdlg-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	exprs = append(exprs, string(dash))
	var missing []string
	n := 0
	for _, e := range exprs {
		for _, name := range series.FindAllString(e, -1) {
			n++
			if !exported[name] && !slices.Contains(missing, name) {
				missing = append(missing, name)
			}
		}
	}
	if n < 20 {
		t.Fatalf("only %d series references found in deploy/: the pattern is wrong", n)
	}
	if len(missing) > 0 {
		t.Errorf("deploy/ uses series the proxy does not export: %v", missing)
	}
}

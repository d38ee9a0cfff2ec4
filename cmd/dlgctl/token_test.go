package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imsdlg/imsdlg/internal/mgmt"
)

// Issue 12 §9: against a daemon with mgmt.token, dlgctl sends the token of
// --token or $IMSDLG_MGMT_TOKEN, and says what is missing when it has none.
func TestIssue12_TokenFromFlagOrEnvironment(t *testing.T) {
	api := mgmt.New(nil, prometheus.NewRegistry(), mgmt.WithToken("s3cret"))
	api.Register("core.version", func(context.Context, json.RawMessage) (any, error) {
		return map[string]string{"name": "imsdlg", "version": "v1.0.0", "go": "go1.26.8"}, nil
	})
	srv := httptest.NewServer(api.Handler())
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "http://")

	t.Setenv("IMSDLG_MGMT_TOKEN", "")
	var out, errOut bytes.Buffer
	assert.Equal(t, exitFailed, run([]string{"--addr", addr, "version"}, &out, &errOut))
	assert.Contains(t, errOut.String(), "HTTP 401")
	assert.Contains(t, errOut.String(), "--token")

	out.Reset()
	errOut.Reset()
	assert.Equal(t, exitOK, run([]string{"--addr", addr, "--token", "s3cret", "version"}, &out, &errOut), errOut.String())
	assert.Contains(t, out.String(), "v1.0.0")

	t.Setenv("IMSDLG_MGMT_TOKEN", "s3cret")
	out.Reset()
	errOut.Reset()
	assert.Equal(t, exitOK, run([]string{"--addr", addr, "version"}, &out, &errOut), errOut.String())
	assert.Contains(t, out.String(), "v1.0.0")
}

// Issue 12 §9 (TLS): against an API served over HTTPS, --cacert (or
// $DLGCTL_CACERT) names the CA to trust; a file without a certificate is
// a usage error that names the flag.
func TestIssue12_CACertForTLS(t *testing.T) {
	api := mgmt.New(nil, prometheus.NewRegistry())
	api.Register("core.version", func(context.Context, json.RawMessage) (any, error) {
		return map[string]string{"name": "imsdlg", "version": "v1.0.0", "go": "go1.26.8"}, nil
	})
	srv := httptest.NewTLSServer(api.Handler())
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "https://")
	ca := filepath.Join(t.TempDir(), "ca.pem")
	require.NoError(t, os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600))

	var out, errOut bytes.Buffer
	assert.Equal(t, exitOK, run([]string{"--addr", addr, "--cacert", ca, "version"}, &out, &errOut), errOut.String())
	assert.Contains(t, out.String(), "v1.0.0")

	t.Setenv("DLGCTL_CACERT", ca)
	out.Reset()
	errOut.Reset()
	assert.Equal(t, exitOK, run([]string{"--addr", addr, "version"}, &out, &errOut), errOut.String())

	t.Setenv("DLGCTL_CACERT", "")
	errOut.Reset()
	assert.NotEqual(t, exitOK, run([]string{"--addr", addr, "version"}, &out, &errOut), "plain HTTP to an HTTPS port")

	errOut.Reset()
	assert.Equal(t, exitUsage, run([]string{"--addr", addr, "--cacert", filepath.Join(t.TempDir(), "none.pem"), "version"}, &out, &errOut))
	assert.Contains(t, errOut.String(), "--cacert")
}

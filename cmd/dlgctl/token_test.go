package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"

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

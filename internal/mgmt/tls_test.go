package mgmt

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imsdlg/imsdlg/internal/testcert"
)

// Issue 12 §9 ("optionally TLS"): with WithTLS the port speaks HTTPS only:
// a client trusting the certificate gets its answer and the bearer token
// is checked as over HTTP; a plain HTTP request gets no API.
func TestIssue12_9_ManagementOverTLS(t *testing.T) {
	certFile, keyFile := testcert.Write(t, t.TempDir())
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	require.NoError(t, err)
	s := New(nil, nil, WithToken("s3cret"), WithTLS(&tls.Config{Certificates: []tls.Certificate{cert}}))
	ready := make(chan net.Addr, 1)
	go func() { _ = s.ListenAndServe(t.Context(), "127.0.0.1:0", ready) }()
	addr := (<-ready).String()

	pemBytes, err := os.ReadFile(certFile)
	require.NoError(t, err)
	roots := x509.NewCertPool()
	require.True(t, roots.AppendCertsFromPEM(pemBytes))
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	post := func(token string) int {
		req, err := http.NewRequest(http.MethodPost, "https://"+addr+"/rpc", strings.NewReader(`{"jsonrpc":"2.0","method":"system.listMethods","id":1}`))
		require.NoError(t, err)
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		res, err := client.Do(req)
		require.NoError(t, err)
		res.Body.Close()
		return res.StatusCode
	}
	assert.Equal(t, http.StatusOK, post("s3cret"))
	assert.Equal(t, http.StatusUnauthorized, post(""))

	res, err := http.Get("http://" + addr + "/healthz")
	if err == nil {
		assert.NotEqual(t, http.StatusOK, res.StatusCode, "plain HTTP gets no answer of the API")
		res.Body.Close()
	}
	_, err = http.Get("https://" + addr + "/healthz")
	assert.Error(t, err, "a client that does not trust the certificate is refused")
}

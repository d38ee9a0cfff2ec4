package main

import (
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/imsdlg/imsdlg/internal/mgmt"
)

// MgmtConfig is the mgmt section: the management HTTP server.
type MgmtConfig struct {
	// Listen is HOST:PORT of the management HTTP server; "" disables it.
	Listen string `config:"listen"`
	// Pprof serves Go's runtime profiles under /debug/pprof/.
	Pprof bool `config:"pprof"`
	// Token, when set, is the bearer token every path but /healthz and
	// /readyz requires; TokenFile names a file holding it (one line), so
	// the secret stays out of the config and the environment.
	Token     string `config:"token"`
	TokenFile string `config:"token_file"`
	// AllowRemoteWithoutToken lets Listen be a non-loopback address without
	// a token: anyone who reaches it could end every call.
	AllowRemoteWithoutToken bool `config:"allow_remote_without_token"`
	// AllowedOrigins are the browser origins allowed to call /rpc; none by
	// default, so no web page can.
	AllowedOrigins []string `config:"allowed_origins"`
	// MaxBatch bounds a JSON-RPC batch; MaxResponseSize the bytes of one
	// answer.
	MaxBatch        int `config:"max_batch"`
	MaxResponseSize int `config:"max_response_size"`
	// WriteTimeout and IdleTimeout bound a slow reader and an idle
	// keep-alive connection.
	WriteTimeout time.Duration `config:"write_timeout" unit:"s"`
	IdleTimeout  time.Duration `config:"idle_timeout" unit:"s"`
	// ReadyRequiresRedis makes /readyz fail while a Redis the node uses
	// (profiles.cachedb_url with fail_closed, dialog.db_url) does not
	// answer. Off by default: Redis is shared, so its outage would make
	// every node unready at once, and a load balancer would cut the
	// in-dialog requests (BYEs) those nodes still relay.
	ReadyRequiresRedis bool `config:"ready_requires_redis"`
	// TLSCertFile and TLSKeyFile (PEM) make the port serve HTTPS only: a
	// token crossing a network should not travel in clear. Both or none.
	TLSCertFile string `config:"tls_cert_file"`
	TLSKeyFile  string `config:"tls_key_file"`

	// token is Token, or TokenFile's content.
	token string `config:"-"`
	// tls is the certificate pair, loaded.
	tls *tls.Config `config:"-"`
}

func mgmtDefaults() map[string]any {
	return map[string]any{
		"mgmt.listen":                     "127.0.0.1:8080",
		"mgmt.pprof":                      false,
		"mgmt.token":                      "",
		"mgmt.token_file":                 "",
		"mgmt.allow_remote_without_token": false,
		"mgmt.allowed_origins":            []string{},
		"mgmt.max_batch":                  mgmt.DefaultMaxBatch,
		"mgmt.max_response_size":          mgmt.DefaultMaxResponseBytes,
		"mgmt.write_timeout":              mgmt.DefaultWriteTimeout.String(),
		"mgmt.idle_timeout":               mgmt.DefaultIdleTimeout.String(),
		"mgmt.ready_requires_redis":       false,
		"mgmt.tls_cert_file":              "",
		"mgmt.tls_key_file":               "",
	}
}

// validateMgmt checks the mgmt section and reads the token file.
func (c *Config) validateMgmt() []error {
	var errs []error
	bad := func(key string, val any, format string, args ...any) {
		errs = append(errs, fmt.Errorf("config: %s = %s: %s", key, showValue(val), fmt.Sprintf(format, args...)))
	}
	m := &c.Mgmt
	m.token = m.Token
	switch {
	case m.Token != "" && m.TokenFile != "":
		bad("mgmt.token_file", m.TokenFile, "give mgmt.token or mgmt.token_file, not both")
	case m.TokenFile != "":
		b, err := os.ReadFile(m.TokenFile)
		switch tok := strings.TrimSpace(string(b)); {
		case err != nil:
			bad("mgmt.token_file", m.TokenFile, "%v", err)
		case tok == "" || strings.ContainsAny(tok, " \t\r\n"):
			bad("mgmt.token_file", m.TokenFile, "must hold one token, without spaces")
		default:
			m.token = tok
		}
	case strings.ContainsAny(m.Token, " \t\r\n"):
		bad("mgmt.token", "(hidden)", "must not contain spaces or line breaks")
	}
	if m.Listen != "" {
		// Unlike SIP sockets, an empty host (all interfaces) and port 0
		// (any free port, for tests) make sense here.
		host, port, err := net.SplitHostPort(m.Listen)
		if err != nil {
			bad("mgmt.listen", m.Listen, "want HOST:PORT: %v", err)
		} else if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
			bad("mgmt.listen", m.Listen, "port %q is not within 0..65535", port)
		} else if !loopbackHost(host) && m.token == "" && !m.AllowRemoteWithoutToken {
			bad("mgmt.listen", m.Listen, "is reachable from other hosts and mgmt.token is empty: anyone could end every call; "+
				"set mgmt.token (or mgmt.token_file), listen on 127.0.0.1, or set mgmt.allow_remote_without_token")
		}
	}
	m.tls = nil
	switch {
	case (m.TLSCertFile == "") != (m.TLSKeyFile == ""):
		bad("mgmt.tls_key_file", m.TLSKeyFile, "give mgmt.tls_cert_file and mgmt.tls_key_file together (mgmt.tls_cert_file = %q)", m.TLSCertFile)
	case m.TLSCertFile != "":
		cert, err := tls.LoadX509KeyPair(m.TLSCertFile, m.TLSKeyFile)
		if err != nil {
			bad("mgmt.tls_cert_file", m.TLSCertFile, "with mgmt.tls_key_file %q: %v", m.TLSKeyFile, err)
			break
		}
		m.tls = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	}
	if m.MaxBatch < 1 {
		bad("mgmt.max_batch", m.MaxBatch, "must be at least 1")
	}
	if m.MaxResponseSize < 1024 {
		bad("mgmt.max_response_size", m.MaxResponseSize, "must be at least 1024 bytes")
	}
	if m.WriteTimeout <= 0 {
		bad("mgmt.write_timeout", m.WriteTimeout, "must be positive")
	}
	if m.IdleTimeout <= 0 {
		bad("mgmt.idle_timeout", m.IdleTimeout, "must be positive")
	}
	for i, o := range m.AllowedOrigins {
		if !strings.HasPrefix(o, "http://") && !strings.HasPrefix(o, "https://") || strings.HasSuffix(o, "/") {
			bad(fmt.Sprintf("mgmt.allowed_origins[%d]", i), o, `must be an origin such as "https://noc.example.net" (scheme, host, optional port; no path)`)
		}
	}
	return errs
}

func loopbackHost(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// options are the management server's options from the section.
func (m MgmtConfig) options() []mgmt.Option {
	return []mgmt.Option{
		mgmt.WithToken(m.token),
		mgmt.WithLimits(m.MaxBatch, m.MaxResponseSize),
		mgmt.WithTimeouts(m.WriteTimeout, m.IdleTimeout),
		mgmt.WithAllowedOrigins(m.AllowedOrigins...),
		mgmt.WithTLS(m.tls),
	}
}

package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// client is a minimal JSON-RPC 2.0 client: one request per HTTP POST, no
// batches, no notifications. That is all a command line tool needs, and it
// keeps dlgctl free of any dependency on the daemon's packages.
type client struct {
	addr    string // HOST:PORT as the user gave it, for messages
	url     string
	timeout time.Duration
	token   string // mgmt.token, sent as a bearer token when set
	http    *http.Client
}

func newClient(addr string, timeout time.Duration) *client {
	return &client{
		addr:    addr,
		url:     "http://" + addr + "/rpc",
		timeout: timeout,
		// No client-wide Timeout: the per-call context carries it, so a
		// timeout can be told apart from a refused connection.
		http: &http.Client{},
	}
}

// useTLS talks HTTPS, trusting the certificates signed by roots.
func (c *client) useTLS(roots *x509.CertPool) {
	c.url = "https://" + c.addr + "/rpc"
	c.http = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}}}
}

// rpcError is a JSON-RPC error object returned by the daemon. The method is
// kept so the message says which call failed (stats makes two).
type rpcError struct {
	Method  string
	Code    int
	Message string
}

func (e *rpcError) Error() string {
	return fmt.Sprintf("%s: %s (code %d)", e.Method, e.Message, e.Code)
}

// unreachableError means no answer came back: nothing listens, the host is
// unknown, or the daemon did not answer within the timeout.
type unreachableError struct {
	addr   string
	reason string
}

func (e *unreachableError) Error() string {
	return fmt.Sprintf("cannot reach imsproxy at %s: %s", e.addr, e.reason)
}

// badAnswerError means something answered, but not with JSON-RPC: usually
// --addr points at another HTTP server or at the wrong port.
type badAnswerError struct {
	addr   string
	detail string
}

func (e *badAnswerError) Error() string {
	return fmt.Sprintf("imsproxy at %s: %s (is --addr the management API, mgmt.listen?)", e.addr, e.detail)
}

type request struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      int             `json:"id"`
	Method  string          `json:"method"`
	Params  json.RawMessage `json:"params,omitempty"`
}

type response struct {
	JSONRPC string          `json:"jsonrpc"`
	Result  json.RawMessage `json:"result"`
	Error   *struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

// call invokes method with params (nil for none; a json.RawMessage is sent
// as is, anything else is marshalled) and returns the raw result, untouched,
// so -o json can print exactly what the daemon said.
func (c *client) call(ctx context.Context, method string, params any) (json.RawMessage, error) {
	req := request{JSONRPC: "2.0", ID: 1, Method: method}
	if params != nil {
		raw, ok := params.(json.RawMessage)
		if !ok {
			var err error
			if raw, err = json.Marshal(params); err != nil {
				return nil, fmt.Errorf("%s: encode params: %w", method, err)
			}
		}
		req.Params = raw
	}
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("%s: encode request: %w", method, err)
	}

	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return nil, &unreachableError{addr: c.addr, reason: err.Error()}
	}
	hreq.Header.Set("Content-Type", "application/json")
	hreq.Header.Set("Accept", "application/json")
	hreq.Header.Set("User-Agent", "dlgctl")
	if c.token != "" {
		hreq.Header.Set("Authorization", "Bearer "+c.token)
	}

	hresp, err := c.http.Do(hreq)
	if err != nil {
		return nil, c.unreachable(ctx, err)
	}
	defer hresp.Body.Close()
	data, err := io.ReadAll(hresp.Body)
	if err != nil {
		return nil, c.unreachable(ctx, err)
	}

	// The daemon answers some failures (oversized body, parse error) with a
	// non-200 status and a JSON-RPC error body, so the body is tried first.
	var resp response
	if err := json.Unmarshal(data, &resp); err != nil || resp.JSONRPC != "2.0" {
		if hresp.StatusCode == http.StatusUnauthorized {
			return nil, &badAnswerError{addr: c.addr, detail: "answered HTTP 401: give the token of mgmt.token with --token or $IMSDLG_MGMT_TOKEN"}
		}
		if hresp.StatusCode != http.StatusOK {
			return nil, &badAnswerError{addr: c.addr, detail: "answered HTTP " + hresp.Status + ", not JSON-RPC"}
		}
		return nil, &badAnswerError{addr: c.addr, detail: "answer is not JSON-RPC 2.0"}
	}
	if resp.Error != nil {
		return nil, &rpcError{Method: method, Code: resp.Error.Code, Message: resp.Error.Message}
	}
	if resp.Result == nil {
		// An absent result breaks the spec, but "null" is the only sensible
		// reading and keeps -o json output valid JSON.
		return json.RawMessage("null"), nil
	}
	return resp.Result, nil
}

// unreachable words a transport failure for an operator: the bare cause
// ("connect: connection refused"), not Go's `Post "http://...": ` wrapping.
func (c *client) unreachable(ctx context.Context, err error) error {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return &unreachableError{addr: c.addr, reason: fmt.Sprintf("no answer within %s (--timeout)", c.timeout)}
	}
	var uerr *url.Error
	if errors.As(err, &uerr) {
		err = uerr.Err
	}
	return &unreachableError{addr: c.addr, reason: err.Error()}
}

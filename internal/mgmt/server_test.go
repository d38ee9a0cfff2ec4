package mgmt

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type echoParams struct {
	Text  string `json:"text" mgmt:"required"`
	Times int    `json:"times"`
}

// newTestServer registers a few methods exercising every way a handler can
// answer.
func newTestServer(t *testing.T, logs io.Writer) *Server {
	t.Helper()
	if logs == nil {
		logs = t.Output()
	}
	s := New(slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})), prometheus.NewRegistry())
	s.Register("test.echo", func(_ context.Context, params json.RawMessage) (any, error) {
		var p echoParams
		if err := DecodeParams(params, &p); err != nil {
			return nil, err
		}
		return map[string]any{"text": strings.Repeat(p.Text, max(p.Times, 1))}, nil
	})
	s.Register("test.nil", func(context.Context, json.RawMessage) (any, error) { return nil, nil })
	s.Register("test.fail", func(context.Context, json.RawMessage) (any, error) {
		return nil, errors.New("disk on fire")
	})
	s.Register("test.notfound", func(context.Context, json.RawMessage) (any, error) {
		return nil, fmt.Errorf("lookup: %w", NotFound("dialog %q not found", "abc"))
	})
	s.Register("test.panic", func(context.Context, json.RawMessage) (any, error) {
		panic("boom")
	})
	s.Register("test.typednil", func(context.Context, json.RawMessage) (any, error) {
		var e *Error
		return nil, e
	})
	s.Register("test.unencodable", func(context.Context, json.RawMessage) (any, error) {
		return make(chan int), nil
	})
	return s
}

func post(t *testing.T, h http.Handler, body string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/rpc", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

type rpcReply struct {
	JSONRPC string          `json:"jsonrpc"`
	Result  json.RawMessage `json:"result"`
	Error   *Error          `json:"error"`
	ID      json.RawMessage `json:"id"`
}

func decodeReply(t *testing.T, rec *httptest.ResponseRecorder) rpcReply {
	t.Helper()
	var r rpcReply
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &r), "body: %s", rec.Body)
	return r
}

func TestRPCCallAnswersWithHandlerResult(t *testing.T) {
	s := newTestServer(t, nil)
	rec := post(t, s.Handler(), `{"jsonrpc":"2.0","method":"test.echo","params":{"text":"ab","times":2},"id":7}`)

	assert.Equal(t, http.StatusOK, rec.Code)
	assert.Equal(t, "application/json", rec.Header().Get("Content-Type"))
	assert.JSONEq(t, `{"jsonrpc":"2.0","result":{"text":"abab"},"id":7}`, rec.Body.String())
}

func TestRPCSuccessWithNilResultCarriesNullResult(t *testing.T) {
	s := newTestServer(t, nil)
	rec := post(t, s.Handler(), `{"jsonrpc":"2.0","method":"test.nil","id":"x"}`)
	assert.JSONEq(t, `{"jsonrpc":"2.0","result":null,"id":"x"}`, rec.Body.String())
}

func TestRPCEchoesIDVerbatim(t *testing.T) {
	s := newTestServer(t, nil)
	for _, id := range []string{`"abc"`, `12345678901234567890`, `-1.5`, `null`} {
		t.Run(id, func(t *testing.T) {
			rec := post(t, s.Handler(), `{"jsonrpc":"2.0","method":"test.nil","id":`+id+`}`)
			assert.Equal(t, id, string(decodeReply(t, rec).ID))
		})
	}
}

func TestRPCErrorsCarryTheirCode(t *testing.T) {
	tests := []struct {
		name     string
		body     string
		wantCode int
		wantMsg  string
		wantID   string
	}{
		{"truncated JSON is a parse error", `{"jsonrpc":"2.0","method":`, CodeParseError, "not valid JSON", "null"},
		{"empty body is a parse error", ``, CodeParseError, "not valid JSON", "null"},
		{"scalar request is invalid", `5`, CodeInvalidRequest, "JSON object", "null"},
		{"null request is invalid", `null`, CodeInvalidRequest, "JSON object", "null"},
		{"missing jsonrpc is invalid", `{"method":"test.nil","id":1}`, CodeInvalidRequest, `"jsonrpc" must be "2.0"`, "1"},
		{"jsonrpc 1.0 is invalid", `{"jsonrpc":"1.0","method":"test.nil","id":1}`, CodeInvalidRequest, `"jsonrpc" must be "2.0"`, "1"},
		{"numeric jsonrpc is invalid", `{"jsonrpc":2.0,"method":"test.nil","id":1}`, CodeInvalidRequest, `"jsonrpc" must be "2.0"`, "1"},
		{"missing method is invalid", `{"jsonrpc":"2.0","id":1}`, CodeInvalidRequest, `"method" must be a non-empty string`, "1"},
		{"numeric method is invalid", `{"jsonrpc":"2.0","method":1,"params":"bar"}`, CodeInvalidRequest, `"method"`, "null"},
		{"scalar params are invalid", `{"jsonrpc":"2.0","method":"test.nil","params":"bar","id":1}`, CodeInvalidRequest, `"params" must be an object or an array`, "1"},
		{"object id is invalid", `{"jsonrpc":"2.0","method":"test.nil","id":{}}`, CodeInvalidRequest, `"id" must be`, "null"},
		{"empty batch is invalid", `[]`, CodeInvalidRequest, "empty batch", "null"},
		{"unknown method names it", `{"jsonrpc":"2.0","method":"dlg.nope","id":1}`, CodeMethodNotFound, `method "dlg.nope" not found`, "1"},
		{"unknown argument names it", `{"jsonrpc":"2.0","method":"test.echo","params":{"text":"a","tmies":2},"id":1}`, CodeInvalidParams, `unknown argument "tmies"`, "1"},
		{"argument of wrong type names it", `{"jsonrpc":"2.0","method":"test.echo","params":{"text":"a","times":"two"},"id":1}`, CodeInvalidParams, `argument "times" must be an integer, got string`, "1"},
		{"missing required argument names it", `{"jsonrpc":"2.0","method":"test.echo","params":{"times":2},"id":1}`, CodeInvalidParams, `missing required argument "text"`, "1"},
		{"absent params with a required argument", `{"jsonrpc":"2.0","method":"test.echo","id":1}`, CodeInvalidParams, `missing required argument "text"`, "1"},
		{"positional params are refused", `{"jsonrpc":"2.0","method":"test.echo","params":["a"],"id":1}`, CodeInvalidParams, "positional parameters are not supported", "1"},
		{"plain handler error is internal", `{"jsonrpc":"2.0","method":"test.fail","id":1}`, CodeInternalError, "disk on fire", "1"},
		{"wrapped *Error keeps its code", `{"jsonrpc":"2.0","method":"test.notfound","id":1}`, CodeNotFound, `dialog "abc" not found`, "1"},
		{"handler panic is internal", `{"jsonrpc":"2.0","method":"test.panic","id":1}`, CodeInternalError, `method "test.panic" panicked`, "1"},
		{"typed nil *Error is internal", `{"jsonrpc":"2.0","method":"test.typednil","id":1}`, CodeInternalError, "nil *mgmt.Error", "1"},
		{"unencodable result is internal", `{"jsonrpc":"2.0","method":"test.unencodable","id":1}`, CodeInternalError, "encode result", "1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newTestServer(t, nil)
			rec := post(t, s.Handler(), tt.body)

			assert.Equal(t, http.StatusOK, rec.Code)
			assert.Equal(t, "application/json", rec.Header().Get("Content-Type"))
			r := decodeReply(t, rec)
			assert.Equal(t, "2.0", r.JSONRPC)
			assert.Nil(t, r.Result, "an error response has no result")
			require.NotNil(t, r.Error, "body: %s", rec.Body)
			assert.Equal(t, tt.wantCode, r.Error.Code)
			assert.Contains(t, r.Error.Message, tt.wantMsg)
			assert.Equal(t, tt.wantID, string(r.ID))
		})
	}
}

func TestHandlerPanicIsLoggedAndServerKeepsServing(t *testing.T) {
	var logs bytes.Buffer
	s := newTestServer(t, &logs)

	rec := post(t, s.Handler(), `{"jsonrpc":"2.0","method":"test.panic","id":1}`)
	assert.Equal(t, CodeInternalError, decodeReply(t, rec).Error.Code)
	assert.Contains(t, logs.String(), "panicked")
	assert.Contains(t, logs.String(), "boom")

	rec = post(t, s.Handler(), `{"jsonrpc":"2.0","method":"test.nil","id":2}`)
	assert.JSONEq(t, `{"jsonrpc":"2.0","result":null,"id":2}`, rec.Body.String())
}

func TestNotificationIsExecutedButNotAnswered(t *testing.T) {
	s := New(slog.New(slog.NewTextHandler(t.Output(), nil)), prometheus.NewRegistry())
	var calls atomic.Int32
	s.Register("test.count", func(context.Context, json.RawMessage) (any, error) {
		calls.Add(1)
		return "counted", nil
	})
	s.Register("test.fail", func(context.Context, json.RawMessage) (any, error) {
		return nil, errors.New("not reported")
	})

	for _, body := range []string{
		`{"jsonrpc":"2.0","method":"test.count"}`,
		`{"jsonrpc":"2.0","method":"test.fail"}`,
		`{"jsonrpc":"2.0","method":"no.such.method"}`,
	} {
		rec := post(t, s.Handler(), body)
		assert.Equal(t, http.StatusNoContent, rec.Code, body)
		assert.Empty(t, rec.Body.String(), body)
	}
	assert.Equal(t, int32(1), calls.Load())
}

func TestBatchAnswersEveryCallButNoNotification(t *testing.T) {
	s := newTestServer(t, nil)
	rec := post(t, s.Handler(), `[
		{"jsonrpc":"2.0","method":"test.echo","params":{"text":"a"},"id":1},
		{"jsonrpc":"2.0","method":"test.nil"},
		{"jsonrpc":"2.0","method":"no.such","id":"2"},
		1,
		{"jsonrpc":"2.0","method":"test.fail","id":3}
	]`)

	assert.Equal(t, http.StatusOK, rec.Code)
	assert.Equal(t, "application/json", rec.Header().Get("Content-Type"))
	var replies []rpcReply
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &replies), "body: %s", rec.Body)
	require.Len(t, replies, 4)

	byID := map[string]rpcReply{}
	for _, r := range replies {
		byID[string(r.ID)] = r
	}
	assert.JSONEq(t, `{"text":"a"}`, string(byID["1"].Result))
	require.NotNil(t, byID[`"2"`].Error)
	assert.Equal(t, CodeMethodNotFound, byID[`"2"`].Error.Code)
	require.NotNil(t, byID["null"].Error, "the invalid element 1 is answered with id null")
	assert.Equal(t, CodeInvalidRequest, byID["null"].Error.Code)
	require.NotNil(t, byID["3"].Error)
	assert.Equal(t, CodeInternalError, byID["3"].Error.Code)
}

func TestBatchOfNotificationsOnlyHasNoBody(t *testing.T) {
	s := newTestServer(t, nil)
	rec := post(t, s.Handler(), `[{"jsonrpc":"2.0","method":"test.nil"},{"jsonrpc":"2.0","method":"test.fail"}]`)
	assert.Equal(t, http.StatusNoContent, rec.Code)
	assert.Empty(t, rec.Body.String())
}

func TestOversizedRequestBodyIsRefused(t *testing.T) {
	s := newTestServer(t, nil)
	big := `{"jsonrpc":"2.0","method":"test.echo","params":{"text":"` + strings.Repeat("x", MaxRequestBytes) + `"},"id":1}`
	rec := post(t, s.Handler(), big)

	assert.Equal(t, http.StatusRequestEntityTooLarge, rec.Code)
	r := decodeReply(t, rec)
	require.NotNil(t, r.Error)
	assert.Equal(t, CodeInvalidRequest, r.Error.Code)
	assert.Contains(t, r.Error.Message, "exceeds")
}

func TestRPCEndpointAcceptsOnlyPost(t *testing.T) {
	s := newTestServer(t, nil)
	for _, method := range []string{http.MethodGet, http.MethodPut, http.MethodDelete} {
		t.Run(method, func(t *testing.T) {
			rec := httptest.NewRecorder()
			s.Handler().ServeHTTP(rec, httptest.NewRequest(method, "/rpc", nil))
			assert.Equal(t, http.StatusMethodNotAllowed, rec.Code)
			assert.Contains(t, rec.Header().Get("Allow"), http.MethodPost)
		})
	}
}

func TestRegisterPanicsOnProgrammingErrors(t *testing.T) {
	ok := func(context.Context, json.RawMessage) (any, error) { return nil, nil }
	tests := []struct {
		name   string
		method string
		h      Handler
		want   string
	}{
		{"duplicate", "test.nil", ok, "registered twice"},
		{"empty name", "", ok, "empty method name"},
		{"reserved name", "rpc.discover", ok, "reserved"},
		{"nil handler", "test.other", nil, "nil handler"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New(nil, nil)
			s.Register("test.nil", ok)
			assert.Contains(t, panicText(func() { s.Register(tt.method, tt.h) }), tt.want)
		})
	}
}

func panicText(f func()) (text string) {
	defer func() { text = fmt.Sprint(recover()) }()
	f()
	return "<no panic>"
}

func TestMethodsListsRegisteredNamesSorted(t *testing.T) {
	s := New(nil, nil)
	ok := func(context.Context, json.RawMessage) (any, error) { return nil, nil }
	s.Register("dlg.list", ok)
	s.Register("core.version", ok)
	assert.Equal(t, []string{"core.version", "dlg.list", "system.listMethods"}, s.Methods(), "system.listMethods is built in")
}

func TestMetricsServesRegisteredCounter(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "imsdlg_test_requests_total", Help: "Test counter."})
	reg.MustRegister(c)
	c.Add(3)
	s := New(nil, reg)

	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))

	assert.Equal(t, http.StatusOK, rec.Code)
	assert.Contains(t, rec.Body.String(), "imsdlg_test_requests_total 3")
}

func TestHealthzAnswersOK(t *testing.T) {
	s := New(nil, nil)
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/healthz", nil))
	assert.Equal(t, http.StatusOK, rec.Code)
	assert.Equal(t, "ok", rec.Body.String())
}

func TestReadyzFollowsTheReadinessCheck(t *testing.T) {
	s := New(nil, nil)
	readyz := func() *httptest.ResponseRecorder {
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
		return rec
	}

	rec := readyz()
	assert.Equal(t, http.StatusOK, rec.Code, "no check: ready")

	var mu sync.Mutex
	notReady := errors.New("SIP transport not started")
	s.SetReady(func(ctx context.Context) error {
		_, hasDeadline := ctx.Deadline()
		require.True(t, hasDeadline, "the check is bounded")
		mu.Lock()
		defer mu.Unlock()
		return notReady
	})
	rec = readyz()
	assert.Equal(t, http.StatusServiceUnavailable, rec.Code)
	assert.Contains(t, rec.Body.String(), "SIP transport not started")

	mu.Lock()
	notReady = nil
	mu.Unlock()
	rec = readyz()
	assert.Equal(t, http.StatusOK, rec.Code)
	assert.Equal(t, "ok", rec.Body.String())

	s.SetReady(func(context.Context) error { return errors.New("down") })
	s.SetReady(nil)
	assert.Equal(t, http.StatusOK, readyz().Code, "nil check: ready again")
}

func TestListenAndServeServesUntilContextIsCancelled(t *testing.T) {
	s := newTestServer(t, nil)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	ready := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() { done <- s.ListenAndServe(ctx, "127.0.0.1:0", ready) }()

	var addr net.Addr
	select {
	case addr = <-ready:
	case err := <-done:
		t.Fatalf("ListenAndServe returned before serving: %v", err)
	}
	base := "http://" + addr.String()
	resp, err := http.Post(base+"/rpc", "application/json", strings.NewReader(`{"jsonrpc":"2.0","method":"test.nil","id":1}`))
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	assert.JSONEq(t, `{"jsonrpc":"2.0","result":null,"id":1}`, string(body))

	cancel()
	select {
	case err := <-done:
		require.NoError(t, err)
	case <-time.After(2 * ShutdownTimeout):
		t.Fatal("ListenAndServe did not return after its context was cancelled")
	}
	_, err = net.Dial("tcp", addr.String())
	assert.Error(t, err, "the listener is closed")
}

func TestListenAndServeReportsListenFailure(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()

	s := New(nil, nil)
	err = s.ListenAndServe(t.Context(), ln.Addr().String(), nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "mgmt: listen on "+ln.Addr().String())
}

func TestDecodeParams(t *testing.T) {
	type Inner struct {
		Name string `json:"name"`
	}
	type Common struct {
		Verbose bool `json:"verbose"`
	}
	type args struct {
		Common
		ID     string  `json:"id" mgmt:"required"`
		Limit  int     `json:"limit,omitempty"`
		Inner  *Inner  `json:"inner"`
		Ignore string  `json:"-"`
		Ratio  float64 `json:"ratio"`
	}
	type optional struct {
		Limit int `json:"limit"`
	}
	tests := []struct {
		name    string
		params  string
		into    func() any
		want    any
		wantErr string
	}{
		{"named arguments", `{"id":"d1","limit":5,"verbose":true,"inner":{"name":"x"}}`, func() any { return &args{} },
			&args{Common: Common{Verbose: true}, ID: "d1", Limit: 5, Inner: &Inner{Name: "x"}}, ""},
		{"absent params without required fields", ``, func() any { return &optional{} }, &optional{}, ""},
		{"null params without required fields", `null`, func() any { return &optional{} }, &optional{}, ""},
		{"absent params with a required field", ``, func() any { return &args{} }, nil, `missing required argument "id"`},
		{"required field absent", `{"limit":1}`, func() any { return &args{} }, nil, `missing required argument "id"`},
		{"unknown top-level argument", `{"id":"d1","lmit":1}`, func() any { return &args{} }, nil, `unknown argument "lmit"`},
		{"argument in the wrong case", `{"ID":"d1"}`, func() any { return &args{} }, nil, `unknown argument "ID"`},
		{"json:\"-\" field is not an argument", `{"id":"d1","Ignore":"x"}`, func() any { return &args{} }, nil, `unknown argument "Ignore"`},
		{"unknown nested argument", `{"id":"d1","inner":{"nmae":"x"}}`, func() any { return &args{} }, nil, `unknown argument "nmae"`},
		{"wrong type", `{"id":5}`, func() any { return &args{} }, nil, `argument "id" must be a string, got number`},
		{"wrong nested type", `{"id":"d1","inner":{"name":true}}`, func() any { return &args{} }, nil, `argument "inner.name" must be a string, got bool`},
		{"wrong type for a number", `{"id":"d1","ratio":"half"}`, func() any { return &args{} }, nil, `argument "ratio" must be a number`},
		{"positional", `["d1"]`, func() any { return &args{} }, nil, "positional parameters are not supported"},
		{"map target takes any names", `{"a":1}`, func() any { return &map[string]int{} }, &map[string]int{"a": 1}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := tt.into()
			err := DecodeParams(json.RawMessage(tt.params), v)
			if tt.wantErr != "" {
				var rpcErr *Error
				require.ErrorAs(t, err, &rpcErr)
				assert.Equal(t, CodeInvalidParams, rpcErr.Code)
				assert.Contains(t, rpcErr.Message, tt.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, v)
		})
	}
}

func TestDecodeParamsIntoNonPointerIsAnInternalError(t *testing.T) {
	err := DecodeParams(json.RawMessage(`{"a":1}`), map[string]int{})
	require.Error(t, err)
	var rpcErr *Error
	assert.False(t, errors.As(err, &rpcErr), "a programming error must surface as -32603, not as the caller's fault")
}

func TestErrorHelpersSetCodes(t *testing.T) {
	assert.Equal(t, &Error{Code: CodeInvalidParams, Message: `argument "id" is empty`}, InvalidParams("argument %q is empty", "id"))
	assert.Equal(t, &Error{Code: CodeNotFound, Message: `dialog "x" not found`}, NotFound("dialog %q not found", "x"))
	assert.Equal(t, `json-rpc error -32004: dialog "x" not found`, NotFound("dialog %q not found", "x").Error())
}

func TestErrorDataIsSerialised(t *testing.T) {
	s := New(nil, nil)
	s.Register("test.data", func(context.Context, json.RawMessage) (any, error) {
		return nil, &Error{Code: -32010, Message: "busy", Data: map[string]int{"retry_after": 5}}
	})
	rec := post(t, s.Handler(), `{"jsonrpc":"2.0","method":"test.data","id":1}`)
	assert.JSONEq(t, `{"jsonrpc":"2.0","error":{"code":-32010,"message":"busy","data":{"retry_after":5}},"id":1}`, rec.Body.String())
}

func TestEnablePprof(t *testing.T) {
	s := New(nil, prometheus.NewRegistry())
	srv := httptest.NewServer(s.Handler())
	defer srv.Close()
	res, err := http.Get(srv.URL + "/debug/pprof/")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNotFound {
		t.Fatalf("pprof served before EnablePprof: %d", res.StatusCode)
	}
	s.EnablePprof()
	res, err = http.Get(srv.URL + "/debug/pprof/heap?gc=1")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("heap profile: %d", res.StatusCode)
	}
}

// Issue 12 §9: with mgmt.token every path but /healthz and /readyz wants
// "Authorization: Bearer <token>".
func TestIssue12_BearerToken(t *testing.T) {
	s := New(nil, prometheus.NewRegistry(), WithToken("s3cret"))
	s.Register("core.ping", func(context.Context, json.RawMessage) (any, error) { return "pong", nil })
	do := func(method, path, auth string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(method, path, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"core.ping"}`))
		req.Header.Set("Content-Type", "application/json")
		if auth != "" {
			req.Header.Set("Authorization", auth)
		}
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, req)
		return rec
	}
	for _, auth := range []string{"", "Bearer wrong", "Basic czNjcmV0", "s3cret"} {
		rec := do(http.MethodPost, "/rpc", auth)
		assert.Equal(t, http.StatusUnauthorized, rec.Code, "auth %q", auth)
		assert.Contains(t, rec.Header().Get("WWW-Authenticate"), "Bearer")
		assert.Equal(t, http.StatusUnauthorized, do(http.MethodGet, "/metrics", auth).Code)
	}
	rec := do(http.MethodPost, "/rpc", "Bearer s3cret")
	assert.Equal(t, http.StatusOK, rec.Code)
	assert.Contains(t, rec.Body.String(), "pong")
	assert.Equal(t, http.StatusOK, do(http.MethodGet, "/metrics", "Bearer s3cret").Code)
	assert.Equal(t, http.StatusOK, do(http.MethodGet, "/healthz", "").Code, "probes stay open")
	assert.Equal(t, http.StatusOK, do(http.MethodGet, "/readyz", "").Code)
}

// Issue 15 §9: a web page must not be able to run a method: only
// application/json is accepted (browsers send text/plain and form posts
// cross-origin without asking), and a request with a foreign Origin is
// refused unless allowed.
func TestIssue15_CrossOriginCallsRefused(t *testing.T) {
	ran := 0
	s := New(nil, prometheus.NewRegistry(), WithAllowedOrigins("https://noc.example.net"))
	s.Register("dlg.end_dlg", func(context.Context, json.RawMessage) (any, error) { ran++; return "ended", nil })
	do := func(ctype, origin string) int {
		req := httptest.NewRequest(http.MethodPost, "/rpc", strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"dlg.end_dlg"}`))
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, req)
		return rec.Code
	}
	assert.Equal(t, http.StatusUnsupportedMediaType, do("text/plain", ""))
	assert.Equal(t, http.StatusUnsupportedMediaType, do("application/x-www-form-urlencoded", ""))
	assert.Equal(t, http.StatusUnsupportedMediaType, do("", ""))
	assert.Equal(t, http.StatusForbidden, do("application/json", "https://evil.example.com"))
	assert.Equal(t, 0, ran, "nothing ran")
	assert.Equal(t, http.StatusOK, do("application/json; charset=utf-8", ""))
	assert.Equal(t, http.StatusOK, do("application/json", "https://noc.example.net"))
	assert.Equal(t, 2, ran)
}

// Issue 15 §8: a batch beyond mgmt.max_batch runs nothing; a response
// beyond mgmt.max_response_size becomes an error asking for less.
func TestIssue15_BatchAndResponseBounds(t *testing.T) {
	ran := 0
	s := New(nil, prometheus.NewRegistry(), WithLimits(3, 1000))
	s.Register("small", func(context.Context, json.RawMessage) (any, error) { ran++; return "ok", nil })
	s.Register("big", func(context.Context, json.RawMessage) (any, error) { ran++; return strings.Repeat("x", 2000), nil })
	batch := func(n int, method string) string {
		parts := make([]string, n)
		for i := range parts {
			parts[i] = fmt.Sprintf(`{"jsonrpc":"2.0","id":%d,"method":%q}`, i, method)
		}
		return "[" + strings.Join(parts, ",") + "]"
	}
	rec := post(t, s.Handler(), batch(4, "small"))
	assert.Contains(t, rec.Body.String(), "exceeds mgmt.max_batch (3)")
	assert.Equal(t, 0, ran)
	rec = post(t, s.Handler(), batch(3, "small"))
	assert.Equal(t, 3, strings.Count(rec.Body.String(), `"result":"ok"`))

	rec = post(t, s.Handler(), `{"jsonrpc":"2.0","id":7,"method":"big"}`)
	assert.Contains(t, rec.Body.String(), `"code":-32011`)
	assert.Contains(t, rec.Body.String(), "mgmt.max_response_size")
	assert.Less(t, rec.Body.Len(), 1000)
	// In a batch, the entries that fit come back, the rest as errors.
	two := batch(2, "small")
	rec = post(t, s.Handler(), two[:len(two)-1]+`,{"jsonrpc":"2.0","id":9,"method":"big"}]`)
	assert.Equal(t, 2, strings.Count(rec.Body.String(), `"result":"ok"`))
	assert.Contains(t, rec.Body.String(), `"code":-32011`)
}

// Issue 12 §8: a call of a method that changes state leaves an Info line
// with the method, its params, the client and the outcome; read-only
// methods leave none at Info.
func TestIssue12_8_StateChangingCallsAreAudited(t *testing.T) {
	var logs bytes.Buffer
	s := New(slog.New(slog.NewJSONHandler(&logs, nil)), prometheus.NewRegistry())
	s.Register("test.end", func(context.Context, json.RawMessage) (any, error) { return "ended", nil })
	s.Register("test.endfail", func(context.Context, json.RawMessage) (any, error) {
		return nil, NotFound("dialog %q not found", "x")
	})
	s.Register("test.read", func(context.Context, json.RawMessage) (any, error) { return 1, nil })
	s.Audit("test.end", "test.endfail")
	for _, body := range []string{
		`{"jsonrpc":"2.0","method":"test.end","params":{"callid":"a84b"},"id":1}`,
		`{"jsonrpc":"2.0","method":"test.endfail","params":{"callid":"zz"},"id":2}`,
		`{"jsonrpc":"2.0","method":"test.read","id":3}`,
	} {
		post(t, s.Handler(), body)
	}
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(logs.String()), "\n") {
		var m map[string]any
		require.NoError(t, json.Unmarshal([]byte(l), &m), l)
		lines = append(lines, m)
	}
	require.Len(t, lines, 2, "one audit line per state-changing call: %s", logs.String())
	assert.Equal(t, "mgmt: audit", lines[0]["msg"])
	assert.Equal(t, "test.end", lines[0]["method"])
	assert.Equal(t, `{"callid":"a84b"}`, lines[0]["params"])
	assert.Equal(t, true, lines[0]["ok"])
	assert.Equal(t, "192.0.2.1:1234", lines[0]["remote"], "httptest's client address")
	assert.Equal(t, false, lines[1]["ok"])
	assert.Contains(t, lines[1]["err"], "not found")
}

// Positional and PositionalRest turn an argument array into named
// arguments; PositionalRest gathers the repeated last one under its name
// (opensips-cli's dlg_push_var name value DID1 DID2 ...), Positional
// refuses extra arguments, and named parameters pass unchanged.
func TestPositionalArguments(t *testing.T) {
	echo := func(_ context.Context, p json.RawMessage) (any, error) { return string(p), nil }
	rest := PositionalRest(echo, "ids", "name", "value")
	plain := Positional(echo, "name", "value")
	for _, tc := range []struct {
		h            Handler
		params, want string
	}{
		{rest, `["n","v","a","b"]`, `{"ids":["a","b"],"name":"n","value":"v"}`},
		{rest, `["n","v"]`, `{"name":"n","value":"v"}`},
		{rest, `["n"]`, `{"name":"n"}`},
		{plain, `["n","v"]`, `{"name":"n","value":"v"}`},
		{rest, `{"name":"n","ids":["a"]}`, `{"name":"n","ids":["a"]}`},
	} {
		got, err := tc.h(context.Background(), json.RawMessage(tc.params))
		require.NoError(t, err, tc.params)
		assert.JSONEq(t, tc.want, got.(string), tc.params)
	}
	_, err := plain(context.Background(), json.RawMessage(`["n","v","extra"]`))
	var e *Error
	require.True(t, errors.As(err, &e))
	assert.Equal(t, CodeInvalidParams, e.Code)
	assert.Contains(t, e.Message, "at most 2 positional arguments")
}

package mgmt

import (
	"bytes"
	"context"
	"crypto/subtle"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/http/pprof"
	"reflect"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// JSON-RPC 2.0 error codes. The -32000..-32099 range is left by the spec to
// the implementation; CodeNotFound lives there.
const (
	CodeParseError     = -32700
	CodeInvalidRequest = -32600
	CodeMethodNotFound = -32601
	CodeInvalidParams  = -32602
	CodeInternalError  = -32603
	// CodeNotFound answers a call naming an object (a dialog, a
	// transaction, ...) that does not exist.
	CodeNotFound = -32004
)

// MaxRequestBytes bounds a POST /rpc body, so a runaway client cannot make
// the daemon buffer without limit.
const MaxRequestBytes = 1 << 20

// ShutdownTimeout bounds how long ListenAndServe waits for requests in
// flight once its context is cancelled; then connections are closed.
const ShutdownTimeout = 5 * time.Second

// readyTimeout bounds one /readyz check, so a stuck check answers 503
// instead of hanging the orchestrator's probe.
const readyTimeout = 5 * time.Second

// Handler serves one RPC method. params is the request's "params" member as
// sent (nil when absent or null); decode it with DecodeParams. The result is
// marshalled to JSON. A returned *Error (possibly wrapped) becomes that
// JSON-RPC error; any other error becomes CodeInternalError with its text.
type Handler func(ctx context.Context, params json.RawMessage) (any, error)

// Error is a JSON-RPC error object. Handlers return it to choose the code.
type Error struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
	Data    any    `json:"data,omitempty"`
}

func (e *Error) Error() string { return fmt.Sprintf("json-rpc error %d: %s", e.Code, e.Message) }

// NewError returns an error with the given code and formatted message.
func NewError(code int, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// InvalidParams reports a bad argument (CodeInvalidParams); the message
// should name the argument, e.g. InvalidParams("argument %q: ...", "id").
func InvalidParams(format string, args ...any) *Error {
	return NewError(CodeInvalidParams, format, args...)
}

// NotFound reports that the object a call names does not exist
// (CodeNotFound), e.g. NotFound("dialog %q not found", id).
func NotFound(format string, args ...any) *Error {
	return NewError(CodeNotFound, format, args...)
}

// Defaults of the limits New applies when no Option changes them.
const (
	DefaultMaxBatch         = 100
	DefaultMaxResponseBytes = 16 << 20
	DefaultWriteTimeout     = 30 * time.Second
	DefaultIdleTimeout      = 2 * time.Minute
)

// Option changes a Server made by New.
type Option func(*Server)

// WithToken protects every path but /healthz and /readyz with a bearer
// token (RFC 6750): a request without "Authorization: Bearer <token>" gets
// 401. An empty token protects nothing.
func WithToken(token string) Option { return func(s *Server) { s.token = token } }

// WithTLS serves HTTPS with cfg (its certificates set) instead of HTTP;
// nil keeps HTTP.
func WithTLS(cfg *tls.Config) Option { return func(s *Server) { s.tls = cfg } }

// WithLimits bounds a JSON-RPC batch (a larger one gets an error and runs
// nothing) and the size of a response (a larger result is replaced by an
// error asking for a narrower request); zero keeps the default.
func WithLimits(maxBatch, maxResponseBytes int) Option {
	return func(s *Server) {
		if maxBatch > 0 {
			s.maxBatch = maxBatch
		}
		if maxResponseBytes > 0 {
			s.maxResponse = maxResponseBytes
		}
	}
}

// WithTimeouts sets the HTTP write and idle timeouts: a client that never
// reads its answer cannot pin it in memory longer than write; zero keeps
// the default.
func WithTimeouts(write, idle time.Duration) Option {
	return func(s *Server) {
		if write > 0 {
			s.writeTimeout = write
		}
		if idle > 0 {
			s.idleTimeout = idle
		}
	}
}

// WithAllowedOrigins lets browsers from these origins ("https://noc.example.net")
// call /rpc. Requests carrying any other Origin are refused with 403: a web
// page the operator visits must not be able to end calls.
func WithAllowedOrigins(origins ...string) Option {
	return func(s *Server) { s.origins = append(s.origins, origins...) }
}

// Server is the management HTTP server. Its zero value is not usable; call
// New. Methods may be registered at any time, also while serving.
type Server struct {
	logger *slog.Logger
	mux    *http.ServeMux

	token        string
	maxBatch     int
	maxResponse  int
	writeTimeout time.Duration
	idleTimeout  time.Duration
	origins      []string
	tls          *tls.Config

	mu      sync.RWMutex
	methods map[string]Handler
	audited map[string]bool // methods that change state: logged at Info

	ready atomic.Pointer[func(context.Context) error]
}

// New returns a server whose /metrics serves reg (prometheus.DefaultGatherer
// when nil). A nil logger discards.
func New(logger *slog.Logger, reg prometheus.Gatherer, opts ...Option) *Server {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if reg == nil {
		reg = prometheus.DefaultGatherer
	}
	s := &Server{logger: logger, methods: map[string]Handler{}, mux: http.NewServeMux(),
		maxBatch: DefaultMaxBatch, maxResponse: DefaultMaxResponseBytes,
		writeTimeout: DefaultWriteTimeout, idleTimeout: DefaultIdleTimeout}
	for _, o := range opts {
		o(s)
	}
	// Method-qualified patterns make ServeMux answer other methods with 405
	// and an Allow header.
	s.mux.HandleFunc("POST /rpc", s.protect(s.serveRPC))
	s.mux.Handle("GET /metrics", s.protect(promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:      slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
		ErrorHandling: promhttp.ContinueOnError,
	}).ServeHTTP))
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeText(w, http.StatusOK, "ok")
	})
	s.mux.HandleFunc("GET /readyz", s.serveReady)
	// Kamailio's introspection, which kamcmd users reach for first.
	s.Register("system.listMethods", func(context.Context, json.RawMessage) (any, error) { return s.Methods(), nil })
	return s
}

// Register adds an RPC method. It panics on an empty or reserved ("rpc.")
// name, a nil handler or a duplicate name: all are programming errors that
// must fail at start-up, not at the first call.
func (s *Server) Register(method string, h Handler) {
	switch {
	case method == "":
		panic("mgmt: Register with an empty method name")
	case strings.HasPrefix(method, "rpc."):
		panic(fmt.Sprintf("mgmt: Register %q: names starting with rpc. are reserved by JSON-RPC 2.0", method))
	case h == nil:
		panic(fmt.Sprintf("mgmt: Register %q with a nil handler", method))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.methods[method]; dup {
		panic(fmt.Sprintf("mgmt: method %q registered twice", method))
	}
	s.methods[method] = h
}

// Audit marks methods that change the proxy's state (end calls, send
// requests): each call of one leaves an Info line with the method, its
// params, the client's address and the outcome, so that an operator can
// tell who ended a call. Read-only methods stay at Debug.
func (s *Server) Audit(methods ...string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.audited == nil {
		s.audited = map[string]bool{}
	}
	for _, m := range methods {
		s.audited[m] = true
	}
}

// auditParamsMax bounds the params an audit line quotes.
const auditParamsMax = 512

// remoteKey carries the client's address to call, for the audit line.
type remoteKey struct{}

// Methods returns the registered method names, sorted.
func (s *Server) Methods() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	names := make([]string, 0, len(s.methods))
	for m := range s.methods {
		names = append(names, m)
	}
	slices.Sort(names)
	return names
}

// SetReady sets the check behind /readyz: 200 when it returns nil, 503 with
// its error otherwise. nil means always ready. The check gets a context
// bounded to a few seconds.
func (s *Server) SetReady(check func(ctx context.Context) error) {
	if check == nil {
		s.ready.Store(nil)
		return
	}
	s.ready.Store(&check)
}

// Handler returns the HTTP handler: POST /rpc, GET /metrics, GET /healthz
// and GET /readyz.
func (s *Server) Handler() http.Handler { return s.mux }

// EnablePprof serves Go's runtime profiles under /debug/pprof/ (heap,
// goroutine, CPU, ...). Off by default: they reveal internals and cost CPU.
func (s *Server) EnablePprof() {
	s.mux.HandleFunc("GET /debug/pprof/", s.protect(pprof.Index))
	s.mux.HandleFunc("GET /debug/pprof/cmdline", s.protect(pprof.Cmdline))
	s.mux.HandleFunc("GET /debug/pprof/profile", s.protect(pprof.Profile))
	s.mux.HandleFunc("GET /debug/pprof/symbol", s.protect(pprof.Symbol))
	s.mux.HandleFunc("GET /debug/pprof/trace", s.protect(pprof.Trace))
}

// protect refuses requests without the bearer token (when one is set) and
// requests a browser sends on behalf of a page of another origin.
func (s *Server) protect(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if o := r.Header.Get("Origin"); o != "" && !slices.Contains(s.origins, o) {
			s.logger.Warn("mgmt: request from a browser origin refused", "origin", o, "path", r.URL.Path, "remote", r.RemoteAddr)
			writeText(w, http.StatusForbidden, "origin "+o+" is not allowed (mgmt.allowed_origins)")
			return
		}
		if s.token != "" {
			got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			if !ok || subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(s.token)) != 1 {
				w.Header().Set("WWW-Authenticate", `Bearer realm="imsdlg"`)
				writeText(w, http.StatusUnauthorized, "missing or wrong bearer token (Authorization: Bearer <mgmt.token>)")
				return
			}
		}
		h(w, r)
	}
}

// ListenAndServe serves on addr (HOST:PORT; port 0 picks one) until ctx is
// cancelled, then shuts down gracefully, waiting at most ShutdownTimeout for
// requests in flight. Once listening it sends the bound address on ready
// (when not nil). It returns nil after a shutdown caused by ctx.
func (s *Server) ListenAndServe(ctx context.Context, addr string, ready chan<- net.Addr) error {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("mgmt: listen on %s: %w", addr, err)
	}
	if s.tls != nil {
		ln = tls.NewListener(ln, s.tls)
	}
	srv := &http.Server{
		Handler:           s.mux,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      s.writeTimeout,
		IdleTimeout:       s.idleTimeout,
		ErrorLog:          slog.NewLogLogger(s.logger.Handler(), slog.LevelWarn),
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	s.logger.Info("mgmt: serving", "addr", ln.Addr().String(), "tls", s.tls != nil)

	if ready != nil {
		select {
		case ready <- ln.Addr():
		case <-ctx.Done():
		}
	}
	select {
	case err := <-served:
		return fmt.Errorf("mgmt: serve on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}

	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		_ = srv.Close()
		<-served
		return fmt.Errorf("mgmt: shutdown on %s: %w", ln.Addr(), err)
	}
	<-served // http.ErrServerClosed, by design
	s.logger.Info("mgmt: stopped", "addr", ln.Addr().String())
	return nil
}

func (s *Server) serveReady(w http.ResponseWriter, r *http.Request) {
	if check := s.ready.Load(); check != nil {
		ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
		defer cancel()
		if err := (*check)(ctx); err != nil {
			writeText(w, http.StatusServiceUnavailable, "not ready: "+err.Error())
			return
		}
	}
	writeText(w, http.StatusOK, "ok")
}

func writeText(w http.ResponseWriter, status int, body string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, body)
}

// response is a JSON-RPC response object; exactly one of Result and Error is
// set. Result holds "null" for a handler returning nil, since the spec
// requires the member on success.
type response struct {
	JSONRPC string          `json:"jsonrpc"`
	Result  json.RawMessage `json:"result,omitempty"`
	Error   *Error          `json:"error,omitempty"`
	ID      json.RawMessage `json:"id"`
}

var nullID = json.RawMessage("null")

func errorResponse(id json.RawMessage, e *Error) *response {
	if id == nil {
		id = nullID
	}
	return &response{JSONRPC: "2.0", Error: e, ID: id}
}

// The request body must be labelled application/json: a browser sends
// text/plain and form posts to any origin without asking first (no CORS
// preflight), and those must never run a method.
func (s *Server) serveRPC(w http.ResponseWriter, r *http.Request) {
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		writeText(w, http.StatusUnsupportedMediaType, "Content-Type must be application/json (curl: -H 'Content-Type: application/json')")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxRequestBytes))
	if err != nil {
		if mbe := (*http.MaxBytesError)(nil); errors.As(err, &mbe) {
			s.writeResponse(w, http.StatusRequestEntityTooLarge,
				errorResponse(nil, NewError(CodeInvalidRequest, "request body exceeds %d bytes", mbe.Limit)))
			return
		}
		s.logger.Debug("mgmt: read RPC request", "err", err)
		s.writeResponse(w, http.StatusBadRequest, errorResponse(nil, NewError(CodeParseError, "read request body: %v", err)))
		return
	}
	reply := s.handleBody(context.WithValue(r.Context(), remoteKey{}, r.RemoteAddr), body)
	if reply == nil {
		w.WriteHeader(http.StatusNoContent) // only notifications: nothing to answer
		return
	}
	s.writeResponse(w, http.StatusOK, reply)
}

func (s *Server) writeResponse(w http.ResponseWriter, status int, reply any) {
	var body []byte
	switch r := reply.(type) {
	case *response:
		body = s.encode(r)
	case []*response:
		parts := make([][]byte, len(r))
		for i, resp := range r {
			parts[i] = s.encode(resp)
		}
		body = slices.Concat([]byte("["), bytes.Join(parts, []byte(",")), []byte("]"))
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

// encode marshals one response; each batch entry is encoded on its own so
// that an unencodable Error.Data spoils only its own entry.
func (s *Server) encode(r *response) []byte {
	b, err := json.Marshal(r)
	if err == nil {
		return b
	}
	s.logger.Error("mgmt: encode RPC response", "err", err)
	b, _ = json.Marshal(errorResponse(r.ID, NewError(CodeInternalError, "encode response: %v", err)))
	return b
}

// handleBody answers a request or a batch. It returns nil when there is
// nothing to answer (notifications only), a *response or a []*response.
func (s *Server) handleBody(ctx context.Context, body []byte) any {
	if !json.Valid(body) {
		return errorResponse(nil, NewError(CodeParseError, "request is not valid JSON"))
	}
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if trimmed[0] != '[' {
		if r := s.handleOne(ctx, trimmed); r != nil {
			return r
		}
		return nil
	}
	var batch []json.RawMessage
	if err := json.Unmarshal(trimmed, &batch); err != nil {
		return errorResponse(nil, NewError(CodeParseError, "request is not valid JSON: %v", err))
	}
	if len(batch) == 0 {
		return errorResponse(nil, NewError(CodeInvalidRequest, "empty batch"))
	}
	if len(batch) > s.maxBatch {
		return errorResponse(nil, NewError(CodeInvalidRequest, "batch of %d requests exceeds mgmt.max_batch (%d)", len(batch), s.maxBatch))
	}
	var out []*response
	size := 0
	for _, raw := range batch {
		r := s.handleOne(ctx, raw)
		if r == nil {
			continue
		}
		// The whole answer is bounded, not only each entry.
		if size += len(r.Result); size > s.maxResponse {
			r = errorResponse(r.ID, s.tooLarge(size))
		}
		out = append(out, r)
	}
	if len(out) == 0 {
		return nil
	}
	return out
}

// handleOne answers one request object; nil for a notification.
func (s *Server) handleOne(ctx context.Context, raw json.RawMessage) *response {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(raw, &fields); err != nil || fields == nil {
		return errorResponse(nil, NewError(CodeInvalidRequest, "request must be a JSON object"))
	}
	// The id is checked first so that every later error can echo it.
	rawID, hasID := fields["id"]
	id := nullID
	if hasID {
		if !isValidID(rawID) {
			return errorResponse(nil, NewError(CodeInvalidRequest, `"id" must be a string, a number or null`))
		}
		id = rawID
	}
	var version string
	if err := json.Unmarshal(fields["jsonrpc"], &version); err != nil || version != "2.0" {
		return errorResponse(id, NewError(CodeInvalidRequest, `"jsonrpc" must be "2.0"`))
	}
	var method string
	if err := json.Unmarshal(fields["method"], &method); err != nil || method == "" {
		return errorResponse(id, NewError(CodeInvalidRequest, `"method" must be a non-empty string`))
	}
	params := fields["params"]
	switch {
	case isNull(params):
		params = nil
	case params[0] != '{' && params[0] != '[':
		return errorResponse(id, NewError(CodeInvalidRequest, `"params" must be an object or an array`))
	}

	result, rpcErr := s.call(ctx, method, params)
	if !hasID {
		return nil // a notification is never answered, not even with an error
	}
	if rpcErr != nil {
		return errorResponse(id, rpcErr)
	}
	return &response{JSONRPC: "2.0", Result: result, ID: id}
}

// CodeResponseTooLarge answers a call whose result exceeds
// mgmt.max_response_size.
const CodeResponseTooLarge = -32011

func (s *Server) tooLarge(n int) *Error {
	return NewError(CodeResponseTooLarge, "response of %d bytes exceeds mgmt.max_response_size (%d bytes): ask for less (dlg.list with a filter or a page)", n, s.maxResponse)
}

func isValidID(raw json.RawMessage) bool {
	if len(raw) == 0 {
		return false
	}
	switch c := raw[0]; {
	case c == '"', c == '-', c >= '0' && c <= '9':
		return true
	}
	return isNull(raw)
}

func isNull(raw json.RawMessage) bool {
	return len(raw) == 0 || string(raw) == "null"
}

func (s *Server) call(ctx context.Context, method string, params json.RawMessage) (json.RawMessage, *Error) {
	s.mu.RLock()
	h, ok := s.methods[method]
	audited := s.audited[method]
	s.mu.RUnlock()
	if !ok {
		s.logger.Debug("mgmt: unknown RPC method", "method", method)
		return nil, NewError(CodeMethodNotFound, "method %q not found", method)
	}

	start := time.Now()
	result, err := s.invoke(ctx, method, h, params)
	var rpcErr *Error
	var encoded json.RawMessage
	if err != nil {
		rpcErr = asRPCError(err)
	} else if encoded, err = json.Marshal(result); err != nil {
		rpcErr = NewError(CodeInternalError, "encode result: %v", err)
	} else if len(encoded) > s.maxResponse {
		rpcErr, encoded = s.tooLarge(len(encoded)), nil
	}

	attrs := []any{"method", method, "duration", time.Since(start)}
	if audited {
		remote, _ := ctx.Value(remoteKey{}).(string)
		p := string(params)
		if len(p) > auditParamsMax {
			p = p[:auditParamsMax] + "..."
		}
		a := append(attrs, "remote", remote, "params", p, "ok", rpcErr == nil)
		if rpcErr != nil {
			a = append(a, "code", rpcErr.Code, "err", rpcErr.Message)
		}
		s.logger.Info("mgmt: audit", a...)
	}
	switch {
	case rpcErr == nil:
		s.logger.Debug("mgmt: RPC call", attrs...)
	case rpcErr.Code == CodeInternalError:
		s.logger.Warn("mgmt: RPC call failed", append(attrs, "code", rpcErr.Code, "err", rpcErr.Message)...)
	default:
		s.logger.Debug("mgmt: RPC call refused", append(attrs, "code", rpcErr.Code, "err", rpcErr.Message)...)
	}
	if rpcErr != nil {
		return nil, rpcErr
	}
	return encoded, nil
}

// invoke runs a handler, turning a panic into an internal error: a bug in
// one management method must not take the SIP proxy down.
func (s *Server) invoke(ctx context.Context, method string, h Handler, params json.RawMessage) (result any, err error) {
	defer func() {
		if p := recover(); p != nil {
			s.logger.Error("mgmt: RPC handler panicked", "method", method, "panic", p, "stack", string(debug.Stack()))
			result, err = nil, NewError(CodeInternalError, "internal error: method %q panicked", method)
		}
	}()
	return h(ctx, params)
}

func asRPCError(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		if e == nil {
			// A typed nil *Error returned as error: the handler meant "no
			// error" but cannot say it that way; report the bug, not a panic.
			return NewError(CodeInternalError, "handler returned a nil *mgmt.Error as its error")
		}
		return e
	}
	return NewError(CodeInternalError, "%s", err.Error())
}

// Positional lets h take positional parameters too, as kamcmd and the
// MI FIFO pass them: an array is turned into an object with names, in
// order, before h sees it (["abc", "f1"] with names callid, from_tag is
// {"callid": "abc", "from_tag": "f1"}). Named parameters pass unchanged.
func Positional(h Handler, names ...string) Handler { return positional(h, "", names) }

// PositionalRest is Positional for a command whose last argument repeats
// (opensips-cli's "dlg_push_var name value DID1 DID2 ..."): the arguments
// after names go, as an array, under rest.
func PositionalRest(h Handler, rest string, names ...string) Handler {
	return positional(h, rest, names)
}

func positional(h Handler, rest string, names []string) Handler {
	return func(ctx context.Context, params json.RawMessage) (any, error) {
		p := bytes.TrimSpace(params)
		if len(p) == 0 || p[0] != '[' {
			return h(ctx, params)
		}
		var args []json.RawMessage
		if err := json.Unmarshal(p, &args); err != nil {
			return nil, InvalidParams("params: %v", err)
		}
		if len(args) > len(names) && rest == "" {
			return nil, InvalidParams("at most %d positional arguments (%s), got %d", len(names), strings.Join(names, ", "), len(args))
		}
		obj := make(map[string]json.RawMessage, len(names)+1)
		for i, a := range args[:min(len(args), len(names))] {
			obj[names[i]] = a
		}
		if len(args) > len(names) {
			more, err := json.Marshal(args[len(names):])
			if err != nil {
				return nil, InvalidParams("params: %v", err)
			}
			obj[rest] = more
		}
		named, err := json.Marshal(obj)
		if err != nil {
			return nil, InvalidParams("params: %v", err)
		}
		return h(ctx, named)
	}
}

// DecodeParams decodes a method's named arguments into v, a pointer. It is
// strict, so a misspelt argument is refused rather than silently ignored:
//
//   - an argument v has no field for is an InvalidParams error naming it (at
//     the top level, names must match the json tag exactly, not in any case
//     as encoding/json would allow);
//   - a field tagged `mgmt:"required"` that is absent is an InvalidParams
//     error naming it;
//   - positional parameters (an array) are refused (see Positional);
//   - absent or null params are fine when v has no required field.
func DecodeParams(params json.RawMessage, v any) error {
	params = bytes.TrimSpace(params)
	fields := describeFields(v)
	if isNull(params) {
		if fields != nil && len(fields.required) > 0 {
			return InvalidParams("missing required argument %q", fields.required[0])
		}
		return nil
	}
	switch params[0] {
	case '[':
		return InvalidParams("positional parameters are not supported by this method: pass an object of named arguments")
	case '{':
	default:
		return InvalidParams("params must be an object of named arguments")
	}
	if fields != nil {
		var given map[string]json.RawMessage
		if err := json.Unmarshal(params, &given); err != nil {
			return InvalidParams("params: %v", err)
		}
		names := make([]string, 0, len(given))
		for k := range given {
			names = append(names, k)
		}
		slices.Sort(names)
		for _, k := range names {
			if !fields.known[k] {
				return InvalidParams("unknown argument %q", k)
			}
		}
		for _, k := range fields.required {
			if _, ok := given[k]; !ok {
				return InvalidParams("missing required argument %q", k)
			}
		}
	}
	dec := json.NewDecoder(bytes.NewReader(params))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return paramsError(err)
	}
	return nil
}

func paramsError(err error) error {
	var te *json.UnmarshalTypeError
	var ie *json.InvalidUnmarshalError
	switch {
	case errors.As(err, &ie):
		return fmt.Errorf("mgmt: DecodeParams: %w", err) // the caller's bug: internal error
	case errors.As(err, &te):
		if te.Field == "" {
			return InvalidParams("params must be %s, got %s", describeType(te.Type), te.Value)
		}
		return InvalidParams("argument %q must be %s, got %s", te.Field, describeType(te.Type), te.Value)
	}
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return InvalidParams("unknown argument %s", name)
	}
	return InvalidParams("params: %v", err)
}

func describeType(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	}
	return t.String()
}

type fieldSet struct {
	known    map[string]bool
	required []string
}

// describeFields lists the JSON names of the fields of the struct v points
// to, or returns nil when v is not a pointer to a struct.
func describeFields(v any) *fieldSet {
	t := reflect.TypeOf(v)
	if t == nil || t.Kind() != reflect.Pointer || t.Elem().Kind() != reflect.Struct {
		return nil
	}
	fs := &fieldSet{known: map[string]bool{}}
	fs.add(t.Elem())
	return fs
}

func (fs *fieldSet) add(t reflect.Type) {
	for f := range t.Fields() {
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" {
			et := f.Type
			if et.Kind() == reflect.Pointer {
				et = et.Elem()
			}
			if et.Kind() == reflect.Struct {
				fs.add(et) // promoted fields, as encoding/json sees them
				continue
			}
		}
		if !f.IsExported() {
			continue
		}
		if name == "" {
			name = f.Name
		}
		fs.known[name] = true
		if f.Tag.Get("mgmt") == "required" {
			fs.required = append(fs.required, name)
		}
	}
}

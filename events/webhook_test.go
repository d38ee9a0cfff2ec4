package events

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// hookServer is a webhook receiver on loopback that records what it got.
type hookServer struct {
	*httptest.Server
	mu      sync.Mutex
	bodies  [][]byte
	headers []http.Header
	status  int                        // reply status, 204 when 0
	hold    func(r *http.Request) bool // when set, called before replying; false: reply nothing
}

func newHookServer(t *testing.T) *hookServer {
	h := &hookServer{}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		h.bodies = append(h.bodies, body)
		h.headers = append(h.headers, r.Header.Clone())
		status, hold := h.status, h.hold
		h.mu.Unlock()
		if r.Method != http.MethodPost {
			status = http.StatusMethodNotAllowed
		}
		if hold != nil && !hold(r) {
			return
		}
		if status == 0 {
			status = http.StatusNoContent
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, "receiver says no\n")
	}))
	t.Cleanup(h.Close)
	return h
}

func (h *hookServer) requests() ([][]byte, []http.Header) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(h.bodies), slices.Clone(h.headers)
}

func newWebhook(t *testing.T, opts WebhookOptions) *Webhook {
	t.Helper()
	w, err := NewWebhook(opts)
	require.NoError(t, err)
	return w
}

func TestWebhookPostsJSONArray(t *testing.T) {
	srv := newHookServer(t)
	entered, gate := make(chan struct{}, 10), make(chan struct{})
	first := true
	srv.hold = func(*http.Request) bool {
		// Hold the first request so the next events queue into one batch.
		srv.mu.Lock()
		wasFirst := first
		first = false
		srv.mu.Unlock()
		if wasFirst {
			entered <- struct{}{}
			<-gate
		}
		return true
	}
	hook := newWebhook(t, WebhookOptions{URL: srv.URL + "/events", Headers: map[string]string{"Authorization": "Bearer s3cret"}})
	p := newPublisher(t, Options{Sinks: []Sink{hook}, Node: "node-a"})

	require.True(t, p.Publish(ev(0)))
	<-entered
	for i := 1; i <= 3; i++ {
		require.True(t, p.Publish(ev(i)))
	}
	close(gate)
	eventually(t, p, "sent_webhook", 4)

	bodies, headers := srv.requests()
	require.Len(t, bodies, 2)
	assert.Equal(t, "application/json", headers[0].Get("Content-Type"))
	assert.Equal(t, "Bearer s3cret", headers[0].Get("Authorization"))

	// The exact field names, checked on the raw JSON, not through Event.
	var raw []map[string]any
	require.NoError(t, json.Unmarshal(bodies[1], &raw), "%s", bodies[1])
	require.Len(t, raw, 3, "the three events queued during the first POST arrive as one array")
	want := map[string]any{
		"event":          "E_DLG_STATE_CHANGED",
		"id":             "1.1001",
		"callid":         "call-1@test",
		"from_tag":       "ft1",
		"to_tag":         "tt1",
		"old_state":      float64(1),
		"new_state":      float64(2),
		"old_state_name": "UNCONFIRMED",
		"new_state_name": "EARLY",
		"time":           "2025-03-01T12:00:00.12345679Z",
		"node":           "node-a",
	}
	assert.Equal(t, want, raw[0])

	var first0 []map[string]any
	require.NoError(t, json.Unmarshal(bodies[0], &first0))
	require.Len(t, first0, 1)
	assert.Equal(t, "call-0@test", first0[0]["callid"])
	tm, err := time.Parse(time.RFC3339Nano, first0[0]["time"].(string))
	require.NoError(t, err)
	assert.True(t, tm.Equal(ev(0).Time))
}

func TestWebhookOmitsEmptyNode(t *testing.T) {
	srv := newHookServer(t)
	hook := newWebhook(t, WebhookOptions{URL: srv.URL})
	require.NoError(t, hook.Send(context.Background(), []Event{ev(0)}))
	bodies, _ := srv.requests()
	require.Len(t, bodies, 1)
	var raw []map[string]any
	require.NoError(t, json.Unmarshal(bodies[0], &raw))
	assert.NotContains(t, raw[0], "node")
}

func TestWebhookNon2xxIsASinkError(t *testing.T) {
	srv := newHookServer(t)
	srv.status = http.StatusServiceUnavailable
	hook := newWebhook(t, WebhookOptions{URL: srv.URL + "/hook"})

	err := hook.Send(context.Background(), []Event{ev(0)})
	require.Error(t, err)
	assert.Contains(t, err.Error(), "503 Service Unavailable")
	assert.Contains(t, err.Error(), srv.URL+"/hook")
	assert.Contains(t, err.Error(), "receiver says no")

	log, logs := newLogger()
	p := newPublisher(t, Options{Sinks: []Sink{hook}, Logger: log, RetryBackoff: time.Millisecond})
	require.True(t, p.Publish(ev(1)))
	eventually(t, p, "sink_dropped_webhook", 1)
	assert.Equal(t, int64(2), snap(p, "sink_errors_webhook"), "one send and one retry")
	assert.Equal(t, int64(0), snap(p, "sent_webhook"))
	assert.Equal(t, 1, logs.count("sink failing"))
	assert.Contains(t, logs.String(), "503")
}

func TestWebhookTimeoutDoesNotBlockPublish(t *testing.T) {
	srv := newHookServer(t)
	entered := make(chan struct{}, 100)
	srv.hold = func(r *http.Request) bool {
		entered <- struct{}{}
		<-r.Context().Done() // answers only when the client gives up
		return false
	}
	hook := newWebhook(t, WebhookOptions{URL: srv.URL, Timeout: 50 * time.Millisecond})
	p := newPublisher(t, Options{QueueSize: 3, BatchSize: 1, Sinks: []Sink{hook}, RetryBackoff: time.Millisecond})

	require.True(t, p.Publish(ev(0)))
	<-entered // the worker is stuck in the POST
	// Publish returns at once while the server hangs: true while there is
	// room, false after.
	for i := 1; i <= 3; i++ {
		assert.True(t, p.Publish(ev(i)))
	}
	assert.False(t, p.Publish(ev(4)))
	assert.Equal(t, int64(1), snap(p, "dropped"))

	eventually(t, p, "sink_dropped_webhook", 4)
	assert.GreaterOrEqual(t, snap(p, "sink_errors_webhook"), int64(5), "each POST timed out")
	assert.Equal(t, int64(0), snap(p, "sent_webhook"))
}

func TestWebhookValidate(t *testing.T) {
	assert.NoError(t, WebhookOptions{URL: "https://hooks.example.com/x?y=1", Timeout: time.Second,
		Headers: map[string]string{"Authorization": "Bearer x", "X-Api-Key": "k"}}.Validate())
	for _, tc := range []struct {
		opts    WebhookOptions
		want    string
		notWant string
	}{
		{opts: WebhookOptions{}, want: "events.webhook.url: required"},
		{opts: WebhookOptions{URL: "ftp://example.com/"}, want: "events.webhook.url"},
		{opts: WebhookOptions{URL: "/relative"}, want: "events.webhook.url"},
		{opts: WebhookOptions{URL: "http://user:hunter2@ex ample.com/"}, want: "events.webhook.url", notWant: "hunter2"},
		{opts: WebhookOptions{URL: "http://example.com", Timeout: -time.Second}, want: "events.webhook.timeout = -1s"},
		{opts: WebhookOptions{URL: "http://example.com", Headers: map[string]string{"Bad Name": "v"}}, want: "events.webhook.headers"},
		{opts: WebhookOptions{URL: "http://example.com", Headers: map[string]string{"X-A": "tok\r\nX-B: 1"}}, want: `events.webhook.headers["X-A"]`, notWant: "tok"},
	} {
		err := tc.opts.Validate()
		require.Error(t, err, "%+v", tc.opts)
		assert.Contains(t, err.Error(), tc.want)
		if tc.notWant != "" {
			assert.NotContains(t, err.Error(), tc.notWant)
		}
		_, err = NewWebhook(tc.opts)
		assert.Error(t, err, "NewWebhook validates")
	}
}

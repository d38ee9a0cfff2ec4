package events

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"
)

// WebhookOptions configures NewWebhook. Zero values take the defaults.
type WebhookOptions struct {
	URL     string        // http:// or https://
	Timeout time.Duration // bounds one POST, DefaultTimeout when 0
	// Client is an existing client (proxies, TLS settings); when nil the
	// sink makes its own, with a transport of its own so closing its idle
	// connections touches no one else's.
	Client *http.Client
	// Headers are added to every request, e.g. Authorization.
	// Content-Type is always application/json.
	Headers map[string]string
}

// Validate reports every unusable value, naming it as the daemon's
// configuration does. Header values are never shown: they are usually
// credentials.
func (o WebhookOptions) Validate() error {
	var errs []error
	if o.URL == "" {
		errs = append(errs, errors.New("events.webhook.url: required"))
	} else if u, err := url.Parse(o.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		errs = append(errs, fmt.Errorf("events.webhook.url = %q: must be an absolute http:// or https:// URL", redactURL(o.URL)))
	}
	if o.Timeout < 0 {
		errs = append(errs, fmt.Errorf("events.webhook.timeout = %s: must not be negative (0 means %s)", o.Timeout, DefaultTimeout))
	}
	names := make([]string, 0, len(o.Headers))
	for k := range o.Headers {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if !isToken(k) {
			errs = append(errs, fmt.Errorf("events.webhook.headers: %q is not a header name", k))
		}
		if strings.ContainsAny(o.Headers[k], "\r\n\x00") {
			errs = append(errs, fmt.Errorf("events.webhook.headers[%q]: the value must be one line", k))
		}
	}
	return errors.Join(errs...)
}

// Webhook is the Sink that POSTs each batch as a JSON array of events.
type Webhook struct {
	url     string
	shown   string // url without its password, for errors
	timeout time.Duration
	client  *http.Client
	owned   bool
	headers http.Header
}

var _ Sink = (*Webhook)(nil)

// NewWebhook validates opts; it does not contact the server.
func NewWebhook(opts WebhookOptions) (*Webhook, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if opts.Timeout == 0 {
		opts.Timeout = DefaultTimeout
	}
	w := &Webhook{url: opts.URL, shown: redactURL(opts.URL), timeout: opts.Timeout, client: opts.Client, headers: http.Header{}}
	if w.client == nil {
		w.client = &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
		w.owned = true
	}
	for k, v := range opts.Headers {
		w.headers.Set(k, v)
	}
	w.headers.Set("Content-Type", "application/json")
	return w, nil
}

// Name implements Sink.
func (w *Webhook) Name() string { return "webhook" }

// Send implements Sink: any 2xx is success; anything else is an error
// naming the status and the URL, with the start of the reply's body,
// which is where receivers say what they disliked.
func (w *Webhook) Send(ctx context.Context, batch []Event) error {
	body, err := json.Marshal(batch)
	if err != nil {
		return fmt.Errorf("webhook %s: encode: %w", w.shown, err)
	}
	ctx, cancel := context.WithTimeout(ctx, w.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("webhook %s: %w", w.shown, err)
	}
	req.Header = w.headers.Clone()
	resp, err := w.client.Do(req)
	if err != nil {
		// The client's *url.Error already names the method and the URL,
		// without its password.
		return fmt.Errorf("webhook: %w", err)
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	// Reading the rest lets the connection be reused; a receiver sending
	// megabytes back is not worth waiting for.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("webhook %s: HTTP %s: %q", w.shown, resp.Status, strings.TrimSpace(string(snippet)))
	}
	return nil
}

// Close releases the idle connections of the client the sink made.
func (w *Webhook) Close() error {
	if w.owned {
		w.client.CloseIdleConnections()
	}
	return nil
}

// redactURL hides the userinfo, even of a URL that does not parse, so
// that no error or log line carries a password.
func redactURL(raw string) string {
	scheme, rest, ok := strings.Cut(raw, "://")
	if !ok {
		return raw
	}
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	if at := strings.LastIndexByte(rest[:end], '@'); at >= 0 {
		rest = "xxx@" + rest[at+1:]
	}
	return scheme + "://" + rest
}

// isToken reports whether s is an RFC 9110 token, the syntax of a header
// name.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

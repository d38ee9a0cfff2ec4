package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/imsdlg/imsdlg/internal/redistest"
)

// Issue 12 §8: go-redis's own lines (here: a Redis that refuses
// connections) come out of the proxy's handler, as JSON with
// component=redis, not as raw lines inside the JSON stream.
func TestIssue12_8_RedisLogsBridged(t *testing.T) {
	var out syncBuffer
	bridgeLogs(slog.New(slog.NewJSONHandler(&out, nil)))
	port, err := redistest.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	c := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", port), MaxRetries: -1, DialTimeout: 100 * time.Millisecond})
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for i := 0; i < 50 && !strings.Contains(out.String(), `"component":"redis"`); i++ {
		_ = c.Ping(ctx).Err()
	}
	if !strings.Contains(out.String(), `"component":"redis"`) {
		t.Fatalf("no go-redis line came through the handler: %q", out.String())
	}
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Errorf("not a JSON line: %q", line)
		}
	}
}

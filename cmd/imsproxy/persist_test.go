package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Issue 6 §3-4: dialog.db_* and events.* as operators write them.
func TestIssue6_PersistAndEventsKeys(t *testing.T) {
	isolateEnv(t)
	c, err := loadYAML(t, `
dialog: {db_mode: 2, db_url: "redis://127.0.0.1:6379/1", db_update_period: 10}
events:
  queue_size: 500
  redis_stream: {url: "redis://127.0.0.1:6379/0", stream: "ev", maxlen: 1000}
  webhook: {url: "http://127.0.0.1:9000/hook", timeout: 1500}
`)
	require.NoError(t, err)
	assert.Equal(t, 2, c.Dialog.DBMode)
	assert.Equal(t, 10*time.Second, c.Dialog.DBUpdatePeriod)
	assert.Equal(t, 500, c.Events.QueueSize)
	assert.Equal(t, "ev", c.Events.RedisStream.Stream)
	assert.Equal(t, int64(1000), c.Events.RedisStream.MaxLen)
	assert.Equal(t, 1500*time.Millisecond, c.Events.Webhook.Timeout)
	assert.Equal(t, "redis_stream,webhook", c.sinkNames())

	d, err := LoadConfig("", nil)
	require.NoError(t, err)
	assert.Equal(t, 0, d.Dialog.DBMode)
	assert.Empty(t, d.sinkNames(), "no sink by default")
}

func TestIssue6_PersistBadValuesNameTheKey(t *testing.T) {
	for _, tt := range []struct {
		name, yaml string
		want       string
	}{
		{"db_mode out of range", "dialog: {db_mode: 4}", "dialog.db_mode = 4"},
		{"db_url missing", "dialog: {db_mode: 1}", `dialog.db_url = "": required with dialog.db_mode 1`},
		{"db_url bad", "dialog: {db_url: 'mysql://x'}", `dialog.db_url = "mysql://x"`},
		{"db_update_period zero", "dialog: {db_update_period: 0}", "dialog.db_update_period"},
		{"queue_size", "events: {queue_size: -1}", "events.queue_size"},
		{"stream url", "events: {redis_stream: {url: 'tcp://x'}}", "events.redis_stream.url"},
		{"webhook url", "events: {webhook: {url: 'ftp://x'}}", "events.webhook.url"},
		{"unknown events key", "events: {kafka: {}}", `unknown key "events.kafka"`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			isolateEnv(t)
			_, err := loadYAML(t, tt.yaml)
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

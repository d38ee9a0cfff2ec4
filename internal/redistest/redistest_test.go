package redistest

import (
	"context"
	"testing"
)

// A persistent server keeps its data over Stop and Restart: the e2e tests
// that stop Redis mid-call rely on it.
func TestPersistentRestartKeepsData(t *testing.T) {
	s := Start(t, Options{Persistent: true})
	ctx := context.Background()
	c := s.Client(t)
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	s.Stop()
	if err := c.Ping(ctx).Err(); err == nil {
		t.Fatal("PING answered after Stop")
	}
	if err := s.Restart(); err != nil {
		t.Fatal(err)
	}
	got, err := c.Get(ctx, "k").Result()
	if err != nil || got != "v" {
		t.Fatalf("GET k after restart = %q, %v; want v", got, err)
	}
}

func TestRestartRunningFails(t *testing.T) {
	s := Start(t, Options{})
	if err := s.Restart(); err == nil {
		t.Fatal("Restart of a running server succeeded")
	}
}

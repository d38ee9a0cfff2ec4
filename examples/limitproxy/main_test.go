package main

import (
	"context"
	"io"
	"log/slog"
	"testing"

	"github.com/emiago/sipgo/sip"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/imsdlg/imsdlg/internal/siptest"
)

// The example does what its comment says: the first call of a caller goes
// to the next hop, the second while the first is up gets 486 (-max 1).
func TestLimitProxy_SecondCallOfACallerIsBusy(t *testing.T) {
	uac, next := siptest.NewUA(t), siptest.NewUA(t)
	ctx, cancel := context.WithCancel(context.Background())
	ready, done := make(chan string, 1), make(chan error, 1)
	go func() {
		done <- run(ctx, "127.0.0.1:0", next.HostPort(), 1, slog.New(slog.NewTextHandler(io.Discard, nil)), ready)
	}()
	addr := <-ready
	defer func() {
		cancel()
		require.NoError(t, <-done)
	}()

	first := uac.Invite("sip:bob@" + addr)
	uac.Send(addr, first)
	inv := next.Request(sip.INVITE)
	next.Reply(inv, 200, "b", "Contact: <sip:bob@"+next.HostPort()+">")
	ok := uac.Response(200)
	uac.Send(addr, uac.AckFor(first, ok))

	uac.Send(addr, uac.Invite("sip:bob@"+addr))
	assert.Equal(t, 486, uac.Final().StatusCode)
}

package main

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/emiago/sipgo/sip"
	"github.com/redis/go-redis/v9"
)

// bridgeLogs sends the libraries' own logs to the proxy's handler: go-redis
// prints raw lines to stderr ("redis: 2026/12/02 ... pool.go:770: ..."),
// which break a JSON log stream, and sipgo logs to slog.Default. Both get
// a component attribute so their lines can be told from ours.
func bridgeLogs(log *slog.Logger) {
	sip.SetDefaultLogger(log.With("component", "sipgo"))
	redis.SetLogger(redisLog{log.With("component", "redis")})
}

// redisLog is go-redis's internal.Logging on slog. Its lines are about
// connections (dial failures, pool exhaustion): warnings, rate-limited by
// go-redis's own retry pacing.
type redisLog struct{ l *slog.Logger }

func (r redisLog) Printf(ctx context.Context, format string, v ...any) {
	r.l.WarnContext(ctx, strings.TrimSpace(fmt.Sprintf(format, v...)))
}

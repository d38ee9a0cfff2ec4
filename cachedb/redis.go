package cachedb

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisOptions configures NewRedis.
type RedisOptions struct {
	URL  string // see ParseURL
	Keys Keys
	// TTL is set on every key a change touches; 0 means DefaultTTL. Redis
	// expiries are whole seconds, so it is rounded up.
	TTL time.Duration
	// Timeout bounds every round trip; 0 means DefaultTimeout.
	Timeout time.Duration
}

// DefaultTimeout bounds a Redis round trip when RedisOptions.Timeout is 0:
// long enough for a loaded Redis, short enough that a call setup does not
// stall behind a dead one.
const DefaultTimeout = 500 * time.Millisecond

// Redis is the Store shared through Redis.
type Redis struct {
	c       redis.UniversalClient
	keys    Keys
	ttl     int64 // seconds
	timeout time.Duration
	// split makes each step its own single-key script, because a Cluster
	// rejects a script whose keys hash to different slots.
	split bool
	// skewMS is the server's clock minus ours, in ms, once skewKnown.
	skewMS    atomic.Int64
	skewKnown atomic.Bool
}

var _ Store = (*Redis)(nil)

// NewRedis connects lazily (go-redis dials on first use), so it fails only
// on a bad URL; an unreachable Redis shows up as errors from the calls.
func NewRedis(opts RedisOptions) (*Redis, error) {
	uo, err := ParseURL(opts.URL)
	if err != nil {
		return nil, err
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.TTL <= 0 {
		opts.TTL = DefaultTTL
	}
	// The socket timeouts back up the context: a call never waits longer
	// than Timeout for a dial, a write or a reply.
	uo.DialTimeout = opts.Timeout
	uo.ReadTimeout = opts.Timeout
	uo.WriteTimeout = opts.Timeout
	uo.PoolTimeout = opts.Timeout
	uo.ContextTimeoutEnabled = true
	c := redis.NewUniversalClient(uo)
	_, cluster := c.(*redis.ClusterClient)
	return &Redis{
		c:       c,
		keys:    opts.Keys,
		ttl:     int64(math.Ceil(opts.TTL.Seconds())),
		timeout: opts.Timeout,
		split:   cluster,
	}, nil
}

// Client exposes the underlying client, for health checks and metrics.
func (r *Redis) Client() redis.UniversalClient { return r.c }

// Close implements Store.
func (r *Redis) Close() error { return r.c.Close() }

// Lua helpers shared by the scripts. Time comes from the server (TIME is
// allowed in scripts since Redis 5 replicates effects) so nodes with skewed
// clocks agree on what has expired.
const luaPrelude = `
local now = tonumber(redis.call('TIME')[1])
local function cur(k) return tonumber(redis.call('GET', k) or '0') or 0 end
local function touch(from) for i = from, #KEYS do redis.call('EXPIRE', KEYS[i], ARGV[#ARGV]) end end
local function decr(k)
  local n = redis.call('DECR', k)
  if n < 0 then redis.call('SET', k, 0); n = 0 end
  return n
end
local function incr(k)
  local n = redis.call('INCR', k)
  if n < 1 then redis.call('SET', k, 1); n = 1 end
  return n
end
`

// addScript: KEYS membership, primary counter[, size counter];
// ARGV member, limit, deadline, ttl. Returns {status, count, server ms}: 1
// added, 0 already a member, -1 limit reached, -2 too late (nothing
// changed). deadline (server ms, 0 none) is when the caller stops waiting:
// a stalled Redis serves the commands it buffered once it runs again, and
// an Add whose caller gave up (and rejected the call, or counted it as
// uncertain) must not count a call the node no longer admits.
var addScript = redis.NewScript(luaPrelude + `
local t = redis.call('TIME')
local nowms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local deadline = tonumber(ARGV[3])
if deadline > 0 and nowms > deadline then return {-2, cur(KEYS[2]), nowms} end
local ttl = tonumber(ARGV[4])
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if score and tonumber(score) > now then
  redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
  touch(1)
  return {0, cur(KEYS[2]), nowms}
end
local c = cur(KEYS[2])
local limit = tonumber(ARGV[2])
if limit > 0 and c + 1 > limit then return {-1, c, nowms} end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
local n = incr(KEYS[2])
if #KEYS >= 3 then incr(KEYS[3]) end
touch(1)
return {1, n, nowms}
`)

// removeScript: KEYS membership, primary[, size]; ARGV member, ttl.
// Returns {status, count}: 1 removed, 0 not a live member (nothing counted).
var removeScript = redis.NewScript(luaPrelude + `
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score then return {0, cur(KEYS[2])} end
redis.call('ZREM', KEYS[1], ARGV[1])
if tonumber(score) <= now then return {0, cur(KEYS[2])} end
local n = decr(KEYS[2])
if #KEYS >= 3 then decr(KEYS[3]) end
touch(2)
return {1, n}
`)

// Single-key scripts for Cluster mode (see split).

// claimScript: KEYS membership; ARGV member, deadline, ttl. {1, server
// ms} newly claimed, {0, ms} was live, {-2, ms} too late (see addScript).
var claimScript = redis.NewScript(luaPrelude + `
local t = redis.call('TIME')
local nowms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local deadline = tonumber(ARGV[2])
if deadline > 0 and nowms > deadline then return {-2, nowms} end
local ttl = tonumber(ARGV[3])
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
local was = score and tonumber(score) > now
if not was then redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now) end
redis.call('ZADD', KEYS[1], now + ttl, ARGV[1])
touch(1)
if was then return {0, nowms} end
return {1, nowms}
`)

// releaseScript: KEYS membership; ARGV member, ttl. 1 if a live member was
// removed.
var releaseScript = redis.NewScript(luaPrelude + `
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score then return 0 end
redis.call('ZREM', KEYS[1], ARGV[1])
if tonumber(score) <= now then return 0 end
return 1
`)

// incrScript: KEYS counter; ARGV limit, ttl. {1, n} or {-1, current}.
var incrScript = redis.NewScript(luaPrelude + `
local c = cur(KEYS[1])
local limit = tonumber(ARGV[1])
if limit > 0 and c + 1 > limit then return {-1, c} end
local n = incr(KEYS[1])
touch(1)
return {1, n}
`)

// decrScript: KEYS counter; ARGV ttl. Count after, floored at 0.
var decrScript = redis.NewScript(luaPrelude + `
local n = decr(KEYS[1])
touch(1)
return n
`)

// touchScript: KEYS counters; ARGV ttl. Refreshes the TTL of those that exist.
var touchScript = redis.NewScript(luaPrelude + `
touch(1)
return cur(KEYS[1])
`)

func (r *Redis) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, r.timeout)
}

// pair decodes a {status, count} script reply.
func pair(v any, err error) (int64, int64, error) {
	var out [2]int64
	err = ints(v, err, out[:])
	return out[0], out[1], err
}

// ints decodes a script reply of len(out) integers.
func ints(v any, err error, out []int64) error {
	if err != nil {
		return err
	}
	a, ok := v.([]any)
	if !ok || len(a) != len(out) {
		return fmt.Errorf("unexpected script reply %v", v)
	}
	for i := range out {
		if out[i], ok = a[i].(int64); !ok {
			return fmt.Errorf("unexpected script reply %v", v)
		}
	}
	return nil
}

// errTooLate: Redis served an Add after its caller had stopped waiting,
// and refused it.
var errTooLate = errors.New("reached Redis after its deadline (Redis stalled?): not counted")

// deadline is the server time (ms) at which a call started now, bounded by
// ctx and the store's timeout, stops waiting; 0 while the server's clock
// is not known yet.
func (r *Redis) deadline(ctx context.Context, start time.Time) int64 {
	if !r.skewKnown.Load() {
		return 0
	}
	end := start.Add(r.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(end) {
		end = d
	}
	return end.UnixMilli() + r.skewMS.Load()
}

// learnClock notes the server's clock from a reply to a call made between
// start and end: its offset from ours is what deadline adds. A slow round
// trip says little about when the server read its clock, so only quick
// ones teach it.
func (r *Redis) learnClock(start, end time.Time, serverMS int64) {
	rtt := end.Sub(start)
	if rtt > 50*time.Millisecond {
		return
	}
	mid := start.Add(rtt / 2).UnixMilli()
	r.skewMS.Store(serverMS - mid)
	r.skewKnown.Store(true)
}

func keyList(keys ...string) []string {
	out := keys[:0:0]
	for _, k := range keys {
		if k != "" {
			out = append(out, k)
		}
	}
	return out
}

// Add implements Store.
func (r *Redis) Add(ctx context.Context, p Profile, value string, m Member, limit int64) (int64, error) {
	what := func() string {
		return fmt.Sprintf("add dialog %s of node %s to %s", m.Dialog, m.Node, describe(p, value))
	}
	if err := check(p, &m); err != nil {
		return 0, fmt.Errorf("cachedb: %s: %w", what(), err)
	}
	primary, size := r.keys.counters(p, value)
	mkey := r.keys.Membership(m.Node)
	id := memberID(p, value, m.Dialog)
	if limit < 0 {
		limit = 0
	}
	var status, n int64
	var err error
	if r.split {
		status, n, err = r.addSplit(ctx, mkey, id, primary, size, limit)
	} else {
		start := time.Now()
		ctx, cancel := r.ctx(ctx)
		defer cancel()
		var out [3]int64
		v, rerr := addScript.Run(ctx, r.c, keyList(mkey, primary, size), id, limit, r.deadline(ctx, start), r.ttl).Result()
		err = ints(v, rerr, out[:])
		status, n = out[0], out[1]
		if err == nil {
			r.learnClock(start, time.Now(), out[2])
		}
	}
	if err == nil && status == -2 {
		err = errTooLate
	}
	if err != nil {
		return 0, fmt.Errorf("cachedb: %s (key %s): %w", what(), primary, err)
	}
	if status < 0 {
		return n, fmt.Errorf("cachedb: %s: %w (limit %d)", what(), ErrLimit, limit)
	}
	return n, nil
}

// addSplit is Add in Cluster mode: claim the membership, then the limited
// counter, then the size counter, each atomic on its own key.
func (r *Redis) addSplit(ctx context.Context, mkey, id, primary, size string, limit int64) (int64, int64, error) {
	start := time.Now()
	c, cancel := r.ctx(ctx)
	claimed, serverMS, err := pair(claimScript.Run(c, r.c, []string{mkey}, id, r.deadline(c, start), r.ttl).Result())
	cancel()
	if err == nil {
		r.learnClock(start, time.Now(), serverMS)
		if claimed == -2 {
			err = errTooLate
		}
	}
	if err != nil {
		return 0, 0, fmt.Errorf("membership %s: %w", mkey, err)
	}
	if claimed == 0 {
		c, cancel := r.ctx(ctx)
		defer cancel()
		n, err := touchScript.Run(c, r.c, keyList(primary), r.ttl).Int64()
		if err == nil && size != "" {
			err = touchScript.Run(c, r.c, []string{size}, r.ttl).Err()
		}
		return 0, n, err
	}
	c, cancel = r.ctx(ctx)
	status, n, err := pair(incrScript.Run(c, r.c, []string{primary}, limit, r.ttl).Result())
	cancel()
	if err != nil || status < 0 {
		// Give the claim back so the member is not left recorded without
		// being counted.
		c, cancel := r.ctx(ctx)
		defer cancel()
		if rerr := releaseScript.Run(c, r.c, []string{mkey}, id, r.ttl).Err(); rerr != nil {
			err = errors.Join(err, fmt.Errorf("release membership %s: %w", mkey, rerr))
		}
		return status, n, err
	}
	if size != "" {
		c, cancel := r.ctx(ctx)
		defer cancel()
		if _, _, err := pair(incrScript.Run(c, r.c, []string{size}, 0, r.ttl).Result()); err != nil {
			return 0, 0, fmt.Errorf("size counter %s: %w", size, err)
		}
	}
	return status, n, nil
}

// Remove implements Store.
func (r *Redis) Remove(ctx context.Context, p Profile, value string, m Member) (int64, error) {
	n, _, err := r.remove(ctx, p, value, m)
	return n, err
}

func (r *Redis) remove(ctx context.Context, p Profile, value string, m Member) (int64, bool, error) {
	what := func() string {
		return fmt.Sprintf("remove dialog %s of node %s from %s", m.Dialog, m.Node, describe(p, value))
	}
	if err := check(p, &m); err != nil {
		return 0, false, fmt.Errorf("cachedb: %s: %w", what(), err)
	}
	primary, size := r.keys.counters(p, value)
	mkey := r.keys.Membership(m.Node)
	id := memberID(p, value, m.Dialog)
	var status, n int64
	var err error
	if r.split {
		status, n, err = r.removeSplit(ctx, mkey, id, primary, size)
	} else {
		c, cancel := r.ctx(ctx)
		defer cancel()
		status, n, err = pair(removeScript.Run(c, r.c, keyList(mkey, primary, size), id, r.ttl).Result())
	}
	if err != nil {
		return 0, false, fmt.Errorf("cachedb: %s (key %s): %w", what(), primary, err)
	}
	return n, status == 1, nil
}

func (r *Redis) removeSplit(ctx context.Context, mkey, id, primary, size string) (int64, int64, error) {
	c, cancel := r.ctx(ctx)
	released, err := releaseScript.Run(c, r.c, []string{mkey}, id, r.ttl).Int64()
	cancel()
	if err != nil {
		return 0, 0, fmt.Errorf("membership %s: %w", mkey, err)
	}
	if released == 0 {
		c, cancel := r.ctx(ctx)
		defer cancel()
		n, err := r.get(c, primary)
		return 0, n, err
	}
	c, cancel = r.ctx(ctx)
	n, err := decrScript.Run(c, r.c, []string{primary}, r.ttl).Int64()
	cancel()
	if err != nil {
		return 0, 0, err
	}
	if size != "" {
		c, cancel := r.ctx(ctx)
		defer cancel()
		if err := decrScript.Run(c, r.c, []string{size}, r.ttl).Err(); err != nil {
			return 0, 0, fmt.Errorf("size counter %s: %w", size, err)
		}
	}
	return 1, n, nil
}

func (r *Redis) get(ctx context.Context, key string) (int64, error) {
	n, err := r.c.Get(ctx, key).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	return n, err
}

// Size implements Store.
func (r *Redis) Size(ctx context.Context, p Profile, value string) (int64, error) {
	key := r.keys.sizeKey(p, value)
	if err := check(p, nil); err != nil {
		return 0, fmt.Errorf("cachedb: size of %s: %w", describe(p, value), err)
	}
	ctx, cancel := r.ctx(ctx)
	defer cancel()
	n, err := r.get(ctx, key)
	if err != nil {
		return 0, fmt.Errorf("cachedb: size of %s (key %s): %w", describe(p, value), key, err)
	}
	return n, nil
}

// globEscape quotes the characters SCAN MATCH treats as a pattern.
func globEscape(s string) string {
	var b strings.Builder
	for _, c := range s {
		if strings.ContainsRune(`*?[]\`, c) {
			b.WriteByte('\\')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// Values implements Store. It SCANs (on every master in a Cluster) rather
// than keeping an index, because OpenSIPS nodes sharing the Redis would not
// maintain one. Each SCAN page and each GET is bounded by Timeout.
func (r *Redis) Values(ctx context.Context, p Profile) (map[string]int64, error) {
	if err := check(p, nil); err != nil {
		return nil, fmt.Errorf("cachedb: values of profile %s: %w", p.Name, err)
	}
	if !p.WithValue {
		return nil, fmt.Errorf("cachedb: values of profile %s: profile has no value", p.Name)
	}
	pattern := globEscape(r.keys.ValuePrefix+p.Name+"_") + "*"
	out := map[string]int64{}
	scan := func(ctx context.Context, c redis.UniversalClient) error {
		var cursor uint64
		for {
			sc, cancel := r.ctx(ctx)
			keys, next, err := c.Scan(sc, cursor, pattern, 100).Result()
			cancel()
			if err != nil {
				return fmt.Errorf("scan %s: %w", pattern, err)
			}
			for _, k := range keys {
				v, ok := r.keys.valueOf(p.Name, k)
				if !ok {
					continue
				}
				gc, cancel := r.ctx(ctx)
				n, err := r.get(gc, k)
				cancel()
				if err != nil {
					return fmt.Errorf("get %s: %w", k, err)
				}
				if n > 0 {
					out[v] = n
				}
			}
			if next == 0 {
				return nil
			}
			cursor = next
		}
	}
	var err error
	if cc, ok := r.c.(*redis.ClusterClient); ok {
		// ForEachMaster runs concurrently; serialise the map writes.
		var mu = make(chan struct{}, 1)
		err = cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error {
			mu <- struct{}{}
			defer func() { <-mu }()
			return scan(ctx, c)
		})
	} else {
		err = scan(ctx, r.c)
	}
	if err != nil {
		return nil, fmt.Errorf("cachedb: values of profile %s: %w", p.Name, err)
	}
	return out, nil
}

// Reconcile implements Store. It reads the node's live memberships and
// removes each through the same atomic step as Remove: only the caller whose
// ZREM succeeds decrements, so concurrent reconcilers, or one restarted after
// a crash half way, remove each membership exactly once. Expired records are
// then dropped; their counts went with the counters' TTL.
func (r *Redis) Reconcile(ctx context.Context, node string, keep func(dialog string) bool) (int, error) {
	mkey := r.keys.Membership(node)
	ids, now, err := r.liveMembers(ctx, mkey)
	if err != nil {
		return 0, fmt.Errorf("cachedb: reconcile node %s (key %s): %w", node, mkey, err)
	}
	done := 0
	for _, id := range ids {
		p, value, dialog, err := parseMemberID(id)
		if err != nil {
			// Not a record we wrote; leave it to expire.
			continue
		}
		if keep != nil && keep(dialog) {
			continue
		}
		_, ok, err := r.remove(ctx, p, value, Member{Node: node, Dialog: dialog})
		if err != nil {
			return done, fmt.Errorf("cachedb: reconcile node %s: %w", node, err)
		}
		if ok {
			done++
		}
	}
	c, cancel := r.ctx(ctx)
	defer cancel()
	if err := r.c.ZRemRangeByScore(c, mkey, "-inf", fmt.Sprint(now)).Err(); err != nil {
		return done, fmt.Errorf("cachedb: reconcile node %s: drop expired records from %s: %w", node, mkey, err)
	}
	return done, nil
}

// liveMembers reads the records of mkey that have not expired, by the
// server's clock, and returns that clock in Unix seconds.
func (r *Redis) liveMembers(ctx context.Context, mkey string) ([]string, int64, error) {
	c, cancel := r.ctx(ctx)
	defer cancel()
	t, err := r.c.Time(c).Result()
	if err != nil {
		return nil, 0, err
	}
	now := t.Unix()
	ids, err := r.c.ZRangeByScore(c, mkey, &redis.ZRangeBy{Min: fmt.Sprintf("(%d", now), Max: "+inf"}).Result()
	return ids, now, err
}

// EpochKey holds a random value written by the first node that finds it
// missing: it goes with a flush or a restart without persistence.
const EpochKey = "imsdlg_epoch"

// epochScript: KEYS epoch; ARGV a fresh value. Returns the epoch, creating
// it when missing.
var epochScript = redis.NewScript(`
local e = redis.call('GET', KEYS[1])
if e then return e end
redis.call('SET', KEYS[1], ARGV[1])
return ARGV[1]
`)

var _ Generationer = (*Redis)(nil)

// Generation implements Generationer: the epoch key, and the run id of the
// server (of every master in a Cluster), which changes with a restart and
// with a failover to a replica, whose data may have lagged.
func (r *Redis) Generation(ctx context.Context) (string, error) {
	c, cancel := r.ctx(ctx)
	defer cancel()
	fresh := strconv.FormatUint(rand.Uint64(), 36)
	epoch, err := epochScript.Run(c, r.c, []string{EpochKey}, fresh).Text()
	if err != nil {
		return "", fmt.Errorf("cachedb: generation (key %s): %w", EpochKey, err)
	}
	var ids []string
	runID := func(ctx context.Context, c redis.UniversalClient) error {
		info, err := c.Info(ctx, "server").Result()
		if err != nil {
			return err
		}
		for line := range strings.Lines(info) {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "run_id:"); ok {
				ids = append(ids, v)
				return nil
			}
		}
		return errors.New("INFO server has no run_id")
	}
	if cc, ok := r.c.(*redis.ClusterClient); ok {
		var mu sync.Mutex
		err = cc.ForEachMaster(c, func(ctx context.Context, m *redis.Client) error {
			mu.Lock()
			defer mu.Unlock()
			return runID(ctx, m)
		})
		slices.Sort(ids)
	} else {
		err = runID(c, r.c)
	}
	if err != nil {
		return "", fmt.Errorf("cachedb: generation (run id): %w", err)
	}
	return epoch + "/" + strings.Join(ids, ","), nil
}

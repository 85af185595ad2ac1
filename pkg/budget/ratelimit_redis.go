package budget

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisRateStore keeps the rate limits in Redis, shared by every replica:
// a hash per key (fields r and t, each bucket's tat in µs since the
// epoch), read and written by one Lua script, which Redis runs atomically,
// so a request charges both buckets or neither under any interleaving of
// replicas. A key expires when both its buckets are full again (deleted
// means full). Time is the Redis server's (TIME), one clock for every
// replica; Options.Now replaces it (tests).
type RedisRateStore struct {
	client  redis.Scripter
	prefix  string
	now     func() time.Time
	timeout time.Duration
}

// RedisRateOptions configures a RedisRateStore.
type RedisRateOptions struct {
	// Prefix is put before every key id (default "tollgate:ratelimit:").
	Prefix string
	// Timeout bounds a Take's round trip (default 1 s).
	Timeout time.Duration
	// Now, when set, replaces the server's clock (tests).
	Now func() time.Time
}

var _ RateStore = (*RedisRateStore)(nil)

// NewRedisRateStore returns the store of the rate limits in client's
// Redis (a *redis.Client, *redis.ClusterClient or redis.UniversalClient).
func NewRedisRateStore(client redis.Scripter, o RedisRateOptions) *RedisRateStore {
	if o.Prefix == "" {
		o.Prefix = "tollgate:ratelimit:"
	}
	if o.Timeout <= 0 {
		o.Timeout = time.Second
	}
	return &RedisRateStore{client: client, prefix: o.Prefix, now: o.Now, timeout: o.Timeout}
}

// redisTake is a Take: ARGV[1] and ARGV[2] the costs in µs, ARGV[3] now in
// µs ("": the server's TIME). It returns {charged, req tat − now, tok tat
// − now}. Lua numbers are doubles: µs since the epoch (~2^51) are exact.
var redisTake = redis.NewScript(fmt.Sprintf(`
local now
if ARGV[3] == '' then
	local t = redis.call('TIME')
	now = tonumber(t[1]) * 1000000 + tonumber(t[2])
else
	now = tonumber(ARGV[3])
end
local rc, tc, w = tonumber(ARGV[1]), tonumber(ARGV[2]), %d
local v = redis.call('HMGET', KEYS[1], 'r', 't')
local r = math.max(tonumber(v[1]) or 0, now)
local t = math.max(tonumber(v[2]) or 0, now)
if r + rc - now <= w and t + tc - now <= w then
	r, t = r + rc, t + tc
	redis.call('HSET', KEYS[1], 'r', string.format('%%.0f', r), 't', string.format('%%.0f', t))
	redis.call('PEXPIRE', KEYS[1], math.floor((math.max(r, t) - now) / 1000) + 1)
	return {1, r - now, t - now}
end
return {0, r - now, t - now}
`, int64(rateWindow/time.Microsecond)))

// Take implements RateStore in one script (EVALSHA; EVAL once if Redis
// does not have it yet).
func (s *RedisRateStore) Take(ctx context.Context, keyID string, reqCost, tokCost time.Duration) (RateTaken, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	rc, tc := micros(reqCost), micros(tokCost)
	now := ""
	if s.now != nil {
		now = fmt.Sprint(s.now().UnixMicro())
	}
	v, err := redisTake.Run(ctx, s.client, []string{s.prefix + keyID}, rc, tc, now).Int64Slice()
	if err != nil {
		return RateTaken{}, err
	}
	if len(v) != 3 {
		return RateTaken{}, fmt.Errorf("budget: rate limit script returned %v", v)
	}
	return takenMicros(v[0] == 1, v[1], v[2], rc, tc), nil
}

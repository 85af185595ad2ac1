package semcache

import (
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tollgate/tollgate/pkg/llm"
)

// Controls are a request's own cache directives.
type Controls struct {
	// NoCache skips the lookup; the answer is still stored.
	NoCache bool
	// NoStore: the answer is not stored.
	NoStore bool
	// MaxAge: only entries at most this old are served (0: no limit).
	// max-age=0 is NoCache.
	MaxAge time.Duration
	// Threshold is the semantic threshold the client asks for (0: the
	// configured one). It may only tighten: the higher of the two applies.
	Threshold float32
	// TTL is the lifetime of the entry the answer is stored as (0: the
	// configured one).
	TTL time.Duration
}

// Header names read by ParseControls.
const (
	HeaderCacheControl   = "Cache-Control"
	HeaderCacheThreshold = "X-Tollgate-Cache-Threshold"
)

// ParseControls reads Cache-Control (no-cache, no-store, max-age=N; other
// directives are ignored, as HTTP caches do) and x-tollgate-cache-threshold
// (a similarity in (0, 1]). A bad value is an error naming its header.
func ParseControls(h http.Header) (Controls, error) {
	var c Controls
	for _, line := range h.Values(HeaderCacheControl) {
		for _, d := range strings.Split(line, ",") {
			name, val, hasVal := strings.Cut(strings.TrimSpace(d), "=")
			switch strings.ToLower(strings.TrimSpace(name)) {
			case "no-cache":
				c.NoCache = true
			case "no-store":
				c.NoStore = true
			case "max-age":
				val = strings.Trim(strings.TrimSpace(val), `"`)
				secs, err := strconv.ParseInt(val, 10, 64)
				if !hasVal || err != nil || secs < 0 || secs > math.MaxInt64/int64(time.Second) {
					return Controls{}, fmt.Errorf("invalid %s header: max-age must be a non-negative number of seconds, got %q", HeaderCacheControl, val)
				}
				if secs == 0 {
					c.NoCache = true
				} else {
					c.MaxAge = time.Duration(secs) * time.Second
				}
			}
		}
	}
	if v := strings.TrimSpace(h.Get(HeaderCacheThreshold)); v != "" {
		f, err := strconv.ParseFloat(v, 32)
		if err != nil || math.IsNaN(f) || f <= 0 || f > 1 {
			return Controls{}, fmt.Errorf("invalid %s header: expected a similarity greater than 0 and at most 1, got %q", strings.ToLower(HeaderCacheThreshold), v)
		}
		c.Threshold = float32(f)
	}
	return c, nil
}

// Cacheable says whether r may be served from and stored in the cache, and
// why not. By default these are not: requests asking for several choices
// (n > 1: a cache would return the same choices every time) or for
// logprobs, conversations carrying results of the side-effecting tools
// named in Options.SideEffectTools (the answer depends on a world that has
// changed), and requests whose temperature is above the bound of their
// route (Options.RouteMaxTemperature) or else Options.MaxTemperature: a
// client asking for variety should get it.
func (c *Cache) Cacheable(r Request) (bool, string) {
	q := r.Chat
	if q == nil {
		return false, "no request body"
	}
	if q.Choices() > 1 {
		return false, "n > 1"
	}
	if (q.Logprobs != nil && *q.Logprobs) || (q.TopLogprobs != nil && *q.TopLogprobs > 0) {
		return false, "logprobs requested"
	}
	p := c.pol.Load()
	if q.Temperature != nil {
		bound, ok := p.routeMaxTemp[r.Model]
		if !ok {
			bound = p.maxTemp
		}
		if *q.Temperature > bound {
			return false, fmt.Sprintf("temperature %g above the cacheable bound %g", *q.Temperature, bound)
		}
	}
	if len(p.sideEffects) > 0 {
		if name := sideEffectResult(q.Messages, p.sideEffects); name != "" {
			return false, "carries a result of side-effecting tool " + strconv.Quote(name)
		}
	}
	return true, ""
}

// sideEffectResult returns the name of a side-effecting tool whose result
// is in the conversation, or "".
func sideEffectResult(msgs []llm.Message, tools map[string]bool) string {
	calls := map[string]string{} // tool_call_id → function name
	for i := range msgs {
		m := &msgs[i]
		for _, tc := range m.ToolCalls {
			calls[tc.ID] = tc.Function.Name
		}
		switch m.Role {
		case "tool":
			if name := calls[m.ToolCallID]; tools[name] {
				return name
			}
		case "function":
			if tools[m.Name] {
				return m.Name
			}
		}
	}
	return ""
}

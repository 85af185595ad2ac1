package qdrant

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"

	qc "github.com/qdrant/go-client/qdrant"
	"google.golang.org/grpc"

	"github.com/tollgate/tollgate/internal/safe"
)

// Quantization is how Qdrant compresses the collection's vectors. It only
// applies when the collection is created; an existing collection keeps its own.
type Quantization string

const (
	// QuantizationNone stores float32 vectors only.
	QuantizationNone Quantization = "none"
	// QuantizationScalar keeps an int8 copy in RAM (4x smaller) and rescores
	// candidates with the original vectors. The default.
	QuantizationScalar Quantization = "scalar"
	// QuantizationBinary keeps one bit per dimension in RAM (32x smaller) and
	// rescores an oversampled candidate list; good for 384-d and larger.
	QuantizationBinary Quantization = "binary"
)

// Defaults applied by New for zero Config fields.
const (
	DefaultPort         = 6334 // Qdrant's gRPC port; 6333 is REST, which this client does not speak
	DefaultTimeout      = 5 * time.Second
	DefaultQuantization = QuantizationScalar
	// DefaultSearchTimeout bounds a search: a lookup waits at most this
	// long for an answer before it is a miss (a search takes milliseconds).
	DefaultSearchTimeout = time.Second
	// DefaultRetryMin and DefaultRetryMax bound the wait between attempts
	// to reach an unavailable Qdrant (capped exponential backoff, jittered).
	DefaultRetryMin = 250 * time.Millisecond
	DefaultRetryMax = 10 * time.Second
	// DefaultMaxQueued bounds the points kept while Qdrant is unavailable;
	// DefaultMaxQueuedBytes their size (vectors and entries).
	DefaultMaxQueued      = 10_000
	DefaultMaxQueuedBytes = 64 << 20
)

// Config configures an Index. Either URL or Host (+ Port, UseTLS) names the
// server; Client replaces all three (tests, or callers sharing a client).
type Config struct {
	// URL is the gRPC endpoint, e.g. "http://qdrant:6334" or
	// "https://xyz.cloud.qdrant.io:6334". https turns TLS on; a missing port
	// means 6334. It overrides Host, Port and UseTLS.
	URL    string
	Host   string
	Port   int
	UseTLS bool
	// APIKey is sent as the api-key header. It is never logged.
	APIKey string

	// Embedder and Dim name the collection, one per embedding model and
	// dimension: tollgate_<embedder>_<dim>. Collection overrides the name.
	Embedder   string
	Dim        int
	Collection string

	// Quantization of a collection this index creates (default scalar).
	Quantization Quantization
	// ExactSearch asks Qdrant for an exact scan instead of HNSW. Filtered
	// searches over small scopes are exact anyway (Qdrant scans the payload
	// index below its full-scan threshold); this forces it for large scopes.
	ExactSearch bool

	// Timeout bounds each call to Qdrant (default 5s); a caller's earlier
	// deadline still wins.
	Timeout time.Duration
	// SearchTimeout bounds each search (default 1s), shorter than Timeout:
	// a lookup that waits longer is better served as a miss.
	SearchTimeout time.Duration

	// RetryMin and RetryMax bound the backoff between attempts to reach an
	// unavailable Qdrant (defaults 250ms and 10s): the wait doubles from
	// RetryMin up to RetryMax, each wait drawn from its upper half.
	RetryMin, RetryMax time.Duration
	// MaxQueued and MaxQueuedBytes bound the points kept, while Qdrant is
	// unavailable, to be upserted when it returns (defaults 10,000 and 64
	// MiB); points beyond them are dropped and counted.
	MaxQueued      int
	MaxQueuedBytes int

	// Client, when set, is used as is and not closed by Index.Close.
	Client *qc.Client
	// DialOptions are appended to the client's gRPC dial options.
	DialOptions []grpc.DialOption

	// Now is the clock for the sweeper (default time.Now).
	Now func() time.Time
	// Supervisor runs the sweeper (nil: panics are still recovered, and
	// logged to slog.Default).
	Supervisor *safe.Supervisor
	// Logger receives sweeper and compatibility messages (default slog.Default()).
	Logger *slog.Logger

	// sleep waits d or until ctx ends (false then), and jitter returns a
	// number in [0, 1): the backoff's clock and randomness, injected by
	// tests.
	sleep  func(ctx context.Context, d time.Duration) bool
	jitter func() float64
}

// LogValue keeps the API key out of logs.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("url", c.URL),
		slog.String("host", c.Host),
		slog.Int("port", c.Port),
		slog.Bool("tls", c.UseTLS),
		slog.Bool("api_key_set", c.APIKey != ""),
		slog.String("collection", c.collection()),
		slog.String("quantization", string(c.Quantization)),
	)
}

// withDefaults returns c with the defaults filled in and the URL resolved
// into Host, Port and UseTLS.
func (c Config) withDefaults() (Config, error) {
	if c.URL != "" {
		host, port, tls, err := parseURL(c.URL)
		if err != nil {
			return c, err
		}
		c.Host, c.Port, c.UseTLS = host, port, tls
	}
	if c.Host == "" {
		c.Host = "localhost"
	}
	if c.Port == 0 {
		c.Port = DefaultPort
	}
	if c.Quantization == "" {
		c.Quantization = DefaultQuantization
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.SearchTimeout == 0 {
		c.SearchTimeout = DefaultSearchTimeout
	}
	if c.RetryMin == 0 {
		c.RetryMin = DefaultRetryMin
	}
	if c.RetryMax == 0 {
		c.RetryMax = DefaultRetryMax
	}
	c.RetryMax = max(c.RetryMax, c.RetryMin)
	if c.MaxQueued == 0 {
		c.MaxQueued = DefaultMaxQueued
	}
	if c.MaxQueuedBytes == 0 {
		c.MaxQueuedBytes = DefaultMaxQueuedBytes
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.sleep == nil {
		c.sleep = sleep
	}
	if c.jitter == nil {
		c.jitter = rand.Float64
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c, nil
}

// Validate reports every problem with the configuration.
func (c Config) Validate() error {
	var errs []error
	if c.URL != "" {
		if _, _, _, err := parseURL(c.URL); err != nil {
			errs = append(errs, err)
		}
	}
	if c.Dim <= 0 {
		errs = append(errs, fmt.Errorf("qdrant.dim: must be positive, got %d", c.Dim))
	}
	if c.Embedder == "" && c.Collection == "" {
		errs = append(errs, errors.New("qdrant.embedder: required to name the collection"))
	}
	if c.Port < 0 || c.Port > 65535 {
		errs = append(errs, fmt.Errorf("qdrant.port: %d out of range", c.Port))
	}
	switch c.Quantization {
	case "", QuantizationNone, QuantizationScalar, QuantizationBinary:
	default:
		errs = append(errs, fmt.Errorf("qdrant.quantization: %q is not none, scalar or binary", c.Quantization))
	}
	if c.Timeout < 0 {
		errs = append(errs, fmt.Errorf("qdrant.timeout: negative %v", c.Timeout))
	}
	if c.SearchTimeout < 0 {
		errs = append(errs, fmt.Errorf("qdrant.search_timeout: negative %v", c.SearchTimeout))
	}
	if c.RetryMin < 0 || c.RetryMax < 0 {
		errs = append(errs, fmt.Errorf("qdrant.retry: negative backoff %v..%v", c.RetryMin, c.RetryMax))
	}
	if c.MaxQueued < 0 || c.MaxQueuedBytes < 0 {
		errs = append(errs, fmt.Errorf("qdrant.max_queued: negative bound %d points, %d bytes", c.MaxQueued, c.MaxQueuedBytes))
	}
	return errors.Join(errs...)
}

func parseURL(raw string) (host string, port int, tls bool, err error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", 0, false, fmt.Errorf("qdrant.url: %w", err)
	}
	switch u.Scheme {
	case "http", "grpc":
	case "https", "grpcs":
		tls = true
	default:
		return "", 0, false, fmt.Errorf("qdrant.url: scheme %q is not http, https, grpc or grpcs", u.Scheme)
	}
	if u.User != nil {
		return "", 0, false, errors.New("qdrant.url: credentials belong in api_key, not the URL")
	}
	host = u.Hostname()
	if host == "" {
		return "", 0, false, fmt.Errorf("qdrant.url: %q has no host", u.Redacted())
	}
	port = DefaultPort
	if p := u.Port(); p != "" {
		port, err = strconv.Atoi(p)
		if err != nil || port <= 0 || port > 65535 {
			return "", 0, false, fmt.Errorf("qdrant.url: bad port %q", p)
		}
	}
	return host, port, tls, nil
}

// collection is the collection's name: tollgate_<embedder>_<dim>, with every
// character Qdrant or a shell might dislike replaced by '_'.
func (c Config) collection() string {
	if c.Collection != "" {
		return c.Collection
	}
	return CollectionName(c.Embedder, c.Dim)
}

// CollectionName derives the collection for an embedder and dimension.
func CollectionName(embedder string, dim int) string {
	var b strings.Builder
	b.WriteString("tollgate_")
	for _, r := range strings.ToLower(embedder) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	b.WriteByte('_')
	b.WriteString(strconv.Itoa(dim))
	return b.String()
}

func (c Config) addr() string { return net.JoinHostPort(c.Host, strconv.Itoa(c.Port)) }

// sleep is the default Config.sleep: a timer that ctx interrupts.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

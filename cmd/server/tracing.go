package main

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"

	"github.com/tollgate/tollgate/pkg/config"
	"github.com/tollgate/tollgate/pkg/providers"
)

// tracing is OpenTelemetry's wiring: the tracer provider the gateway
// traces requests with, exporting over OTLP/HTTP in batches; the incoming
// W3C traceparent honoured; the outgoing one set on every upstream call.
// Its zero value is tracing off: no provider, no wrapping, no cost.
type tracing struct {
	provider *sdktrace.TracerProvider
	prop     propagation.TraceContext
}

// tracingFlushWait bounds the export of the spans still buffered at
// shutdown: a collector that is down must not hold the process.
const tracingFlushWait = 5 * time.Second

// newTracing starts exporting traces when c sets an endpoint.
func newTracing(ctx context.Context, c config.Otel, logger *slog.Logger) (*tracing, error) {
	if c.Endpoint == "" {
		return &tracing{}, nil
	}
	exp, err := otlptracehttp.New(ctx, otlptracehttp.WithEndpointURL(tracesURL(c.Endpoint)), otlptracehttp.WithHeaders(c.Headers))
	if err != nil {
		return nil, err
	}
	// Export failures (a collector down) are the SDK's to report, through
	// the process-wide handler: into our log, at most the batcher's pace.
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) { logger.Warn("otel: exporting traces failed", "err", err) }))
	res, err := resource.Merge(resource.Default(), resource.NewSchemaless(attribute.String("service.name", c.ServiceName)))
	if err != nil {
		return nil, err
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(c.SampleRatio))))
	logger.Info("tracing: exporting OpenTelemetry traces", "endpoint", redactedEndpoint(c.Endpoint), "service", c.ServiceName, "sample_ratio", c.SampleRatio)
	return &tracing{provider: tp}, nil
}

// tracesURL is the OTLP/HTTP traces URL of a collector's base URL, as
// OTEL_EXPORTER_OTLP_ENDPOINT is read: /v1/traces is added to the path
// unless it is there.
func tracesURL(endpoint string) string {
	endpoint = strings.TrimRight(endpoint, "/")
	if strings.HasSuffix(endpoint, "/v1/traces") {
		return endpoint
	}
	return endpoint + "/v1/traces"
}

// redactedEndpoint is the endpoint without any query (a token may ride
// there).
func redactedEndpoint(endpoint string) string {
	before, _, _ := strings.Cut(endpoint, "?")
	return before
}

// Provider is the gateway's tracer provider; nil when tracing is off.
func (t *tracing) Provider() trace.TracerProvider {
	if t.provider == nil {
		return nil
	}
	return t.provider
}

// wrap makes h's requests carry the span context of their traceparent
// header, so that a request's span is the caller's span's child.
func (t *tracing) wrap(h http.Handler) http.Handler {
	if t.provider == nil {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("traceparent") != "" {
			r = r.WithContext(t.prop.Extract(r.Context(), propagation.HeaderCarrier(r.Header)))
		}
		h.ServeHTTP(w, r)
	})
}

// upstreamClient is the HTTP client of the upstreams: the providers'
// shared transport, setting traceparent on every call made under a span.
// nil (the providers' own client) when tracing is off.
func (t *tracing) upstreamClient() *http.Client {
	if t.provider == nil {
		return nil
	}
	return &http.Client{Transport: propagating{base: providers.DefaultTransport, prop: t.prop}}
}

// propagating sets the W3C trace context of its request's span.
type propagating struct {
	base http.RoundTripper
	prop propagation.TraceContext
}

func (p propagating) RoundTrip(r *http.Request) (*http.Response, error) {
	if !trace.SpanContextFromContext(r.Context()).IsValid() {
		return p.base.RoundTrip(r)
	}
	r = r.Clone(r.Context()) // a RoundTripper must not change its caller's request
	p.prop.Inject(r.Context(), propagation.HeaderCarrier(r.Header))
	return p.base.RoundTrip(r)
}

// shutdown exports the spans still buffered, waiting at most
// tracingFlushWait.
func (t *tracing) shutdown(logger *slog.Logger) {
	if t.provider == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), tracingFlushWait)
	defer cancel()
	if err := t.provider.Shutdown(ctx); err != nil {
		logger.Warn("tracing: flushing the last spans failed", "err", err)
	}
}

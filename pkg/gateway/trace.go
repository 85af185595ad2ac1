package gateway

import (
	"context"
	"net/http"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"

	"github.com/tollgate/tollgate/pkg/llm"
	"github.com/tollgate/tollgate/pkg/router"
)

// This file is the exchange's trace (OpenTelemetry): a server span per
// request, named "{operation} {model}" as the GenAI semantic conventions
// name it, with a child span for the cache lookup, the plan, each upstream
// attempt and the settlement. Attributes follow the GenAI conventions
// (gen_ai.*) plus tollgate.* for what only a gateway knows: cost and
// savings, cache result, route, attempts, request and key ids. Never a
// prompt, a completion, an error message (upstreams quote prompts in
// them) or a key's secret. With no tracer every method returns at once:
// tracing off costs a nil check.

// tracerScope names the spans' instrumentation scope.
const tracerScope = "github.com/tollgate/tollgate/pkg/gateway"

// Span names of the exchange's steps.
const (
	spanLookup = "tollgate.cache.lookup"
	spanPlan   = "tollgate.plan"
	spanSettle = "tollgate.settle"
)

// Attribute keys: the GenAI semantic conventions', then tollgate's own.
const (
	attrOperation     = attribute.Key("gen_ai.operation.name")
	attrRequestModel  = attribute.Key("gen_ai.request.model")
	attrMaxTokens     = attribute.Key("gen_ai.request.max_tokens")
	attrTemperature   = attribute.Key("gen_ai.request.temperature")
	attrResponseModel = attribute.Key("gen_ai.response.model")
	attrProvider      = attribute.Key("gen_ai.provider.name")
	attrInputTokens   = attribute.Key("gen_ai.usage.input_tokens")
	attrOutputTokens  = attribute.Key("gen_ai.usage.output_tokens")
	attrFinish        = attribute.Key("gen_ai.response.finish_reasons")
	attrStatusCode    = attribute.Key("http.response.status_code")
	attrErrorType     = attribute.Key("error.type")

	attrRequestID     = attribute.Key("tollgate.request_id")
	attrKeyID         = attribute.Key("tollgate.key_id")
	attrStream        = attribute.Key("tollgate.stream")
	attrCost          = attribute.Key("tollgate.cost_micros")
	attrEstimated     = attribute.Key("tollgate.cost_estimated")
	attrSaved         = attribute.Key("tollgate.saved_micros")
	attrCache         = attribute.Key("tollgate.cache")
	attrSimilarity    = attribute.Key("tollgate.cache.similarity")
	attrCacheRule     = attribute.Key("tollgate.cache.reason")
	attrVerified      = attribute.Key("tollgate.cache.verified")
	attrRoute         = attribute.Key("tollgate.route")
	attrFallback      = attribute.Key("tollgate.fallback")
	attrAttempts      = attribute.Key("tollgate.attempts")
	attrTTFT          = attribute.Key("tollgate.time_to_first_token_ms")
	attrJudge         = attribute.Key("tollgate.judge")
	attrCandidates    = attribute.Key("tollgate.plan.candidates")
	attrChosen        = attribute.Key("tollgate.plan.model")
	attrDowngrade     = attribute.Key("tollgate.plan.downgrade")
	attrModel         = attribute.Key("tollgate.model")
	attrDeployment    = attribute.Key("tollgate.deployment")
	attrAttemptNumber = attribute.Key("tollgate.attempt")
)

// maxModelName bounds the model a client asked for in a span's name.
const maxModelName = 256

// tracerOf is the gateway's tracer: nil (off) for no provider or a noop one.
func tracerOf(tp trace.TracerProvider) trace.Tracer {
	if tp == nil {
		return nil
	}
	if _, off := tp.(noop.TracerProvider); off {
		return nil
	}
	return tp.Tracer(tracerScope)
}

// exchangeTrace is what the exchange keeps of its trace.
type exchangeTrace struct {
	span   trace.Span // the request's
	finish []string   // finish reasons, in order, once each
}

// traceStart opens the request's span as a child of whatever ctx carries
// (an incoming traceparent), and returns ctx carrying it. op is the GenAI
// operation: chat or embeddings; req is nil for embeddings.
func (x *exchange) traceStart(ctx context.Context, op string, req *llm.ChatRequest) context.Context {
	if x.g.tracer == nil {
		return ctx
	}
	model := llm.Clip(x.meta.Requested, maxModelName) // the client's words: not a name until resolved
	kv := make([]attribute.KeyValue, 0, 8)            // one list per call: the SDK copies it once
	kv = append(kv, attrOperation.String(op), attrRequestModel.String(model), attrRequestID.String(x.c.RequestID))
	if x.c.Key != nil {
		kv = append(kv, attrKeyID.String(x.c.Key.ID))
	}
	if req != nil {
		kv = append(kv, attrStream.Bool(req.Stream))
		if n := req.OutputLimit(); n > 0 {
			kv = append(kv, attrMaxTokens.Int(n))
		}
		if req.Temperature != nil {
			kv = append(kv, attrTemperature.Float64(*req.Temperature))
		}
	}
	ctx, span := x.g.tracer.Start(ctx, op+" "+model, trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(kv...))
	x.trace = &exchangeTrace{span: span}
	return ctx
}

// traceEnd closes the request's span with what happened: the meta, and
// err (the client's error) as its status.
func (x *exchange) traceEnd(err *error) {
	if x.trace == nil {
		return
	}
	span, meta := x.trace.span, x.meta
	defer span.End()
	if !span.IsRecording() {
		return
	}
	kv := make([]attribute.KeyValue, 0, 20)
	if meta.Model != "" {
		input := meta.PromptTokens
		if meta.Usage != nil {
			input = meta.Usage.PromptTokens
		}
		kv = append(kv, attrResponseModel.String(meta.Model), attrInputTokens.Int(input), attrOutputTokens.Int(meta.CompletionTokens),
			attrCost.Int64(int64(meta.Cost.Micros)), attrSaved.Int64(int64(meta.Saved)))
	}
	if meta.Provider != "" && meta.Provider != CacheProvider {
		kv = append(kv, attrProvider.String(meta.Provider))
	}
	if meta.Cost.Estimated {
		kv = append(kv, attrEstimated.Bool(true))
	}
	if len(x.trace.finish) > 0 {
		kv = append(kv, attrFinish.StringSlice(x.trace.finish))
	}
	kv = x.cacheAttrs(kv)
	if meta.Route != "" {
		kv = append(kv, attrRoute.String(meta.Route))
	}
	if meta.Fallback != "" {
		kv = append(kv, attrFallback.String(meta.Fallback))
	}
	if meta.Judge != "" {
		kv = append(kv, attrJudge.String(meta.Judge))
	}
	kv = append(kv, attrAttempts.Int(meta.Attempts))
	if meta.FirstToken > 0 {
		span.AddEvent("gen_ai.first_token", trace.WithTimestamp(x.start.Add(meta.FirstToken)))
		kv = append(kv, attrTTFT.Float64(float64(meta.FirstToken)/float64(time.Millisecond)))
	}
	status := http.StatusOK
	if *err != nil {
		e := llm.ForClient(*err)
		status = e.Status
		setError(span, e)
	}
	span.SetAttributes(append(kv, attrStatusCode.Int(status))...)
}

// cacheAttrs appends the cache's answer to kv.
func (x *exchange) cacheAttrs(kv []attribute.KeyValue) []attribute.KeyValue {
	meta := x.meta
	if meta.Cache == "" {
		return kv
	}
	kv = append(kv, attrCache.String(meta.Cache))
	if meta.CacheSimilarity > 0 {
		kv = append(kv, attrSimilarity.Float64(float64(meta.CacheSimilarity)))
	}
	if meta.CacheReason != "" {
		kv = append(kv, attrCacheRule.String(cacheRule(meta.CacheReason)))
	}
	if meta.CacheVerified != "" {
		kv = append(kv, attrVerified.String(meta.CacheVerified))
	}
	return kv
}

// cacheRule is the rule a cache reason names, without its details (a
// guard's may quote the prompt's words): "guard: negation: it applies to
// another word" is "guard: negation".
func cacheRule(reason string) string {
	rest, guard := strings.CutPrefix(reason, "guard: ")
	rule, _, _ := strings.Cut(rest, ":")
	if guard {
		return "guard: " + rule
	}
	return rule
}

// setError marks span failed with the error's status and code: never its
// message.
func setError(span trace.Span, e *llm.Error) {
	kind := e.Code
	if kind == "" {
		kind = e.Type
	}
	span.SetAttributes(attrErrorType.String(kind))
	span.SetStatus(codes.Error, shortErr(e))
}

// child starts a span of the request's for one of its steps, whatever
// span ctx carries, and returns ctx carrying it (calls the step makes, an
// embedder's, are its children); nil when not tracing.
func (x *exchange) child(ctx context.Context, name string) (context.Context, trace.Span) {
	if x.trace == nil {
		return ctx, nil
	}
	return x.g.tracer.Start(trace.ContextWithSpan(ctx, x.trace.span), name)
}

// endLookup ends the cache lookup's span with its answer.
func (x *exchange) endLookup(span trace.Span, err *error) {
	if span == nil {
		return
	}
	defer span.End()
	span.SetAttributes(x.cacheAttrs(make([]attribute.KeyValue, 0, 4))...)
	if *err != nil {
		setError(span, llm.ForClient(*err))
	}
}

// endPlan ends a plan's span with its candidates and choice.
func (x *exchange) endPlan(span trace.Span, plan *router.Plan, downgrade bool, err error) {
	if span == nil {
		return
	}
	defer span.End()
	if err != nil {
		span.SetAttributes(attrDowngrade.Bool(downgrade))
		setError(span, llm.ForClient(err))
		return
	}
	names := make([]string, len(plan.Steps))
	for i, s := range plan.Steps {
		names[i] = s.Model.Name
	}
	chosen := ""
	if len(names) > 0 {
		chosen = names[0]
	}
	span.SetAttributes(attrDowngrade.Bool(downgrade), attrCandidates.StringSlice(names), attrChosen.String(chosen), attrRoute.String(plan.Explanation))
}

// endSettle ends the settlement's span with what the request cost.
func (x *exchange) endSettle(span trace.Span, err *error) {
	if span == nil {
		return
	}
	defer span.End()
	span.SetAttributes(attrCost.Int64(int64(x.meta.Cost.Micros)), attrSaved.Int64(int64(x.meta.Saved)))
	if *err != nil {
		if e := llm.ForClient(*err); e.Code == "ledger_unavailable" {
			setError(span, e)
		}
	}
}

// traceAttempt starts one upstream attempt's span ("{operation}
// {upstream model}", a client span) as a child of ctx's, and returns ctx
// carrying it, so that the upstream's HTTP request carries it as its
// traceparent. n is the attempt's number on its deployment (1: the first).
func (x *exchange) traceAttempt(ctx context.Context, a attempt, n int) (context.Context, trace.Span) {
	if x.g.tracer == nil {
		return ctx, nil
	}
	op := "chat"
	if a.step.Model.Mode != router.ModeChat {
		op = "embeddings"
	}
	return x.g.tracer.Start(ctx, op+" "+a.d.Upstream, trace.WithSpanKind(trace.SpanKindClient), trace.WithAttributes(
		attrOperation.String(op), attrProvider.String(a.d.ProviderName), attrRequestModel.String(a.d.Upstream),
		attrModel.String(a.step.Model.Name), attrDeployment.String(a.d.ID), attrAttemptNumber.Int(n)))
}

// endAttempt ends an attempt's span with its outcome: the upstream's
// status and error type when it failed.
func (x *exchange) endAttempt(span trace.Span, err error) {
	if span == nil {
		return
	}
	defer span.End()
	if err == nil {
		return
	}
	e, ok := llm.AsError(err)
	if !ok {
		e = llm.ForClient(err)
	}
	if e.Status > 0 {
		span.SetAttributes(attrStatusCode.Int(e.Status))
	}
	setError(span, e)
}

// traceChunk keeps a stream chunk's finish reasons.
func (x *exchange) traceChunk(c *llm.ChatChunk) {
	if x.trace == nil {
		return
	}
	for i := range c.Choices {
		if r := c.Choices[i].FinishReason; r != nil && *r != "" {
			x.trace.finish = append(x.trace.finish, *r)
		}
	}
}

// traceResponse keeps a response's finish reasons.
func (x *exchange) traceResponse(resp *llm.ChatResponse) {
	if x.trace == nil || resp == nil {
		return
	}
	for _, c := range resp.Choices {
		if c.FinishReason != "" {
			x.trace.finish = append(x.trace.finish, c.FinishReason)
		}
	}
}

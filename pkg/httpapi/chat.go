package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/bytedance/sonic"
	"github.com/gin-gonic/gin"

	"github.com/tollgate/tollgate/pkg/gateway"
	"github.com/tollgate/tollgate/pkg/llm"
	"github.com/tollgate/tollgate/pkg/semcache"
)

func (s *server) chatCompletions(c *gin.Context) {
	req, ok := decodeSeeded(s, c, openAISurface, decodeChat)
	if !ok {
		return
	}
	caller, err := callerOf(c, req)
	if err != nil {
		writeError(c, err)
		return
	}
	if req.Stream {
		s.stream(c, caller, req)
		return
	}
	resp, meta, err := s.Gateway.Chat(c.Request.Context(), caller, req)
	s.answer(c, meta, err, func() ([]byte, any) { return resp.Raw, resp })
}

// headerProviderKey prefixes a per-request provider credential header:
// x-tollgate-provider-key-openai: sk-...
const headerProviderKey = "X-Tollgate-Provider-Key-"

// callerOf collects the key, any provider credentials the request
// carries (x-tollgate-provider-key-* headers, or customer_credentials,
// taken from the body with the other seed fields: see seeds.go) and what
// its seed fields and x-tollgate-config header ask. Credentials are used
// for this call only and never logged or stored.
func callerOf(c *gin.Context, req *llm.ChatRequest) (gateway.Caller, error) {
	r := callOf(c)
	caller := gateway.Caller{Key: r.key, RequestID: r.id}
	if req != nil {
		ctl, err := semcache.ParseControls(c.Request.Header)
		if err != nil {
			return caller, &llm.Error{Status: http.StatusBadRequest, Type: llm.TypeInvalidRequest, Code: "invalid_header", Message: err.Error()}
		}
		caller.Cache = ctl
	}
	for name, vs := range c.Request.Header {
		if len(name) > len(headerProviderKey) && strings.EqualFold(name[:len(headerProviderKey)], headerProviderKey) && len(vs) > 0 {
			if caller.Credentials == nil {
				caller.Credentials = map[string]string{}
			}
			caller.Credentials[strings.ToLower(name[len(headerProviderKey):])] = vs[0]
		}
	}
	if req == nil {
		return caller, nil
	}
	return caller, seeded(c, &caller, req.User)
}

// decodeBody reads and decodes a request body, answering the error itself.
func decodeBody[T any](s *server, c *gin.Context, decode func([]byte) (T, error)) (T, bool) {
	var zero T
	body, err := s.readBody(c)
	if err != nil {
		writeError(c, err)
		return zero, false
	}
	v, err := decode(body)
	if err != nil {
		writeError(c, err)
		return zero, false
	}
	return v, true
}

// answer writes a finished call: the routing and cost headers, then the
// upstream's own bytes when it spoke OpenAI's format, else the typed answer
// marshalled. body is called only on success.
func (s *server) answer(c *gin.Context, meta *gateway.Meta, err error, body func() (raw []byte, typed any)) {
	s.writeDeadline(http.NewResponseController(c.Writer))
	s.routed(c, meta)
	if err != nil {
		writeError(c, err)
		return
	}
	priced(c, meta)
	out, typed := body()
	if out == nil {
		if out, err = json.Marshal(typed); err != nil {
			writeError(c, err)
			return
		}
	}
	c.Data(http.StatusOK, "application/json", out)
}

// routed records the routing outcome for the headers and the access log.
func (s *server) routed(c *gin.Context, meta *gateway.Meta) {
	if meta != nil {
		callOf(c).meta = meta // the access log and metrics read what the gateway did, model or not
	}
	if meta == nil {
		return
	}
	h := c.Writer.Header()
	if r := routeHeader(meta); r != "" {
		h.Set(HeaderRoute, r)
	}
	if meta.Model == "" {
		return
	}
	for k, vs := range meta.Header {
		h[k] = vs
	}
	h.Set(HeaderModel, meta.Model)
	h.Set(HeaderProvider, meta.Provider)
	h.Set(HeaderAttempts, strconv.Itoa(meta.Attempts))
	h.Set(HeaderPromptTokens, strconv.Itoa(meta.PromptTokens))
	if meta.Fallback != "" {
		h.Set(HeaderFallback, meta.Fallback)
	}
	cached(h, meta)
}

// routeHeader is x-tollgate-route: the plan's explanation and what the
// route's prompt enrichment added ("cheapest capable; enriched: +1
// system", or only the enrichment when there is no plan, as on a cache
// hit).
func routeHeader(meta *gateway.Meta) string {
	switch {
	case meta.Enriched == "":
		return meta.Route
	case meta.Route == "":
		return "enriched: " + meta.Enriched
	default:
		return meta.Route + "; enriched: " + meta.Enriched
	}
}

// cached adds the cache headers.
func cached(h http.Header, meta *gateway.Meta) {
	if meta.Cache == "" {
		return
	}
	h.Set(HeaderCache, meta.Cache)
	if meta.Cache == semcache.KindHit || meta.Cache == semcache.KindSemanticHit {
		if meta.CacheEntry != 0 { // 0: served by an identical request's call, not an entry
			h.Set(HeaderCacheID, strconv.FormatUint(meta.CacheEntry, 10))
		}
		h.Set(HeaderCacheSaved, meta.Saved.String())
	}
	if meta.CacheVerified != "" {
		h.Set(HeaderCacheVerified, meta.CacheVerified)
	}
	if meta.CacheSimilarity > 0 {
		h.Set(HeaderCacheSimilarity, strconv.FormatFloat(float64(meta.CacheSimilarity), 'f', 4, 32))
	}
	if r := meta.CacheReason; r != "" {
		// A guard's reason quotes the prompts' words: the header names
		// only its rule.
		if rest, ok := strings.CutPrefix(r, "guard: "); ok {
			rule, _, _ := strings.Cut(rest, ":")
			r = "guard: " + rule
		}
		h.Set(HeaderCacheReason, asciiHeader(r))
	}
}

// asciiHeader replaces what a header value may not carry (controls and
// non-ASCII bytes) with '?'.
func asciiHeader(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c < 0x20 || c >= 0x7f {
			b[i] = '?'
		}
	}
	return string(b)
}

// priced adds the cost headers of a finished, non-streamed call, and the
// budget left after it. (A
// stream's headers leave before its cost is known: its cost is in the
// usage chunk, when asked for, and in the access log.)
func priced(c *gin.Context, meta *gateway.Meta) {
	h := c.Writer.Header()
	if v := meta.Header.Get(gateway.HeaderBudgetRemaining); v != "" {
		h.Set(gateway.HeaderBudgetRemaining, v)
	}
	if meta.Cost.Unpriced {
		h.Set(HeaderCost, "unknown")
		return
	}
	h.Set(HeaderCost, meta.Cost.Micros.String())
	if meta.Cost.Estimated {
		h.Set(HeaderCostEstimated, "true")
	}
}

var (
	sseData = []byte("data: ")
	sseEnd  = []byte("\n\n")
	sseDone = []byte("data: [DONE]\n\n")
)

// writeDeadline gives the next write to the client WriteTimeout from now,
// so a client that stops reading is cut (the write fails, the handler
// returns) instead of holding its handler and upstream for as long as the
// request may last. Each event sets it again, so a slow client that keeps
// reading is not cut. It is the connection's deadline, so it is taken on
// the real clock; net/http clears it once the response is finished.
func (s *server) writeDeadline(rc *http.ResponseController) {
	if s.WriteTimeout > 0 {
		_ = rc.SetWriteDeadline(time.Now().Add(s.WriteTimeout)) // ErrNotSupported: a writer without a connection
	}
}

// stream relays a streamed chat completion as OpenAI's server-sent
// events, the upstream's chunks as they came.
func (s *server) stream(c *gin.Context, caller gateway.Caller, req *llm.ChatRequest) {
	s.relay(c, caller, req, func(*gateway.Meta) streamWriter { return dataStream{c.Writer, writeEvent} })
}

// writeErrorEvent ends a stream that has started with an error event, as
// OpenAI does.
func writeErrorEvent(w gin.ResponseWriter, e *llm.Error) {
	_, _ = w.Write(sseData)
	_, _ = w.Write(errorBody(e))
	_, _ = w.Write(sseEnd)
	w.Flush()
}

func writeEvent(w io.Writer, chunk *llm.ChatChunk) error {
	data := chunk.Raw
	if data == nil {
		var err error
		if data, err = json.Marshal(chunk); err != nil {
			return err
		}
	}
	if _, err := w.Write(sseData); err != nil {
		return err
	}
	if _, err := w.Write(data); err != nil {
		return err
	}
	_, err := w.Write(sseEnd)
	return err
}

func (s *server) embeddings(c *gin.Context) {
	req, ok := decodeBody(s, c, llm.DecodeEmbeddingRequest)
	if !ok {
		return
	}
	caller, err := callerOf(c, nil)
	if err != nil {
		writeError(c, err)
		return
	}
	resp, meta, err := s.Gateway.Embed(c.Request.Context(), caller, req)
	s.answer(c, meta, err, func() ([]byte, any) { return resp.Raw, resp })
}

type modelObject struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Created int64  `json:"created"`
	OwnedBy string `json:"owned_by"`
}

func toModelObject(m gateway.ModelInfo) modelObject {
	owner := m.OwnedBy
	if owner == "" {
		owner = "tollgate"
	}
	return modelObject{ID: m.ID, Object: "model", OwnedBy: owner}
}

func (s *server) listModels(c *gin.Context) {
	models := s.Gateway.Models(callOf(c).key)
	data := make([]modelObject, len(models))
	for i, m := range models {
		data[i] = toModelObject(m)
	}
	c.JSON(http.StatusOK, gin.H{"object": "list", "data": data})
}

func (s *server) getModel(c *gin.Context) {
	m, err := s.Gateway.Model(callOf(c).key, strings.TrimPrefix(c.Param("model"), "/"))
	if err != nil {
		writeError(c, err)
		return
	}
	c.JSON(http.StatusOK, toModelObject(m))
}

// fastJSON decodes request bodies with sonic in its encoding/json-compatible
// mode, for bodies on which the two give the same answer; anything it
// refuses is decoded again by encoding/json (see llm.DecodeChatRequestWith),
// and FuzzDecodeChatMatchesEncodingJSON holds the two to the same answers.
// It refuses:
//   - a body encoding/json would reject: sonic skips the fields it does not
//     decode without checking them (and sonic.Valid accepts bad escapes);
//   - a body that is not valid UTF-8: sonic rewrites invalid bytes to U+FFFD
//     inside raw values too (tool parameters, json_schema, tool_choice,
//     stop), where encoding/json keeps them byte for byte as the client
//     sent them, like the rest of Raw.
func fastJSON(data []byte, v any) error {
	if !json.Valid(data) {
		return errNotJSON
	}
	if !utf8.Valid(data) {
		return errNotUTF8
	}
	return sonic.ConfigStd.Unmarshal(data, v)
}

var errNotUTF8 = errors.New("not valid UTF-8")

var errNotJSON = errors.New("not valid JSON")

func decodeChat(body []byte) (*llm.ChatRequest, error) {
	return llm.DecodeChatRequestWith(body, fastJSON)
}

// strictUnmarshal decodes data into v refusing unknown fields and
// trailing data: the bodies of the translated surfaces (Responses, legacy
// completions, Messages) are not passed on, so nothing tollgate does not
// read may be silently dropped. Each surface words its errors.
func strictUnmarshal(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if len(bytes.TrimSpace(data[dec.InputOffset():])) > 0 {
		return errors.New("unexpected data after the JSON value")
	}
	return nil
}

// chatBody is the chat completion another surface's request becomes
// (Responses, legacy completions, Anthropic's Messages), in the order of
// OpenAI's documentation so golden files are stable.
type chatBody struct {
	Model               string             `json:"model"`
	Messages            []llm.Message      `json:"messages"`
	MaxCompletionTokens *int               `json:"max_completion_tokens,omitempty"`
	MaxTokens           *int               `json:"max_tokens,omitempty"` // legacy completions
	Temperature         *float64           `json:"temperature,omitempty"`
	TopP                *float64           `json:"top_p,omitempty"`
	N                   *int               `json:"n,omitempty"`
	Stop                json.RawMessage    `json:"stop,omitempty"` // a string or strings
	Seed                *int64             `json:"seed,omitempty"`
	PresencePenalty     *float64           `json:"presence_penalty,omitempty"`
	FrequencyPenalty    *float64           `json:"frequency_penalty,omitempty"`
	LogitBias           json.RawMessage    `json:"logit_bias,omitempty"`
	Tools               []llm.Tool         `json:"tools,omitempty"`
	ToolChoice          json.RawMessage    `json:"tool_choice,omitempty"`
	ParallelToolCalls   *bool              `json:"parallel_tool_calls,omitempty"`
	ResponseFormat      json.RawMessage    `json:"response_format,omitempty"`
	ReasoningEffort     string             `json:"reasoning_effort,omitempty"`
	Verbosity           string             `json:"verbosity,omitempty"`
	User                string             `json:"user,omitempty"`
	ServiceTier         string             `json:"service_tier,omitempty"`
	PromptCacheKey      string             `json:"prompt_cache_key,omitempty"`
	SafetyIdentifier    string             `json:"safety_identifier,omitempty"`
	Stream              bool               `json:"stream,omitempty"`
	StreamOptions       *llm.StreamOptions `json:"stream_options,omitempty"`
}

// chatOf decodes a built chat body as a client's would be, so the gateway
// and the upstream see one validated request with its Raw bytes.
func chatOf(b *chatBody) (*llm.ChatRequest, error) {
	body, err := llm.MarshalNoEscape(b)
	if err != nil {
		return nil, err
	}
	return decodeChat(body)
}

// rawJSON is v as JSON, nil for nothing (so omitempty omits it); v is
// always marshallable (strings, maps of strings).
func rawJSON(v any) json.RawMessage {
	if v == nil {
		return nil
	}
	if s, ok := v.([]string); ok && s == nil {
		return nil
	}
	data, _ := llm.MarshalNoEscape(v)
	return data
}

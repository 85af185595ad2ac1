package providers

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"net/http"
	"strconv"
	"strings"
	"unicode"

	"github.com/tollgate/tollgate/pkg/llm"
)

// Embed returns deterministic unit vectors built from hashed words and
// character trigrams, so texts that share wording land close together and
// unrelated texts near orthogonal. Faults and latency apply as for Chat.
func (s *Sim) Embed(ctx context.Context, r *EmbedRequest) (*llm.EmbeddingResponse, error) {
	if r.Embedding == nil {
		return nil, errors.New("providers: embed request without a parsed body")
	}
	call := s.begin()
	if call.fault != "" {
		return nil, s.faultError(ctx, call.fault)
	}
	if err := s.cfg.Sleep(ctx, s.cfg.Latency.Sample(call.rng)); err != nil {
		return nil, s.ctxError(ctx, err)
	}
	dims := s.cfg.EmbeddingDims
	if d := r.Embedding.Dimensions; d != nil && *d > 0 {
		// As OpenAI's models do, dimensions may shorten a vector, never
		// lengthen it: without a bound, dimensions: 100000000 asked the sim
		// for a 200 MB answer.
		if *d > dims {
			return nil, &llm.Error{Status: http.StatusBadRequest, Type: llm.TypeInvalidRequest, Param: "dimensions", Upstream: true, Provider: s.cfg.Name,
				Message: fmt.Sprintf("dimensions must be at most %d for this model, got %d", dims, *d)}
		}
		dims = *d
	}
	model := r.Model
	if model == "" {
		model = r.Embedding.Model
	}
	in := r.Embedding.Input
	texts := in.Texts
	tokens := 0
	for _, t := range in.Texts {
		tokens += len(simTokens(t))
	}
	for _, ids := range in.Tokens {
		var b strings.Builder
		for _, id := range ids {
			b.WriteString(" t")
			b.WriteString(strconv.Itoa(id))
		}
		texts = append(texts, b.String())
		tokens += len(ids)
	}
	resp := &llm.EmbeddingResponse{Object: "list", Model: model, Data: make([]llm.Embedding, len(texts)),
		Usage: &llm.Usage{PromptTokens: tokens, TotalTokens: tokens}}
	for i, t := range texts {
		v := SimEmbedding(t, dims, s.cfg.Seed)
		resp.Data[i] = llm.Embedding{Object: "embedding", Index: i, Embedding: encodeVector(v, r.Embedding.EncodingFormat)}
	}
	raw, err := json.Marshal(resp)
	if err != nil {
		return nil, err
	}
	resp.Raw = raw
	return resp, nil
}

// SimEmbedding is the sim's vector for text: words (weight 1) and
// character trigrams (weight 0.5) of the lower-cased text, hashed with a
// sign into dims buckets and normalised to unit length.
func SimEmbedding(text string, dims int, seed uint64) []float32 {
	v := make([]float64, dims)
	add := func(feature string, w float64) {
		h := fnv.New64a()
		var sb [8]byte
		binary.LittleEndian.PutUint64(sb[:], seed)
		h.Write(sb[:])
		h.Write([]byte(feature))
		x := h.Sum64()
		if x>>63 == 1 {
			w = -w
		}
		v[x%uint64(dims)] += w
	}
	words := strings.FieldsFunc(strings.ToLower(text), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
	for _, w := range words {
		add("w:"+w, 1)
		p := []rune(" " + w + " ")
		for i := 0; i+3 <= len(p); i++ {
			add("c:"+string(p[i:i+3]), 0.5)
		}
	}
	norm := 0.0
	for _, x := range v {
		norm += x * x
	}
	out := make([]float32, dims)
	if norm == 0 {
		out[0] = 1 // empty text: still a unit vector
		return out
	}
	norm = math.Sqrt(norm)
	for i, x := range v {
		out[i] = float32(x / norm)
	}
	return out
}

// encodeVector renders a vector as OpenAI does: a JSON array of floats, or
// for "base64" a base64 string of little-endian float32s.
func encodeVector(v []float32, format string) json.RawMessage {
	if format == "base64" {
		b := make([]byte, 4*len(v))
		for i, x := range v {
			binary.LittleEndian.PutUint32(b[4*i:], math.Float32bits(x))
		}
		return json.RawMessage(strconv.Quote(base64.StdEncoding.EncodeToString(b)))
	}
	b := make([]byte, 0, len(v)*12+2)
	b = append(b, '[')
	for i, x := range v {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendFloat(b, float64(x), 'g', -1, 32)
	}
	return append(b, ']')
}

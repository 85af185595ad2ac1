package httpapi

// The request fields of the gateways clients migrate from (Keywords AI's
// fallback_models, customer_credentials, cache_enabled, cache_ttl,
// cache_options, disable_log, customer_identifier, customer_params,
// metadata) are tollgate's to honour, never an upstream's to see: a real
// OpenAI upstream refuses fields it does not know. takeSeeds finds them
// in one pass over the body's top-level members, before the surface
// decodes it, checks their shape and bounds (a 400 naming the field), and
// returns the body without them; callerOf turns them into the Caller.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gin-gonic/gin"

	"github.com/tollgate/tollgate/pkg/gateway"
	"github.com/tollgate/tollgate/pkg/llm"
)

// surface says what a wire format makes of the seed names it has fields
// of its own for.
type surface uint8

const (
	// openAISurface: chat and legacy completions; every seed field is
	// tollgate's (OpenAI's user stays in the body, and is the customer
	// when no seed field names one).
	openAISurface surface = iota
	// responsesSurface: metadata is the Responses API's own, echoed in
	// the response: read as the tags and left for the surface to decode
	// (it never sends it upstream).
	responsesSurface
	// messagesSurface: metadata is Anthropic's own ({"user_id"}, the
	// customer): not a seed field.
	messagesSurface
)

// The seed fields, in the order of seedNames.
const (
	seedFallbackModels = iota
	seedCustomerCredentials
	seedCacheEnabled
	seedCacheTTL
	seedCacheOptions
	seedDisableLog
	seedCustomerIdentifier
	seedCustomerParams
	seedMetadata
)

var seedNames = [...]string{"fallback_models", "customer_credentials", "cache_enabled", "cache_ttl", "cache_options",
	"disable_log", "customer_identifier", "customer_params", "metadata"}

// Bounds of the seed fields.
const (
	maxCustomerBytes = 256
	maxMetadataPairs = 16
	maxMetadataKey   = 64
	maxMetadataValue = 512
	minCacheTTL      = time.Second
	maxCacheTTL      = 30 * 24 * time.Hour
)

// seeds is what takeSeeds found in a body.
type seeds struct {
	opts        gateway.RequestOptions
	credentials map[string]string // provider (lower case) → API key
	customer    string            // customer_identifier, else customer_params.customer_identifier
	tags        map[string]string
	ttl         time.Duration
}

// seedIndex returns the seed field key names, or -1.
func seedIndex(key []byte) int {
	switch string(key) {
	case "fallback_models":
		return seedFallbackModels
	case "customer_credentials":
		return seedCustomerCredentials
	case "cache_enabled":
		return seedCacheEnabled
	case "cache_ttl":
		return seedCacheTTL
	case "cache_options":
		return seedCacheOptions
	case "disable_log":
		return seedDisableLog
	case "customer_identifier":
		return seedCustomerIdentifier
	case "customer_params":
		return seedCustomerParams
	case "metadata":
		return seedMetadata
	}
	return -1
}

// takeSeeds returns body without the seed fields of sf, and what they
// asked (nil: none). A body with none is returned as it is, at the cost
// of one walk over its top-level members and no allocation. A seed field repeated, spelled in another
// case, or of the wrong shape is a 400 naming it. A body that is not a
// JSON object is returned as it is, for its surface to refuse in its own
// words.
func takeSeeds(body []byte, sf surface) ([]byte, *seeds, error) {
	var s seeds
	var seen uint16
	rest, err := llm.TakeMembers(body, func(key, val []byte) (bool, error) {
		i := seedIndex(key)
		if i == seedMetadata && sf == messagesSurface {
			i = -1
		}
		if i < 0 {
			return false, misspelledSeed(key, sf)
		}
		if seen&(1<<i) != 0 {
			return false, llm.InvalidParam(seedNames[i], fmt.Sprintf("duplicate key %q in the request body: each key may appear only once in an object", seedNames[i]))
		}
		seen |= 1 << i
		if err := s.read(i, val); err != nil {
			return false, err
		}
		return !(i == seedMetadata && sf == responsesSurface), nil
	})
	if err != nil {
		if _, ok := llm.AsError(err); ok {
			return nil, nil, err
		}
		return body, nil, nil // not an object: the surface says so
	}
	if seen == 0 {
		return body, nil, nil
	}
	found := s
	return rest, &found, nil
}

// misspelledSeed refuses a key that encoding/json-minded clients and
// tollgate would read as a seed field but that is not spelled as one
// ("Cache_Enabled"): it would otherwise reach the upstream.
func misspelledSeed(key []byte, sf surface) error {
	plain := true
	for _, b := range key {
		if b >= 'A' && b <= 'Z' || b >= 0x80 {
			plain = false
			break
		}
	}
	if plain {
		return nil
	}
	for i, name := range seedNames {
		if i == seedMetadata && sf == messagesSurface {
			continue
		}
		if bytes.EqualFold(key, []byte(name)) {
			k := llm.Clip(string(key), 64)
			return llm.InvalidParam(k, fmt.Sprintf("unknown key %q: field names are case-sensitive; did you mean %q?", k, name))
		}
	}
	return nil
}

// read checks and keeps the value of seed field i. null is no value.
func (s *seeds) read(i int, val []byte) error {
	name := seedNames[i]
	if string(val) == "null" {
		return nil
	}
	if err := seedJSON(val, name); err != nil {
		return err
	}
	switch i {
	case seedFallbackModels:
		var models []string
		if json.Unmarshal(val, &models) != nil {
			return llm.InvalidParam(name, "fallback_models must be an array of model names")
		}
		if len(models) > gateway.MaxFallbacks {
			return llm.InvalidParam(name, fmt.Sprintf("fallback_models may name at most %d models, got %d", gateway.MaxFallbacks, len(models)))
		}
		for j, m := range models {
			if m == "" {
				return llm.InvalidParam(fmt.Sprintf("%s[%d]", name, j), "a fallback model must be a model name")
			}
		}
		s.opts.Fallbacks = models
	case seedCustomerCredentials:
		return s.readCredentials(val)
	case seedCacheEnabled:
		var on bool
		if json.Unmarshal(val, &on) != nil {
			return llm.InvalidParam(name, "cache_enabled must be true or false")
		}
		s.opts.NoCache = !on
	case seedCacheTTL:
		var secs int64
		if json.Unmarshal(val, &secs) != nil || secs < int64(minCacheTTL/time.Second) || secs > int64(maxCacheTTL/time.Second) {
			return llm.InvalidParam(name, fmt.Sprintf("cache_ttl must be a whole number of seconds from %d to %d", int64(minCacheTTL/time.Second), int64(maxCacheTTL/time.Second)))
		}
		s.ttl = time.Duration(secs) * time.Second
	case seedCacheOptions:
		var o struct {
			CacheByCustomer *bool `json:"cache_by_customer"`
		}
		if err := seedStrict(val, &o, name); err != nil {
			return err
		}
		s.opts.CacheByCustomer = o.CacheByCustomer != nil && *o.CacheByCustomer
	case seedDisableLog:
		var off bool
		if json.Unmarshal(val, &off) != nil {
			return llm.InvalidParam(name, "disable_log must be true or false")
		}
		s.opts.NoLog = off
	case seedCustomerIdentifier:
		return s.readCustomer(val, name, false)
	case seedCustomerParams:
		var p struct {
			CustomerIdentifier json.RawMessage `json:"customer_identifier"`
			Name               *string         `json:"name"`
			Email              *string         `json:"email"`
		}
		if err := seedStrict(val, &p, name); err != nil {
			return err
		}
		if p.CustomerIdentifier != nil {
			return s.readCustomer(p.CustomerIdentifier, name+".customer_identifier", true)
		}
	case seedMetadata:
		var tags map[string]string
		if json.Unmarshal(val, &tags) != nil {
			return llm.InvalidParam(name, "metadata must be an object of string values")
		}
		if len(tags) > maxMetadataPairs {
			return llm.InvalidParam(name, fmt.Sprintf("metadata may hold at most %d pairs", maxMetadataPairs))
		}
		for k, v := range tags {
			if len(k) > maxMetadataKey || len(v) > maxMetadataValue {
				return llm.InvalidParam(name, fmt.Sprintf("metadata keys are at most %d bytes and values at most %d", maxMetadataKey, maxMetadataValue))
			}
		}
		s.tags = tags
	}
	return nil
}

// readCustomer reads a customer identifier; customer_identifier wins over
// customer_params' (weak).
func (s *seeds) readCustomer(val []byte, param string, weak bool) error {
	var id string
	if json.Unmarshal(val, &id) != nil {
		return llm.InvalidParam(param, param+" must be a string")
	}
	if len(id) > maxCustomerBytes {
		return llm.InvalidParam(param, fmt.Sprintf("%s is at most %d bytes", param, maxCustomerBytes))
	}
	if !weak || s.customer == "" {
		s.customer = id
	}
	return nil
}

// readCredentials reads customer_credentials, in Keywords AI's nested
// shape ({"openai": {"api_key": "sk-..."}}) or the flat one ({"openai":
// "sk-..."}). The keys are never quoted in an error.
func (s *seeds) readCredentials(val []byte) error {
	const name = "customer_credentials"
	var byProvider map[string]json.RawMessage
	if json.Unmarshal(val, &byProvider) != nil {
		return llm.InvalidParam(name, "customer_credentials must map provider names to API keys")
	}
	for p, v := range byProvider {
		param := name + "." + llm.Clip(p, 64)
		var key string
		if json.Unmarshal(v, &key) != nil {
			var nested struct {
				APIKey string `json:"api_key"`
			}
			if err := seedStrict(v, &nested, param); err != nil {
				return llm.InvalidParam(param, param+` must be an API key or {"api_key": "..."}`)
			}
			key = nested.APIKey
		}
		if key == "" {
			return llm.InvalidParam(param, param+" must be a non-empty API key")
		}
		if s.credentials == nil {
			s.credentials = make(map[string]string, len(byProvider))
		}
		s.credentials[strings.ToLower(p)] = key
	}
	return nil
}

// seedJSON refuses a seed value that is not JSON or repeats a key in one
// of its objects ({"a":"x","a":"y"}: tollgate would read one, a client
// may mean the other).
func seedJSON(val []byte, name string) error {
	if !json.Valid(val) {
		return llm.InvalidParam(name, name+" is not valid JSON")
	}
	if err := llm.CheckKeys(val, nil); err != nil {
		if e, ok := llm.AsError(err); ok {
			named := *e
			named.Param = name + "." + e.Param
			named.Message = strings.Replace(e.Message, " in the request body", " in "+name, 1)
			return &named
		}
		return err
	}
	return nil
}

// seedStrict decodes an object of a seed field refusing members tollgate
// does not read, named by their path.
func seedStrict(val []byte, v any, name string) error {
	if err := strictUnmarshal(val, v); err != nil {
		msg := err.Error()
		if field, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
			f := llm.Clip(strings.Trim(field, `"`), 64)
			return &llm.Error{Status: http.StatusBadRequest, Type: llm.TypeInvalidRequest, Code: "unsupported_parameter", Param: name + "." + f,
				Message: fmt.Sprintf("%s.%s is not supported by tollgate", name, f)}
		}
		var typeErr *json.UnmarshalTypeError
		if errors.As(err, &typeErr) && typeErr.Field != "" {
			return llm.InvalidParam(name+"."+typeErr.Field, fmt.Sprintf("invalid type for '%s.%s': expected %s", name, typeErr.Field, llm.JSONType(typeErr.Type)))
		}
		return llm.InvalidParam(name, name+" must be an object")
	}
	return nil
}

// decodeSeeded reads a body, takes its seed fields (kept on the call for
// callerOf) and decodes the rest, answering any error itself.
func decodeSeeded[T any](s *server, c *gin.Context, sf surface, decode func([]byte) (T, error)) (T, bool) {
	return decodeBody(s, c, func(body []byte) (T, error) {
		rest, sd, err := takeSeeds(body, sf)
		if err != nil {
			var zero T
			return zero, err
		}
		callOf(c).seeds = sd
		return decode(rest)
	})
}

// seeded fills the caller with what the request's seed fields and its
// x-tollgate-config header ask.
func seeded(c *gin.Context, caller *gateway.Caller, user string) error {
	sd := callOf(c).seeds
	if sd == nil {
		sd = &seeds{}
	}
	for p, k := range sd.credentials {
		if caller.Credentials == nil {
			caller.Credentials = make(map[string]string, len(sd.credentials))
		}
		caller.Credentials[p] = k
	}
	caller.Customer = sd.customer
	if caller.Customer == "" {
		// The customer keys an account of the key's customer budgets and
		// a ledger column: bounded like customer_identifier.
		if len(user) > maxCustomerBytes {
			return llm.InvalidParam("user", fmt.Sprintf("user is at most %d bytes: tollgate records it as the request's customer", maxCustomerBytes))
		}
		caller.Customer = user
	}
	caller.Tags, caller.Options = sd.tags, sd.opts
	if sd.ttl > 0 {
		caller.Cache.TTL = sd.ttl
	}
	if caller.Options.CacheByCustomer && caller.Customer == "" {
		return llm.InvalidParam("cache_options.cache_by_customer", "cache_by_customer needs a customer: send customer_identifier (or customer_params.customer_identifier, or user)")
	}
	if vs := c.Request.Header[headerConfig]; len(vs) > 0 {
		cfg, err := parseConfig(vs[0])
		if err != nil {
			return err
		}
		caller.Options.Config = cfg
	}
	return nil
}

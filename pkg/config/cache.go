package config

import (
	"cmp"
	"fmt"
	"path/filepath"
	"strings"
)

// Cache configures the response caches: the exact cache (always on when
// the cache is) and the semantic cache.
type Cache struct {
	Enabled bool     `yaml:"enabled"`
	TTL     Duration `yaml:"ttl"`
	// MaxBytes bounds the answers held in memory; older ones are read back
	// from SQLite when asked for.
	MaxBytes int64 `yaml:"max_bytes"`
	// MaxTemperature: requests asking for a higher temperature are not
	// cached; RouteMaxTemperature overrides it per model or route asked for.
	MaxTemperature      float64            `yaml:"max_temperature"`
	RouteMaxTemperature map[string]float64 `yaml:"route_max_temperature"`
	// SideEffectTools: conversations carrying a result of these tools are
	// not cached (the world they read has changed).
	SideEffectTools []string `yaml:"side_effect_tools"`
	// Tenants groups keys (by id) into shared tenants whose keys share
	// entries; every other key is its own tenant.
	Tenants       map[string][]string `yaml:"tenants"`
	SweepInterval Duration            `yaml:"sweep_interval"`
	Semantic      Semantic            `yaml:"semantic"`
}

// Semantic configures the semantic cache.
type Semantic struct {
	Enabled bool `yaml:"enabled"`
	// Threshold is the cosine similarity a candidate needs when the guard
	// aligns its words with the request's (clients may only raise it, with
	// x-tollgate-cache-threshold).
	Threshold float64 `yaml:"threshold"`
	// UnalignedThreshold is the cosine at or above which a candidate the
	// guard allows but cannot align is served without a judge; above 1
	// (1.01): never.
	UnalignedThreshold float64 `yaml:"unaligned_threshold"`
	// Verify sends the uncertain candidates to a judge model.
	Verify Verify `yaml:"verify"`
	// Routes overrides Threshold and UnalignedThreshold per model or route
	// asked for (0 or unset: the default above).
	Routes map[string]RouteSemantic `yaml:"routes"`
	// Turns is how many of the last user turns are embedded.
	Turns int `yaml:"turns"`
	// Embedder: use (Universal Sentence Encoder lite, offline, default),
	// provider (an embeddings model this gateway serves: EmbeddingModel),
	// or hashed (weight-free n-grams; a fallback, far weaker).
	Embedder       string `yaml:"embedder"`
	EmbeddingModel string `yaml:"embedding_model"`
	// Dimensions: of the hashed embedder (default 512), or what the
	// provider's model returns (0: asked at start).
	Dimensions int `yaml:"dimensions"`
	// ModelDir holds the USE weights, fetched on first start (default
	// <data_dir>/models: Config.ModelDir).
	ModelDir string `yaml:"model_dir"`
	// Index: embedded (in memory, rebuilt from SQLite at start) or qdrant.
	Index  string `yaml:"index"`
	Qdrant Qdrant `yaml:"qdrant"`
}

// RouteSemantic is one model's or route's own semantic thresholds.
type RouteSemantic struct {
	Threshold          float64 `yaml:"threshold"`
	UnalignedThreshold float64 `yaml:"unaligned_threshold"`
}

// Verify configures the judge: a chat model asked whether an uncertain
// semantic candidate (allowed by the guard but not aligned, below the
// unaligned threshold) answers the request as well as its own answer
// would. Off unless Model is set.
type Verify struct {
	// Model is a chat model or route this gateway serves (a cheap one);
	// "" turns the judge off.
	Model string `yaml:"model"`
	// MinSimilarity is the lowest cosine of a candidate worth asking about
	// (0: the threshold).
	MinSimilarity float64 `yaml:"min_similarity"`
	// Timeout bounds the judge's call, retries included: past it, a miss.
	Timeout Duration `yaml:"timeout"`
}

// Qdrant configures the Qdrant index (gRPC).
type Qdrant struct {
	URL        string `yaml:"url"` // e.g. http://qdrant:6334
	APIKey     string `yaml:"api_key"`
	Collection string `yaml:"collection"` // default tollgate_<embedder>_<dim>
	// Quantization of a collection tollgate creates: scalar (default),
	// binary or none.
	Quantization string   `yaml:"quantization"`
	ExactSearch  bool     `yaml:"exact_search"`
	Timeout      Duration `yaml:"timeout"`
}

func (c *Cache) validate(p *problems) {
	if !c.Enabled {
		return
	}
	if c.TTL <= 0 {
		p.add("cache.ttl", "must be positive")
	}
	if c.MaxBytes <= 0 {
		p.add("cache.max_bytes", "must be positive")
	}
	if c.MaxTemperature < 0 || c.MaxTemperature > 2 {
		p.add("cache.max_temperature", "must be between 0 and 2, got %v", c.MaxTemperature)
	}
	for _, name := range sortedKeys(c.RouteMaxTemperature) {
		if t := c.RouteMaxTemperature[name]; t < 0 || t > 2 {
			p.add("cache.route_max_temperature."+name, "must be between 0 and 2, got %v", t)
		}
	}
	if c.SweepInterval < 0 {
		p.add("cache.sweep_interval", "must not be negative")
	}
	owner := map[string]string{}
	for _, name := range sortedKeys(c.Tenants) {
		path := "cache.tenants." + name
		if strings.TrimSpace(name) == "" {
			p.add("cache.tenants", "a tenant needs a name")
		}
		if len(c.Tenants[name]) == 0 {
			p.add(path, "lists no key ids")
		}
		for i, id := range c.Tenants[name] {
			switch {
			case id == "":
				p.add(fmt.Sprintf("%s[%d]", path, i), "empty key id")
			case owner[id] != "":
				p.add(fmt.Sprintf("%s[%d]", path, i), "key %s is already in tenant %s: a key belongs to one tenant", id, owner[id])
			default:
				owner[id] = name
			}
		}
	}
	s := &c.Semantic
	if !s.Enabled {
		return
	}
	validThreshold := s.Threshold > 0 && s.Threshold <= 1
	if !validThreshold {
		p.add("cache.semantic.threshold", "must be greater than 0 and at most 1, got %v", s.Threshold)
	}
	if s.UnalignedThreshold <= 0 || s.UnalignedThreshold > MaxUnalignedThreshold {
		p.add("cache.semantic.unaligned_threshold", "must be greater than 0 and at most %v (above 1: never), got %v", MaxUnalignedThreshold, s.UnalignedThreshold)
	} else if validThreshold && s.UnalignedThreshold < s.Threshold {
		p.add("cache.semantic.unaligned_threshold", "must be at least threshold (%v): an unaligned candidate is never served more easily than an aligned one, got %v", s.Threshold, s.UnalignedThreshold)
	}
	for _, name := range sortedKeys(s.Routes) {
		r, path := s.Routes[name], "cache.semantic.routes."+name
		valid := true
		if r.Threshold < 0 || r.Threshold > 1 {
			p.add(path+".threshold", "must be greater than 0 and at most 1 (0: cache.semantic.threshold), got %v", r.Threshold)
			valid = false
		}
		if r.UnalignedThreshold < 0 || r.UnalignedThreshold > MaxUnalignedThreshold {
			p.add(path+".unaligned_threshold", "must be greater than 0 and at most %v (0: cache.semantic.unaligned_threshold), got %v", MaxUnalignedThreshold, r.UnalignedThreshold)
			valid = false
		}
		floor, unaligned := cmp.Or(r.Threshold, s.Threshold), cmp.Or(r.UnalignedThreshold, s.UnalignedThreshold)
		if valid && unaligned < floor {
			p.add(path+".unaligned_threshold", "must be at least the route's threshold (%v), got %v", floor, unaligned)
		}
	}
	if v := s.Verify; v.Model != "" {
		if v.MinSimilarity <= 0 || v.MinSimilarity > 1 {
			p.add("cache.semantic.verify.min_similarity", "must be greater than 0 and at most 1 (0: the threshold), got %v", v.MinSimilarity)
		} else if v.MinSimilarity >= s.UnalignedThreshold {
			p.add("cache.semantic.verify.min_similarity", "must be below unaligned_threshold (%v), or the judge is never asked, got %v", s.UnalignedThreshold, v.MinSimilarity)
		}
		positive(p, "cache.semantic.verify.timeout", v.Timeout)
	}
	if s.Turns < 1 {
		p.add("cache.semantic.turns", "must be at least 1")
	}
	if s.Dimensions < 0 {
		p.add("cache.semantic.dimensions", "must not be negative")
	}
	oneOf(p, "cache.semantic.embedder", s.Embedder, "use", "provider", "hashed")
	if s.Embedder == "provider" && s.EmbeddingModel == "" {
		p.add("cache.semantic.embedding_model", "the provider embedder needs an embeddings model this gateway serves")
	}
	oneOf(p, "cache.semantic.index", s.Index, "embedded", "qdrant")
	if s.Index == "qdrant" {
		q := s.Qdrant
		p.url("cache.semantic.qdrant.url", q.URL, qdrantURL)
		oneOf(p, "cache.semantic.qdrant.quantization", q.Quantization, "scalar", "binary", "none")
		positive(p, "cache.semantic.qdrant.timeout", q.Timeout)
	}
}

// ModelDir is where the USE-lite weights are kept: cache.semantic.model_dir,
// by default <data_dir>/models (computed when asked, so a data directory
// given by flag after Load counts).
func (c *Config) ModelDir() string {
	if c.Cache.Semantic.ModelDir != "" {
		return c.Cache.Semantic.ModelDir
	}
	return filepath.Join(c.DataDir, "models")
}

package httpapi

import (
	"net/http"

	"github.com/gin-gonic/gin"

	"github.com/tollgate/tollgate/pkg/audit"
	"github.com/tollgate/tollgate/pkg/gateway"
	"github.com/tollgate/tollgate/pkg/llm"
	"github.com/tollgate/tollgate/pkg/semcache"
)

// cacheStats answers GET /admin/cache: live entries, bytes, index points,
// hits and misses by kind and the money hits saved since the start (the
// ledger keeps the durable record: GET /admin/reports/cost).
func (s *server) cacheStats(c *gin.Context) {
	if s.Cache == nil {
		writeError(c, errNoCache)
		return
	}
	c.JSON(http.StatusOK, gin.H{"object": "cache", "stats": s.Cache.Stats()})
}

// cacheDelete answers DELETE /admin/cache: every entry, or those of one
// tenant (?tenant=NAME, a shared tenant from the config, or ?key=ID, a
// key's own tenant: its shared tenant when it belongs to one) and/or one
// model or route asked for (?model=NAME).
func (s *server) cacheDelete(c *gin.Context) {
	if s.Cache == nil {
		writeError(c, errNoCache)
		return
	}
	tenant, key := c.Query("tenant"), c.Query("key")
	if tenant != "" && key != "" {
		writeError(c, llm.InvalidParam("tenant", "give tenant or key, not both"))
		return
	}
	var f semcache.Filter
	switch {
	case tenant != "":
		f.Tenant = gateway.SharedTenant(tenant)
	case key != "":
		f.Tenant = s.Gateway.Tenant(key)
	}
	f.Model = c.Query("model")
	n, err := s.Cache.Delete(c.Request.Context(), f)
	if err != nil {
		writeError(c, err)
		return
	}
	s.audit(c, audit.ActionCacheDelete, "cache", nil, gin.H{"tenant": tenant, "key": key, "model": f.Model, "deleted": n})
	c.JSON(http.StatusOK, gin.H{"object": "cache.deleted", "deleted": n})
}

var errNoCache = &llm.Error{Status: http.StatusNotFound, Type: llm.TypeNotFound, Code: "cache_disabled",
	Message: "the response cache is disabled in this gateway's config"}

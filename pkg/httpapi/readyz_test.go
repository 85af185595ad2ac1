package httpapi_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/tollgate/tollgate/pkg/httpapi"
)

// TestReadyz: a failing dependency turns /readyz red (503, the cause only
// in the log); a degraded one (the gateway still serves every request, e.g.
// its Qdrant index is away) keeps it 200 and names what is impaired, so a
// load balancer keeps the replica.
func TestReadyz(t *testing.T) {
	tests := []struct {
		name     string
		ready    error
		degraded []string
		status   int
		body     string
	}{
		{name: "ready", status: http.StatusOK, body: `{"status":"ready"}`},
		{name: "degraded stays in the pool", degraded: []string{"semantic cache index (qdrant) unavailable"}, status: http.StatusOK,
			body: `{"degraded":["semantic cache index (qdrant) unavailable"],"status":"degraded"}`},
		{name: "not ready wins over degraded", ready: errors.New("ledger writer gave up"), degraded: []string{"x"}, status: http.StatusServiceUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := httpapi.New(httpapi.Options{
				Ready:    func(context.Context) error { return tt.ready },
				Degraded: func() []string { return tt.degraded },
			})
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("GET", "/readyz", nil))
			b, _ := io.ReadAll(rec.Body)
			if rec.Code != tt.status || (tt.body != "" && string(b) != tt.body) {
				t.Errorf("/readyz = %d %s, want %d %s", rec.Code, b, tt.status, tt.body)
			}
		})
	}
}

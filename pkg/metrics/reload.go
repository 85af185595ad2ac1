package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Reload results (tollgate_config_reloads_total{result}).
const (
	ReloadApplied = "applied"
	ReloadRefused = "refused"
)

// Reloads counts configuration reloads (SIGHUP) and says when the running
// configuration was last loaded successfully, the way Prometheus reports
// its own (alert on refused reloads, or on a timestamp older than the
// last deploy). Safe for concurrent use.
type Reloads struct {
	total *prometheus.CounterVec // result
	last  prometheus.Gauge
}

// NewReloads registers the reload metrics on m's registry; loaded is when
// the configuration running now was loaded (the start).
func NewReloads(m *Metrics, loaded time.Time) *Reloads {
	r := &Reloads{
		total: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: namespace, Name: "config_reloads_total",
			Help: "Configuration reloads (SIGHUP) by result: applied, or refused (the file was invalid; the running configuration was kept)."}, []string{"result"}),
		last: prometheus.NewGauge(prometheus.GaugeOpts{Namespace: namespace, Name: "config_last_reload_success_timestamp_seconds",
			Help: "When the running configuration was loaded: the start, or the last applied reload (unix seconds)."}),
	}
	m.reg.MustRegister(r.total, r.last)
	for _, res := range []string{ReloadApplied, ReloadRefused} {
		r.total.WithLabelValues(res) // present at zero from the start
	}
	r.last.Set(float64(loaded.UnixNano()) / 1e9)
	return r
}

// Applied records a reload applied at t.
func (r *Reloads) Applied(t time.Time) {
	r.total.WithLabelValues(ReloadApplied).Inc()
	r.last.Set(float64(t.UnixNano()) / 1e9)
}

// Refused records a reload refused.
func (r *Reloads) Refused() { r.total.WithLabelValues(ReloadRefused).Inc() }

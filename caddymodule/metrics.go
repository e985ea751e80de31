package caddymodule

import (
	"errors"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/proxycast/caddy-proxycast/credpool"
	"github.com/proxycast/caddy-proxycast/provider"
)

// The collectors are package-level so that their values survive reloads;
// each config registers them on its registry. Labels name providers and
// credential ids, never secrets.
var (
	metricRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "proxycast", Name: "requests_total",
		Help: "Upstream attempts by provider, credential and the HTTP status they meant for the client (502 for an unreachable upstream).",
	}, []string{"provider", "credential", "status"})
	metricLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "caddy", Subsystem: "proxycast", Name: "upstream_duration_seconds",
		Help:    "Time from sending an upstream request to the end of its answer (the whole stream for streams).",
		Buckets: []float64{.05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300},
	}, []string{"provider", "credential"})
	metricTTFB = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "caddy", Subsystem: "proxycast", Name: "upstream_ttfb_seconds",
		Help:    "Time from sending an upstream request to its first event (streams) or its answer.",
		Buckets: []float64{.01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
	}, []string{"provider", "credential"})
	metricRefreshes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "proxycast", Name: "refreshes_total",
		Help: "Key renewals of oauth and cookie credentials by result (renewed, adopted from another instance, renew_failed, needs_login, store_failed, store_abandoned).",
	}, []string{"provider", "credential", "result"})
	metricFailovers = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "proxycast", Name: "failovers_total",
		Help: "Requests moved to another credential after a failed attempt, by the failure's kind.",
	}, []string{"provider", "reason"})
	metricCooldowns = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "proxycast", Name: "cooldowns_total",
		Help: "Rests imposed on credentials, by the failure's kind.",
	}, []string{"provider", "credential", "reason"})
	metricTokens = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "proxycast", Name: "tokens_total",
		Help: "Tokens the upstreams reported answers cost, by provider, credential and kind (prompt, completion, cached, reasoning; cached tokens are part of prompt, reasoning of completion).",
	}, []string{"provider", "credential", "kind"})
	metricClientRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "proxycast", Name: "client_requests_total",
		Help: "Answered requests of named clients, by client name and the model it asked for.",
	}, []string{"client", "model"})
	metricClientTokens = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "proxycast", Name: "client_tokens_total",
		Help: "Tokens the upstreams reported the answers of named clients cost, by client name, model and kind (prompt, completion, cached, reasoning).",
	}, []string{"client", "model", "kind"})
	metricClientEstimated = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "proxycast", Name: "client_estimated_tokens_total",
		Help: "Tokens estimated for the answers of named clients whose upstream reported no usage, by client name, model and kind (prompt, completion).",
	}, []string{"client", "model", "kind"})
	metricEstimated = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "caddy", Subsystem: "proxycast", Name: "estimated_tokens_total",
		Help: "Tokens estimated for answers whose upstream reported no usage, by provider, credential and kind (prompt, completion).",
	}, []string{"provider", "credential", "kind"})
	metricStates = stateCollector{desc: prometheus.NewDesc("caddy_proxycast_credential_state",
		"1 for the state each credential is in (active, cooling, refreshing, needs_login, cookie_expired, unavailable, disabled, invalid), 0 for the others.",
		[]string{"provider", "credential", "state"}, nil)}
)

// credentialMetrics are one credential's collectors, looked up once so
// that the request path does not hash label values.
type credentialMetrics struct {
	prov, id string
	ok       prometheus.Counter
	latency  prometheus.Observer
	ttfb     prometheus.Observer
	// tokens by kind: prompt, completion, cached, reasoning; estimated
	// prompt and completion.
	tokens    [4]prometheus.Counter
	estimated [2]prometheus.Counter
}

func newCredentialMetrics(prov, id string) *credentialMetrics {
	return &credentialMetrics{
		prov: prov, id: id,
		ok:      metricRequests.WithLabelValues(prov, id, "200"),
		latency: metricLatency.WithLabelValues(prov, id),
		ttfb:    metricTTFB.WithLabelValues(prov, id),
		tokens: [4]prometheus.Counter{
			metricTokens.WithLabelValues(prov, id, "prompt"),
			metricTokens.WithLabelValues(prov, id, "completion"),
			metricTokens.WithLabelValues(prov, id, "cached"),
			metricTokens.WithLabelValues(prov, id, "reasoning"),
		},
		estimated: [2]prometheus.Counter{
			metricEstimated.WithLabelValues(prov, id, "prompt"),
			metricEstimated.WithLabelValues(prov, id, "completion"),
		},
	}
}

// used counts what an answer cost; estimated is whether u is an estimate.
func (m *credentialMetrics) used(u provider.Usage, estimated bool) {
	if estimated {
		for i, n := range [2]int64{u.Prompt, u.Completion} {
			if n > 0 {
				m.estimated[i].Add(float64(n))
			}
		}
		return
	}
	for i, n := range [4]int64{u.Prompt, u.Completion, u.Cached, u.Reasoning} {
		if n > 0 {
			m.tokens[i].Add(float64(n))
		}
	}
}

// observe records an attempt that ended with status; ttfb is zero when
// no answer began.
func (m *credentialMetrics) observe(status int, start, ttfb time.Time) {
	if status == 200 {
		m.ok.Inc()
	} else {
		metricRequests.WithLabelValues(m.prov, m.id, strconv.Itoa(status)).Inc()
	}
	m.latency.Observe(time.Since(start).Seconds())
	if !ttfb.IsZero() {
		m.ttfb.Observe(ttfb.Sub(start).Seconds())
	}
}

// forgetCredentialMetrics drops the series of a credential that no config
// has any more: credential ids come and go through the admin API, and
// their series would otherwise stay for good.
func forgetCredentialMetrics(prov, id string) {
	labels := prometheus.Labels{"provider": prov, "credential": id}
	for _, v := range []interface {
		DeletePartialMatch(prometheus.Labels) int
	}{metricRequests, metricLatency, metricTTFB, metricRefreshes, metricCooldowns, metricTokens, metricEstimated} {
		v.DeletePartialMatch(labels)
	}
}

// registerMetrics puts the collectors on a config's registry.
func registerMetrics(reg prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{metricRequests, metricLatency, metricTTFB, metricRefreshes, metricFailovers, metricCooldowns, metricTokens, metricStates,
		metricClientRequests, metricClientTokens, metricClientEstimated, metricEstimated} {
		if err := reg.Register(c); err != nil {
			if _, ok := errors.AsType[prometheus.AlreadyRegisteredError](err); !ok {
				return err
			}
		}
	}
	return nil
}

// stateCollector reports the state of every credential in force, read
// when scraped.
type stateCollector struct{ desc *prometheus.Desc }

func (c stateCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c stateCollector) Collect(ch chan<- prometheus.Metric) {
	now := time.Now()
	inForce(func(prov string, cred effectiveCredential, e *credpool.Entry[*account]) {
		current := stateInvalid
		if e != nil {
			current = e.Value.state.state(now, cred.Disabled)
		}
		for _, st := range allStates {
			val := 0.0
			if st == current {
				val = 1
			}
			ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, val, prov, cred.ID, st)
		}
	})
}

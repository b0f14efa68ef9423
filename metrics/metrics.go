// Package metrics holds the process's Prometheus metrics that components
// update directly (connectors), and serves /metrics. Engine counters that
// already exist elsewhere (records per vertex, invocations, checkpoints)
// are read at scrape time by a collector the app registers (Register).
//
// Metric names follow Prometheus conventions with the statefun_ prefix;
// label values are ingress/egress ids, topics and partitions. Metrics are
// package-level vectors, so a job restarted in the same process updates the
// same series.
package metrics

import (
	"context"
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Registry is the process registry (Go runtime and process collectors
// included).
var Registry = prometheus.NewRegistry()

var (
	// KafkaIngressLag is the high watermark minus the next offset fetched,
	// per partition, as of the last fetch.
	KafkaIngressLag = newGaugeVec("statefun_kafka_ingress_lag", "Kafka ingress consumer lag (records) per partition, as of the last fetch.", "ingress", "topic", "partition")
	// KafkaEgressTransactions counts exactly-once transactions by outcome
	// (committed, recommitted, aborted).
	KafkaEgressTransactions = newCounterVec("statefun_kafka_egress_transactions_total", "Kafka egress transactions by outcome.", "egress", "outcome")
	// KafkaEgressRecords counts records handed to the producer.
	KafkaEgressRecords = newCounterVec("statefun_kafka_egress_records_total", "Records produced by the Kafka egress.", "egress")
	// KafkaEgressFailures counts records the producer failed to write.
	KafkaEgressFailures = newCounterVec("statefun_kafka_egress_failures_total", "Records the Kafka egress failed to produce.", "egress")
)

func newGaugeVec(name, help string, labels ...string) *prometheus.GaugeVec {
	v := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: name, Help: help}, labels)
	Registry.MustRegister(v)
	return v
}

func newCounterVec(name, help string, labels ...string) *prometheus.CounterVec {
	v := prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, labels)
	Registry.MustRegister(v)
	return v
}

func init() {
	Registry.MustRegister(prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
}

// Register adds a collector (replacing nothing: call once per collector).
func Register(c prometheus.Collector) error {
	err := Registry.Register(c)
	var already prometheus.AlreadyRegisteredError
	if errors.As(err, &already) {
		return nil
	}
	return err
}

// Serve serves /metrics on addr until ctx is done. It returns the bound
// address (addr may use port 0).
func Serve(ctx context.Context, addr string) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return "", err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(Registry, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	return ln.Addr().String(), nil
}

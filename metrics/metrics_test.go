package metrics

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestServeExposesTheRegistry(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	addr, err := Serve(ctx, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	KafkaIngressLag.WithLabelValues("ex/in", "topic", "3").Set(42)
	KafkaEgressTransactions.WithLabelValues("ex/out", "committed").Add(2)
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, want := range []string{
		`statefun_kafka_ingress_lag{ingress="ex/in",partition="3",topic="topic"} 42`,
		`statefun_kafka_egress_transactions_total{egress="ex/out",outcome="committed"} 2`,
		`go_goroutines`,
	} {
		if !strings.Contains(string(b), want) {
			t.Errorf("metrics lack %q", want)
		}
	}
}

package translate

import (
	"fmt"

	"github.com/statefun-go/statefun/connectors"
	"github.com/statefun-go/statefun/connectors/kafka"
	"github.com/statefun-go/statefun/statefun/module"
)

// The Kafka kinds: io.statefun.kafka.v1/ingress and
// io.statefun.kafka.v1/egress, both at the job's parallelism.
func init() {
	ingressKinds[module.KindKafkaIngress] = buildKafkaIngress
	egressKinds[module.KindKafkaEgress] = buildKafkaEgress
}

// kafkaSourceConfig turns a parsed Kafka ingress spec into the connector's
// configuration.
func kafkaSourceConfig(id string, s *module.KafkaIngressSpec) kafka.SourceConfig {
	cfg := kafka.SourceConfig{ID: id, Properties: s.ConsumerProperties(),
		Startup: kafka.StartupPosition{Type: s.StartupPosition.Type, Date: s.StartupPosition.Date}}
	seen := map[string]bool{}
	for _, r := range s.Topics {
		if !seen[r.Name] {
			seen[r.Name] = true
			cfg.Topics = append(cfg.Topics, r.Name)
		}
	}
	if len(s.StartupPosition.Offsets) > 0 {
		cfg.Startup.Offsets = kafka.Offsets{}
		for _, o := range s.StartupPosition.Offsets {
			if cfg.Startup.Offsets[o.Topic] == nil {
				cfg.Startup.Offsets[o.Topic] = map[int32]int64{}
			}
			cfg.Startup.Offsets[o.Topic][o.Partition] = o.Offset
		}
	}
	return cfg
}

// kafkaSinkConfig turns a parsed Kafka egress spec into the connector's
// configuration.
func kafkaSinkConfig(id string, s *module.KafkaEgressSpec) kafka.SinkConfig {
	return kafka.SinkConfig{ID: id, Properties: s.ProducerProperties(), Semantic: s.DeliverySemantic,
		TransactionTimeout: s.TransactionTimeout}
}

func buildKafkaIngress(in *module.Ingress, parallelism int) (IngressBuild, error) {
	s, ok := in.Spec.(*module.KafkaIngressSpec)
	if !ok {
		return IngressBuild{}, fmt.Errorf("kafka ingress: unexpected spec %T", in.Spec)
	}
	cfg := kafkaSourceConfig(in.ID.String(), s)
	if err := cfg.Validate(); err != nil {
		return IngressBuild{}, err
	}
	// A topic listed twice keeps its last entry (as upstream).
	last := map[string]int{}
	for i, r := range s.Topics {
		last[r.Name] = i
	}
	var routes []Route
	for i, r := range s.Topics {
		if last[r.Name] != i {
			continue
		}
		rt := Route{Name: r.Name, ValueType: r.ValueType.String()}
		for _, t := range r.Targets {
			rt.Targets = append(rt.Targets, t.String())
		}
		routes = append(routes, rt)
	}
	return IngressBuild{
		Parallelism: parallelism,
		Routes:      routes,
		Source:      func(int) connectors.Source { return kafka.NewSource(cfg) },
	}, nil
}

func buildKafkaEgress(eg *module.Egress, parallelism int) (int, SinkFactory, error) {
	s, ok := eg.Spec.(*module.KafkaEgressSpec)
	if !ok {
		return 0, nil, fmt.Errorf("kafka egress: unexpected spec %T", eg.Spec)
	}
	cfg := kafkaSinkConfig(eg.ID.String(), s)
	if err := cfg.Validate(); err != nil {
		return 0, nil, err
	}
	return parallelism, func(i int) connectors.Sink { return kafka.NewSink(cfg, i) }, nil
}

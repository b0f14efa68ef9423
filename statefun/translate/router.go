package translate

import (
	"fmt"
	"time"

	"github.com/statefun-go/statefun/connectors"
	"github.com/statefun-go/statefun/dataflow"
	"github.com/statefun-go/statefun/statefun/envelope"
)

// route is one routing entry of an ingress: messages of this route become
// TypedValue{valueType, bytes} sent to (target, record key) for every target.
type route struct {
	valueType string
	targets   []envelope.Address // ID unset
}

// routerSource chains an ingress connector with its router (as upstream
// chains source and router): one subtask reads records and emits one
// envelope per target, keyed by the record key.
type routerSource struct {
	id     string
	src    connectors.Source
	routes map[string]*route
	ctx    dataflow.Context
	maxP   int
	buf    []connectors.Record
	// Records counts raw records read (for metrics).
	Records int64
}

const readBatch = 512

func (r *routerSource) Open(ctx dataflow.Context) error {
	r.ctx, r.maxP = ctx, ctx.MaxParallelism()
	r.buf = make([]connectors.Record, 0, readBatch)
	if err := r.src.Open(ctx); err != nil {
		return fmt.Errorf("ingress %s: %w", r.id, err)
	}
	return nil
}

func (r *routerSource) Poll() (time.Duration, error) {
	recs, wait, err := r.src.Read(r.buf[:0])
	out := r.ctx.Output()
	for i := range recs {
		rec := &recs[i]
		rt := r.routes[rec.Route]
		if rt == nil {
			return 0, fmt.Errorf("ingress %s: record %s comes from %q, which has no routing entry", r.id, rec.Origin, rec.Route)
		}
		if !rec.HasKey {
			return 0, fmt.Errorf("ingress %s: record %s has no key: every record needs a UTF-8 key, which is the id of the target address", r.id, rec.Origin)
		}
		kg := dataflow.KeyGroupFor(rec.Key, r.maxP)
		for _, t := range rt.targets {
			e := &envelope.Envelope{
				Target:   envelope.Address{Namespace: t.Namespace, Type: t.Type, ID: rec.Key},
				Typename: rt.valueType,
				Value:    rec.Value,
			}
			if err := out.Emit(0, dataflow.Record{KeyGroup: kg, Value: e}); err != nil {
				return 0, err
			}
		}
		recs[i] = connectors.Record{}
	}
	r.Records += int64(len(recs))
	if err != nil && err != dataflow.ErrEndOfInput {
		return 0, fmt.Errorf("ingress %s: %w", r.id, err)
	}
	return wait, err
}

func (r *routerSource) Close() error { return r.src.Close() }

// sinkOperator runs an egress connector.
type sinkOperator struct {
	id   string
	sink connectors.Sink
}

func (s *sinkOperator) Open(ctx dataflow.Context) error {
	if err := s.sink.Open(ctx); err != nil {
		return fmt.Errorf("egress %s: %w", s.id, err)
	}
	return nil
}

func (s *sinkOperator) ProcessRecord(_ int, r dataflow.Record) error {
	if err := s.sink.Write(r.Value.(*envelope.Envelope)); err != nil {
		return fmt.Errorf("egress %s: %w", s.id, err)
	}
	return nil
}

func (s *sinkOperator) EndOfStep() error {
	if err := s.sink.Flush(); err != nil {
		return fmt.Errorf("egress %s: %w", s.id, err)
	}
	return nil
}

func (s *sinkOperator) Close() error { return s.sink.Close() }

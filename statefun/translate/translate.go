package translate

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"

	"github.com/statefun-go/statefun/connectors"
	"github.com/statefun-go/statefun/connectors/datagen"
	"github.com/statefun-go/statefun/connectors/file"
	"github.com/statefun-go/statefun/connectors/stdout"
	"github.com/statefun-go/statefun/dataflow"
	"github.com/statefun-go/statefun/statefun/dispatch"
	"github.com/statefun-go/statefun/statefun/envelope"
	"github.com/statefun-go/statefun/statefun/module"
	"github.com/statefun-go/statefun/statefun/remote"
)

// Job-wide state memory budgets, split evenly over the function subtasks.
const (
	DefaultStateWriteBackBytes = 96 << 20
	DefaultStateCacheBytes     = 64 << 20
)

// IngressBuild is what an ingress kind contributes to the graph.
type IngressBuild struct {
	Parallelism int
	// Routes by connectors.Record.Route (Kafka topic, Kinesis stream).
	Routes []Route
	Source SourceFactory
}

// Route is one routing entry: records of route Name become messages of
// ValueType to every target function type (namespace/name).
type Route struct {
	Name, ValueType string
	Targets         []string
}

// ingressKinds and egressKinds build the connectors of module kinds
// implemented outside this file (Kafka, Kinesis); registered in init
// functions of this package.
var (
	ingressKinds = map[string]func(in *module.Ingress, parallelism int) (IngressBuild, error){}
	egressKinds  = map[string]func(eg *module.Egress, parallelism int) (int, SinkFactory, error){}
)

// SourceFactory builds the connector of one source subtask.
type SourceFactory func(subtask int) connectors.Source

// SinkFactory builds the connector of one sink subtask.
type SinkFactory func(subtask int) connectors.Sink

// Ingress is an ingress declared in code (an embedded module's binder), in
// addition to those of module.yaml.
type Ingress struct {
	ID          string // namespace/name
	Parallelism int    // 0: the job's parallelism
	Source      SourceFactory
	ValueType   string
	Targets     []string // function types namespace/name
}

// Egress is an egress declared in code.
type Egress struct {
	ID   string
	Sink SinkFactory
}

// Options configure Build.
type Options struct {
	JobName        string
	Parallelism    int
	MaxParallelism int
	Registry       *dispatch.Registry
	// Ingresses and Egresses declared in code.
	Ingresses []Ingress
	Egresses  []Egress
	// Stdout replaces os.Stdout for stdout egresses (tests).
	Stdout io.Writer
	// Logger for the remote clients' warnings.
	Logger *slog.Logger
	// H2C makes cleartext http:// endpoints speak HTTP/2 (h2c); only for
	// endpoints known to support it.
	H2C bool
	// Dispatch tunes the function operator; Registry, Egresses,
	// Quiescence and Broker are filled in by Build.
	Dispatch dispatch.Config
}

// Job is the translated job: its graph and the handles the runner needs.
type Job struct {
	Graph      *dataflow.Graph
	Quiescence *dispatch.Quiescence
	// Functions are the function operators, by subtask (filled when the
	// runtime creates them).
	Functions []*dispatch.Operator
	routers   []*routerSource
	clients   []*remote.Client
}

// Close releases the remote endpoint clients (idle connections).
func (j *Job) Close() {
	for _, c := range j.clients {
		c.Close()
	}
}

// Invocations sums the messages processed by the function operators.
func (j *Job) Invocations() int64 {
	var n int64
	for _, f := range j.Functions {
		if f != nil {
			n += f.Invocations
		}
	}
	return n
}

// IngressRecords sums the raw records read by the ingresses.
func (j *Job) IngressRecords() int64 {
	var n int64
	for _, r := range j.routers {
		n += r.Records
	}
	return n
}

// Build translates mod into a job graph. It reports every problem at once.
func Build(mod *module.Module, opts Options) (*Job, error) {
	if opts.Parallelism < 1 {
		opts.Parallelism = 1
	}
	if opts.JobName == "" {
		opts.JobName = "statefun"
	}
	reg := opts.Registry
	if reg == nil {
		reg = dispatch.NewRegistry()
	}
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	var clients []*remote.Client
	for _, ep := range mod.Endpoints {
		c, err := remote.NewClient(ep, remote.Options{Logger: opts.Logger, H2C: opts.H2C})
		if err != nil {
			bad("%v", err)
			continue
		}
		clients = append(clients, c)
		reg.BindRemote(dispatch.FunctionType{Namespace: ep.Functions.Namespace, Name: ep.Functions.Name}, ep.Wildcard,
			&dispatch.RemoteBinding{Invoker: c, MaxBatch: ep.MaxNumBatchRequests, Where: ep.Pos.String()})
	}

	g := dataflow.NewGraph(opts.JobName, opts.MaxParallelism)
	p := opts.Parallelism
	job := &Job{Graph: g, Quiescence: dispatch.NewQuiescence(p), Functions: make([]*dispatch.Operator, p), clients: clients}

	cfg := opts.Dispatch
	// State memory is a per-job budget split over the subtasks, so memory
	// does not grow with parallelism.
	if cfg.StateWriteBackBytes == 0 {
		cfg.StateWriteBackBytes = DefaultStateWriteBackBytes / int64(p)
	}
	if cfg.StateCacheBytes == 0 {
		cfg.StateCacheBytes = DefaultStateCacheBytes / int64(p)
	}
	cfg.Registry = reg
	cfg.Quiescence = job.Quiescence
	cfg.Broker = dispatch.NewBroker(p)
	cfg.Egresses = map[string]int{}

	fn := g.AddOperator("functions", p, func(i int) dataflow.Operator {
		op := dispatch.NewOperator(&cfg, i)
		job.Functions[i] = op
		return op
	})
	fn.CoLocationGroup = "feedback-loop"
	fn.Chained = []string{"feedback-head", "function-dispatcher"}

	// Ingresses: one source vertex each, keyed into the functions.
	type ingressVertex struct {
		id     string
		par    int
		routes map[string]*route
		newSrc SourceFactory
	}
	var ingresses []ingressVertex
	targetsOf := func(where string, ts []string) []envelope.Address {
		var out []envelope.Address
		for _, t := range ts {
			tn, err := module.ParseTypeName(t)
			if err != nil {
				bad("%s: target %q: %v", where, t, err)
				continue
			}
			if !reg.Known(dispatch.FunctionType{Namespace: tn.Namespace, Name: tn.Name}) {
				bad("%s: target %s: no endpoint binds it and no embedded function is registered", where, tn)
			}
			out = append(out, envelope.Address{Namespace: tn.Namespace, Type: tn.Name})
		}
		return out
	}
	names := func(ts []module.TypeName) []string {
		var out []string
		for _, t := range ts {
			out = append(out, t.String())
		}
		return out
	}
	for _, in := range mod.Ingresses {
		where := fmt.Sprintf("%s: ingress %s", in.Pos, in.ID)
		switch s := in.Spec.(type) {
		case *module.GeneratorIngressSpec:
			c := datagen.Config{Count: s.Count, Rate: float64(s.Rate), Keys: int(s.Keys), KeyPrefix: s.KeyPrefix,
				Uniform: s.KeyDistribution == module.KeyUniform, Seed: s.Seed, ValueType: s.ValueType.String()}
			if err := c.Validate(); err != nil {
				bad("%s: %v", where, err)
			}
			ingresses = append(ingresses, ingressVertex{
				id: in.ID.String(), par: p,
				routes: map[string]*route{"": {valueType: s.ValueType.String(), targets: targetsOf(where, names(s.Targets))}},
				newSrc: func(int) connectors.Source { return datagen.New(c) },
			})
		case *module.FileIngressSpec:
			c := file.SourceConfig{Path: s.Path, JSONL: s.Format == module.FormatJSONL, KeyField: s.KeyField,
				ValueField: s.ValueField, Delimiter: s.Delimiter, ValueType: s.ValueType.String(), Skip: s.OnError == module.OnErrorSkip}
			ingresses = append(ingresses, ingressVertex{
				id: in.ID.String(), par: 1,
				routes: map[string]*route{"": {valueType: s.ValueType.String(), targets: targetsOf(where, names(s.Targets))}},
				newSrc: func(int) connectors.Source { return file.NewSource(c) },
			})
		default:
			build := ingressKinds[in.Kind]
			if build == nil {
				bad("%s: kind %s is parsed and validated, but this build cannot run it yet", where, in.Kind)
				continue
			}
			b, err := build(in, p)
			if err != nil {
				bad("%s: %v", where, err)
				continue
			}
			routes := map[string]*route{}
			for _, r := range b.Routes {
				routes[r.Name] = &route{valueType: r.ValueType, targets: targetsOf(where, r.Targets)}
			}
			ingresses = append(ingresses, ingressVertex{id: in.ID.String(), par: b.Parallelism, routes: routes, newSrc: b.Source})
		}
	}
	for _, in := range opts.Ingresses {
		par := in.Parallelism
		if par == 0 {
			par = p
		}
		ingresses = append(ingresses, ingressVertex{
			id: in.ID, par: par,
			routes: map[string]*route{"": {valueType: in.ValueType, targets: targetsOf("ingress "+in.ID, in.Targets)}},
			newSrc: in.Source,
		})
	}
	if len(ingresses) == 0 {
		bad("the module defines no ingress: a StateFun application needs at least one")
	}
	cfg.RouterInputs = len(ingresses)
	for _, iv := range ingresses {
		iv := iv
		v := g.AddSource("ingress "+iv.id, iv.par, func(i int) dataflow.Source {
			rs := &routerSource{id: iv.id, src: iv.newSrc(i), routes: iv.routes}
			job.routers = append(job.routers, rs)
			return rs
		})
		v.Chained = []string{"source", "router"}
		g.Connect(v, fn, dataflow.Keyed)
	}

	tail := g.AddOperator("feedback", p, func(i int) dataflow.Operator { return dispatch.NewTail(cfg.Broker, i) })
	tail.CoLocationGroup = "feedback-loop"
	g.Connect(fn, tail, dataflow.Keyed) // port 0
	g.Feedback(tail, fn)

	// Egresses: one sink vertex each (parallelism 1 unless the kind says).
	type egressVertex struct {
		id      string
		newSink SinkFactory
		par     int
	}
	var egresses []egressVertex
	for _, eg := range mod.Egresses {
		where := fmt.Sprintf("%s: egress %s", eg.Pos, eg.ID)
		switch s := eg.Spec.(type) {
		case *module.FileEgressSpec:
			c := file.SinkConfig{Path: s.Path, Format: connectors.Format(s.Format), Append: s.Append}
			egresses = append(egresses, egressVertex{eg.ID.String(), func(int) connectors.Sink { return file.NewSink(c) }, 1})
		case *module.StdoutEgressSpec:
			f := connectors.Format(s.Format)
			egresses = append(egresses, egressVertex{eg.ID.String(), func(int) connectors.Sink { return stdout.New(f, opts.Stdout) }, 1})
		default:
			build := egressKinds[eg.Kind]
			if build == nil {
				bad("%s: kind %s is parsed and validated, but this build cannot run it yet", where, eg.Kind)
				continue
			}
			par, sink, err := build(eg, p)
			if err != nil {
				bad("%s: %v", where, err)
				continue
			}
			egresses = append(egresses, egressVertex{eg.ID.String(), sink, par})
		}
	}
	for _, eg := range opts.Egresses {
		egresses = append(egresses, egressVertex{eg.ID, eg.Sink, 1})
	}
	sort.SliceStable(egresses, func(i, j int) bool { return egresses[i].id < egresses[j].id })
	for _, ev := range egresses {
		ev := ev
		if _, dup := cfg.Egresses[ev.id]; dup {
			bad("egress %s is defined twice", ev.id)
			continue
		}
		v := g.AddOperator("egress "+ev.id, max(ev.par, 1), func(i int) dataflow.Operator {
			return &sinkOperator{id: ev.id, sink: ev.newSink(i)}
		})
		e := g.Connect(fn, v, dataflow.Rebalance)
		cfg.Egresses[ev.id] = e.FromPort
	}

	job.Quiescence.OnQuiet(func() {
		for _, op := range job.Functions {
			op.PostQuiesced()
		}
	})
	if len(errs) > 0 {
		job.Close()
		return nil, errors.Join(errs...)
	}
	if err := g.Validate(); err != nil {
		return nil, err
	}
	return job, nil
}

package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/statefun-go/statefun/dataflow"
	"github.com/statefun-go/statefun/dataflow/plan"
	"github.com/statefun-go/statefun/dataflow/runtime"
	"github.com/statefun-go/statefun/statefun"
	"github.com/statefun-go/statefun/statefun/dispatch"
	"github.com/statefun-go/statefun/statefun/module"
	"github.com/statefun-go/statefun/statefun/translate"
)

// Config of one run. Zero values are sane defaults.
type Config struct {
	// Modules are module.yaml files or directories.
	Modules []string
	// Strict turns module warnings into errors.
	Strict bool
	// StateDir holds the run's working state (default: a temp dir).
	StateDir       string
	Parallelism    int // default 1
	MaxParallelism int // default dataflow.DefaultMaxParallelism
	// CheckpointInterval injects barriers at this interval (0: none).
	CheckpointInterval time.Duration
	// ShutdownTimeout bounds the graceful drain after a stop request
	// (default 30 s).
	ShutdownTimeout time.Duration
	// Functions are the embedded functions.
	Functions []statefun.StatefulFunctionSpec
	// Ingresses and Egresses declared in code.
	Ingresses []translate.Ingress
	Egresses  []translate.Egress
	Logger    *slog.Logger
	// Stdout receives stdout egresses (default os.Stdout).
	Stdout io.Writer
	Clock  dataflow.Clock
	// Dispatch tunes the function operator.
	Dispatch dispatch.Config
}

// Summary reports what a run did.
type Summary struct {
	IngressRecords int64
	Invocations    int64
	EgressRecords  int64
	Duration       time.Duration
}

func (s Summary) String() string {
	secs := s.Duration.Seconds()
	if secs <= 0 {
		secs = 1e-9
	}
	return fmt.Sprintf("%d ingress records, %d function invocations, %d egress records in %.2fs (%.0f invocations/s)",
		s.IngressRecords, s.Invocations, s.EgressRecords, s.Duration.Seconds(), float64(s.Invocations)/secs)
}

// Prepared is a loaded, validated and translated application, ready to run.
type Prepared struct {
	Module *module.Module
	Job    *translate.Job
	Plan   *plan.Plan
	cfg    Config
}

// Prepare loads the modules and builds the job without starting anything.
// Every configuration problem is reported at once.
func Prepare(cfg Config) (*Prepared, error) {
	if cfg.Parallelism <= 0 {
		cfg.Parallelism = 1
	}
	if cfg.MaxParallelism <= 0 {
		cfg.MaxParallelism = dataflow.DefaultMaxParallelism
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Parallelism > cfg.MaxParallelism {
		return nil, fmt.Errorf("parallelism %d exceeds max parallelism %d", cfg.Parallelism, cfg.MaxParallelism)
	}
	reg := dispatch.NewRegistry()
	if err := reg.AddEmbedded(cfg.Functions...); err != nil {
		return nil, err
	}
	mod := &module.Module{}
	if len(cfg.Modules) > 0 {
		var err error
		mod, err = module.Load(module.Options{
			Strict: cfg.Strict,
			FunctionKnown: func(ns, name string) bool {
				return reg.Known(dispatch.FunctionType{Namespace: ns, Name: name})
			},
		}, cfg.Modules...)
		if err != nil {
			return nil, err
		}
		for _, w := range mod.Warnings {
			cfg.Logger.Warn(w.String())
		}
	}
	job, err := translate.Build(mod, translate.Options{
		Parallelism: cfg.Parallelism, MaxParallelism: cfg.MaxParallelism, Registry: reg,
		Ingresses: cfg.Ingresses, Egresses: cfg.Egresses, Stdout: cfg.Stdout, Dispatch: cfg.Dispatch, Logger: cfg.Logger,
	})
	if err != nil {
		return nil, err
	}
	p, err := plan.Build(job.Graph)
	if err != nil {
		return nil, err
	}
	return &Prepared{Module: mod, Job: job, Plan: p, cfg: cfg}, nil
}

// Run prepares and runs the application until it finishes by itself or ctx
// is cancelled; cancellation starts a graceful shutdown (sources stop, the
// job drains within ShutdownTimeout).
func Run(ctx context.Context, cfg Config) (Summary, error) {
	p, err := Prepare(cfg)
	if err != nil {
		return Summary{}, err
	}
	return p.Run(ctx)
}

// Run runs a prepared application (see Run).
func (p *Prepared) Run(ctx context.Context) (Summary, error) {
	cfg := p.cfg
	log := cfg.Logger
	stateDir := cfg.StateDir
	if stateDir != "" {
		stateDir = filepath.Join(stateDir, "run")
		// Checkpoint restore comes later: until then every run starts over.
		if err := os.RemoveAll(stateDir); err != nil {
			return Summary{}, fmt.Errorf("state dir: %w", err)
		}
	}
	job, err := runtime.New(p.Plan, runtime.Options{Clock: cfg.Clock, Logger: log, StateDir: stateDir})
	if err != nil {
		return Summary{}, err
	}
	defer job.Close()
	defer p.Job.Close()
	start := time.Now()
	if err := job.Start(ctx); err != nil {
		return Summary{}, err
	}
	log.Info("job started", "subtasks", len(p.Plan.Tasks), "parallelism", cfg.Parallelism, "state", job.StateDir())

	var tick <-chan time.Time
	if cfg.CheckpointInterval > 0 {
		t := time.NewTicker(cfg.CheckpointInterval)
		defer t.Stop()
		tick = t.C
	}
	var next dataflow.CheckpointID
	var runErr error
loop:
	for {
		select {
		case <-job.Done():
			runErr = job.Err()
			break loop
		case now := <-tick:
			next++
			job.TriggerBarrier(dataflow.Barrier{ID: next, Timestamp: now.UnixMilli()})
		case <-ctx.Done():
			timeout := cfg.ShutdownTimeout
			if timeout <= 0 {
				timeout = 30 * time.Second
			}
			log.Info("stopping: sources stop, the job drains", "timeout", timeout)
			sctx, cancel := context.WithTimeout(context.Background(), timeout)
			runErr = job.Shutdown(sctx)
			cancel()
			break loop
		}
	}
	sum := p.summary(job, time.Since(start))
	if runErr != nil {
		return sum, runErr
	}
	log.Info("job finished")
	return sum, nil
}

func (p *Prepared) summary(job *runtime.Job, d time.Duration) Summary {
	s := Summary{Duration: d, Invocations: p.Job.Invocations()}
	s.IngressRecords = p.Job.IngressRecords()
	for _, m := range job.Metrics() {
		if len(m.Vertex) > 7 && m.Vertex[:7] == "egress " {
			s.EgressRecords += m.RecordsIn
		}
	}
	return s
}

// ErrUsage marks command-line errors (exit code 2).
var ErrUsage = errors.New("usage")

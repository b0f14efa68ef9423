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

	"github.com/statefun-go/statefun/checkpoint/savepoint"
	"github.com/statefun-go/statefun/checkpoint/store"
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
	// CheckpointInterval takes a checkpoint at this interval (0: none;
	// needs StateDir).
	CheckpointInterval time.Duration
	// Fresh ignores existing checkpoints in StateDir.
	Fresh bool
	// FromSavepoint restores from this savepoint (or checkpoint) directory.
	FromSavepoint string
	// RetainCheckpoints keeps this many complete checkpoints (default 3).
	RetainCheckpoints int
	// RestartAttempts restarts a failed job from its latest checkpoint up
	// to this many times (fixed delay RestartDelay, default 1 s).
	RestartAttempts int
	RestartDelay    time.Duration
	// SavepointRequests triggers a savepoint per value received;
	// OnSavepoint is called with each completed savepoint's directory.
	SavepointRequests <-chan struct{}
	OnSavepoint       func(dir string)
	// SavepointOnStop takes a savepoint when ctx is cancelled, before the
	// graceful stop (needs StateDir).
	SavepointOnStop bool
	// OnStarted is called when every operator is open and the job runs
	// (after each restart too).
	OnStarted func()

	preferCheckpoint bool // set by Run on restarts
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

func (cfg *Config) defaults() {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.RestartDelay <= 0 {
		cfg.RestartDelay = time.Second
	}
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
	if cfg.RetainCheckpoints <= 0 {
		cfg.RetainCheckpoints = 3
	}
	if cfg.RestartDelay <= 0 {
		cfg.RestartDelay = time.Second
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
// job drains within ShutdownTimeout). With a StateDir and a
// CheckpointInterval the job takes checkpoints, restores from the latest
// complete one at start (unless Fresh), and restarts from it after a
// failure (RestartAttempts, RestartDelay).
func Run(ctx context.Context, cfg Config) (Summary, error) {
	cfg.defaults()
	var total Summary
	start := time.Now()
	for attempt := 0; ; attempt++ {
		p, err := Prepare(cfg)
		if err != nil {
			return total, err
		}
		sum, err := p.Run(ctx)
		total.add(sum)
		total.Duration = time.Since(start)
		var jobErr wrapped
		if !errors.As(err, &jobErr) {
			return total, err // nil, or a setup error: not restartable
		}
		if ctx.Err() != nil || attempt >= cfg.RestartAttempts {
			return total, jobErr.err
		}
		cfg.Logger.Error("job failed; restarting from the latest checkpoint", "attempt", attempt+1, "of", cfg.RestartAttempts, "delay", cfg.RestartDelay, "err", jobErr.err)
		select {
		case <-time.After(cfg.RestartDelay):
		case <-ctx.Done():
			return total, jobErr.err
		}
		// A restart resumes from the newest checkpoint, or from the
		// savepoint again when no checkpoint was completed yet.
		cfg.Fresh = false
		cfg.preferCheckpoint = true
	}
}

// wrapped marks failures of a running job (restartable), as opposed to
// setup errors.
type wrapped struct{ err error }

func (w wrapped) Error() string { return w.err.Error() }
func (w wrapped) Unwrap() error { return w.err }

func (s *Summary) add(o Summary) {
	s.IngressRecords += o.IngressRecords
	s.Invocations += o.Invocations
	s.EgressRecords += o.EgressRecords
}

// Run runs a prepared application once (see Run). A failure of the running
// job is returned wrapped so that Run can tell it from setup errors.
func (p *Prepared) Run(ctx context.Context) (Summary, error) {
	cfg := p.cfg
	log := cfg.Logger
	var runDir string
	var drv *driver
	var restore dataflow.Restore
	var firstID dataflow.CheckpointID = 1
	if cfg.StateDir != "" {
		runDir = filepath.Join(cfg.StateDir, "run")
		if err := os.RemoveAll(runDir); err != nil {
			return Summary{}, fmt.Errorf("state dir: %w", err)
		}
		ck, err := store.Open(filepath.Join(cfg.StateDir, "checkpoints"), "job", store.Options{Logger: log})
		if err != nil {
			return Summary{}, err
		}
		sp, err := store.Open(filepath.Join(cfg.StateDir, "savepoints"), "job", store.Options{Logger: log})
		if err != nil {
			return Summary{}, err
		}
		var from *store.Checkpoint
		latest := func() error {
			var skipped []error
			var err error
			if from, skipped, err = ck.Latest(); err != nil {
				return err
			}
			for _, e := range skipped {
				log.Warn("skipping an invalid checkpoint", "reason", e)
			}
			if from == nil && len(skipped) > 0 {
				// Starting from empty state would replay input into
				// outputs that already hold it: the user decides.
				return fmt.Errorf("every checkpoint in %s is invalid (newest: %v); start over with --fresh, or restore a savepoint with --from-savepoint", filepath.Join(cfg.StateDir, "checkpoints"), skipped[0])
			}
			if from != nil {
				log.Info("restoring from the latest complete checkpoint", "id", from.Meta.ID, "dir", from.Dir)
			}
			return nil
		}
		switch {
		case cfg.Fresh:
			log.Info("starting fresh (--fresh): existing checkpoints are ignored")
		case cfg.FromSavepoint != "" && cfg.preferCheckpoint:
			if err := latest(); err != nil {
				return Summary{}, err
			}
			if from != nil {
				break
			}
			fallthrough
		case cfg.FromSavepoint != "":
			if savepoint.IsSavepointDir(cfg.FromSavepoint) {
				// A canonical savepoint becomes a checkpoint for this
				// parallelism first.
				from, err = savepoint.Restore(cfg.FromSavepoint, ck, cfg.Parallelism)
			} else {
				from, err = store.OpenDir(cfg.FromSavepoint)
			}
			if err != nil {
				return Summary{}, fmt.Errorf("--from-savepoint: %w", err)
			}
			log.Info("restoring from savepoint", "dir", cfg.FromSavepoint, "id", from.Meta.ID, "parallelism", from.Meta.Parallelism)
		default:
			if err := latest(); err != nil {
				return Summary{}, err
			}
		}
		if from != nil {
			if from.Meta.MaxParallelism != cfg.MaxParallelism {
				return Summary{}, fmt.Errorf("the snapshot %s has max parallelism %d but the job %d: key groups cannot change (use --max-parallelism %d)", from.Dir, from.Meta.MaxParallelism, cfg.MaxParallelism, from.Meta.MaxParallelism)
			}
			r, err := newRestore(from)
			if err != nil {
				return Summary{}, err
			}
			restore = r
			if !cfg.Fresh {
				firstID = dataflow.CheckpointID(from.Meta.ID) + 1
			}
		}
		// Ids continue after every stored checkpoint and savepoint, so
		// a restore never overwrites one.
		for _, st := range []*store.Store{ck, sp} {
			infos, err := st.List()
			if err != nil {
				return Summary{}, err
			}
			for _, in := range infos {
				firstID = max(firstID, dataflow.CheckpointID(in.ID)+1)
			}
		}
		if cfg.CheckpointInterval > 0 || cfg.SavepointRequests != nil || cfg.SavepointOnStop {
			drv = newDriver(log, ck, sp, cfg.RetainCheckpoints)
		}
	}
	opts := runtime.Options{Clock: cfg.Clock, Logger: log, StateDir: runDir, Restore: restore}
	if drv != nil {
		opts.Backend = drv
		opts.OnTaskFinished = drv.taskFinished
	}
	openStart := time.Now()
	job, err := runtime.New(p.Plan, opts)
	if err != nil {
		return Summary{}, err
	}
	defer job.Close()
	defer p.Job.Close()
	start := time.Now()
	if drv != nil {
		if err := drv.start(job, cfg.CheckpointInterval, firstID, cfg.Parallelism, cfg.MaxParallelism, start); err != nil {
			return Summary{}, err
		}
	}
	if err := job.Start(ctx); err != nil {
		// Opening failed (a restore that cannot work, a missing file...):
		// restarting would fail the same way.
		return Summary{}, err
	}
	collector.set(job, p, drv)
	defer collector.set(nil, nil, nil)
	if cfg.OnStarted != nil {
		cfg.OnStarted()
	}
	log.Info("job started", "startup", time.Since(openStart), "subtasks", len(p.Plan.Tasks), "parallelism", cfg.Parallelism, "state", job.StateDir())

	var tick <-chan time.Time
	var wake <-chan struct{}
	var spDone chan string
	if drv != nil {
		period := min(max(cfg.CheckpointInterval/4, 10*time.Millisecond), 100*time.Millisecond)
		t := time.NewTicker(period)
		defer t.Stop()
		tick, wake, spDone = t.C, drv.wake, drv.savepointDone
	}
	var runErr error
loop:
	for {
		select {
		case <-job.Done():
			runErr = job.Err()
			break loop
		case now := <-tick:
			drv.step(now)
		case <-wake:
			drv.step(time.Now())
		case <-cfg.SavepointRequests:
			if drv != nil {
				drv.savepoint()
			}
		case dir := <-spDone:
			if cfg.OnSavepoint != nil {
				cfg.OnSavepoint(dir)
			}
		case <-ctx.Done():
			timeout := cfg.ShutdownTimeout
			if timeout <= 0 {
				timeout = 30 * time.Second
			}
			if cfg.SavepointOnStop && drv != nil {
				if dir, err := p.stopSavepoint(job, drv, tick, timeout); err != nil {
					log.Error("no savepoint on stop", "err", err)
				} else if cfg.OnSavepoint != nil {
					cfg.OnSavepoint(dir)
				}
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
		return sum, wrapped{runErr}
	}
	log.Info("job finished")
	return sum, nil
}

// stopSavepoint takes a savepoint before a graceful stop and waits for it,
// running the checkpoint driver meanwhile.
func (p *Prepared) stopSavepoint(job *runtime.Job, drv *driver, tick <-chan time.Time, timeout time.Duration) (string, error) {
	p.cfg.Logger.Info("taking a savepoint before stopping")
	drv.savepoint()
	deadline := time.After(timeout)
	for {
		select {
		case dir := <-drv.savepointDone:
			return dir, nil
		case now := <-tick:
			drv.step(now)
		case <-drv.wake:
			drv.step(time.Now())
		case <-job.Done():
			return "", fmt.Errorf("the job ended before the savepoint completed: %v", job.Err())
		case <-deadline:
			return "", fmt.Errorf("the savepoint did not complete within %v", timeout)
		}
	}
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

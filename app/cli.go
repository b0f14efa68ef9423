package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/statefun-go/statefun/metrics"
	"github.com/statefun-go/statefun/statefun"
	"github.com/statefun-go/statefun/statefun/module"
)

// Option customises Main.
type Option func(*Config)

// WithFunctions registers embedded functions.
func WithFunctions(specs ...statefun.StatefulFunctionSpec) Option {
	return func(c *Config) { c.Functions = append(c.Functions, specs...) }
}

// Version is printed by `statefun version`.
var Version = "0.1.0-dev"

// Main runs the statefun command line with os.Args and exits.
func Main(opts ...Option) {
	os.Exit(Execute(os.Args[1:], os.Stdout, os.Stderr, opts...))
}

// Execute runs the command line and returns the process exit code: 0 on a
// clean stop, 1 when the job or the configuration fails, 2 on a usage error.
func Execute(args []string, stdout, stderr io.Writer, opts ...Option) int {
	base := Config{}
	for _, o := range opts {
		o(&base)
	}
	root := &cobra.Command{
		Use:           "statefun",
		Short:         "Stateful Functions runtime",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	root.SetArgs(args)

	var (
		modules            []string
		stateDir, logLevel string
		parallelism, maxP  int
		interval           string
		strict             bool
		shutdownTimeout    time.Duration
		fresh              bool
		fromSavepoint      string
		restartAttempts    int
		retain             int
		spTimeout          time.Duration
		spOnStop           bool
		metricsAddr        string
	)
	addModuleFlags := func(c *cobra.Command) {
		c.Flags().StringArrayVar(&modules, "module", nil, "module.yaml file or directory of modules (repeatable)")
		c.Flags().BoolVar(&strict, "strict", false, "treat module warnings (unknown keys) as errors")
		c.Flags().IntVar(&parallelism, "parallelism", 1, "parallelism of the functions and ingresses")
		c.Flags().IntVar(&maxP, "max-parallelism", 128, "number of key groups (the largest parallelism the job can ever be rescaled to)")
	}

	run := &cobra.Command{
		Use:   "run --module PATH",
		Short: "Run an application in the local mini-cluster until it finishes or SIGINT/SIGTERM",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			level, err := parseLevel(logLevel)
			if err != nil {
				return err
			}
			cfg := base
			cfg.Modules, cfg.Strict, cfg.StateDir = modules, strict, stateDir
			cfg.Parallelism, cfg.MaxParallelism, cfg.ShutdownTimeout = parallelism, maxP, shutdownTimeout
			cfg.Stdout = stdout
			cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
			if interval != "" {
				if cfg.CheckpointInterval, err = parseDuration(interval); err != nil {
					return fmt.Errorf("%w: --checkpoint-interval: %v", ErrUsage, err)
				}
			}
			if len(cfg.Modules) == 0 {
				return fmt.Errorf("%w: --module is required", ErrUsage)
			}
			cfg.Fresh, cfg.FromSavepoint, cfg.RestartAttempts, cfg.RetainCheckpoints = fresh, fromSavepoint, restartAttempts, retain
			cfg.SavepointOnStop = spOnStop
			if (cfg.CheckpointInterval > 0 || fromSavepoint != "" || spOnStop) && stateDir == "" {
				d, err := os.MkdirTemp("", "statefun-state-")
				if err != nil {
					return err
				}
				defer os.RemoveAll(d)
				cfg.StateDir = d
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			if cfg.StateDir != "" {
				// `statefun savepoint --state-dir` finds us through the pid
				// file and asks with SIGUSR1.
				if err := os.MkdirAll(cfg.StateDir, 0o755); err != nil {
					return err
				}
				pidFile := filepath.Join(cfg.StateDir, pidFileName)
				if err := os.WriteFile(pidFile, []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
					return err
				}
				defer os.Remove(pidFile)
				usr1 := make(chan os.Signal, 1)
				signal.Notify(usr1, syscall.SIGUSR1)
				defer signal.Stop(usr1)
				reqs := make(chan struct{}, 1)
				go func() {
					for range usr1 {
						select {
						case reqs <- struct{}{}:
						default:
						}
					}
				}()
				cfg.SavepointRequests = reqs
				cfg.OnSavepoint = func(dir string) { fmt.Fprintf(stderr, "savepoint: %s\n", dir) }
			}
			if metricsAddr != "" {
				addr, err := metrics.Serve(ctx, metricsAddr)
				if err != nil {
					return fmt.Errorf("--metrics-addr: %w", err)
				}
				cfg.Logger.Info("serving Prometheus metrics", "url", "http://"+addr+"/metrics")
			}
			sum, err := Run(ctx, cfg)
			if err != nil {
				return err
			}
			fmt.Fprintf(stderr, "summary: %s\n", sum)
			return nil
		},
	}
	addModuleFlags(run)
	run.Flags().StringVar(&stateDir, "state-dir", "", "directory for the job's state (default: a temporary directory)")
	run.Flags().StringVar(&interval, "checkpoint-interval", "1s", "interval between checkpoints, e.g. 1s or 5sec; 0 disables them (without --state-dir they go to a temporary directory)")
	run.Flags().StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	run.Flags().DurationVar(&shutdownTimeout, "shutdown-timeout", 30*time.Second, "how long a graceful stop may drain before the job is closed")
	run.Flags().BoolVar(&fresh, "fresh", false, "ignore the checkpoints in --state-dir and start from empty state")
	run.Flags().StringVar(&fromSavepoint, "from-savepoint", "", "restore from this savepoint (or checkpoint) directory; the parallelism may differ")
	run.Flags().IntVar(&restartAttempts, "restart-attempts", 3, "restarts from the latest checkpoint after a failure (fixed delay of 1s)")
	run.Flags().IntVar(&retain, "retain-checkpoints", 3, "complete checkpoints to keep")
	run.Flags().StringVar(&metricsAddr, "metrics-addr", "", "serve Prometheus metrics on this address, e.g. 127.0.0.1:9249 (default: off)")
	run.Flags().BoolVar(&spOnStop, "savepoint-on-stop", false, "take a savepoint on SIGINT/SIGTERM before stopping (printed on stderr)")

	savepoint := &cobra.Command{
		Use:   "savepoint --state-dir DIR",
		Short: "Take a savepoint of the job running with --state-dir DIR and print its directory",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if stateDir == "" {
				return fmt.Errorf("%w: --state-dir is required", ErrUsage)
			}
			dir, err := requestSavepoint(stateDir, spTimeout)
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), dir)
			return nil
		},
	}
	savepoint.Flags().StringVar(&stateDir, "state-dir", "", "the --state-dir of the running job")
	savepoint.Flags().DurationVar(&spTimeout, "timeout", time.Minute, "how long to wait for the savepoint")

	validate := &cobra.Command{
		Use:   "validate --module PATH",
		Short: "Check modules and print the application's job graph",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(modules) == 0 {
				return fmt.Errorf("%w: --module is required", ErrUsage)
			}
			cfg := base
			cfg.Modules, cfg.Strict, cfg.Parallelism, cfg.MaxParallelism = modules, strict, parallelism, maxP
			cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
			p, err := Prepare(cfg)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			p.Module.Describe(out)
			fmt.Fprintln(out)
			p.Plan.Describe(out)
			return nil
		},
	}
	addModuleFlags(validate)

	version := &cobra.Command{
		Use:   "version",
		Short: "Print the version",
		Run:   func(cmd *cobra.Command, _ []string) { fmt.Fprintln(cmd.OutOrStdout(), "statefun", Version) },
	}
	root.AddCommand(run, validate, version, savepoint, stateCommand())

	if err := root.Execute(); err != nil {
		fmt.Fprintf(stderr, "statefun: %s\n", strings.TrimPrefix(err.Error(), "usage: "))
		var mod *module.Errors
		switch {
		case errors.Is(err, ErrUsage), isCobraUsage(err):
			return 2
		case errors.As(err, &mod):
			return 1
		}
		return 1
	}
	return 0
}

func isCobraUsage(err error) bool {
	s := err.Error()
	return strings.HasPrefix(s, "unknown flag") || strings.HasPrefix(s, "unknown command") ||
		strings.HasPrefix(s, "invalid argument") || strings.Contains(s, "accepts 0 arg") ||
		strings.HasPrefix(s, "flag needs an argument")
}

const pidFileName = "statefun.pid"

// requestSavepoint signals the job running in stateDir and waits for a new
// savepoint directory to appear.
func requestSavepoint(stateDir string, timeout time.Duration) (string, error) {
	b, err := os.ReadFile(filepath.Join(stateDir, pidFileName))
	if err != nil {
		return "", fmt.Errorf("no job runs with --state-dir %s: %w", stateDir, err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return "", fmt.Errorf("bad pid file: %w", err)
	}
	spDir := filepath.Join(stateDir, "savepoints")
	list := func() map[string]bool {
		m := map[string]bool{}
		entries, _ := os.ReadDir(spDir)
		for _, e := range entries {
			if _, err := os.Stat(filepath.Join(spDir, e.Name(), "_savepoint.json")); err == nil && strings.HasPrefix(e.Name(), "sp-") {
				m[e.Name()] = true
			}
		}
		return m
	}
	before := list()
	if err := syscall.Kill(pid, syscall.SIGUSR1); err != nil {
		return "", fmt.Errorf("signal job (pid %d): %w", pid, err)
	}
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		for name := range list() {
			if !before[name] {
				return filepath.Join(spDir, name), nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return "", fmt.Errorf("no savepoint appeared within %v (is a checkpoint running? see the job's log)", timeout)
}

// parseDuration accepts StateFun's syntax (5min, 2 s, 100ms) and Go's (1m30s).
func parseDuration(s string) (time.Duration, error) {
	if d, err := module.ParseDuration(s); err == nil {
		return d, nil
	}
	return time.ParseDuration(s)
}

func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("%w: --log-level %q: want debug, info, warn or error", ErrUsage, s)
	}
	return l, nil
}

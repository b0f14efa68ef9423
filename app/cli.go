package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

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
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
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
	run.Flags().StringVar(&interval, "checkpoint-interval", "", "interval between checkpoint barriers, e.g. 1s or 5sec (default: none)")
	run.Flags().StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	run.Flags().DurationVar(&shutdownTimeout, "shutdown-timeout", 30*time.Second, "how long a graceful stop may drain before the job is closed")

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
	root.AddCommand(run, validate, version)

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

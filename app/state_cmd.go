package app

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/statefun-go/statefun/checkpoint/savepoint"
	"github.com/statefun-go/statefun/checkpoint/store"
	"github.com/statefun-go/statefun/dataflow"
)

// stateCommand implements `statefun state`: offline inspection, export and
// import of savepoints (package checkpoint/savepoint).
//
// SAVEPOINT arguments are canonical savepoint directories (_savepoint.json);
// export, inspect and convert also accept a stored checkpoint or savepoint
// directory (_metadata, e.g. <state-dir>/savepoints/job/chk-7), converted
// to a canonical savepoint in a temporary directory first.
func stateCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "state",
		Short: "Inspect, export and import savepoints offline",
		Long: `Canonical savepoints are directories of Arrow IPC files (zstd): state.arrow,
messages.arrow, sources.arrow and _savepoint.json. They do not depend on the
parallelism they were taken at, and restore with any parallelism up to their
max parallelism (statefun run --from-savepoint DIR).`,
	}

	oneDir := func(what string) cobra.PositionalArgs {
		return func(c *cobra.Command, args []string) error {
			if len(args) != 1 {
				return fmt.Errorf("%w: %s takes one %s directory, got %d arguments", ErrUsage, c.CommandPath(), what, len(args))
			}
			return nil
		}
	}

	var exportFormat, exportOut string
	export := &cobra.Command{
		Use:   "export SAVEPOINT --format parquet|arrow|jsonl --out DIR",
		Short: "Write a savepoint's state, messages and sources as Parquet, Arrow or JSON Lines files",
		Args:  oneDir("savepoint"),
		RunE: func(c *cobra.Command, args []string) error {
			if exportOut == "" {
				return fmt.Errorf("%w: --out is required", ErrUsage)
			}
			if err := checkFormat(exportFormat); err != nil {
				return err
			}
			sp, cleanup, err := openSavepointArg(args[0])
			if err != nil {
				return err
			}
			defer cleanup()
			if err := savepoint.Export(sp, exportFormat, exportOut); err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "exported %s to %s (%s: state, messages, sources)\n", args[0], exportOut, exportFormat)
			return nil
		},
	}
	export.Flags().StringVar(&exportFormat, "format", savepoint.FormatParquet, "parquet, arrow or jsonl")
	export.Flags().StringVar(&exportOut, "out", "", "output directory (created if needed)")

	var importFormat, importIn, importOut string
	var importMaxP int
	imp := &cobra.Command{
		Use:   "import --format jsonl|arrow|parquet --in PATH --out SAVEPOINT [--max-parallelism N]",
		Short: "Build a savepoint from files shaped like an export (bootstrap or repair state)",
		Long: `Reads state.<format> (and optionally messages.<format> and sources.<format>)
from the directory --in, or a single state file, and writes a canonical
savepoint to --out. Key groups are computed from the ids with
--max-parallelism, which must match the job that restores the savepoint.

A JSONL state row needs namespace, type, id, name and a value: "value"
(base64), or "value_decoded" with "value_type" (io.statefun.types/long or
long, int, bool, float, double, string; any other type name stores the
value as compact JSON), or "value_json". Optional: expires_at (unix ns or
RFC 3339).`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			if importIn == "" || importOut == "" {
				return fmt.Errorf("%w: --in and --out are required", ErrUsage)
			}
			if err := checkFormat(importFormat); err != nil {
				return err
			}
			if importMaxP < 1 || importMaxP > dataflow.MaxKeyGroups {
				return fmt.Errorf("%w: --max-parallelism %d is not in [1, %d]", ErrUsage, importMaxP, dataflow.MaxKeyGroups)
			}
			if err := savepoint.Import(importIn, importFormat, importOut, savepoint.WithMaxParallelism(importMaxP)); err != nil {
				return err
			}
			sp, err := savepoint.Open(importOut)
			if err != nil {
				return err
			}
			fmt.Fprintf(c.OutOrStdout(), "savepoint %s: %d state values, %d messages, %d source positions, max parallelism %d\n",
				importOut, rowsOf(sp, savepoint.StateFile), rowsOf(sp, savepoint.MessagesFile), len(sp.Sources()), sp.MaxParallelism())
			return nil
		},
	}
	imp.Flags().StringVar(&importFormat, "format", savepoint.FormatJSONL, "jsonl, arrow or parquet")
	imp.Flags().StringVar(&importIn, "in", "", "directory of state/messages/sources files, or one state file")
	imp.Flags().StringVar(&importOut, "out", "", "savepoint directory to create")
	imp.Flags().IntVar(&importMaxP, "max-parallelism", dataflow.DefaultMaxParallelism, "number of key groups of the job that will restore the savepoint")

	var inspectPar int
	inspect := &cobra.Command{
		Use:   "inspect SAVEPOINT [--parallelism N]",
		Short: "Count a savepoint's rows per table, per function type and per key-group range",
		Args:  oneDir("savepoint"),
		RunE: func(c *cobra.Command, args []string) error {
			sp, cleanup, err := openSavepointArg(args[0])
			if err != nil {
				return err
			}
			defer cleanup()
			stats, err := savepoint.Inspect(sp)
			if err != nil {
				return err
			}
			return stats.Print(c.OutOrStdout(), args[0], inspectPar)
		},
	}
	inspect.Flags().IntVar(&inspectPar, "parallelism", 0, "show key groups in the ranges of this parallelism (default: the savepoint's)")

	var convertOut string
	convert := &cobra.Command{
		Use:   "convert CHECKPOINT --out SAVEPOINT",
		Short: "Convert a stored checkpoint or savepoint (_metadata) into a canonical savepoint",
		Args:  oneDir("checkpoint"),
		RunE: func(c *cobra.Command, args []string) error {
			if convertOut == "" {
				return fmt.Errorf("%w: --out is required", ErrUsage)
			}
			cp, err := store.OpenDir(args[0])
			if err != nil {
				return err
			}
			if err := savepoint.Write(cp, convertOut); err != nil {
				return err
			}
			fmt.Fprintln(c.OutOrStdout(), convertOut)
			return nil
		},
	}
	convert.Flags().StringVar(&convertOut, "out", "", "savepoint directory to create")

	cmd.AddCommand(export, imp, inspect, convert)
	return cmd
}

func checkFormat(f string) error {
	switch f {
	case savepoint.FormatArrow, savepoint.FormatParquet, savepoint.FormatJSONL:
		return nil
	}
	return fmt.Errorf("%w: --format %q: want parquet, arrow or jsonl", ErrUsage, f)
}

func rowsOf(sp *savepoint.Savepoint, name string) int64 {
	if f := sp.Manifest.File(name); f != nil {
		return f.Rows
	}
	return 0
}

// openSavepointArg opens a canonical savepoint, or converts a stored
// checkpoint directory into one in a temporary directory (removed by
// cleanup).
func openSavepointArg(dir string) (*savepoint.Savepoint, func(), error) {
	nothing := func() {}
	if savepoint.IsSavepointDir(dir) {
		sp, err := savepoint.Open(dir)
		return sp, nothing, err
	}
	if _, err := os.Stat(filepath.Join(dir, "_metadata")); err != nil {
		return nil, nothing, fmt.Errorf("%s is neither a savepoint (_savepoint.json) nor a stored checkpoint (_metadata)", dir)
	}
	cp, err := store.OpenDir(dir)
	if err != nil {
		return nil, nothing, err
	}
	tmp, err := os.MkdirTemp("", "statefun-savepoint-")
	if err != nil {
		return nil, nothing, err
	}
	cleanup := func() { _ = os.RemoveAll(tmp) }
	out := filepath.Join(tmp, "savepoint")
	if err := savepoint.Write(cp, out); err != nil {
		cleanup()
		return nil, nothing, err
	}
	sp, err := savepoint.Open(out)
	if err != nil {
		cleanup()
		return nil, nothing, err
	}
	return sp, cleanup, nil
}

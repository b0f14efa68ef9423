package smoke

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// This file is the test harness shared by the smoke test and the
// end-to-end tests: parameters as environment, the module, the smokecmd
// process, the checkpoint directory and the output oracle.

// Environment variables read by smokecmd (ParamsFromEnv).
const (
	EnvN                 = "SMOKE_N"
	EnvCount             = "SMOKE_COUNT"
	EnvSeed              = "SMOKE_SEED"
	EnvDepth             = "SMOKE_DEPTH"
	EnvRate              = "SMOKE_RATE"
	EnvSourceParallelism = "SMOKE_SOURCE_PARALLELISM"
	EnvVerifyAttempts    = "SMOKE_VERIFY_ATTEMPTS"
	EnvFailAt            = "SMOKE_FAIL_AT"
	EnvFailFlag          = "SMOKE_FAIL_FLAG"
)

// Env renders p as the environment of smokecmd.
func (p Params) Env() []string {
	env := []string{
		EnvN + "=" + strconv.Itoa(p.N),
		EnvCount + "=" + strconv.FormatInt(p.MessageCount, 10),
		EnvSeed + "=" + strconv.FormatUint(p.Seed, 10),
		EnvDepth + "=" + strconv.Itoa(p.CommandDepth),
		EnvRate + "=" + strconv.FormatFloat(p.Rate, 'g', -1, 64),
		EnvSourceParallelism + "=" + strconv.Itoa(p.SourceParallelism),
		EnvVerifyAttempts + "=" + strconv.Itoa(p.VerifyAttempts),
	}
	if p.FailFlag != "" {
		env = append(env, EnvFailFlag+"="+p.FailFlag, EnvFailAt+"="+strconv.FormatInt(p.FailAt, 10))
	}
	return env
}

// ParamsFromEnv reads the SMOKE_* variables (unset ones take the
// defaults) and validates them.
func ParamsFromEnv(getenv func(string) string) (Params, error) {
	var p Params
	var errs []error
	num := func(name string, set func(string) error) {
		if v := getenv(name); v != "" {
			if err := set(v); err != nil {
				errs = append(errs, fmt.Errorf("%s=%q: %v", name, v, err))
			}
		}
	}
	atoi := func(dst *int) func(string) error {
		return func(s string) (err error) { *dst, err = strconv.Atoi(s); return }
	}
	num(EnvN, atoi(&p.N))
	num(EnvCount, func(s string) (err error) { p.MessageCount, err = strconv.ParseInt(s, 10, 64); return })
	num(EnvSeed, func(s string) (err error) { p.Seed, err = strconv.ParseUint(s, 10, 64); return })
	num(EnvDepth, atoi(&p.CommandDepth))
	num(EnvRate, func(s string) (err error) { p.Rate, err = strconv.ParseFloat(s, 64); return })
	num(EnvSourceParallelism, atoi(&p.SourceParallelism))
	num(EnvVerifyAttempts, atoi(&p.VerifyAttempts))
	num(EnvFailAt, func(s string) (err error) { p.FailAt, err = strconv.ParseInt(s, 10, 64); return })
	p.FailFlag = getenv(EnvFailFlag)
	if len(errs) > 0 {
		return p, errors.Join(errs...)
	}
	p.EnsureDefaults()
	return p, p.Validate()
}

// ModuleYAML is the module of a smoke run: the two file egresses, jsonl,
// at the given paths (relative paths are relative to the module file).
func ModuleYAML(discardPath, verificationPath string) string {
	return fmt.Sprintf(`kind: io.statefun.file.v1/egress
spec:
  id: %s
  path: %s
  format: jsonl
---
kind: io.statefun.file.v1/egress
spec:
  id: %s
  path: %s
  format: jsonl
`, DiscardEgressID, discardPath, VerificationEgressID, verificationPath)
}

// Output file names used by WriteModule.
const (
	DiscardFile      = "discard.jsonl"
	VerificationFile = "verification.jsonl"
	ModuleFile       = "module.yaml"
)

// WriteModule writes dir/module.yaml whose egresses write dir/discard.jsonl
// and dir/verification.jsonl, and returns the module path.
func WriteModule(dir string) (string, error) {
	path := filepath.Join(dir, ModuleFile)
	return path, os.WriteFile(path, []byte(ModuleYAML(DiscardFile, VerificationFile)), 0o644)
}

// Build compiles smokecmd into outDir and returns the binary's path. With
// SMOKE_RACE=1 in the environment the binary is built with -race (its data
// race reports go to its stderr and make it exit with code 66).
func Build(ctx context.Context, outDir string) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %v", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(out)))
	bin := filepath.Join(outDir, "smokecmd")
	args := []string{"build", "-o", bin}
	if os.Getenv("SMOKE_RACE") == "1" {
		args = append(args, "-race")
	}
	cmd := exec.CommandContext(ctx, "go", append(args, "./internal/smoke/smokecmd")...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./internal/smoke/smokecmd: %v\n%s", err, out)
	}
	return bin, nil
}

// Buffer is a goroutine-safe bytes.Buffer.
type Buffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// Proc is a running smokecmd (or any) process.
type Proc struct {
	Cmd     *exec.Cmd
	Started time.Time
	stdout  Buffer
	stderr  Buffer
	done    chan struct{}
	err     error
}

// Start starts bin with args in dir, with env added to the environment.
func Start(bin, dir string, env []string, args ...string) (*Proc, error) {
	p := &Proc{done: make(chan struct{})}
	p.Cmd = exec.Command(bin, args...)
	p.Cmd.Dir = dir
	p.Cmd.Env = append(os.Environ(), env...)
	p.Cmd.Stdout, p.Cmd.Stderr = &p.stdout, &p.stderr
	if err := p.Cmd.Start(); err != nil {
		return nil, err
	}
	p.Started = time.Now()
	go func() {
		p.err = p.Cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// Stderr and Stdout return what the process wrote so far.
func (p *Proc) Stderr() string { return p.stderr.String() }
func (p *Proc) Stdout() string { return p.stdout.String() }

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Signal sends sig unless the process has exited.
func (p *Proc) Signal(sig syscall.Signal) error {
	if p.Exited() {
		return nil
	}
	return p.Cmd.Process.Signal(sig)
}

// Kill sends SIGKILL and waits for the exit. It reports whether the
// process was still running (false: it had exited by itself).
func (p *Proc) Kill() bool {
	running := !p.Exited()
	if running {
		_ = p.Cmd.Process.Kill()
	}
	<-p.done
	return running
}

// Wait waits up to timeout for the exit and returns the exit code (-1 when
// killed by a signal). After the timeout it kills the process and returns
// an error.
func (p *Proc) Wait(timeout time.Duration) (int, error) {
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.Kill()
		return -1, fmt.Errorf("%s did not exit within %v (killed)", filepath.Base(p.Cmd.Path), timeout)
	}
	return p.exitCode()
}

func (p *Proc) exitCode() (int, error) {
	var exit *exec.ExitError
	switch {
	case p.err == nil:
		return 0, nil
	case errors.As(p.err, &exit):
		return exit.ExitCode(), nil
	default:
		return -1, p.err
	}
}

var (
	restoredRE = regexp.MustCompile(`msg="restoring from the latest complete checkpoint" id=(\d+)`)
	skippedRE  = regexp.MustCompile(`msg="skipping an invalid checkpoint" reason=("(?:[^"\\]|\\.)*"|\S+)`)
)

// RestoredIDs returns the checkpoint ids a run's log says it restored
// ("restoring from the latest complete checkpoint"), in order (one per
// attempt).
func RestoredIDs(stderr string) []uint64 {
	var ids []uint64
	for _, m := range restoredRE.FindAllStringSubmatch(stderr, -1) {
		id, _ := strconv.ParseUint(m[1], 10, 64)
		ids = append(ids, id)
	}
	return ids
}

// SkippedReasons returns the reasons of the "skipping an invalid
// checkpoint" log lines.
func SkippedReasons(stderr string) []string {
	var out []string
	for _, m := range skippedRE.FindAllStringSubmatch(stderr, -1) {
		r := m[1]
		if u, err := strconv.Unquote(r); err == nil {
			r = u
		}
		out = append(out, r)
	}
	return out
}

// CheckpointDir is the directory of complete checkpoint id of a state dir.
func CheckpointDir(stateDir string, id uint64) string {
	return filepath.Join(stateDir, "checkpoints", "job", "chk-"+strconv.FormatUint(id, 10))
}

// CompleteCheckpoints lists the ids of the checkpoints of stateDir that
// have a _metadata file (complete, not necessarily valid), ascending.
func CompleteCheckpoints(stateDir string) ([]uint64, error) {
	des, err := os.ReadDir(filepath.Join(stateDir, "checkpoints", "job"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	var ids []uint64
	for _, de := range des {
		rest, ok := strings.CutPrefix(de.Name(), "chk-")
		if !ok || !de.IsDir() {
			continue
		}
		id, err := strconv.ParseUint(rest, 10, 64)
		if err != nil {
			continue // chk-<n>.inprogress
		}
		if _, err := os.Stat(filepath.Join(stateDir, "checkpoints", "job", de.Name(), "_metadata")); err == nil {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids, nil
}

// WaitForCheckpoints waits until stateDir holds a complete checkpoint with
// an id of at least minID, or p exits, or timeout. It returns the ids.
func WaitForCheckpoints(p *Proc, stateDir string, minID uint64, timeout time.Duration) ([]uint64, error) {
	deadline := time.Now().Add(timeout)
	for {
		ids, err := CompleteCheckpoints(stateDir)
		if err != nil {
			return nil, err
		}
		if len(ids) > 0 && ids[len(ids)-1] >= minID {
			return ids, nil
		}
		if p.Exited() {
			return ids, fmt.Errorf("the process exited before checkpoint %d (have %v)", minID, ids)
		}
		if time.Now().After(deadline) {
			return ids, fmt.Errorf("no checkpoint %d within %v (have %v)", minID, timeout, ids)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// jsonlRecord is a line of a jsonl file egress.
type jsonlRecord struct {
	Egress   string          `json:"egress"`
	From     string          `json:"from"`
	Typename string          `json:"typename"`
	Value    json.RawMessage `json:"value"`
}

// Output is what a run wrote to its two egresses.
type Output struct {
	Verifications []VerificationResult
	Discards      []DiscardRecord
	// Uncancelled are the canaries of delayed messages that were
	// delivered although cancelled.
	Uncancelled []string
	// DiscardLines and VerificationLines are the raw lines, sorted.
	DiscardLines, VerificationLines []string
}

// ReadOutput reads the egress files of a run in dir (WriteModule's names).
func ReadOutput(dir string) (Output, error) {
	var out Output
	var errs []error
	read := func(name string) []string {
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			errs = append(errs, err)
			return nil
		}
		lines := strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
		if len(lines) == 1 && lines[0] == "" {
			lines = nil
		}
		slices.Sort(lines)
		return lines
	}
	out.DiscardLines = read(DiscardFile)
	out.VerificationLines = read(VerificationFile)
	decode := func(file, line, egress, typename string, v any) (from int, ok bool) {
		var r jsonlRecord
		dec := json.NewDecoder(strings.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&r); err != nil {
			errs = append(errs, fmt.Errorf("%s: bad line %q: %v", file, line, err))
			return 0, false
		}
		idStr, found := strings.CutPrefix(r.From, FunctionTypeName+"/")
		from, err := strconv.Atoi(idStr)
		if r.Egress != egress || r.Typename != typename || !found || err != nil {
			errs = append(errs, fmt.Errorf("%s: line %q: want egress %s, typename %s, from %s/<id>", file, line, egress, typename, FunctionTypeName))
			return 0, false
		}
		if err := json.Unmarshal(r.Value, v); err != nil {
			errs = append(errs, fmt.Errorf("%s: line %q: value: %v", file, line, err))
			return 0, false
		}
		return from, true
	}
	for _, l := range out.VerificationLines {
		var v VerificationResult
		if from, ok := decode(VerificationFile, l, VerificationEgressID, "statefun.smoke.e2e/verification-result", &v); ok {
			if from != v.ID {
				errs = append(errs, fmt.Errorf("%s: line %q: sent by %d", VerificationFile, l, from))
			}
			out.Verifications = append(out.Verifications, v)
		}
	}
	for _, l := range out.DiscardLines {
		var d Discard
		if from, ok := decode(DiscardFile, l, DiscardEgressID, "statefun.smoke.e2e/discard", &d); ok {
			if c, found := strings.CutPrefix(d.ID, "uncancelled:"); found {
				out.Uncancelled = append(out.Uncancelled, c)
				continue
			}
			out.Discards = append(out.Discards, DiscardRecord{ID: d.ID, From: from})
		}
	}
	return out, errors.Join(errs...)
}

// OverCounts scans the verification file of a run in dir, possibly still
// being written or cut by a kill (undecodable lines are skipped), for
// results with actual > expected. Within one attempt's timeline (restored
// state plus what it processed) an over-count is duplicate processing even
// if a later restore cuts the record off again, so the smoke test looks
// after every attempt.
func OverCounts(dir string) ([]VerificationResult, error) {
	data, err := os.ReadFile(filepath.Join(dir, VerificationFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	var over []VerificationResult
	for _, line := range strings.Split(string(data), "\n") {
		var r struct {
			Value VerificationResult `json:"value"`
		}
		if json.Unmarshal([]byte(line), &r) == nil && r.Value.Actual > r.Value.Expected {
			over = append(over, r.Value)
		}
	}
	return over, nil
}

// Check is the oracle: the output must be exactly the model's. Over-counts
// (actual > expected: duplicate processing) are reported first.
func Check(m Model, out Output) error {
	var over, errs []error
	seen := map[int]int{}
	for _, v := range out.Verifications {
		if v.Actual > v.Expected {
			over = append(over, fmt.Errorf("over-count (duplicate processing): function %d counted %d, expected %d", v.ID, v.Actual, v.Expected))
		}
		if v.ID < 0 || v.ID >= len(m.Expected) {
			errs = append(errs, fmt.Errorf("verification of unknown id %d", v.ID))
			continue
		}
		seen[v.ID]++
		if v.Expected != m.Expected[v.ID] {
			errs = append(errs, fmt.Errorf("function %d was told to expect %d, the model says %d", v.ID, v.Expected, m.Expected[v.ID]))
		}
		if v.Actual < v.Expected {
			errs = append(errs, fmt.Errorf("under-count (lost messages): function %d counted %d, expected %d", v.ID, v.Actual, v.Expected))
		}
	}
	for id := range m.Expected {
		switch n := seen[id]; {
		case n == 0:
			errs = append(errs, fmt.Errorf("function %d: no verification record", id))
		case n > 1:
			errs = append(errs, fmt.Errorf("function %d: %d verification records, want 1", id, n))
		}
	}
	for _, c := range out.Uncancelled {
		errs = append(errs, fmt.Errorf("the delayed message with token %s was delivered although it was cancelled", c))
	}
	missing, extra := diff(m.Discards, out.Discards)
	for _, d := range head(missing, 20) {
		errs = append(errs, fmt.Errorf("discard record %s from %d is missing", d.ID, d.From))
	}
	for _, d := range head(extra, 20) {
		errs = append(errs, fmt.Errorf("discard record %s from %d is extra (duplicate or unknown)", d.ID, d.From))
	}
	if len(missing)+len(extra) > 40 {
		errs = append(errs, fmt.Errorf("discard sink: %d missing and %d extra records in all", len(missing), len(extra)))
	}
	if len(errs) > 30 {
		errs = append(errs[:30], fmt.Errorf("... and %d more problems", len(errs)-30))
	}
	return errors.Join(append(over, errs...)...)
}

func diff(want, got []DiscardRecord) (missing, extra []DiscardRecord) {
	counts := map[DiscardRecord]int{}
	for _, w := range want {
		counts[w]++
	}
	for _, g := range got {
		counts[g]--
	}
	for k, n := range counts {
		for ; n > 0; n-- {
			missing = append(missing, k)
		}
		for ; n < 0; n++ {
			extra = append(extra, k)
		}
	}
	cmp := func(a, b DiscardRecord) int { return strings.Compare(a.ID, b.ID) }
	slices.SortFunc(missing, cmp)
	slices.SortFunc(extra, cmp)
	return missing, extra
}

func head[T any](s []T, n int) []T {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// CopyFile copies src to dst (for handing a run's egress files to a
// restored run).
func CopyFile(src, dst string) error {
	b, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, b, 0o644)
}

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// `statefun run` as a real process: the greeter example (examples/greeter,
// the statefun CLI plus two embedded functions) is built once and run as a
// child process.

var (
	buildOnce  sync.Once
	greeterBin string
	buildErr   error
	binDir     string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// greeter builds the greeter binary once per test binary run.
func greeter(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		out, err := exec.Command("go", "env", "GOMOD").Output()
		if err != nil {
			buildErr = fmt.Errorf("go env GOMOD: %v", err)
			return
		}
		root := filepath.Dir(strings.TrimSpace(string(out)))
		if binDir, err = os.MkdirTemp("", "statefun-e2e-"); err != nil {
			buildErr = err
			return
		}
		bin := filepath.Join(binDir, "greeter")
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./examples/greeter")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./examples/greeter: %v\n%s", err, out)
			return
		}
		greeterBin = bin
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return greeterBin
}

type procResult struct {
	code           int
	stdout, stderr string
}

// runGreeter runs the greeter with args in dir, killing it after timeout.
func runGreeter(t *testing.T, dir string, timeout time.Duration, args ...string) procResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, greeter(t), args...)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	res := procResult{stdout: stdout.String(), stderr: stderr.String()}
	var exit *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("greeter %q did not exit within %v (killed)\nstdout:\n%s\nstderr:\n%s", args, timeout, res.stdout, res.stderr)
	case errors.As(err, &exit):
		res.code = exit.ExitCode()
	case err != nil:
		t.Fatalf("greeter %q: %v", args, err)
	}
	return res
}

// welcomeAndCounts is what n visits of name produce, in order (the
// reminder aside): "Welcome", then "seen you k times" for k = 2..n.
func welcomeAndCounts(name string, visits int) []string {
	out := []string{fmt.Sprintf("Hello %s! Welcome!", name)}
	for k := 2; k <= visits; k++ {
		out = append(out, fmt.Sprintf("Hello %s! I have seen you %d times.", name, k))
	}
	return out
}

var reminderRE = regexp.MustCompile(`^Still there, (.*)\? You visited (\d+) time\(s\)\.$`)

var summaryRE = regexp.MustCompile(`(?m)^summary: (\d+) ingress records, (\d+) function invocations, (\d+) egress records in `)

func parseSummary(t *testing.T, stderr string) (ingress, invocations, egress int) {
	t.Helper()
	m := summaryRE.FindStringSubmatch(stderr)
	if m == nil {
		t.Fatalf("no summary line on stderr:\n%s", stderr)
	}
	a, _ := strconv.Atoi(m[1])
	b, _ := strconv.Atoi(m[2])
	c, _ := strconv.Atoi(m[3])
	return a, b, c
}

type jsonlGreeting struct {
	Egress   string `json:"egress"`
	From     string `json:"from"`
	Typename string `json:"typename"`
	Value    string `json:"value"`
}

func readJSONL(t *testing.T, path string) []jsonlGreeting {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var out []jsonlGreeting
	for i, line := range strings.Split(strings.TrimSuffix(string(data), "\n"), "\n") {
		if line == "" {
			continue
		}
		var g jsonlGreeting
		dec := json.NewDecoder(strings.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&g); err != nil {
			t.Fatalf("%s:%d: %v: %s", path, i+1, err, line)
		}
		out = append(out, g)
	}
	return out
}

func splitLines(s string) []string {
	s = strings.TrimSuffix(s, "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// checkGreetings checks the greetings (in output order) for the visit
// counts: exactly the welcome/count greetings, in order per name, and one
// reminder per name. The reminder is sent 300 ms after the first visit and
// reports the visits seen by then: all of them unless the machine is very
// slow, so a smaller count is logged, not failed.
func checkGreetings(t *testing.T, what string, texts []string, visits map[string]int) {
	t.Helper()
	perName := map[string][]string{}
	reminders := map[string]int{}
	for _, s := range texts {
		if m := reminderRE.FindStringSubmatch(s); m != nil {
			n, _ := strconv.Atoi(m[2])
			if _, dup := reminders[m[1]]; dup {
				t.Errorf("%s: two reminders for %s", what, m[1])
			}
			reminders[m[1]] = n
			continue
		}
		name, ok := greetingName(s)
		if !ok {
			t.Errorf("%s: unexpected line %q", what, s)
			continue
		}
		perName[name] = append(perName[name], s)
	}
	for name, v := range visits {
		if want := welcomeAndCounts(name, v); !slices.Equal(perName[name], want) {
			t.Errorf("%s: greetings of %q:\n got  %q\n want %q", what, name, perName[name], want)
		}
		switch n, ok := reminders[name]; {
		case !ok:
			t.Errorf("%s: no reminder for %q", what, name)
		case n == v:
		case n >= 1 && n < v:
			t.Logf("%s: the reminder of %q counted %d of %d visits (the machine was slow: the reminder fired before the last visits were processed)", what, name, n, v)
		default:
			t.Errorf("%s: reminder of %q counts %d visits, want %d", what, name, n, v)
		}
	}
	for name := range perName {
		if _, ok := visits[name]; !ok {
			t.Errorf("%s: greetings for unknown name %q", what, name)
		}
	}
}

var seenRE = regexp.MustCompile(`^Hello (.*)! I have seen you (\d+) times\.$`)

var helloRE = regexp.MustCompile(`^Hello (.*)! (Welcome!|I have seen you \d+ times\.)$`)

func greetingName(s string) (string, bool) {
	m := helloRE.FindStringSubmatch(s)
	if m == nil {
		return "", false
	}
	return m[1], true
}

func TestProcessRun(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	jsonlNames := []string{"alice", "bob", "alice", "carol", "émile", "bob", "alice", "dave x", "carol", "alice"}
	lineNames := []string{"bob", "erin", "alice", "erin", "frank"}
	var jl strings.Builder
	for i, n := range jsonlNames {
		fmt.Fprintf(&jl, "{\"seq\":%d,\"name\":%q}\n", i, n)
	}
	writeFile(t, dir, "names.jsonl", jl.String())
	writeFile(t, dir, "names.txt", strings.Join(lineNames, "\n")+"\n")
	writeFile(t, dir, "module.yaml", `kind: io.statefun.file.v1/ingress
spec:
  id: example/names-jsonl
  path: names.jsonl
  format: jsonl
  keyField: name
  valueType: io.statefun.types/string
  targets: [example/greeter]
---
kind: io.statefun.file.v1/ingress
spec:
  id: example/names-lines
  path: names.txt
  format: lines
  targets: [example/greeter]
---
kind: io.statefun.stdout.v1/egress
spec:
  id: example/stdout
---
kind: io.statefun.file.v1/egress
spec:
  id: example/greetings
  path: out/greetings.jsonl
  format: jsonl
`)
	visits := map[string]int{}
	for _, n := range slices.Concat(jsonlNames, lineNames) {
		visits[n]++
	}
	res := runGreeter(t, dir, 60*time.Second, "run", "--module", filepath.Join(dir, "module.yaml"), "--parallelism", "2", "--state-dir", filepath.Join(dir, "state"))
	if res.code != 0 {
		t.Fatalf("exit code %d\nstderr:\n%s", res.code, res.stderr)
	}

	// The file egress: every record, from the messenger of the name.
	recs := readJSONL(t, filepath.Join(dir, "out", "greetings.jsonl"))
	var texts []string
	for _, r := range recs {
		texts = append(texts, r.Value)
		name, ok := greetingName(r.Value)
		if m := reminderRE.FindStringSubmatch(r.Value); m != nil {
			name, ok = m[1], true
		}
		if r.Egress != "example/greetings" || r.Typename != "io.statefun.types/string" || !ok || r.From != "example/messenger/"+name {
			t.Errorf("file egress record %+v: want egress example/greetings, typename io.statefun.types/string, from example/messenger/<name>", r)
		}
	}
	checkGreetings(t, "file egress", texts, visits)
	total := len(jsonlNames) + len(lineNames) + len(visits)
	if len(recs) != total {
		t.Errorf("file egress has %d records, want %d", len(recs), total)
	}

	// stdout: the same greetings, one per line, nothing else.
	out := splitLines(res.stdout)
	checkGreetings(t, "stdout", out, visits)
	if a, b := slices.Sorted(slices.Values(out)), slices.Sorted(slices.Values(texts)); !slices.Equal(a, b) {
		t.Errorf("stdout lines differ from the file egress:\n stdout %q\n file   %q", a, b)
	}

	// stderr: the summary with the right counts.
	in, inv, eg := parseSummary(t, res.stderr)
	if in != len(jsonlNames)+len(lineNames) || inv != 2*total || eg != 2*total {
		t.Errorf("summary: %d ingress records, %d invocations, %d egress records; want %d, %d, %d",
			in, inv, eg, len(jsonlNames)+len(lineNames), 2*total, 2*total)
	}
}

func TestProcessUsageAndValidate(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, dir, "names.txt", "a\n")
	good := writeFile(t, dir, "good.yaml", `kind: io.statefun.file.v1/ingress
spec:
  id: example/names
  path: names.txt
  targets: [example/greeter]
---
kind: io.statefun.stdout.v1/egress
spec:
  id: example/stdout
---
kind: io.statefun.file.v1/egress
spec:
  id: example/greetings
  path: out.txt
`)
	bad := writeFile(t, dir, "bad.yaml", `kind: io.statefun.file.v1/ingress
spec:
  id: example/names
  path: names.txt
  targets:
    - example/greeter
    - example/nobody
---
kind: io.statefun.stdout.v1/egress
spec:
  id: example/stdout
  format: xml
`)
	t.Run("missing-module", func(t *testing.T) {
		for _, cmd := range []string{"run", "validate"} {
			res := runGreeter(t, dir, 30*time.Second, cmd)
			if res.code != 2 || !strings.Contains(res.stderr, "--module is required") {
				t.Errorf("%s without --module: exit code %d, stderr %q; want 2 and a message about --module", cmd, res.code, res.stderr)
			}
		}
	})
	t.Run("unknown-flag", func(t *testing.T) {
		res := runGreeter(t, dir, 30*time.Second, "run", "--module", good, "--no-such-flag")
		if res.code != 2 || !strings.Contains(res.stderr, "no-such-flag") {
			t.Errorf("exit code %d, stderr %q; want 2 naming the flag", res.code, res.stderr)
		}
	})
	t.Run("bad-module", func(t *testing.T) {
		for _, cmd := range []string{"run", "validate"} {
			res := runGreeter(t, dir, 30*time.Second, cmd, "--module", bad)
			if res.code != 1 {
				t.Errorf("%s: exit code %d, want 1; stderr %q", cmd, res.code, res.stderr)
			}
			for _, w := range []string{bad + ":7:", "example/nobody", bad + ":12:", "xml"} {
				if !strings.Contains(res.stderr, w) {
					t.Errorf("%s: stderr does not contain %q:\n%s", cmd, w, res.stderr)
				}
			}
			if res.stdout != "" {
				t.Errorf("%s: stdout %q, want nothing", cmd, res.stdout)
			}
		}
	})
	t.Run("validate", func(t *testing.T) {
		res := runGreeter(t, dir, 30*time.Second, "validate", "--module", good, "--parallelism", "3")
		if res.code != 0 {
			t.Fatalf("exit code %d, stderr:\n%s", res.code, res.stderr)
		}
		for _, w := range []string{
			"Ingresses (1):",
			"example/names io.statefun.file.v1/ingress at " + good + ":1:1",
			"targets: [example/greeter]",
			"Egresses (2):",
			"example/greetings io.statefun.file.v1/egress at " + good + ":11:1",
			`operator "functions" parallelism 3`,
			`source   "ingress example/names" parallelism 1`,
			`-> "egress example/greetings" [rebalance]`,
			`feedback "feedback" -> "functions"`,
		} {
			if !strings.Contains(res.stdout, w) {
				t.Errorf("validate output has no %q:\n%s", w, res.stdout)
			}
		}
		if _, err := os.Stat(filepath.Join(dir, "out.txt")); err == nil {
			t.Errorf("validate created the egress file")
		}
	})
}

// TestProcessSIGTERM: an unbounded run stops gracefully on SIGTERM: exit
// code 0 within a few seconds, a summary on stderr, and every greeting
// started before the stop is finished (the reminders, 300 ms later,
// included), on both egresses.
func TestProcessSIGTERM(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, dir, "module.yaml", `kind: io.statefun.generator.v1/ingress
spec:
  id: example/names
  targets: [example/greeter]
  rate: 40
  keys: 4
  keyPrefix: user-
---
kind: io.statefun.stdout.v1/egress
spec:
  id: example/stdout
---
kind: io.statefun.file.v1/egress
spec:
  id: example/greetings
  path: greetings.txt
`)
	cmd := exec.Command(greeter(t), "run", "--module", "module.yaml", "--parallelism", "2", "--state-dir", "state")
	cmd.Dir = dir
	var stderr syncBuffer
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	reaped := false
	defer func() {
		if !reaped {
			cmd.Process.Kill()
			<-exited
		}
	}()
	lines := make(chan string, 1024)
	var stdoutLines []string
	readDone := make(chan struct{})
	go func() {
		defer close(readDone)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	go func() {
		<-readDone
		exited <- cmd.Wait()
	}()

	// Bounded wait until the job produced some greetings (at least one
	// reminder, so it ran for a while).
	deadline := time.After(30 * time.Second)
wait:
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("greeter exited before SIGTERM; stderr:\n%s", stderr.String())
			}
			stdoutLines = append(stdoutLines, l)
			if strings.HasPrefix(l, "Still there") && len(stdoutLines) >= 8 {
				break wait
			}
		case <-deadline:
			t.Fatalf("no greetings within 30 s; stdout %q; stderr:\n%s", stdoutLines, stderr.String())
		}
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	stopped := time.Now()
	var code int
	select {
	case err := <-exited:
		reaped = true
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			code = exit.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("greeter did not stop within 10 s of SIGTERM; stderr:\n%s", stderr.String())
	}
	took := time.Since(stopped)
	for l := range lines {
		stdoutLines = append(stdoutLines, l)
	}
	errOut := stderr.String()
	if code != 0 {
		t.Fatalf("exit code %d after SIGTERM, want 0; stderr:\n%s", code, errOut)
	}
	if took > 5*time.Second {
		t.Errorf("stopping took %v", took)
	}
	t.Logf("stopped %v after SIGTERM, %d greetings", took, len(stdoutLines))
	in, inv, eg := parseSummary(t, errOut)

	// Count the visits from the greetings themselves: the greeting of the
	// k-th visit says k, so the visits per name are the largest k.
	visits := map[string]int{}
	for _, s := range stdoutLines {
		if m := seenRE.FindStringSubmatch(s); m != nil {
			k, _ := strconv.Atoi(m[2])
			visits[m[1]] = max(visits[m[1]], k)
		} else if name, ok := greetingName(s); ok {
			visits[name] = max(visits[name], 1)
		}
	}
	checkGreetings(t, "stdout", stdoutLines, visits)
	sumVisits := 0
	for _, v := range visits {
		sumVisits += v
	}
	total := sumVisits + len(visits) // greetings + reminders
	if in != sumVisits || inv != 2*total || eg != 2*total || len(stdoutLines) != total {
		t.Errorf("summary %d ingress records, %d invocations, %d egress records, %d stdout lines; want %d, %d, %d, %d",
			in, inv, eg, len(stdoutLines), sumVisits, 2*total, 2*total, total)
	}
	file, err := os.ReadFile(filepath.Join(dir, "greetings.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if a, b := slices.Sorted(slices.Values(splitLines(string(file)))), slices.Sorted(slices.Values(stdoutLines)); !slices.Equal(a, b) {
		t.Errorf("the file egress differs from stdout:\n file   %q\n stdout %q", a, b)
	}
}

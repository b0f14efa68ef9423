package conformance

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// ---- 9. the statefun CLI as a real process ----

var cli struct {
	once sync.Once
	dir  string
	bin  string
	err  error
}

// statefunBinary builds cmd/statefun once per test binary run.
func statefunBinary(t *testing.T) string {
	t.Helper()
	cli.once.Do(func() {
		out, err := exec.Command("go", "env", "GOMOD").Output()
		if err != nil {
			cli.err = fmt.Errorf("go env GOMOD: %v", err)
			return
		}
		root := filepath.Dir(strings.TrimSpace(string(out)))
		if cli.dir, err = os.MkdirTemp("", "statefun-conformance-"); err != nil {
			cli.err = err
			return
		}
		bin := filepath.Join(cli.dir, "statefun")
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/statefun")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			cli.err = fmt.Errorf("go build ./cmd/statefun: %v\n%s", err, out)
			return
		}
		cli.bin = bin
	})
	if cli.err != nil {
		t.Fatal(cli.err)
	}
	return cli.bin
}

func cleanupCLI() {
	if cli.dir != "" {
		os.RemoveAll(cli.dir)
	}
}

var summaryRE = regexp.MustCompile(`(?m)^summary: (\d+) ingress records, (\d+) function invocations, (\d+) egress records in `)

func TestCLIProcess(t *testing.T) {
	forEachSDK(t, func(t *testing.T, s sdk) {
		bin := statefunBinary(t)
		base := s.start(t)
		dir := t.TempDir()
		const count, keys = 300, 12
		mod := writeModuleIn(t, dir,
			endpoint("remote/*", base+"/{function.name}", 0, asyncTransport("10s")),
			fmt.Sprintf(`kind: io.statefun.generator.v1/ingress
spec:
  id: cf/gen
  count: %d
  keys: %d
  valueType: io.statefun.types/string
  targets:
    - remote/greet
`, count, keys),
			`kind: io.statefun.file.v1/egress
spec:
  id: cf/out
  path: out/greetings.txt
`)
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, "run", "--module", mod, "--parallelism", "2", "--state-dir", filepath.Join(dir, "state"))
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		start := time.Now()
		err := cmd.Run()
		elapsed := time.Since(start)
		if ctx.Err() != nil {
			t.Fatalf("statefun run did not exit within 60s (killed)\nstderr:\n%s", tail(stderr.String(), 4000))
		}
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			t.Fatalf("statefun run exited with %d\nstderr:\n%s", exit.ExitCode(), tail(stderr.String(), 4000))
		} else if err != nil {
			t.Fatal(err)
		}
		t.Logf("statefun run took %v", elapsed.Round(time.Millisecond))
		m := summaryRE.FindStringSubmatch(stderr.String())
		if m == nil || m[1] != fmt.Sprint(count) || m[3] != fmt.Sprint(count) {
			t.Errorf("summary line %q, want %d ingress and %d egress records\nstderr:\n%s", m, count, count, tail(stderr.String(), 2000))
		}
		data, err := os.ReadFile(filepath.Join(dir, "out", "greetings.txt"))
		if err != nil {
			t.Fatal(err)
		}
		// Record by record: key-k:1 .. key-k:n in order for every key.
		got := map[string][]string{}
		for _, l := range splitLines(string(data)) {
			k, _, _ := strings.Cut(l, ":")
			got[k] = append(got[k], l)
		}
		for k := 0; k < keys; k++ {
			key := fmt.Sprintf("key-%d", k)
			var want []string
			for n := 1; n <= count/keys; n++ {
				want = append(want, fmt.Sprintf("%s:%d", key, n))
			}
			if !slices.Equal(got[key], want) {
				t.Errorf("records of %s:\n got  %q\n want %q", key, got[key], want)
			}
			delete(got, key)
		}
		for k, v := range got {
			t.Errorf("unexpected records for %q: %q", k, head(v, 5))
		}
	})
}

// writeModuleIn writes module.yaml into dir.
func writeModuleIn(t *testing.T, dir string, components ...string) string {
	t.Helper()
	path := filepath.Join(dir, "module.yaml")
	if err := os.WriteFile(path, []byte(strings.Join(components, "\n---\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

package module

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// FuzzLoad writes the input to a module file and loads it: Load must never
// panic, and must either succeed or return an *Errors holding at least one
// positioned error.
func FuzzLoad(f *testing.F) {
	for _, dir := range []string{"valid", "invalid"} {
		paths, _ := filepath.Glob(filepath.Join("testdata", dir, "*.yaml"))
		for _, p := range paths {
			if data, err := os.ReadFile(p); err == nil {
				f.Add(data)
			}
		}
	}
	f.Add([]byte("kind: a/b\nspec: &x {k: *x}\n"))
	f.Add([]byte("version: 3.0\nmodule: {meta: {type: remote}, spec: {endpoints: [{endpoint: {meta: {kind: http}, spec: *a}}]}}\n"))
	f.Add([]byte("- [[[{{{\n"))

	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		p := filepath.Join(dir, "module.yaml")
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		for _, opts := range []Options{
			{},
			{Strict: true, FunctionKnown: func(ns, name string) bool { return strings.HasPrefix(ns, "k") }},
		} {
			m, err := Load(opts, p)
			if err != nil {
				var errs *Errors
				if !errors.As(err, &errs) {
					t.Fatalf("error %T, want *Errors", err)
				}
				ok := false
				for _, d := range errs.List {
					if d.File != p {
						t.Fatalf("diagnostic for another file: %v", d)
					}
					ok = ok || !d.Warning
				}
				if !ok {
					t.Fatalf("*Errors without errors: %v", err)
				}
				_ = err.Error()
				continue
			}
			var buf bytes.Buffer
			m.Describe(&buf)
		}
	})
}

// TestMergeBomb checks that merge keys referring to the same anchors many
// times over many levels load quickly (each mapping is merged once).
func TestMergeBomb(t *testing.T) {
	var b strings.Builder
	b.WriteString("kind: io.statefun.stdout.v1/egress\nanchors:\n  - &a0 {format: lines}\n")
	for i := 1; i <= 40; i++ {
		fmt.Fprintf(&b, "  - &a%d {<<: [*a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d]}\n", i, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1)
	}
	b.WriteString("spec:\n  <<: *a40\n  id: com.example/out\n")
	p := filepath.Join(t.TempDir(), "module.yaml")
	if err := os.WriteFile(p, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		m, err := Load(Options{}, p)
		if err != nil {
			t.Errorf("Load: %v", err)
			return
		}
		if len(m.Egresses) != 1 || len(m.Warnings) != 1 { // the unknown top-level key "anchors"
			t.Errorf("egresses %d, warnings %v", len(m.Egresses), m.Warnings)
		}
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Load did not finish: merge keys are expanded exponentially")
	}
}

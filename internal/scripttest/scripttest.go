// Package scripttest runs the data-driven test scripts of the
// deterministic cores (delay buffer, coordinator, dispatcher): a file of
// commands, each followed by a "----" line and the expected output up to a
// blank line; comments (#) and blank lines are kept verbatim.
//
//	# a comment
//	add owner=a/b/c token=t at=10
//	----
//	ok
//
// Run calls the test's interpreter for each command and compares its
// output; `go test -rewrite` writes the actual output back into the files,
// so reviewers read behaviour changes as diffs.
package scripttest

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
)

// Rewrite is the -rewrite flag.
var Rewrite = flag.Bool("rewrite", false, "rewrite the expected output of testdata scripts with the actual output")

type chunk struct {
	text   []string // verbatim lines, when cmd == ""
	cmd    string
	line   int
	expect []string
}

func parse(t testing.TB, path string) []chunk {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	var chunks []chunk
	text := func(l string) {
		if n := len(chunks); n > 0 && chunks[n-1].cmd == "" {
			chunks[n-1].text = append(chunks[n-1].text, l)
			return
		}
		chunks = append(chunks, chunk{text: []string{l}})
	}
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		trimmed := strings.TrimSpace(l)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			text(l)
			continue
		}
		c := chunk{cmd: trimmed, line: i + 1}
		if i+1 >= len(lines) || strings.TrimSpace(lines[i+1]) != "----" {
			t.Fatalf("%s:%d: command %q is not followed by a ---- line", path, i+1, trimmed)
		}
		i += 2
		for ; i < len(lines) && strings.TrimSpace(lines[i]) != ""; i++ {
			c.expect = append(c.expect, lines[i])
		}
		i-- // the blank line (if any) is verbatim text
		chunks = append(chunks, c)
	}
	return chunks
}

// Run runs the script at path through run, which gets the command name and
// its key=value arguments and returns the narrated output.
func Run(t testing.TB, path string, run func(cmd string, args map[string]string) (string, error)) {
	t.Helper()
	var out strings.Builder
	for _, c := range parse(t, path) {
		if c.cmd == "" {
			for _, l := range c.text {
				out.WriteString(l + "\n")
			}
			continue
		}
		name, args, err := ParseCommand(c.cmd)
		if err != nil {
			t.Fatalf("%s:%d: %v", path, c.line, err)
		}
		got, err := run(name, args)
		if err != nil {
			t.Fatalf("%s:%d: %s: %v", path, c.line, c.cmd, err)
		}
		got = strings.TrimRight(got, "\n")
		out.WriteString(c.cmd + "\n----\n" + got + "\n")
		if want := strings.Join(c.expect, "\n"); !*Rewrite && got != want {
			t.Errorf("%s:%d: %s\n got:\n%s\nwant:\n%s", path, c.line, c.cmd, indent(got), indent(want))
		}
	}
	if *Rewrite {
		if err := os.WriteFile(path, []byte(out.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func indent(s string) string { return "  " + strings.ReplaceAll(s, "\n", "\n  ") }

// ParseCommand splits "name k=v k2=v2" into the name and its arguments.
// Positional arguments (no "=") are named "_", "_1", "_2", ... in order.
func ParseCommand(line string) (string, map[string]string, error) {
	fields := strings.Fields(line)
	args := make(map[string]string)
	npos := 0
	for _, f := range fields[1:] {
		k, v, ok := strings.Cut(f, "=")
		if !ok {
			k, v = "_", f
			if npos > 0 {
				k = "_" + strconv.Itoa(npos)
			}
			npos++
		}
		if _, dup := args[k]; dup {
			return "", nil, fmt.Errorf("argument %q given twice", k)
		}
		args[k] = v
	}
	return fields[0], args, nil
}

package conformance

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// sdk is one implementation of the scenario functions.
type sdk struct {
	name string
	// start returns the base URL (http://127.0.0.1:port) of a server of
	// every function, valid until the end of t.
	start func(t *testing.T) string
}

// sdks are the implementations every scenario runs against.
var sdks = []sdk{
	{name: "go-sdk", start: startGoSDK},
	{name: "python-sdk", start: startPythonSDK},
}

// forEachSDK runs f as one subtest per SDK.
func forEachSDK(t *testing.T, f func(t *testing.T, s sdk)) {
	for _, s := range sdks {
		t.Run(s.name, func(t *testing.T) { f(t, s) })
	}
}

// startGoSDK serves the Go SDK functions on 127.0.0.1 for the test.
func startGoSDK(t *testing.T) string {
	srv := httptest.NewServer(goHandler())
	t.Cleanup(srv.Close)
	return srv.URL
}

// ---- Python ----

const pythonRequirements = "apache-flink-statefun==3.3.0 aiohttp"

var venv struct {
	once   sync.Once
	python string // the venv's interpreter
	err    error
}

// venvDir is where the virtualenv lives (reused across runs).
func venvDir() (string, error) {
	if d := os.Getenv("STATEFUN_CONFORMANCE_VENV"); d != "" {
		return d, nil
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no user cache directory for the Python virtualenv (set STATEFUN_CONFORMANCE_VENV): %v", err)
	}
	return filepath.Join(cache, "statefun-go-conformance", "venv"), nil
}

// pythonVenv returns the interpreter of a virtualenv holding the official
// Python SDK and aiohttp, creating it on first use. Any failure (no
// python3, no venv module, pip cannot install) fails the test with the
// output of the failing command.
func pythonVenv(t *testing.T) string {
	t.Helper()
	venv.once.Do(func() { venv.python, venv.err = ensureVenv() })
	if venv.err != nil {
		t.Fatalf("the Python SDK virtualenv is not usable (these tests need python3 with venv and pip, and access to PyPI):\n%v", venv.err)
	}
	return venv.python
}

func ensureVenv() (string, error) {
	dir, err := venvDir()
	if err != nil {
		return "", err
	}
	py := filepath.Join(dir, "bin", "python")
	stamp := filepath.Join(dir, ".statefun-conformance")
	ready := func() bool {
		b, err := os.ReadFile(stamp)
		if err != nil || strings.TrimSpace(string(b)) != pythonRequirements {
			return false
		}
		_, err = os.Stat(py)
		return err == nil
	}
	if ready() {
		return py, nil
	}
	// Another test binary may build the same venv: serialise on a lock.
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return "", err
	}
	lock, err := os.OpenFile(dir+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", fmt.Errorf("lock %s: %v", lock.Name(), err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if ready() {
		return py, nil
	}
	base := os.Getenv("STATEFUN_CONFORMANCE_PYTHON")
	if base == "" {
		if base, err = exec.LookPath("python3"); err != nil {
			return "", fmt.Errorf("python3 not found on PATH (set STATEFUN_CONFORMANCE_PYTHON): %v", err)
		}
	}
	if err := os.RemoveAll(dir); err != nil {
		return "", err
	}
	run := func(timeout time.Duration, name string, args ...string) error {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, name, args...)
		cmd.Env = append(os.Environ(), "PIP_DISABLE_PIP_VERSION_CHECK=1", "PYTHONDONTWRITEBYTECODE=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return nil
	}
	if err := run(2*time.Minute, base, "-m", "venv", dir); err != nil {
		return "", err
	}
	args := append([]string{"-m", "pip", "install", "--no-cache-dir", "--no-input"}, strings.Fields(pythonRequirements)...)
	if err := run(10*time.Minute, py, args...); err != nil {
		return "", err
	}
	if err := run(time.Minute, py, "-c", "import statefun, aiohttp"); err != nil {
		return "", err
	}
	if err := os.WriteFile(stamp, []byte(pythonRequirements+"\n"), 0o644); err != nil {
		return "", err
	}
	return py, nil
}

// pyProc is a running functions.py.
type pyProc struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr *syncBuffer
	port   string
	done   chan struct{}
}

// startPython starts functions.py with args and waits until it listens.
func startPython(py string, args ...string) (*pyProc, error) {
	script, err := filepath.Abs(filepath.Join("python", "functions.py"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(py, append([]string{"-u", script}, args...)...)
	cmd.Env = append(os.Environ(), "PYTHONDONTWRITEBYTECODE=1")
	p := &pyProc{cmd: cmd, stderr: &syncBuffer{}, done: make(chan struct{})}
	cmd.Stderr = p.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if p.stdin, err = cmd.StdinPipe(); err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() {
		_ = cmd.Wait()
		close(p.done)
	}()
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if l := sc.Text(); strings.HasPrefix(l, "LISTENING ") {
				select {
				case lines <- strings.TrimPrefix(l, "LISTENING "):
				default:
				}
			}
		}
	}()
	select {
	case l := <-lines:
		p.port = l
		return p, nil
	case <-p.done:
		return nil, fmt.Errorf("functions.py %s exited before listening: %v\nstderr:\n%s", strings.Join(args, " "), cmd.ProcessState, p.stderr.String())
	case <-time.After(30 * time.Second):
		p.stop()
		return nil, fmt.Errorf("functions.py %s did not listen within 30s\nstderr:\n%s", strings.Join(args, " "), p.stderr.String())
	}
}

// stop ends the process (closing its stdin makes it exit; it is killed
// if it has not within 2 s).
func (p *pyProc) stop() {
	_ = p.stdin.Close()
	select {
	case <-p.done:
		return
	case <-time.After(2 * time.Second):
	}
	_ = p.cmd.Process.Kill()
	<-p.done
}

// The shared TCP server of the Python functions (the functions keep no
// state of their own, so every test can use it).
var pyShared struct {
	once sync.Once
	proc *pyProc
	err  error
}

func startPythonSDK(t *testing.T) string {
	t.Helper()
	py := pythonVenv(t)
	pyShared.once.Do(func() { pyShared.proc, pyShared.err = startPython(py, "--port", "0") })
	if pyShared.err != nil {
		t.Fatal(pyShared.err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			if s := pyShared.proc.stderr.String(); s != "" {
				t.Logf("functions.py stderr so far:\n%s", tail(s, 4000))
			}
		}
	})
	select {
	case <-pyShared.proc.done:
		t.Fatalf("the shared functions.py has exited: %s", pyShared.proc.stderr.String())
	default:
	}
	return "http://127.0.0.1:" + pyShared.proc.port
}

// startPythonWith starts a dedicated functions.py for the test (unix
// socket, TLS), stopped at its end.
func startPythonWith(t *testing.T, args ...string) *pyProc {
	t.Helper()
	py := pythonVenv(t)
	p, err := startPython(py, args...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("functions.py stderr:\n%s", tail(p.stderr.String(), 4000))
		}
	})
	return p
}

func stopPython() {
	if pyShared.proc != nil {
		pyShared.proc.stop()
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return "..." + s[len(s)-n:]
	}
	return s
}

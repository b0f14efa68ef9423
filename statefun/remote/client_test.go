package remote

import (
	"bytes"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/statefun-go/statefun/statefun/module"
)

var (
	reqBody  = []byte{0xA2, 0x06, 0x03, 0x0A, 0x01, 0x78}
	respBody = []byte{0xA2, 0x06, 0x02, 0x08, 0x01}
)

// okHandler checks the request like the Go SDK does and answers respBody.
func okHandler(t *testing.T) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := checkRequest(r); err != nil {
			t.Errorf("request: %v", err)
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Write(respBody)
	}
}

func checkRequest(r *http.Request) error {
	if r.Method != http.MethodPost {
		return fmt.Errorf("method %s", r.Method)
	}
	if ct := r.Header["Content-Type"]; len(ct) != 1 || ct[0] != "application/octet-stream" {
		return fmt.Errorf("Content-Type %q", ct)
	}
	if a := r.Header.Get("Accept"); a != "application/octet-stream" {
		return fmt.Errorf("Accept %q", a)
	}
	if ua := r.Header.Get("User-Agent"); ua != "statefun" {
		return fmt.Errorf("User-Agent %q", ua)
	}
	if ae := r.Header.Get("Accept-Encoding"); !strings.Contains(ae, "gzip") || !strings.Contains(ae, "deflate") {
		return fmt.Errorf("Accept-Encoding %q", ae)
	}
	if r.ContentLength != int64(len(reqBody)) || r.Header.Get("Content-Length") != fmt.Sprint(len(reqBody)) {
		return fmt.Errorf("Content-Length %d %q", r.ContentLength, r.Header.Get("Content-Length"))
	}
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	if !bytes.Equal(b, reqBody) {
		return fmt.Errorf("body %x", b)
	}
	return nil
}

func compress(t *testing.T, enc string, data []byte) []byte {
	var buf bytes.Buffer
	var w io.WriteCloser
	switch enc {
	case "gzip":
		w = gzip.NewWriter(&buf)
	case "zlib":
		w = zlib.NewWriter(&buf)
	case "flate":
		fw, err := flate.NewWriter(&buf, flate.BestSpeed)
		if err != nil {
			t.Fatal(err)
		}
		w = fw
	}
	w.Write(data)
	w.Close()
	return buf.Bytes()
}

type outcome struct {
	out    []byte
	err    error
	stats  Stats
	logs   string
	took   time.Duration
	client *Client
}

func TestInvoke(t *testing.T) {
	t.Parallel()
	type tcase struct {
		name    string
		handler func(t *testing.T) http.Handler
		url     func(t *testing.T, srv *httptest.Server) string // default srv.URL + "/fn/{function.name}"
		tweak   func(ep *module.Endpoint)
		budget  func(typ string) time.Duration // default 10 s
		calls   int                            // default 1
		// fake runs the call budget on a fake clock advanced only by the
		// backoff waits: the retries until the budget is spent do not
		// depend on how loaded the host is.
		fake  bool
		check func(t *testing.T, typ string, o outcome)
	}
	wantOK := func(t *testing.T, o outcome) {
		t.Helper()
		if o.err != nil {
			t.Fatalf("Invoke: %v", o.err)
		}
		if !bytes.Equal(o.out, respBody) {
			t.Fatalf("body %x, want %x", o.out, respBody)
		}
	}
	wantBudgetSpent := func(t *testing.T, o outcome, substr ...string) *CallError {
		t.Helper()
		ce := asCallError(t, o.err)
		if !ce.Final {
			t.Errorf("Final = false, want true: %v", ce)
		}
		mustContain(t, ce.Error(), append([]string{"call budget of " + ce.Budget.String() + " spent after"}, substr...)...)
		if ce.Budget != o.client.set.call {
			t.Errorf("Budget %v", ce.Budget)
		}
		// Generous: the host may be loaded (-race, shared CPUs).
		if o.took > ce.Budget+3*time.Second {
			t.Errorf("took %v, budget %v", o.took, ce.Budget)
		}
		if IsRetryable(o.err) {
			t.Errorf("IsRetryable(final) = true")
		}
		return ce
	}
	wantNotRetried := func(t *testing.T, o outcome, status int, substr ...string) {
		t.Helper()
		ce := asCallError(t, o.err)
		if !ce.Final || ce.Attempts != 1 || ce.Status != status {
			t.Errorf("Final %v Attempts %d Status %d, want true 1 %d: %v", ce.Final, ce.Attempts, ce.Status, status, ce)
		}
		mustContain(t, ce.Error(), append([]string{"not retryable"}, substr...)...)
		if o.stats.Retries != 0 || o.stats.Failures != 1 {
			t.Errorf("stats %+v", o.stats)
		}
	}
	spend := func(string) time.Duration { return testBudget }
	spendAsync := func(typ string) time.Duration {
		if typ == async {
			return testBudget
		}
		return 10 * time.Second
	}
	cases := []tcase{
		{
			name:    "success",
			handler: func(t *testing.T) http.Handler { return okHandler(t) },
			calls:   3,
			check: func(t *testing.T, typ string, o outcome) {
				wantOK(t, o)
				s := o.stats
				if s.Requests != 3 || s.Attempts != 3 || s.Retries != 0 || s.Successes != 3 || s.Failures != 0 || s.InFlight != 0 ||
					s.BytesSent != 3*int64(len(reqBody)) || s.BytesReceived != 3*int64(len(respBody)) {
					t.Errorf("stats %+v", s)
				}
				if strings.Contains(o.logs, "level=WARN") {
					t.Errorf("unexpected warning: %s", o.logs)
				}
			},
		},
		{
			name: "500 then 200",
			handler: func(t *testing.T) http.Handler {
				var n atomic.Int32
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if n.Add(1) == 1 {
						http.Error(w, "user code failed", http.StatusInternalServerError)
						return
					}
					okHandler(t)(w, r)
				})
			},
			check: func(t *testing.T, typ string, o outcome) {
				wantOK(t, o)
				if o.stats.Attempts != 2 || o.stats.Retries != 1 || o.stats.Successes != 1 {
					t.Errorf("stats %+v", o.stats)
				}
				mustContain(t, o.logs, "level=WARN", "retrying", "500 Internal Server Error", "user code failed")
				if strings.Contains(o.logs, "\xa2\x06") {
					t.Errorf("a body was logged: %q", o.logs)
				}
			},
		},
		{
			name: "400",
			handler: func(t *testing.T) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					http.Error(w, "invalid request", http.StatusBadRequest)
				})
			},
			budget: spendAsync,
			fake:   true,
			check: func(t *testing.T, typ string, o outcome) {
				if typ == okhttp {
					wantNotRetried(t, o, 400, "400 Bad Request: invalid request")
					return
				}
				ce := wantBudgetSpent(t, o, "400 Bad Request")
				if ce.Attempts != 7 || ce.Status != 400 { // waits 4+8+16+32+64+76
					t.Errorf("Attempts %d Status %d", ce.Attempts, ce.Status)
				}
			},
		},
		{
			name: "302 without Location",
			handler: func(t *testing.T) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					w.WriteHeader(http.StatusFound)
				})
			},
			budget: spendAsync,
			fake:   true,
			check: func(t *testing.T, typ string, o outcome) {
				if typ == okhttp {
					wantNotRetried(t, o, 302, "302 Found")
					return
				}
				ce := wantBudgetSpent(t, o, "302 Found")
				if ce.Attempts != 7 || ce.Status != 302 {
					t.Errorf("Attempts %d Status %d", ce.Attempts, ce.Status)
				}
			},
		},
		{
			name: "302 with Location is not followed",
			handler: func(t *testing.T) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if r.Method != http.MethodPost {
						t.Errorf("followed a 302 with %s", r.Method)
					}
					http.Redirect(w, r, "/elsewhere", http.StatusFound)
				})
			},
			tweak: func(ep *module.Endpoint) { ep.Transport.Type = okhttp },
			check: func(t *testing.T, typ string, o outcome) {
				wantNotRetried(t, o, 302, "302 Found")
			},
		},
		{
			name: "307 is followed with the body",
			handler: func(t *testing.T) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					if r.URL.Path != "/moved" {
						http.Redirect(w, r, "/moved", http.StatusTemporaryRedirect)
						return
					}
					okHandler(t)(w, r)
				})
			},
			check: func(t *testing.T, typ string, o outcome) { wantOK(t, o) },
		},
		{
			name: "slow server beyond the budget",
			handler: func(t *testing.T) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { block(r) })
			},
			budget: spend,
			check: func(t *testing.T, typ string, o outcome) {
				ce := wantBudgetSpent(t, o)
				// The attempt timeout, or okhttp's read (header) timeout.
				if msg := ce.Error(); !strings.Contains(msg, "timed out") && !strings.Contains(msg, "timeout") {
					t.Errorf("%q names no timeout", msg)
				}
				if o.took < testBudget {
					t.Errorf("gave up after %v, before the budget", o.took)
				}
				if typ == okhttp && ce.Attempts != 1 {
					t.Errorf("okhttp Attempts %d, want 1 (the attempt takes the whole budget)", ce.Attempts)
				}
			},
		},
		{
			name: "connection refused",
			url: func(t *testing.T, srv *httptest.Server) string {
				return "http://" + refusedAddr(t) + "/fn/{function.name}"
			},
			budget: spend,
			fake:   true,
			check: func(t *testing.T, typ string, o outcome) {
				ce := wantBudgetSpent(t, o, "connection refused")
				want := 7 // async: waits 4+8+16+32+64+76
				if typ == okhttp {
					want = 5 // waits 10+20+40+80+50
				}
				if ce.Attempts != want || ce.Status != 0 {
					t.Errorf("Attempts %d Status %d", ce.Attempts, ce.Status)
				}
				if o.stats.Retries != int64(ce.Attempts-1) || o.stats.Failures != 1 {
					t.Errorf("stats %+v", o.stats)
				}
			},
		},
		{
			name: "wrong content type warns once",
			handler: func(t *testing.T) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Type", "text/plain; charset=utf-8")
					w.Write(respBody)
				})
			},
			calls: 3,
			check: func(t *testing.T, typ string, o outcome) {
				wantOK(t, o)
				if n := strings.Count(o.logs, "unexpected Content-Type"); n != 1 {
					t.Errorf("%d content type warnings, want 1: %s", n, o.logs)
				}
				mustContain(t, o.logs, "level=WARN", "text/plain")
			},
		},
		{
			name: "missing content type is fine",
			handler: func(t *testing.T) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					w.Header()["Content-Type"] = nil // no sniffing
					w.Write(respBody)
				})
			},
			check: func(t *testing.T, typ string, o outcome) {
				wantOK(t, o)
				if strings.Contains(o.logs, "Content-Type") {
					t.Errorf("warned: %s", o.logs)
				}
			},
		},
		{
			name:    "gzip response",
			handler: encodedHandler("gzip", "gzip"),
			check:   func(t *testing.T, typ string, o outcome) { wantOK(t, o) },
		},
		{
			name:    "deflate (zlib) response",
			handler: encodedHandler("deflate", "zlib"),
			check:   func(t *testing.T, typ string, o outcome) { wantOK(t, o) },
		},
		{
			name:    "deflate (raw) response",
			handler: encodedHandler("deflate", "flate"),
			check:   func(t *testing.T, typ string, o outcome) { wantOK(t, o) },
		},
		{
			name: "unknown content encoding",
			handler: func(t *testing.T) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Encoding", "br")
					w.Write(respBody)
				})
			},
			check: func(t *testing.T, typ string, o outcome) {
				wantNotRetried(t, o, 200, `Content-Encoding "br"`)
			},
		},
		{
			name: "oversize response with Content-Length",
			handler: func(t *testing.T) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					w.Write(make([]byte, 2048))
				})
			},
			tweak: func(ep *module.Endpoint) { ep.Transport.PayloadMaxBytes = 1024 },
			check: func(t *testing.T, typ string, o outcome) {
				wantNotRetried(t, o, 200, "response exceeds payload_max_bytes (1024)")
			},
		},
		{
			name: "oversize chunked response",
			handler: func(t *testing.T) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					for range 4 {
						w.Write(make([]byte, 512))
						w.(http.Flusher).Flush()
					}
				})
			},
			tweak: func(ep *module.Endpoint) { ep.Transport.PayloadMaxBytes = 1024 },
			check: func(t *testing.T, typ string, o outcome) {
				wantNotRetried(t, o, 200, "response exceeds payload_max_bytes (1024)")
			},
		},
		{
			name: "oversize after decompression",
			handler: func(t *testing.T) http.Handler {
				bomb := gzipBomb()
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Encoding", "gzip")
					w.Write(bomb)
				})
			},
			tweak: func(ep *module.Endpoint) { ep.Transport.PayloadMaxBytes = 1024 },
			check: func(t *testing.T, typ string, o outcome) {
				wantNotRetried(t, o, 200, "response exceeds payload_max_bytes (1024)")
			},
		},
		{
			name: "response of exactly the limit",
			handler: func(t *testing.T) http.Handler {
				return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
					w.Header()["Content-Type"] = nil
					w.Write(bytes.Repeat([]byte{1}, 1024))
				})
			},
			tweak: func(ep *module.Endpoint) { ep.Transport.PayloadMaxBytes = 1024 },
			check: func(t *testing.T, typ string, o outcome) {
				if o.err != nil || len(o.out) != 1024 {
					t.Fatalf("got %d bytes, %v", len(o.out), o.err)
				}
			},
		},
	}
	for _, tc := range cases {
		for _, typ := range transports {
			t.Run(tc.name+"/"+typ[strings.LastIndex(typ, "/")+1:], func(t *testing.T) {
				t.Parallel()
				var srv *httptest.Server
				if tc.handler != nil {
					srv = newServer(t, tc.handler(t))
				}
				url := ""
				if tc.url != nil {
					url = tc.url(t, srv)
				} else {
					url = srv.URL + "/fn/{function.name}"
				}
				budget := 10 * time.Second
				if tc.budget != nil {
					budget = tc.budget(typ)
				}
				ep := newEP(url, typ, budget)
				if tc.tweak != nil {
					tc.tweak(ep)
				}
				var logs logBuf
				opts := Options{Logger: newLogger(&logs)}
				if tc.fake {
					clock := newFakeClock()
					opts.Now, opts.Sleep = clock.Now, clock.Sleep
				}
				c := newClient(t, ep, opts)
				calls := max(tc.calls, 1)
				start := time.Now()
				var o outcome
				for range calls {
					o.out, o.err = c.Invoke(context.Background(), "greeter", reqBody)
				}
				o.took = time.Since(start) / time.Duration(calls)
				o.stats, o.logs, o.client = c.Stats(), logs.String(), c
				tc.check(t, ep.Transport.Type, o)
			})
		}
	}
}

// gzipBomb is 1 MiB of zeros, gzipped.
var gzipBomb = sync.OnceValue(func() []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(make([]byte, 1<<20))
	w.Close()
	return buf.Bytes()
})

// block drains the request body (so the server notices the client going
// away) and waits for that, or 5 s.
func block(r *http.Request) {
	io.Copy(io.Discard, r.Body)
	select {
	case <-r.Context().Done():
	case <-time.After(5 * time.Second):
	}
}

// encodedHandler answers respBody compressed with format, labelled enc.
func encodedHandler(enc, format string) func(t *testing.T) http.Handler {
	return func(t *testing.T) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if err := checkRequest(r); err != nil {
				t.Errorf("request: %v", err)
			}
			w.Header().Set("Content-Type", "application/octet-stream")
			w.Header().Set("Content-Encoding", enc)
			w.Write(compress(t, format, respBody))
		})
	}
}

func TestStatusErrorCarriesBodyExcerpt(t *testing.T) {
	t.Parallel()
	srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no such function\n  com.example/nope", http.StatusNotFound)
	}))
	c := newClient(t, newEP(srv.URL+"/{function.name}", okhttp, 10*time.Second), Options{})
	_, err := c.Invoke(context.Background(), "nope", reqBody)
	ce := asCallError(t, err)
	var se *StatusError
	if !errors.As(err, &se) || se.Code != 404 {
		t.Fatalf("not a 404 StatusError: %v", err)
	}
	if se.Body != "no such function com.example/nope" {
		t.Errorf("Body %q", se.Body)
	}
	mustContain(t, ce.Error(), "POST "+srv.URL+"/nope", "1 attempt", "404 Not Found")

	// A binary body is left out.
	srv2 := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte{0, 1, 2, 0xA2, 0x06})
	}))
	c2 := newClient(t, newEP(srv2.URL+"/{function.name}", okhttp, 10*time.Second), Options{})
	_, err = c2.Invoke(context.Background(), "nope", reqBody)
	if !errors.As(err, &se) || se.Body != "" {
		t.Errorf("binary body excerpt %q", se.Body)
	}
}

func TestUnixSocket(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	sock := filepath.Join(dir, "fn.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Skipf("unix sockets unavailable: %v", err)
	}
	var gotPath, gotHost, gotQuery atomic.Value
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotPath.Store(r.URL.Path)
		gotHost.Store(r.Host)
		gotQuery.Store(r.URL.RawQuery)
		okHandler(t)(w, r)
	}))
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)

	for _, typ := range transports {
		c := newClient(t, newEP("http+unix://"+sock+"/statefun/{function.name}?v=1", typ, 10*time.Second), Options{})
		for range 2 {
			out, err := c.Invoke(context.Background(), "greeter", reqBody)
			if err != nil {
				t.Fatalf("%s: %v", typ, err)
			}
			if !bytes.Equal(out, respBody) {
				t.Fatalf("body %x", out)
			}
		}
		if p := gotPath.Load(); p != "/statefun/greeter" {
			t.Errorf("path %q", p)
		}
		if h := gotHost.Load(); h != "localhost" {
			t.Errorf("Host %q", h)
		}
		if q := gotQuery.Load(); q != "v=1" {
			t.Errorf("query %q", q)
		}
	}

	// Nothing after the socket: the path is "/".
	c := newClient(t, newEP("http+unix://"+sock, async, 10*time.Second), Options{})
	if _, err := c.Invoke(context.Background(), "greeter", reqBody); err != nil {
		t.Fatal(err)
	}
	if p := gotPath.Load(); p != "/" {
		t.Errorf("path %q, want /", p)
	}

	// A missing socket is a retried dial failure.
	clock := newFakeClock()
	c = newClient(t, newEP("http+unix://"+filepath.Join(dir, "missing.sock")+"/x", async, testBudget),
		Options{Now: clock.Now, Sleep: clock.Sleep})
	_, err = c.Invoke(context.Background(), "greeter", reqBody)
	mustContain(t, asCallError(t, err).Error(), "call budget", "missing.sock")
}

func TestH2C(t *testing.T) {
	t.Parallel()
	var proto atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		proto.Store(int32(r.ProtoMajor))
		okHandler(t)(w, r)
	}))
	srv.Config.Protocols = new(http.Protocols)
	srv.Config.Protocols.SetHTTP1(true)
	srv.Config.Protocols.SetUnencryptedHTTP2(true)
	srv.Start()
	t.Cleanup(srv.Close)

	for _, h2c := range []bool{false, true} {
		c := newClient(t, newEP(srv.URL+"/{function.name}", async, 10*time.Second), Options{H2C: h2c})
		if _, err := c.Invoke(context.Background(), "greeter", reqBody); err != nil {
			t.Fatal(err)
		}
		want := int32(1)
		if h2c {
			want = 2
		}
		if got := proto.Load(); got != want {
			t.Errorf("H2C=%v: HTTP/%d, want HTTP/%d", h2c, got, want)
		}
	}
}

func TestHostHeaderLeavesOutDefaultPort(t *testing.T) {
	for _, tc := range []struct{ url, wantURL, wantHost string }{
		{"http://example.com:80/{function.name}", "http://example.com:80/f", "example.com"},
		{"https://example.com:443/a/{function.name}?x=y#frag", "https://example.com:443/a/f?x=y", "example.com"},
		{"http://[::1]:80/{function.name}", "http://[::1]:80/f", "[::1]"},
		{"http://example.com:8080/{function.name}", "http://example.com:8080/f", ""},
		{"HTTP://example.com/{function.name}", "http://example.com/f", ""},
	} {
		c := newClient(t, newEP(tc.url, async, time.Second), Options{})
		tg, err := c.target("f")
		if err != nil {
			t.Fatal(err)
		}
		if tg.url != tc.wantURL || tg.host != tc.wantHost {
			t.Errorf("%s: url %q host %q, want %q %q", tc.url, tg.url, tg.host, tc.wantURL, tc.wantHost)
		}
	}
	// A function name that breaks the URL is an invalid request, not retried.
	c := newClient(t, newEP("http://example.com/{function.name}", async, time.Second), Options{})
	_, err := c.Invoke(context.Background(), "%zz", reqBody)
	ce := asCallError(t, err)
	if ce.Final || ce.Attempts != 0 || IsRetryable(err) {
		t.Errorf("%+v", ce)
	}
	mustContain(t, ce.Error(), "invalid request", "invalid URL")
}

func TestOkHTTPReadTimeout(t *testing.T) {
	t.Parallel()
	t.Run("headers", func(t *testing.T) {
		t.Parallel()
		var n atomic.Int32
		srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if n.Add(1) == 1 {
				block(r)
				return
			}
			okHandler(t)(w, r)
		}))
		ep := newEP(srv.URL+"/{function.name}", okhttp, 5*time.Second)
		ep.Transport.Read = 100 * time.Millisecond
		var logs logBuf
		c := newClient(t, ep, Options{Logger: newLogger(&logs)})
		if _, err := c.Invoke(context.Background(), "greeter", reqBody); err != nil {
			t.Fatal(err)
		}
		if s := c.Stats(); s.Attempts != 2 {
			t.Errorf("stats %+v", s)
		}
		mustContain(t, logs.String(), "timeout awaiting response headers")
	})
	t.Run("body", func(t *testing.T) {
		t.Parallel()
		var n atomic.Int32
		srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if n.Add(1) == 1 {
				io.Copy(io.Discard, r.Body)
				w.Header().Set("Content-Length", "100")
				w.Write(make([]byte, 10))
				w.(http.Flusher).Flush()
				block(r)
				return
			}
			okHandler(t)(w, r)
		}))
		ep := newEP(srv.URL+"/{function.name}", okhttp, 5*time.Second)
		ep.Transport.Read = 100 * time.Millisecond
		var logs logBuf
		c := newClient(t, ep, Options{Logger: newLogger(&logs)})
		start := time.Now()
		if _, err := c.Invoke(context.Background(), "greeter", reqBody); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took > 3*time.Second {
			t.Errorf("took %v", took)
		}
		mustContain(t, logs.String(), "read timed out: no response bytes for 100ms")
	})
}

func TestAsyncPoolSlotWait(t *testing.T) {
	t.Parallel()
	var cur, peak atomic.Int32
	srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		v := cur.Add(1)
		defer cur.Add(-1)
		for {
			p := peak.Load()
			if v <= p || peak.CompareAndSwap(p, v) {
				break
			}
		}
		time.Sleep(150 * time.Millisecond)
		okHandler(t)(w, r)
	}))
	ep := newEP(srv.URL+"/{function.name}", async, 10*time.Second)
	ep.Transport.PoolSize = 1
	ep.Transport.Connect = 50 * time.Millisecond
	var logs logBuf
	c := newClient(t, ep, Options{Logger: newLogger(&logs)})
	errs := make(chan error, 2)
	for range 2 {
		go func() {
			_, err := c.Invoke(context.Background(), "greeter", reqBody)
			errs <- err
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if peak.Load() != 1 {
		t.Errorf("peak concurrency %d with pool_size 1", peak.Load())
	}
	if s := c.Stats(); s.Retries == 0 {
		t.Errorf("no retry after a pool wait timeout: %+v", s)
	}
	mustContain(t, logs.String(), "no pooled connection free within the connect timeout of 50ms (pool_size 1)")
}

func TestCancelMidBackoff(t *testing.T) {
	t.Parallel()
	srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusServiceUnavailable)
	}))
	for _, typ := range transports {
		t.Run(typ[strings.LastIndex(typ, "/")+1:], func(t *testing.T) {
			t.Run("injected sleep", func(t *testing.T) {
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				clock := newFakeClock()
				clock.onSleep = func(n int) {
					if n == 1 {
						cancel()
					}
				}
				c := newClient(t, newEP(srv.URL+"/{function.name}", typ, time.Minute), Options{Now: clock.Now, Sleep: clock.Sleep})
				_, err := c.Invoke(ctx, "greeter", reqBody)
				ce := asCallError(t, err)
				if !errors.Is(err, context.Canceled) || ce.Final || ce.Attempts != 2 || ce.Status != 503 {
					t.Errorf("Final %v Attempts %d Status %d: %v", ce.Final, ce.Attempts, ce.Status, err)
				}
				mustContain(t, err.Error(), "stopped after 2 attempts", "context canceled", "503")
				if len(clock.Waits()) != 2 {
					t.Errorf("waits %v", clock.Waits())
				}
			})
			t.Run("real sleep", func(t *testing.T) {
				ctx, cancel := context.WithCancel(context.Background())
				c := newClient(t, newEP(srv.URL+"/{function.name}", typ, time.Minute), Options{})
				time.AfterFunc(150*time.Millisecond, cancel)
				start := time.Now()
				_, err := c.Invoke(ctx, "greeter", reqBody)
				took := time.Since(start)
				if !errors.Is(err, context.Canceled) {
					t.Fatalf("%v", err)
				}
				if took > 3*time.Second {
					t.Errorf("cancel took effect after %v", took)
				}
				if IsRetryable(err) {
					t.Error("IsRetryable(canceled) = true")
				}
			})
			t.Run("already canceled", func(t *testing.T) {
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				c := newClient(t, newEP(srv.URL+"/{function.name}", typ, time.Minute), Options{})
				_, err := c.Invoke(ctx, "greeter", reqBody)
				if ce := asCallError(t, err); !errors.Is(err, context.Canceled) || ce.Attempts != 0 {
					t.Errorf("%v", err)
				}
			})
		})
	}
}

func TestCancelDuringAttempt(t *testing.T) {
	t.Parallel()
	srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { block(r) }))
	c := newClient(t, newEP(srv.URL+"/{function.name}", async, time.Minute), Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_, err := c.Invoke(ctx, "greeter", reqBody)
	if ce := asCallError(t, err); !errors.Is(err, context.DeadlineExceeded) || ce.Attempts != 1 || ce.Final {
		t.Errorf("%v", err)
	}
}

func TestClose(t *testing.T) {
	t.Parallel()
	srv := newServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "down", http.StatusServiceUnavailable)
	}))
	c := newClient(t, newEP(srv.URL+"/{function.name}", async, time.Minute), Options{})
	time.AfterFunc(100*time.Millisecond, c.Close)
	_, err := c.Invoke(context.Background(), "greeter", reqBody)
	if !errors.Is(err, ErrClosed) || !errors.Is(err, context.Canceled) {
		t.Fatalf("%v", err)
	}
	_, err = c.Invoke(context.Background(), "greeter", reqBody)
	if ce := asCallError(t, err); !errors.Is(err, ErrClosed) || ce.Attempts != 0 {
		t.Fatalf("after Close: %v", err)
	}
	mustContain(t, err.Error(), "remote: client closed")
}

func TestIsRetryable(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want bool
	}{
		{nil, false},
		{errors.New("read: connection reset by peer"), true},
		{&timeoutError{msg: "x"}, true},
		{&StatusError{Code: 500}, true},
		{&StatusError{Code: 503}, true},
		{&StatusError{Code: 408}, true},
		{&StatusError{Code: 409}, true},
		{&StatusError{Code: 420}, true},
		{&StatusError{Code: 429}, true},
		{&StatusError{Code: 499}, true},
		{&StatusError{Code: 400}, false},
		{&StatusError{Code: 404}, false},
		{&StatusError{Code: 415}, false},
		{&StatusError{Code: 302}, false},
		{&ResponseTooLargeError{Limit: 1}, false},
		{&unsupportedEncodingError{"br"}, false},
		{context.Canceled, false},
		{fmt.Errorf("wrapped: %w", context.DeadlineExceeded), false},
		{ErrClosed, false},
		{&CallError{Last: &StatusError{Code: 500}, Final: true}, false},
		{&CallError{Last: context.Canceled, reason: reasonStopped}, false},
	} {
		if got := IsRetryable(tc.err); got != tc.want {
			t.Errorf("IsRetryable(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

func TestReadLimited(t *testing.T) {
	for _, tc := range []struct {
		n, hint, limit int64
		ok             bool
	}{
		{0, 0, 10, true}, {10, 10, 10, true}, {11, 11, 10, false}, {11, 0, 10, false},
		{5000, 0, 10000, true}, {5000, 5000, 10000, true}, {10001, 3, 10000, false},
	} {
		got, err := readLimited(bytes.NewReader(make([]byte, tc.n)), tc.hint, tc.limit)
		if tc.ok != (err == nil) || (tc.ok && int64(len(got)) != tc.n) {
			t.Errorf("%+v: %d bytes, %v", tc, len(got), err)
		}
	}
}

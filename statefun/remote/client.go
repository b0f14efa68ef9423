package remote

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/statefun-go/statefun/statefun/module"
)

// Options tune a Client. The zero value is ready to use.
type Options struct {
	// Logger receives the retry warnings and the content type warning.
	// Nil means slog.Default(). Bodies are never logged.
	Logger *slog.Logger
	// Now is the clock of the call budget. Nil means time.Now.
	Now func() time.Time
	// Sleep waits out a backoff; it must return early with ctx.Err() when
	// ctx ends. Nil means a timer raced against ctx.
	Sleep func(ctx context.Context, d time.Duration) error
	// UserAgent is the User-Agent header. Empty means "statefun".
	UserAgent string
	// H2C speaks cleartext HTTP/2 with prior knowledge (h2c) to http:// and
	// http+unix:// endpoints instead of HTTP/1.1, whatever the transport.
	// The endpoint must accept h2c (for example a Go server with
	// http.Protocols UnencryptedHTTP2); upstream StateFun has no such
	// option, so it is off by default and is not a module.yaml key. Over
	// TLS no option is needed: the okhttp transport negotiates HTTP/2 by
	// ALPN as OkHttp does, the async transport stays on HTTP/1.1 as Netty.
	H2C bool
}

// Client is the request-reply HTTP client of one endpoint. It is safe for
// concurrent use.
type Client struct {
	ep    *module.Endpoint
	set   settings
	sch   scheme
	log   *slog.Logger
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) error
	ua    string

	dialer    *net.Dialer
	transport *http.Transport
	hc        *http.Client
	slots     chan struct{} // async: one slot per pooled connection

	targets  sync.Map // function name -> *target
	nTargets atomic.Int64

	unixMu      sync.Mutex
	unixSockets map[string]string // alias host -> socket file
	unixAliases map[string]string // socket file -> alias host

	closeCtx context.Context
	closeFn  context.CancelFunc

	ctWarned atomic.Bool
	lastWarn atomic.Int64 // unix nanos of the last retry warning

	st counters
}

// Stats are the cumulative counters of a Client.
type Stats struct {
	// Requests counts Invoke calls.
	Requests int64
	// Attempts counts HTTP attempts (each retry is one more).
	Attempts int64
	// Retries counts the attempts after the first of a call.
	Retries int64
	// Successes and Failures count the Invoke calls that returned a body
	// and an error.
	Successes, Failures int64
	// InFlight is the number of Invoke calls running now.
	InFlight int64
	// BytesSent counts request body bytes over all attempts;
	// BytesReceived counts the (decompressed) bodies of successful calls.
	BytesSent, BytesReceived int64
}

type counters struct {
	requests, attempts, retries, successes, failures, inFlight, bytesSent, bytesReceived atomic.Int64
}

// Stats returns a snapshot of the counters.
func (c *Client) Stats() Stats {
	return Stats{
		Requests:      c.st.requests.Load(),
		Attempts:      c.st.attempts.Load(),
		Retries:       c.st.retries.Load(),
		Successes:     c.st.successes.Load(),
		Failures:      c.st.failures.Load(),
		InFlight:      c.st.inFlight.Load(),
		BytesSent:     c.st.bytesSent.Load(),
		BytesReceived: c.st.bytesReceived.Load(),
	}
}

// unixHostSuffix makes the synthetic host names that stand for unix
// sockets in request URLs; ".invalid" never resolves (RFC 2606).
const unixHostSuffix = ".sock.statefun.invalid"

// maxCachedTargets bounds the per-function URL cache.
const maxCachedTargets = 4096

// NewClient validates the endpoint and builds its client: the transport
// settings (with defaults for zero fields), the URL scheme, and for https
// the TLS material (a readable CA bundle, a matching certificate and key).
// Errors name the endpoint's file:line and the offending field.
func NewClient(ep *module.Endpoint, opts Options) (*Client, error) {
	if ep == nil {
		return nil, errors.New("remote: nil endpoint")
	}
	set, err := resolveSettings(ep)
	if err != nil {
		return nil, err
	}
	sch, err := parseScheme(ep)
	if err != nil {
		return nil, err
	}
	c := &Client{
		ep:    ep,
		set:   set,
		sch:   sch,
		now:   opts.Now,
		sleep: opts.Sleep,
		ua:    opts.UserAgent,
	}
	logger := opts.Logger
	if logger == nil {
		logger = slog.Default()
	}
	c.log = logger.With("endpoint", ep.Functions.String(), "module", ep.Pos.String())
	if c.now == nil {
		c.now = time.Now
	}
	if c.sleep == nil {
		c.sleep = sleepCtx
	}
	if c.ua == "" {
		c.ua = DefaultUserAgent
	}

	var tlsCfg *tls.Config
	if sch.tls {
		if tlsCfg, err = buildTLS(ep); err != nil {
			return nil, err
		}
		if sch.unix {
			tlsCfg.ServerName = "localhost"
		}
	} else if tlsSettingsPresent(ep.Transport) {
		c.log.Warn("TLS settings (trust_cacerts, client_cert, client_key) are ignored for a cleartext URL", "url", ep.URLPathTemplate)
	}

	c.dialer = &net.Dialer{Timeout: set.connect, KeepAlive: tcpKeepAlive}
	protocols := new(http.Protocols)
	switch {
	case sch.tls && set.okhttp:
		// OkHttp negotiates HTTP/2 by ALPN; the async (Netty) transport
		// speaks HTTP/1.1 only, which keeps pool_size a connection count.
		protocols.SetHTTP1(true)
		protocols.SetHTTP2(true)
	case sch.tls:
		protocols.SetHTTP1(true)
	case opts.H2C:
		protocols.SetUnencryptedHTTP2(true)
		protocols.SetHTTP2(true) // for a redirect to https
	default:
		protocols.SetHTTP1(true)
	}
	tr := &http.Transport{
		Proxy:               nil, // like upstream: no proxy
		DialContext:         c.dial,
		TLSClientConfig:     tlsCfg,
		TLSHandshakeTimeout: set.connect,
		DisableCompression:  true, // Accept-Encoding is set and decoded here
		IdleConnTimeout:     set.poolTTL,
		Protocols:           protocols,
	}
	if set.okhttp {
		tr.MaxIdleConns = okhttpMaxIdle
		tr.MaxIdleConnsPerHost = okhttpMaxIdle
		tr.ResponseHeaderTimeout = set.read
	} else {
		tr.MaxConnsPerHost = set.poolSize
		tr.MaxIdleConnsPerHost = set.poolSize
		c.slots = make(chan struct{}, set.poolSize)
	}
	c.transport = tr
	c.hc = &http.Client{Transport: tr, CheckRedirect: checkRedirect}
	c.closeCtx, c.closeFn = context.WithCancel(context.Background())
	return c, nil
}

// Endpoint returns the endpoint the client was built for.
func (c *Client) Endpoint() *module.Endpoint { return c.ep }

// TransportType returns the effective transport: module.TransportAsync or
// module.TransportOkHTTP.
func (c *Client) TransportType() string { return c.set.typeName() }

// Close stops the calls in progress (they fail with ErrClosed), makes
// later calls fail at once, and closes the idle connections.
func (c *Client) Close() {
	c.closeFn()
	c.transport.CloseIdleConnections()
}

// checkRedirect follows only method-preserving redirects (307, 308): the
// body must reach the function as a POST. 301, 302 and 303 come back as a
// non-2xx status.
func checkRedirect(req *http.Request, via []*http.Request) error {
	if req.Response != nil {
		if code := req.Response.StatusCode; code != http.StatusTemporaryRedirect && code != http.StatusPermanentRedirect {
			return http.ErrUseLastResponse
		}
	}
	if len(via) >= 10 {
		return errors.New("stopped after 10 redirects")
	}
	return nil
}

// dial connects to an address, or to the unix socket a synthetic host
// stands for, and applies the okhttp write timeout.
func (c *Client) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	var conn net.Conn
	var err error
	if sock, ok := c.socketOf(addr); ok {
		conn, err = c.dialer.DialContext(ctx, "unix", sock)
	} else {
		conn, err = c.dialer.DialContext(ctx, network, addr)
	}
	if err != nil {
		return nil, err
	}
	if c.set.okhttp && c.set.write > 0 {
		conn = &writeDeadlineConn{Conn: conn, d: c.set.write}
	}
	return conn, nil
}

func (c *Client) socketOf(addr string) (string, bool) {
	if !c.sch.unix {
		return "", false
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if !strings.HasSuffix(host, unixHostSuffix) {
		return "", false
	}
	c.unixMu.Lock()
	defer c.unixMu.Unlock()
	s, ok := c.unixSockets[host]
	return s, ok
}

func (c *Client) unixHost(socket string) string {
	c.unixMu.Lock()
	defer c.unixMu.Unlock()
	if h, ok := c.unixAliases[socket]; ok {
		return h
	}
	if c.unixAliases == nil {
		c.unixAliases = map[string]string{}
		c.unixSockets = map[string]string{}
	}
	h := fmt.Sprintf("s%d%s", len(c.unixAliases), unixHostSuffix)
	c.unixAliases[socket] = h
	c.unixSockets[h] = socket
	return h
}

// target is the request URL of one function.
type target struct {
	display string // the templated URL, for errors and logs
	url     string // the URL requested
	host    string // Host header override; empty means the URL's host
}

func (c *Client) target(fn string) (*target, error) {
	if t, ok := c.targets.Load(fn); ok {
		return t.(*target), nil
	}
	raw := c.ep.URLFor(fn)
	t := &target{display: raw}
	u, err := url.Parse(raw)
	if err != nil {
		return t, &invalidRequestError{fmt.Errorf("invalid URL for function %q: %v", fn, unwrapURLError(err))}
	}
	if !strings.EqualFold(u.Scheme, c.sch.name) {
		return t, &invalidRequestError{fmt.Errorf("the function name %q changes the URL scheme", fn)}
	}
	u.Fragment, u.RawFragment = "", ""
	if c.sch.unix {
		sock, path, ok := module.SplitUnixSocketPath(u.Path)
		if !ok {
			return t, &invalidRequestError{fmt.Errorf("URL %q names no .sock file", raw)}
		}
		if strings.HasSuffix(u.Path, "/") && path != "/" {
			path += "/"
		}
		r := &url.URL{Scheme: "http", Host: c.unixHost(sock), Path: path, RawQuery: u.RawQuery}
		if c.sch.tls {
			r.Scheme = "https"
		}
		t.url, t.host = r.String(), "localhost"
	} else {
		u.Scheme = c.sch.name
		if u.Host == "" {
			return t, &invalidRequestError{fmt.Errorf("URL %q has no host", raw)}
		}
		// Host: host[:port], without the port when it is the default.
		if p := u.Port(); (p == "80" && !c.sch.tls) || (p == "443" && c.sch.tls) {
			h := u.Hostname()
			if strings.Contains(h, ":") {
				h = "[" + h + "]"
			}
			t.host = h
		}
		t.url = u.String()
	}
	if c.nTargets.Load() < maxCachedTargets {
		if _, loaded := c.targets.LoadOrStore(fn, t); !loaded {
			c.nTargets.Add(1)
		}
	}
	return t, nil
}

// Invoke POSTs body (a serialized ToFunction) to the URL of functionName
// and returns the response body (a serialized FromFunction), retrying by
// the rules of the endpoint's transport. Every error is a *CallError.
func (c *Client) Invoke(ctx context.Context, functionName string, body []byte) ([]byte, error) {
	c.st.requests.Add(1)
	c.st.inFlight.Add(1)
	out, err := c.invoke(ctx, functionName, body)
	c.st.inFlight.Add(-1)
	if err != nil {
		c.st.failures.Add(1)
		return nil, err
	}
	c.st.successes.Add(1)
	c.st.bytesReceived.Add(int64(len(out)))
	return out, nil
}

func (c *Client) invoke(parent context.Context, fn string, body []byte) ([]byte, error) {
	start := c.now()
	t, err := c.target(fn)
	if err != nil {
		return nil, &CallError{URL: t.display, Budget: c.set.call, Last: err, reason: reasonInvalid}
	}
	ctx, cancel := context.WithCancelCause(parent)
	defer cancel(nil)
	if c.closeCtx.Err() != nil {
		cancel(ErrClosed)
	} else {
		stop := context.AfterFunc(c.closeCtx, func() { cancel(ErrClosed) })
		defer stop()
	}

	var last error    // the last endpoint failure
	var telling error // the last failure other than an attempt timeout
	status := 0
	fail := func(attempts, reason int, cause error) *CallError {
		e := &CallError{
			URL: t.display, Attempts: attempts, Elapsed: c.now().Sub(start), Budget: c.set.call,
			Last: cause, Status: status, reason: reason,
			Final: reason == reasonBudget || reason == reasonNotRetryable,
		}
		if te, ok := cause.(*timeoutError); ok && te.attempt && reason == reasonBudget && telling != nil {
			e.prior = telling
		}
		return e
	}
	stopped := func(attempts int) *CallError {
		e := fail(attempts, reasonStopped, ctxErr(ctx))
		e.prior = last
		return e
	}
	if ctx.Err() != nil {
		return nil, stopped(0)
	}

	backoff := okhttpFirstBackoff
	for attempt := 1; ; attempt++ {
		remaining := c.set.call - c.now().Sub(start)
		timeout := remaining
		if !c.set.okhttp {
			// Whichever is larger: the remaining budget or 7-13 ms.
			if j := jitterMin + rand.N(jitterMax-jitterMin+1); j > timeout {
				timeout = j
			}
		}
		if attempt > 1 {
			c.st.retries.Add(1)
		}
		c.st.attempts.Add(1)
		c.st.bytesSent.Add(int64(len(body)))
		out, code, err := c.attempt(ctx, t, body, timeout)
		if err == nil {
			return out, nil
		}
		if ctx.Err() != nil {
			return nil, stopped(attempt)
		}
		if code != 0 {
			status = code
		}
		last = err
		if te, ok := err.(*timeoutError); !ok || !te.attempt {
			telling = err
		}
		if !c.retryable(err) {
			return nil, fail(attempt, reasonNotRetryable, err)
		}

		remaining = c.set.call - c.now().Sub(start)
		var wait time.Duration
		if c.set.okhttp {
			if remaining <= 0 {
				return nil, fail(attempt, reasonBudget, err)
			}
			wait = min(backoff, remaining)
			if backoff < c.set.call {
				backoff *= 2
			}
		} else {
			if remaining <= asyncMinBudget {
				return nil, fail(attempt, reasonBudget, err)
			}
			wait = remaining
			if attempt < 32 {
				wait = min(asyncBackoffBase<<attempt, remaining)
			}
		}
		c.logRetry(t, attempt, err, wait)
		if err := c.sleep(ctx, wait); err != nil || ctx.Err() != nil {
			return nil, stopped(attempt)
		}
		if c.set.okhttp && c.set.call-c.now().Sub(start) <= 0 {
			// The OkHttp call timeout covers the backoff: no time is left
			// for another attempt.
			return nil, fail(attempt, reasonBudget, err)
		}
	}
}

func (c *Client) retryable(err error) bool {
	if c.set.okhttp {
		return okhttpRetryable(err)
	}
	return asyncRetryable(err)
}

// attempt makes one HTTP exchange bounded by timeout. It returns the body,
// the status code (0 when none arrived) and the failure.
func (c *Client) attempt(ctx context.Context, t *target, body []byte, timeout time.Duration) ([]byte, int, error) {
	actx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	timer := time.AfterFunc(timeout, func() {
		cancel(&timeoutError{msg: fmt.Sprintf("attempt timed out after %s", timeout), attempt: true})
	})
	defer timer.Stop()

	if c.slots != nil {
		if err := c.acquire(actx); err != nil {
			return nil, 0, err
		}
		defer func() { <-c.slots }()
	}

	req, err := http.NewRequestWithContext(actx, http.MethodPost, t.url, bytes.NewReader(body))
	if err != nil {
		return nil, 0, &invalidRequestError{err}
	}
	if t.host != "" {
		req.Host = t.host
	}
	req.Header = http.Header{
		"Content-Type":    {"application/octet-stream"},
		"Accept":          {"application/octet-stream"},
		"Accept-Encoding": {"gzip, deflate"},
		"User-Agent":      {c.ua},
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, 0, causeOf(actx, err)
	}
	defer resp.Body.Close()

	var r io.Reader = resp.Body
	if c.set.okhttp && c.set.read > 0 {
		read := c.set.read
		wd := time.AfterFunc(read, func() {
			cancel(&timeoutError{msg: fmt.Sprintf("read timed out: no response bytes for %s", read)})
		})
		defer wd.Stop()
		r = &watchdogReader{r: resp.Body, t: wd, d: read}
	}

	encoding := resp.Header.Get("Content-Encoding")
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, resp.StatusCode, &StatusError{Code: resp.StatusCode, Status: resp.Status, Body: excerpt(r, encoding)}
	}
	c.checkContentType(t, resp.Header.Get("Content-Type"))

	dec, identity, err := decoder(encoding, r)
	if err != nil {
		return nil, resp.StatusCode, causeOf(actx, err)
	}
	defer dec.Close()
	hint := int64(0)
	if identity {
		if resp.ContentLength > c.set.maxBytes {
			return nil, resp.StatusCode, &ResponseTooLargeError{Limit: c.set.maxBytes}
		}
		hint = resp.ContentLength
	}
	data, err := readLimited(dec, hint, c.set.maxBytes)
	if err != nil {
		return nil, resp.StatusCode, causeOf(actx, err)
	}
	return data, resp.StatusCode, nil
}

// causeOf returns the failure of an attempt: the timeout this package
// armed when it fired, else the transport's error without the *url.Error
// wrapper (the CallError names the URL already).
func causeOf(actx context.Context, err error) error {
	var te *timeoutError
	if errors.As(err, &te) {
		return te
	}
	if actx.Err() != nil {
		if cause := context.Cause(actx); cause != nil {
			if errors.As(cause, &te) {
				return cause
			}
		}
	}
	return unwrapURLError(err)
}

// acquire takes a pool slot (async transport), waiting at most the connect
// timeout as upstream waits for a pooled connection.
func (c *Client) acquire(ctx context.Context) error {
	select {
	case c.slots <- struct{}{}:
		return nil
	default:
	}
	t := time.NewTimer(c.set.connect)
	defer t.Stop()
	select {
	case c.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-t.C:
		return &timeoutError{msg: fmt.Sprintf("no pooled connection free within the connect timeout of %s (pool_size %d)", c.set.connect, c.set.poolSize)}
	}
}

// checkContentType warns, once per endpoint, about a Content-Type that is
// present and not application/octet-stream. A missing one is fine (the Go
// SDK sets none).
func (c *Client) checkContentType(t *target, ct string) {
	if ct == "" {
		return
	}
	if mt, _, err := mime.ParseMediaType(ct); err == nil && mt == "application/octet-stream" {
		return
	}
	if c.ctWarned.CompareAndSwap(false, true) {
		c.log.Warn("remote function replied with an unexpected Content-Type; expected application/octet-stream (reported once per endpoint)",
			"url", t.display, "content_type", ct)
	}
}

// logRetry logs a failed attempt that will be retried: at Warn level at
// most once a second per endpoint, at Debug level otherwise.
func (c *Client) logRetry(t *target, attempt int, err error, wait time.Duration) {
	level := slog.LevelDebug
	now := time.Now().UnixNano()
	if prev := c.lastWarn.Load(); now-prev >= int64(time.Second) && c.lastWarn.CompareAndSwap(prev, now) {
		level = slog.LevelWarn
	}
	if !c.log.Enabled(context.Background(), level) {
		return
	}
	c.log.Log(context.Background(), level, "remote function call failed; retrying",
		"url", t.display, "attempt", attempt, "retry_in", wait, "transport", c.set.typeName(), "error", err.Error())
}

// ctxErr is the error of an ended context: its cause, wrapping ctx.Err().
func ctxErr(ctx context.Context) error {
	err := ctx.Err()
	cause := context.Cause(ctx)
	if cause == nil || cause == err || errors.Is(cause, err) {
		if cause == nil {
			return err
		}
		return cause
	}
	return fmt.Errorf("%w (%w)", cause, err)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

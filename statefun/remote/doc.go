// Package remote is the request-reply HTTP client of remote function
// endpoints: it carries one serialized ToFunction to a function's URL and
// brings back the serialized FromFunction, with the timeouts, retries and
// connection pooling of the upstream StateFun transports.
//
// It owns, for one endpoint (a *module.Endpoint, one Client each):
//
//   - validation of what the module loader cannot check without touching
//     the file system: the URL scheme, a readable CA bundle, a matching
//     client certificate and key (errors name the endpoint's file:line and
//     the field, such as spec.transport.trust_cacerts);
//   - the HTTP exchange: POST to Endpoint.URLFor(name) with
//     "Content-Type: application/octet-stream" (exactly, no parameters, as
//     the Go SDK demands), "Accept: application/octet-stream",
//     "Accept-Encoding: gzip, deflate", "User-Agent: statefun" and a
//     Content-Length; the Host header leaves out a default port;
//   - the response: a 2xx status is required; a Content-Type that is
//     present and not application/octet-stream is only a warning, logged
//     once per endpoint (a missing one is normal: the Go SDK sets none);
//     gzip and deflate (zlib or raw) bodies are decompressed; the
//     decompressed body is limited to payload_max_bytes (default 32 MiB,
//     also for okhttp which upstream does not limit): at most limit+1
//     bytes are read, then the attempt fails with "response exceeds
//     payload_max_bytes (N)";
//   - schemes: http, https (TLS 1.2+; HTTP/2 is negotiated by ALPN for the
//     okhttp transport as OkHttp does, the async transport stays on
//     HTTP/1.1 as Netty, so that pool_size counts connections), and
//     http+unix / https+unix: the socket is the path up to the first
//     segment ending in ".sock" (module.SplitUnixSocketPath), the HTTP path
//     is what follows, the Host header (and TLS server name) is
//     "localhost". Cleartext HTTP/2 (h2c, prior knowledge) is an opt-in,
//     Options.H2C;
//   - TLS material (https only; ignored with a warning for cleartext
//     URLs): trust_cacerts is a PEM bundle that replaces the system roots;
//     client_cert and client_key give the mutual TLS certificate; the key
//     is PKCS#8 (or PKCS#1/SEC 1) PEM, and an encrypted PKCS#8 key is
//     decrypted with the password held in the file client_key_password
//     names (PBES2: PBKDF2 with HMAC-SHA1/224/256/384/512, AES-CBC or
//     DES-EDE3-CBC; other schemes and legacy "Proc-Type" PEM encryption are
//     refused with a clear message). Locations are file paths, "file:"
//     paths or file:// URLs; a relative path is looked up next to the
//     module file first, then in the working directory; "classpath:" and
//     remote URLs are refused. Without trust_cacerts the system roots are
//     loaded by NewClient, not during the first call's budget.
//
// # Retry rules
//
// The transport is spec.transport.type; io.statefun.endpoints.v1/http
// always uses okhttp, v2 defaults to async.
//
// Async (io.statefun.transports.v1/async): one call budget, "call"
// (default 2 min), covers all attempts and waits of a call. Each attempt
// is bounded by whichever is larger: the remaining budget or a random
// 7–13 ms. Every attempt failure is retried — a non-2xx status (whatever
// it is), a transport error (refused, reset, TLS, timeout), a pool wait
// timeout — except an oversize or undecodable (unknown Content-Encoding)
// response, which fails at once (upstream fails the aggregation too).
// After the n-th failed attempt the client waits 2ms·2^n (4, 8, 16 ms...)
// capped at the remaining budget; once 1 ms or less of budget is left the
// call fails with "call budget of <call> spent after N attempts".
//
// OkHttp (io.statefun.transports.v1/okhttp): "call" (default 1 min) bounds
// the whole call, attempts and backoff included. I/O errors (including TLS
// failures and the connect/read/write timeouts) and the statuses 408,
// 409, 420, 429, 499 and every status >= 500 are retried; any other
// non-2xx status (400, 404, 415, a 302...) fails at once. The backoff
// starts at 10 ms and doubles, capped by what is left of "call"; when
// nothing is left the call fails with "call budget of <call> spent".
//
// Both: redirects are followed only when they keep the POST and its body
// (307, 308; at most 10); 301, 302 and 303 are non-2xx statuses. The
// caller's context ends a call at once, attempt or backoff alike, with an
// error wrapping ctx.Err(); Close does the same with ErrClosed. Options.Now
// is the clock of the budget and Options.Sleep the backoff wait, both
// injectable. Every error of Invoke is a *CallError (Final when the
// endpoint failed for good); IsRetryable classifies causes. When the last
// attempt of a spent budget merely timed out (typically the short attempt
// after a capped wait), the message also shows the last more telling failure
// ("earlier failure: HTTP status 400 ...").
//
// # Timeouts, as mapped onto net/http
//
//	async  call              budget over attempts (Options.Now), per-attempt context timeout
//	async  connect           net.Dialer.Timeout, TLSHandshakeTimeout, and the wait for a pool slot
//	async  pool_size         MaxConnsPerHost, MaxIdleConnsPerHost and a slot semaphore per client
//	async  pool_ttl          IdleConnTimeout: an idle connection expires after pool_ttl
//	                         (0 = never); not a maximum age, and no jitter
//	okhttp call              budget over attempts and backoff; each attempt gets what is left
//	okhttp connect           net.Dialer.Timeout and TLSHandshakeTimeout
//	okhttp read              ResponseHeaderTimeout (request written -> response headers),
//	                         then an inactivity timer on the body, reset by every read
//	                         that returns bytes (OkHttp's socket read timeout)
//	okhttp write             a write deadline of "write" set before every write on the
//	                         connection (request line, headers, body)
//	okhttp pool              1024 idle connections for 1 min, no limit on connections
//
// TCP keep-alive is on (15 s). No HTTP proxy is used.
//
// # Invariants
//
//   - Never more attempts than the budget allows: a new attempt starts only
//     while budget is left (async: more than 1 ms after a failure; the
//     attempt after a backoff capped at the remaining budget gets the 7–13
//     ms floor, as upstream), and no wait exceeds the remaining budget.
//   - Request and response bodies are never logged; logs carry the URL,
//     the attempt number, the status and the error. A non-2xx response's
//     error carries at most 200 characters of its body when it is
//     printable text (the SDKs put the failure message there).
//   - Retry warnings are logged at most once a second per endpoint (the
//     others at Debug level).
//   - A Client is safe for concurrent use; Stats are atomics.
package remote

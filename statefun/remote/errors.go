package remote

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// ErrClosed is the cause of the failure of a call stopped, or refused,
// because the Client was closed.
var ErrClosed = errors.New("remote: client closed")

// The ways a call can end in failure (CallError.reason).
const (
	reasonBudget       = iota + 1 // the call budget is spent
	reasonNotRetryable            // a failure the transport does not retry
	reasonStopped                 // the caller's context ended, or Close
	reasonInvalid                 // the request could not be built
)

// CallError is the error of a failed Invoke. Every error Invoke returns is
// a *CallError.
type CallError struct {
	// URL is the URL the call was sent to (as templated, before any unix
	// socket rewriting).
	URL string
	// Attempts is the number of HTTP attempts made (0 when the request
	// could not be built or the context had ended before the first one).
	Attempts int
	// Elapsed is the time from the start of the call to its failure, as
	// measured by Options.Now.
	Elapsed time.Duration
	// Budget is the call budget of the endpoint (transport "call").
	Budget time.Duration
	// Last is the cause of the last failure: a *StatusError, a
	// *ResponseTooLargeError, a transport error (connection refused, TLS,
	// timeout...), or, when the call was stopped, the context's error
	// (wrapping ErrClosed after Close).
	Last error
	// Status is the HTTP status of the last attempt that got a response
	// status, 0 if none did.
	Status int
	// Final is true when the endpoint failed for good: the call budget is
	// spent, or the last failure is one the transport does not retry. It
	// is false when the call was stopped from outside (context canceled
	// or deadline, Close) or the request could not be built.
	Final bool

	reason int
	// prior is, for a stopped call, the last endpoint failure before the
	// stop; for a spent budget whose last attempt merely timed out, the
	// last more telling failure. Only shown in the message.
	prior error
}

// Error names the URL, the number of attempts and the last cause.
func (e *CallError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "remote: POST %s: ", e.URL)
	el := e.Elapsed.Round(time.Millisecond)
	switch e.reason {
	case reasonBudget:
		fmt.Fprintf(&b, "call budget of %s spent after %s in %s", e.Budget, plural(e.Attempts, "attempt"), el)
	case reasonNotRetryable:
		fmt.Fprintf(&b, "failed after %s in %s (not retryable)", plural(e.Attempts, "attempt"), el)
	case reasonStopped:
		fmt.Fprintf(&b, "stopped after %s in %s", plural(e.Attempts, "attempt"), el)
	case reasonInvalid:
		b.WriteString("invalid request")
	default:
		fmt.Fprintf(&b, "failed after %s", plural(e.Attempts, "attempt"))
	}
	fmt.Fprintf(&b, ": %v", e.Last)
	if e.prior != nil {
		if e.reason == reasonStopped {
			fmt.Fprintf(&b, " (last endpoint failure: %v)", e.prior)
		} else {
			fmt.Fprintf(&b, " (earlier failure: %v)", e.prior)
		}
	}
	return b.String()
}

// Unwrap returns Last, so errors.Is(err, context.Canceled) and
// errors.As(err, &statusErr) work through a CallError.
func (e *CallError) Unwrap() error { return e.Last }

func plural(n int, word string) string {
	if n == 1 {
		return "1 " + word
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// StatusError is the failure of an attempt answered with a non-2xx status.
type StatusError struct {
	Code int
	// Status is the status line text ("500 Internal Server Error").
	Status string
	// Body is a short, single-line excerpt of the response body when it is
	// printable text (SDKs put the error message there), else empty.
	Body string
}

func (e *StatusError) Error() string {
	s := "HTTP status " + e.Status
	if e.Status == "" {
		s = fmt.Sprintf("HTTP status %d", e.Code)
	}
	if e.Code >= 300 && e.Code < 400 {
		s += " (redirects are followed only for 307 and 308 with a Location)"
	}
	if e.Body != "" {
		s += ": " + e.Body
	}
	return s
}

// ResponseTooLargeError is the failure of an attempt whose response body
// (after decompression) is larger than the endpoint's payload_max_bytes.
// It is never retried.
type ResponseTooLargeError struct {
	Limit int64
}

func (e *ResponseTooLargeError) Error() string {
	return fmt.Sprintf("response exceeds payload_max_bytes (%d)", e.Limit)
}

// unsupportedEncodingError is the failure of a response with a
// Content-Encoding other than gzip, deflate or identity. Never retried.
type unsupportedEncodingError struct{ encoding string }

func (e *unsupportedEncodingError) Error() string {
	return fmt.Sprintf("unsupported response Content-Encoding %q (accepted: gzip, deflate, identity)", e.encoding)
}

// timeoutError is a timeout this package arms itself: the attempt timeout,
// the okhttp read timeout on the body, the wait for a pooled connection.
type timeoutError struct {
	msg     string
	attempt bool // the attempt timeout (budget or 7-13 ms floor)
}

func (e *timeoutError) Error() string { return e.msg }
func (e *timeoutError) Timeout() bool { return true }

// Temporary is part of the legacy net.Error interface.
func (e *timeoutError) Temporary() bool { return true }

var _ net.Error = (*timeoutError)(nil)

// IsRetryable reports whether err is a failure that another attempt could
// fix, by the rules of the okhttp transport (the stricter of the two; the
// async transport retries every attempt failure except an oversize
// response):
//
//   - a transport (I/O) error such as a refused connection, a reset, a TLS
//     failure or a timeout: true;
//   - a *StatusError: true for 408, 409, 420, 429, 499 and every status
//     >= 500, false otherwise;
//   - a *ResponseTooLargeError or an unsupported Content-Encoding: false;
//   - nil, context.Canceled, context.DeadlineExceeded or ErrClosed (the
//     caller stopped the call): false;
//   - a *CallError: false when it is Final, else IsRetryable(Last) (so
//     false for a call stopped by its context).
func IsRetryable(err error) bool {
	if err == nil {
		return false
	}
	var ce *CallError
	if errors.As(err, &ce) {
		if ce.Final || ce.reason == reasonInvalid {
			return false
		}
		return IsRetryable(ce.Last)
	}
	if callerStopped(err) {
		return false
	}
	return okhttpRetryable(err)
}

// callerStopped reports whether err is the end of the caller's context or
// Close, as opposed to an I/O timeout (net/http's own timeouts claim to be
// context.DeadlineExceeded too).
func callerStopped(err error) bool {
	if errors.Is(err, context.Canceled) || errors.Is(err, ErrClosed) {
		return true
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	for e := err; e != nil; e = errors.Unwrap(e) {
		if e == context.DeadlineExceeded {
			return true
		}
		if ne, ok := e.(net.Error); ok && ne.Timeout() {
			return false
		}
	}
	return true
}

// okhttpRetryable classifies one attempt failure for the okhttp transport
// (the caller's context is checked before).
func okhttpRetryable(err error) bool {
	var se *StatusError
	if errors.As(err, &se) {
		return retryableStatus(se.Code)
	}
	return asyncRetryable(err)
}

// asyncRetryable classifies one attempt failure for the async transport:
// everything is retried except an oversize or undecodable response.
func asyncRetryable(err error) bool {
	var tl *ResponseTooLargeError
	var ue *unsupportedEncodingError
	var ie *invalidRequestError
	return !errors.As(err, &tl) && !errors.As(err, &ue) && !errors.As(err, &ie)
}

// retryableStatus is the okhttp transport's status rule.
func retryableStatus(code int) bool {
	switch code {
	case 408, 409, 420, 429, 499, 500:
		return true
	}
	return code >= 500
}

// invalidRequestError is a request that cannot be built (bad URL).
type invalidRequestError struct{ err error }

func (e *invalidRequestError) Error() string { return e.err.Error() }
func (e *invalidRequestError) Unwrap() error { return e.err }

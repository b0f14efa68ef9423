package remote

import (
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/statefun-go/statefun/statefun/module"
)

// Defaults this package applies on top of the module loader's (for a hand
// built Endpoint with zero fields).
const (
	// DefaultPayloadMaxBytes bounds a response body when the endpoint sets
	// no payload_max_bytes (always the case for okhttp, which upstream does
	// not bound at all).
	DefaultPayloadMaxBytes = module.DefaultAsyncPayloadMaxBytes
	// DefaultUserAgent is the User-Agent header, as upstream.
	DefaultUserAgent = "statefun"

	// okhttp connection pool, as upstream: 1024 idle connections kept for
	// one minute, no limit on concurrent connections.
	okhttpMaxIdle     = 1024
	okhttpIdleTimeout = time.Minute

	// tcpKeepAlive is the TCP keep-alive period (keep-alive is on).
	tcpKeepAlive = 15 * time.Second

	asyncBackoffBase   = 2 * time.Millisecond // the n-th wait is 2ms * 2^n
	okhttpFirstBackoff = 10 * time.Millisecond
	asyncMinBudget     = time.Millisecond // at or below this the async call fails
	jitterMin          = 7 * time.Millisecond
	jitterMax          = 13 * time.Millisecond
)

// settings are the effective transport settings of one endpoint.
type settings struct {
	okhttp                              bool
	call, connect, read, write, poolTTL time.Duration
	poolSize                            int
	maxBytes                            int64
}

func (s settings) typeName() string {
	if s.okhttp {
		return module.TransportOkHTTP
	}
	return module.TransportAsync
}

// scheme kinds of an endpoint URL.
type scheme struct {
	name string // "http", "https", "http+unix", "https+unix"
	tls  bool
	unix bool
}

// configError formats a configuration error naming the endpoint's
// position, its bound functions and the offending field.
func configError(ep *module.Endpoint, field, format string, args ...any) error {
	pos := ep.Pos.String()
	if pos == "" {
		pos = "<endpoint>"
	}
	return fmt.Errorf("%s: endpoint %s: %s: %s", pos, ep.Functions, field, fmt.Sprintf(format, args...))
}

// transportField is the YAML path of a transport property.
func transportField(ep *module.Endpoint, key string) string {
	if ep.Kind == module.KindHTTPv1 {
		return "spec.timeouts." + key
	}
	switch key {
	case "call", "connect", "read", "write":
		if ep.Transport.Type == module.TransportOkHTTP {
			return "spec.transport.timeouts." + key
		}
	}
	return "spec.transport." + key
}

// resolveSettings applies the transport choice and the defaults.
func resolveSettings(ep *module.Endpoint) (settings, error) {
	t := ep.Transport
	var s settings
	switch {
	case ep.Kind == module.KindHTTPv1:
		s.okhttp = true // the v1 kind always uses OkHttp
	case t.Type == "" || t.Type == module.TransportAsync:
	case t.Type == module.TransportOkHTTP:
		s.okhttp = true
	default:
		return s, configError(ep, "spec.transport.type", "unsupported transport %q; supported are %s and %s",
			t.Type, module.TransportAsync, module.TransportOkHTTP)
	}
	dur := func(key string, v, def time.Duration) (time.Duration, error) {
		switch {
		case v < 0:
			return 0, configError(ep, transportField(ep, key), "must be larger than 0, got %s", v)
		case v == 0:
			return def, nil
		}
		return v, nil
	}
	var err error
	if s.okhttp {
		if s.call, err = dur("call", t.Call, module.DefaultTimeoutsCall); err != nil {
			return s, err
		}
		if s.connect, err = dur("connect", t.Connect, module.DefaultTimeoutsConnect); err != nil {
			return s, err
		}
		if s.read, err = dur("read", t.Read, module.DefaultTimeoutsRead); err != nil {
			return s, err
		}
		if s.write, err = dur("write", t.Write, module.DefaultTimeoutsWrite); err != nil {
			return s, err
		}
		s.poolTTL = okhttpIdleTimeout
		s.maxBytes = DefaultPayloadMaxBytes
		if t.PayloadMaxBytes > 0 {
			s.maxBytes = t.PayloadMaxBytes
		}
		return s, nil
	}
	if s.call, err = dur("call", t.Call, module.DefaultAsyncCall); err != nil {
		return s, err
	}
	if s.connect, err = dur("connect", t.Connect, module.DefaultAsyncConnect); err != nil {
		return s, err
	}
	if t.PoolTTL < 0 {
		return s, configError(ep, transportField(ep, "pool_ttl"), "must not be negative, got %s", t.PoolTTL)
	}
	s.poolTTL = t.PoolTTL // 0 keeps idle connections forever
	switch {
	case t.PoolSize < 0:
		return s, configError(ep, transportField(ep, "pool_size"), "must be larger than 0, got %d", t.PoolSize)
	case t.PoolSize == 0:
		s.poolSize = module.DefaultAsyncPoolSize
	default:
		s.poolSize = t.PoolSize
	}
	switch {
	case t.PayloadMaxBytes < 0:
		return s, configError(ep, transportField(ep, "payload_max_bytes"), "must be larger than 0, got %d", t.PayloadMaxBytes)
	case t.PayloadMaxBytes == 0:
		s.maxBytes = DefaultPayloadMaxBytes
	default:
		s.maxBytes = t.PayloadMaxBytes
	}
	return s, nil
}

// parseScheme validates the URL template (with a sample function name) and
// returns its scheme.
func parseScheme(ep *module.Endpoint) (scheme, error) {
	const field = "spec.urlPathTemplate"
	if ep.URLPathTemplate == "" {
		return scheme{}, configError(ep, field, "missing URL")
	}
	u, err := url.Parse(ep.URLFor("fn"))
	if err != nil {
		return scheme{}, configError(ep, field, "invalid URL %q: %v", ep.URLPathTemplate, unwrapURLError(err))
	}
	s := scheme{name: strings.ToLower(u.Scheme)}
	switch s.name {
	case "http":
	case "https":
		s.tls = true
	case "http+unix":
		s.unix = true
	case "https+unix":
		s.unix, s.tls = true, true
	case "":
		return s, configError(ep, field, "invalid URL %q: missing scheme; it must start with http://, https://, http+unix:// or https+unix://", ep.URLPathTemplate)
	default:
		return s, configError(ep, field, "invalid URL %q: unsupported scheme %q; it must be http, https, http+unix or https+unix", ep.URLPathTemplate, u.Scheme)
	}
	if s.unix {
		if _, _, ok := module.SplitUnixSocketPath(u.Path); !ok {
			return s, configError(ep, field, "invalid URL %q: a unix socket URL must name a socket file ending in .sock", ep.URLPathTemplate)
		}
	} else if u.Host == "" {
		return s, configError(ep, field, "invalid URL %q: missing host", ep.URLPathTemplate)
	}
	return s, nil
}

func unwrapURLError(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}

package module

import (
	"fmt"
	"math"
	"net/url"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

const functionNamePlaceholder = "{function.name}"

// bindEndpoint parses io.statefun.endpoints.v1/http (v2=false) and
// io.statefun.endpoints.v2/http (v2=true).
func (l *loader) bindEndpoint(c *component, v2 bool) {
	s := c.spec
	f := c.f
	ep := &Endpoint{Pos: c.pos(), Kind: c.kind, MaxNumBatchRequests: DefaultMaxNumBatchRequests}
	ok := true

	if n, p := s.require("functions"); n == nil {
		ok = false
	} else if t, wildcard, good := parseFunctions(f, n, p); good {
		ep.Functions, ep.Wildcard, ep.funcPos, ep.funcPath = t, wildcard, f.pos(n), p
	} else {
		ok = false
	}

	if n, p := s.require("urlPathTemplate"); n == nil {
		ok = false
	} else if t, good := f.nonEmptyText(n, p); good {
		if err := checkURLTemplate(t); err != nil {
			f.errorf(n, p, "%v", err)
			ok = false
		}
		ep.URLPathTemplate = t
	} else {
		ok = false
	}

	var batch int64
	if s.optInt("maxNumBatchRequests", math.MinInt32, math.MaxInt32, &batch) {
		ep.MaxNumBatchRequests = int(batch)
	}

	if v2 {
		if t, good := s.optObject("transport"); good {
			ep.Transport, good = parseTransport(f, t)
			ok = ok && good
		} else {
			ep.Transport = asyncDefaults()
		}
	} else {
		// The v1 kind always uses OkHttp; its whole spec holds the OkHttp
		// properties, so "timeouts" sits directly under spec.
		var good bool
		ep.Transport, good = parseOkHTTP(f, s)
		ok = ok && good
	}
	s.finish()
	if ok {
		l.mod.Endpoints = append(l.mod.Endpoints, ep)
	}
}

// parseFunctions parses "ns/name" or "ns/*".
func parseFunctions(f *fileCtx, n *yaml.Node, path string) (TypeName, bool, bool) {
	t, ok := f.typeName(n, path)
	if !ok {
		return TypeName{}, false, false
	}
	if strings.Contains(t.Namespace, "*") || (t.Name != "*" && strings.Contains(t.Name, "*")) {
		f.errorf(n, path, "Invalid syntax for target functions. Only <namespace>/<name> or <namespace>/* are supported, got %q", t.String())
		return TypeName{}, false, false
	}
	return t, t.Name == "*", true
}

// checkURLTemplate validates the URL obtained by substituting a function
// name into the template.
func checkURLTemplate(template string) error {
	raw := strings.ReplaceAll(template, functionNamePlaceholder, "fn")
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("invalid URL %q: %v", template, unwrapURLError(err))
	}
	scheme := strings.ToLower(u.Scheme)
	switch scheme {
	case "":
		return fmt.Errorf("invalid URL %q: missing scheme; it must start with http://, https://, http+unix:// or https+unix://", template)
	case "http", "https":
		if u.Host == "" {
			return fmt.Errorf("invalid URL %q: missing host", template)
		}
	case "http+unix", "https+unix":
		if _, _, ok := SplitUnixSocketPath(u.Path); !ok {
			return fmt.Errorf("invalid URL %q: Unix Domain Socket path should contain a .sock file", template)
		}
	default:
		return fmt.Errorf("invalid URL %q: unsupported scheme %q; it must be http, https, http+unix or https+unix", template, u.Scheme)
	}
	return nil
}

func unwrapURLError(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}

// SplitUnixSocketPath splits the path of an http+unix or https+unix URL
// into the socket file (every segment up to and including the first one
// ending in ".sock") and the HTTP request path ("/" when nothing follows).
// For "/var/run/fn.sock/statefun" it returns "/var/run/fn.sock" and
// "/statefun".
func SplitUnixSocketPath(path string) (socket, request string, ok bool) {
	segs := strings.Split(path, "/")
	var kept []string
	for i, s := range segs {
		if s == "" {
			continue
		}
		kept = append(kept, s)
		if strings.HasSuffix(s, ".sock") {
			var rest []string
			for _, r := range segs[i+1:] {
				if r != "" {
					rest = append(rest, r)
				}
			}
			return "/" + strings.Join(kept, "/"), "/" + strings.Join(rest, "/"), true
		}
	}
	return "", "", false
}

func asyncDefaults() Transport {
	return Transport{
		Type:            TransportAsync,
		Call:            DefaultAsyncCall,
		Connect:         DefaultAsyncConnect,
		PoolTTL:         DefaultAsyncPoolTTL,
		PoolSize:        DefaultAsyncPoolSize,
		PayloadMaxBytes: DefaultAsyncPayloadMaxBytes,
	}
}

// parseTransport parses spec.transport of a v2 endpoint.
func parseTransport(f *fileCtx, t *obj) (Transport, bool) {
	typ := TransportAsync
	if n, p := t.get("type"); n != nil {
		s, ok := f.text(n, p)
		if !ok {
			t.ignoreAll()
			return Transport{}, false
		}
		switch s {
		case TransportAsync, TransportOkHTTP:
			typ = s
		default:
			if _, err := ParseTypeName(s); err != nil {
				f.errorf(n, p, "%v", err)
			} else {
				f.errorf(n, p, "An extension with type %s does not exist; supported transports are %s and %s", s, TransportAsync, TransportOkHTTP)
			}
			t.ignoreAll()
			return Transport{}, false
		}
	}
	if typ == TransportOkHTTP {
		tr, ok := parseOkHTTP(f, t)
		t.finish()
		return tr, ok
	}
	tr, ok := parseAsync(f, t)
	t.finish()
	return tr, ok
}

// ignoreAll marks every key used (after an error that makes them moot).
func (o *obj) ignoreAll() {
	for _, k := range o.order {
		o.used[k] = true
	}
}

// parseAsync parses the properties of the async (Netty) transport.
func parseAsync(f *fileCtx, t *obj) (Transport, bool) {
	tr := asyncDefaults()
	ok := true
	positive := func(key string, dst *time.Duration) {
		if n, p := t.get(key); n != nil {
			if d, good := f.duration(n, p); !good {
				ok = false
			} else if d <= 0 {
				f.errorf(n, p, "Timeout durations must be larger than 0.")
				ok = false
			} else {
				*dst = d
			}
		}
	}
	positive("call", &tr.Call)
	positive("connect", &tr.Connect)
	if n, p := t.get("pool_ttl"); n != nil {
		if d, good := f.duration(n, p); good {
			tr.PoolTTL = d
		} else {
			ok = false
		}
	}
	if n, p := t.get("pool_size"); n != nil {
		if v, ok2 := f.integer(n, p, 1, math.MaxInt32); ok2 {
			tr.PoolSize = int(v)
		} else {
			ok = false
		}
	}
	if n, p := t.get("payload_max_bytes"); n != nil {
		if v, ok2 := f.integer(n, p, 1, math.MaxInt32); ok2 {
			tr.PayloadMaxBytes = v
		} else {
			ok = false
		}
	}
	for _, kv := range []struct {
		key string
		dst *string
	}{
		{"trust_cacerts", &tr.TrustCACerts},
		{"client_cert", &tr.ClientCert},
		{"client_key", &tr.ClientKey},
		{"client_key_password", &tr.ClientKeyPassword},
	} {
		if n, p := t.get(kv.key); n != nil {
			if s, good := f.nonEmptyText(n, p); good {
				*kv.dst = s
			} else {
				ok = false
			}
		}
	}
	// Mutual TLS needs both the certificate and the key. Keys that failed
	// to parse above are already reported.
	hasCert, hasKey := t.has("client_cert"), t.has("client_key")
	if hasCert && !hasKey {
		f.errorf(t.keyNode("client_cert"), join(t.path, "client_cert"), "client_cert needs client_key (mutual TLS needs both)")
		ok = false
	}
	if hasKey && !hasCert {
		f.errorf(t.keyNode("client_key"), join(t.path, "client_key"), "client_key needs client_cert (mutual TLS needs both)")
		ok = false
	}
	if t.has("client_key_password") && !hasKey {
		f.errorf(t.keyNode("client_key_password"), join(t.path, "client_key_password"), "client_key_password needs client_key")
		ok = false
	}

	// The "timeouts" object (a migration helper) wins over call and
	// connect, with its own defaults of 1 min and 10 s.
	if to, good := t.optObject("timeouts"); good {
		call, connect := DefaultTimeoutsCall, DefaultTimeoutsConnect
		tok := true
		for _, kv := range []struct {
			key string
			dst *time.Duration
		}{{"call", &call}, {"connect", &connect}} {
			if n, p := to.get(kv.key); n != nil {
				if d, g := f.duration(n, p); !g {
					tok = false
				} else if d <= 0 {
					f.errorf(n, p, "Timeout durations must be larger than 0.")
					tok = false
				} else {
					*kv.dst = d
				}
			}
		}
		to.finish()
		for _, key := range []string{"call", "connect"} {
			if t.has(key) {
				def := map[string]time.Duration{"call": DefaultTimeoutsCall, "connect": DefaultTimeoutsConnect}[key]
				f.warnf(t.keyNode(key), join(t.path, key),
					"ignored: %s is present, so timeouts.%s (default %s) applies", join(t.path, "timeouts"), key, dur(def))
			}
		}
		if tok {
			tr.Call, tr.Connect = call, connect
		}
		ok = ok && tok
	} else if t.has("timeouts") {
		ok = false
	}
	return tr, ok
}

// parseOkHTTP parses the OkHttp properties: a "timeouts" object in o.
func parseOkHTTP(f *fileCtx, o *obj) (Transport, bool) {
	tr := Transport{
		Type:    TransportOkHTTP,
		Call:    DefaultTimeoutsCall,
		Connect: DefaultTimeoutsConnect,
		Read:    DefaultTimeoutsRead,
		Write:   DefaultTimeoutsWrite,
	}
	to, good := o.optObject("timeouts")
	if !good {
		return tr, !o.has("timeouts")
	}
	ok := true
	nodes := map[string]*yaml.Node{}
	for _, kv := range []struct {
		key string
		dst *time.Duration
	}{{"call", &tr.Call}, {"connect", &tr.Connect}, {"read", &tr.Read}, {"write", &tr.Write}} {
		n, p := to.get(kv.key)
		if n == nil {
			continue
		}
		nodes[kv.key] = n
		if d, g := f.duration(n, p); !g {
			ok = false
		} else if d <= 0 {
			f.errorf(n, p, "Timeout durations must be larger than 0.")
			ok = false
		} else {
			*kv.dst = d
		}
	}
	to.finish()
	if ok {
		for _, c := range []struct {
			key, name string
			d         time.Duration
		}{{"connect", "Connect", tr.Connect}, {"read", "Read", tr.Read}, {"write", "Write", tr.Write}} {
			if c.d > tr.Call {
				n := nodes[c.key]
				if n == nil {
					n = nodes["call"]
				}
				f.errorf(n, join(to.path, c.key), "%s timeout cannot be larger than request timeout (%s > call %s).", c.name, dur(c.d), dur(tr.Call))
				ok = false
			}
		}
	}
	return tr, ok
}

package kafka

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// The Kafka client configuration arrives as the Java client's property map
// (module.yaml `properties`, plus the keys set from the spec). Each
// supported key is mapped onto a franz-go option; a key that is neither
// supported nor known to be irrelevant here is an error naming the key, so
// a typo or an unsupported feature never passes silently.

// DefaultMaxPollRecords is the number of records the consumer hands over
// per poll when max.poll.records is not set (as the Java client).
const DefaultMaxPollRecords = 500

// commonKeys are understood by both the consumer and the producer.
var commonKeys = map[string]func(c *clientConfig, v string) error{
	"bootstrap.servers": func(c *clientConfig, v string) error {
		for _, s := range strings.Split(v, ",") {
			if s = strings.TrimSpace(s); s != "" {
				c.seeds = append(c.seeds, s)
			}
		}
		if len(c.seeds) == 0 {
			return errors.New("no broker address")
		}
		return nil
	},
	"client.id": func(c *clientConfig, v string) error { c.clientID = v; return nil },
	"security.protocol": func(c *clientConfig, v string) error {
		switch p := strings.ToUpper(v); p {
		case "PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL":
			c.protocol = p
			return nil
		}
		return fmt.Errorf("%q is not one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL", v)
	},
	"sasl.mechanism": func(c *clientConfig, v string) error {
		switch m := strings.ToUpper(v); m {
		case "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512":
			c.mechanism = m
			return nil
		}
		return fmt.Errorf("%q is not supported (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)", v)
	},
	"sasl.jaas.config": func(c *clientConfig, v string) error {
		for _, m := range jaasOption.FindAllStringSubmatch(v, -1) {
			val := strings.NewReplacer(`\"`, `"`, `\\`, `\`).Replace(m[2])
			switch m[1] {
			case "username":
				c.user = val
			case "password":
				c.pass = val
			}
		}
		if c.user == "" || c.pass == "" {
			return errors.New(`needs username="..." and password="..." options`)
		}
		return nil
	},
	"ssl.truststore.location": func(c *clientConfig, v string) error { c.caFile = v; return nil },
	"ssl.truststore.certificates": func(c *clientConfig, v string) error {
		c.caPEM = []byte(v)
		return nil
	},
	"ssl.truststore.type": pemOnly,
	"ssl.keystore.type":   pemOnly,
	"ssl.keystore.location": func(c *clientConfig, v string) error {
		c.keystoreFile = v
		return nil
	},
	"ssl.keystore.certificate.chain": func(c *clientConfig, v string) error {
		c.certPEM = []byte(v)
		return nil
	},
	"ssl.keystore.key": func(c *clientConfig, v string) error { c.keyPEM = []byte(v); return nil },
	"ssl.endpoint.identification.algorithm": func(c *clientConfig, v string) error {
		switch strings.ToLower(v) {
		case "https":
			c.noHostnameCheck = false
		case "":
			c.noHostnameCheck = true
		default:
			return fmt.Errorf("%q is not https or empty", v)
		}
		return nil
	},
	"request.timeout.ms": msOpt(func(d time.Duration) kgo.Opt { return kgo.RequestTimeoutOverhead(d) }),
	"retry.backoff.ms": msOpt(func(d time.Duration) kgo.Opt {
		return kgo.RetryBackoffFn(func(int) time.Duration { return d })
	}),
	"metadata.max.age.ms":                msOpt(kgo.MetadataMaxAge),
	"connections.max.idle.ms":            msOpt(kgo.ConnIdleTimeout),
	"socket.connection.setup.timeout.ms": msOpt(kgo.DialTimeout),
}

// consumerKeys are the consumer-only keys.
var consumerKeys = map[string]func(c *clientConfig, v string) error{
	"group.id": func(c *clientConfig, v string) error { c.groupID = v; return nil },
	"auto.offset.reset": func(c *clientConfig, v string) error {
		switch v {
		case "earliest", "latest":
			c.reset = v
			return nil
		}
		return fmt.Errorf("%q is not earliest or latest", v)
	},
	"isolation.level": func(c *clientConfig, v string) error {
		switch strings.ToLower(v) {
		case "read_committed":
			c.opts = append(c.opts, kgo.FetchIsolationLevel(kgo.ReadCommitted()))
		case "read_uncommitted":
			c.opts = append(c.opts, kgo.FetchIsolationLevel(kgo.ReadUncommitted()))
		default:
			return fmt.Errorf("%q is not read_committed or read_uncommitted", v)
		}
		return nil
	},
	"fetch.max.bytes":           int32Opt(func(n int32) kgo.Opt { return kgo.FetchMaxBytes(n) }),
	"max.partition.fetch.bytes": int32Opt(func(n int32) kgo.Opt { return kgo.FetchMaxPartitionBytes(n) }),
	"fetch.min.bytes":           int32Opt(func(n int32) kgo.Opt { return kgo.FetchMinBytes(n) }),
	"fetch.max.wait.ms":         msOpt(func(d time.Duration) kgo.Opt { return kgo.FetchMaxWait(d) }),
	"max.poll.records": func(c *clientConfig, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return fmt.Errorf("%q is not a positive integer", v)
		}
		c.maxPoll = n
		return nil
	},
	"client.rack": func(c *clientConfig, v string) error { c.opts = append(c.opts, kgo.Rack(v)); return nil },
}

// producerKeys are the producer-only keys.
var producerKeys = map[string]func(c *clientConfig, v string) error{
	"acks": func(c *clientConfig, v string) error {
		switch strings.ToLower(v) {
		case "all", "-1":
			c.acks = kgo.AllISRAcks()
		case "1":
			c.acks = kgo.LeaderAck()
		case "0":
			c.acks = kgo.NoAck()
		default:
			return fmt.Errorf("%q is not all, -1, 1 or 0", v)
		}
		c.acksSet = true
		return nil
	},
	"enable.idempotence": func(c *clientConfig, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("%q is not true or false", v)
		}
		c.noIdempotence = !b
		return nil
	},
	"compression.type": func(c *clientConfig, v string) error {
		codecs := map[string]kgo.CompressionCodec{"none": kgo.NoCompression(), "gzip": kgo.GzipCompression(),
			"snappy": kgo.SnappyCompression(), "lz4": kgo.Lz4Compression(), "zstd": kgo.ZstdCompression()}
		codec, ok := codecs[strings.ToLower(v)]
		if !ok {
			return fmt.Errorf("%q is not none, gzip, snappy, lz4 or zstd", v)
		}
		c.opts = append(c.opts, kgo.ProducerBatchCompression(codec))
		return nil
	},
	"linger.ms":        msOpt(func(d time.Duration) kgo.Opt { return kgo.ProducerLinger(d) }),
	"batch.size":       int32Opt(func(n int32) kgo.Opt { return kgo.ProducerBatchMaxBytes(n) }),
	"max.request.size": int32Opt(kgo.BrokerMaxWriteBytes),
	"buffer.memory":    int32Opt(func(n int32) kgo.Opt { return kgo.MaxBufferedBytes(int(n)) }),
	"max.in.flight.requests.per.connection": int32Opt(func(n int32) kgo.Opt {
		return kgo.MaxProduceRequestsInflightPerBroker(int(n))
	}),
	"delivery.timeout.ms": func(c *clientConfig, v string) error {
		d, err := parseMillis(v)
		if err != nil {
			return err
		}
		c.deliveryTimeout = d
		return nil
	},
	"retries": func(c *clientConfig, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return fmt.Errorf("%q is not a non-negative integer", v)
		}
		c.opts = append(c.opts, kgo.RecordRetries(n))
		return nil
	},
	"transaction.timeout.ms": func(c *clientConfig, v string) error {
		d, err := parseMillis(v)
		if err != nil {
			return err
		}
		c.txnTimeout = d
		return nil
	},
	"transactional.id.prefix": func(c *clientConfig, v string) error {
		if v == "" {
			return errors.New("must not be empty")
		}
		c.txnPrefix = v
		return nil
	},
	"transactional.id": func(*clientConfig, string) error {
		return errors.New("is set by the engine (one per sink subtask); use transactional.id.prefix to make it unique per job")
	},
}

var jaasOption = regexp.MustCompile(`(\w+)\s*=\s*"((?:[^"\\]|\\.)*)"`)

// ignoredKeys are accepted and have no effect, with the reason.
var ignoredKeys = map[string]string{
	// Connection tuning that franz-go does on its own.
	"reconnect.backoff.ms":                   "franz-go manages reconnections",
	"reconnect.backoff.max.ms":               "franz-go manages reconnections",
	"socket.connection.setup.timeout.max.ms": "franz-go manages reconnections",
	"send.buffer.bytes":                      "the OS socket defaults are used",
	"receive.buffer.bytes":                   "the OS socket defaults are used",
	"client.dns.lookup":                      "every resolved address is used",
	// Partitions are assigned by the engine and offsets are committed
	// when a checkpoint completes, so the group-membership and
	// auto-commit settings have nothing to act on.
	"enable.auto.commit":            "offsets are committed when a checkpoint completes",
	"auto.commit.interval.ms":       "offsets are committed when a checkpoint completes",
	"session.timeout.ms":            "partitions are assigned by the engine, not by a group",
	"heartbeat.interval.ms":         "partitions are assigned by the engine, not by a group",
	"max.poll.interval.ms":          "partitions are assigned by the engine, not by a group",
	"partition.assignment.strategy": "partitions are assigned by the engine, not by a group",
	"group.instance.id":             "partitions are assigned by the engine, not by a group",
	"allow.auto.create.topics":      "the ingress topics must exist",
	"exclude.internal.topics":       "only the listed topics are read",
	"check.crcs":                    "franz-go always checks CRCs",
	// Keys and values are bytes.
	"key.deserializer":   "keys are UTF-8 ids",
	"value.deserializer": "values are passed as bytes",
	"key.serializer":     "keys are UTF-8 strings",
	"value.serializer":   "values are bytes",
}

func pemOnly(_ *clientConfig, v string) error {
	if strings.ToUpper(v) != "PEM" {
		return fmt.Errorf("%q is not supported: only PEM files are (convert a JKS or PKCS12 store with keytool/openssl)", v)
	}
	return nil
}

func parseMillis(v string) (time.Duration, error) {
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("%q is not a non-negative number of milliseconds", v)
	}
	return time.Duration(n) * time.Millisecond, nil
}

func msOpt(fn func(time.Duration) kgo.Opt) func(c *clientConfig, v string) error {
	return func(c *clientConfig, v string) error {
		d, err := parseMillis(v)
		if err != nil {
			return err
		}
		c.opts = append(c.opts, fn(d))
		return nil
	}
}

func int32Opt(fn func(int32) kgo.Opt) func(c *clientConfig, v string) error {
	return func(c *clientConfig, v string) error {
		n, err := strconv.ParseInt(v, 10, 32)
		if err != nil || n <= 0 {
			return fmt.Errorf("%q is not a positive 32-bit integer", v)
		}
		c.opts = append(c.opts, fn(int32(n)))
		return nil
	}
}

// clientConfig is a parsed property map.
type clientConfig struct {
	seeds    []string
	clientID string
	opts     []kgo.Opt

	protocol               string // PLAINTEXT (default), SSL, SASL_PLAINTEXT, SASL_SSL
	mechanism, user, pass  string
	caFile, keystoreFile   string
	caPEM, certPEM, keyPEM []byte
	noHostnameCheck        bool
	ignored                []string

	// consumer
	groupID string
	reset   string // earliest | latest
	maxPoll int

	// producer
	acks            kgo.Acks
	acksSet         bool
	noIdempotence   bool
	deliveryTimeout time.Duration
	txnTimeout      time.Duration
	txnPrefix       string
}

// parseProperties maps props with the common keys plus the given ones,
// reporting every bad key at once.
func parseProperties(props map[string]string, what string, keys map[string]func(*clientConfig, string) error) (*clientConfig, error) {
	c := &clientConfig{protocol: "PLAINTEXT"}
	var errs []error
	names := make([]string, 0, len(props))
	for k := range props {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		if _, ok := ignoredKeys[k]; ok {
			c.ignored = append(c.ignored, k)
			continue
		}
		fn := keys[k]
		if fn == nil {
			fn = commonKeys[k]
		}
		if fn == nil {
			errs = append(errs, fmt.Errorf("%s property %q is unknown or not supported by this engine", what, k))
			continue
		}
		if err := fn(c, props[k]); err != nil {
			errs = append(errs, fmt.Errorf("%s property %s: %w", what, k, err))
		}
	}
	if len(c.seeds) == 0 && props["bootstrap.servers"] == "" {
		errs = append(errs, fmt.Errorf("%s property bootstrap.servers is missing (set address in the spec)", what))
	}
	sasl := strings.HasPrefix(c.protocol, "SASL_")
	switch {
	case sasl && c.mechanism == "":
		errs = append(errs, fmt.Errorf("security.protocol %s needs sasl.mechanism (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)", c.protocol))
	case sasl && c.user == "":
		errs = append(errs, fmt.Errorf("security.protocol %s needs sasl.jaas.config with username and password", c.protocol))
	case !sasl && (c.mechanism != "" || c.user != ""):
		errs = append(errs, fmt.Errorf("sasl.* properties need security.protocol SASL_PLAINTEXT or SASL_SSL, not %s", c.protocol))
	}
	tlsOn := c.protocol == "SSL" || c.protocol == "SASL_SSL"
	if !tlsOn && (c.caFile != "" || c.caPEM != nil || c.keystoreFile != "" || c.certPEM != nil) {
		errs = append(errs, fmt.Errorf("ssl.* properties need security.protocol SSL or SASL_SSL, not %s", c.protocol))
	}
	if (c.certPEM == nil) != (c.keyPEM == nil) {
		errs = append(errs, errors.New("ssl.keystore.certificate.chain and ssl.keystore.key go together"))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return c, nil
}

// parseConsumer parses an effective consumer configuration.
func parseConsumer(props map[string]string) (*clientConfig, error) {
	c, err := parseProperties(props, "consumer", consumerKeys)
	if err != nil {
		return nil, err
	}
	if c.reset == "" {
		c.reset = "latest"
	}
	if c.maxPoll == 0 {
		c.maxPoll = DefaultMaxPollRecords
	}
	return c, nil
}

// parseProducer parses an effective producer configuration for a delivery
// semantic.
func parseProducer(props map[string]string, semantic string) (*clientConfig, error) {
	c, err := parseProperties(props, "producer", producerKeys)
	if err != nil {
		return nil, err
	}
	var errs []error
	if semantic == ExactlyOnce {
		if c.noIdempotence {
			errs = append(errs, errors.New("exactly-once needs enable.idempotence=true"))
		}
		if c.acksSet && c.acks != kgo.AllISRAcks() {
			errs = append(errs, errors.New("exactly-once needs acks=all"))
		}
		if c.txnTimeout <= 0 {
			errs = append(errs, errors.New("exactly-once needs a positive transaction timeout"))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return c, nil
}

// clientOpts returns the connection options: seeds, client id, TLS, SASL,
// logging, then the mapped options. It reads the PEM files.
func (c *clientConfig) clientOpts(clientID string, log *slog.Logger) ([]kgo.Opt, error) {
	if c.clientID != "" {
		clientID = c.clientID
	}
	opts := []kgo.Opt{kgo.SeedBrokers(c.seeds...), kgo.ClientID(clientID)}
	if log != nil {
		opts = append(opts, kgo.WithLogger(kgoLogger{log}))
	}
	if c.protocol == "SSL" || c.protocol == "SASL_SSL" {
		tc, err := c.tlsConfig()
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.DialTLSConfig(tc))
	}
	if c.mechanism != "" {
		var m sasl.Mechanism
		switch c.mechanism {
		case "PLAIN":
			m = plain.Auth{User: c.user, Pass: c.pass}.AsMechanism()
		case "SCRAM-SHA-256":
			m = scram.Auth{User: c.user, Pass: c.pass}.AsSha256Mechanism()
		case "SCRAM-SHA-512":
			m = scram.Auth{User: c.user, Pass: c.pass}.AsSha512Mechanism()
		}
		opts = append(opts, kgo.SASL(m))
	}
	return append(opts, c.opts...), nil
}

func (c *clientConfig) tlsConfig() (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	caPEM := c.caPEM
	if c.caFile != "" {
		b, err := os.ReadFile(c.caFile)
		if err != nil {
			return nil, fmt.Errorf("ssl.truststore.location: %w", err)
		}
		caPEM = append(append([]byte{}, caPEM...), b...)
	}
	if caPEM != nil {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caPEM) {
			return nil, errors.New("ssl.truststore: no PEM certificate found (only PEM is supported, not JKS or PKCS12)")
		}
		tc.RootCAs = pool
	}
	certPEM, keyPEM := c.certPEM, c.keyPEM
	if c.keystoreFile != "" {
		b, err := os.ReadFile(c.keystoreFile)
		if err != nil {
			return nil, fmt.Errorf("ssl.keystore.location: %w", err)
		}
		// A PEM key store holds the private key and the certificate chain.
		for rest := b; ; {
			var blk *pem.Block
			blk, rest = pem.Decode(rest)
			if blk == nil {
				break
			}
			if strings.Contains(blk.Type, "PRIVATE KEY") {
				keyPEM = pem.EncodeToMemory(blk)
			} else {
				certPEM = append(certPEM, pem.EncodeToMemory(blk)...)
			}
		}
		if keyPEM == nil || certPEM == nil {
			return nil, errors.New("ssl.keystore.location: needs a PEM file with an unencrypted private key and its certificate chain")
		}
	}
	if certPEM != nil {
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, fmt.Errorf("ssl.keystore: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	if c.noHostnameCheck {
		// Verify the chain but not the host name, as the Java client
		// with ssl.endpoint.identification.algorithm empty.
		tc.InsecureSkipVerify = true
		roots := tc.RootCAs
		tc.VerifyConnection = func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) == 0 {
				return errors.New("the broker sent no certificate")
			}
			inter := x509.NewCertPool()
			for _, ic := range cs.PeerCertificates[1:] {
				inter.AddCert(ic)
			}
			_, err := cs.PeerCertificates[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter})
			return err
		}
	}
	return tc, nil
}

// kgoLogger forwards franz-go's warnings and errors to the task logger.
type kgoLogger struct{ l *slog.Logger }

func (kgoLogger) Level() kgo.LogLevel { return kgo.LogLevelWarn }

func (k kgoLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	lv := slog.LevelWarn
	if level == kgo.LogLevelError {
		lv = slog.LevelError
	}
	k.l.Log(context.Background(), lv, "kafka client: "+msg, keyvals...)
}

package module

import (
	"fmt"
	"strings"
	"time"
)

// Component kinds understood by the loader. The first six are the kinds
// shipped by upstream StateFun; the last four are this engine's built-in
// connectors.
const (
	KindHTTPv1           = "io.statefun.endpoints.v1/http"
	KindHTTPv2           = "io.statefun.endpoints.v2/http"
	KindKafkaIngress     = "io.statefun.kafka.v1/ingress"
	KindKafkaEgress      = "io.statefun.kafka.v1/egress"
	KindKinesisIngress   = "io.statefun.kinesis.v1/ingress"
	KindKinesisEgress    = "io.statefun.kinesis.v1/egress"
	KindGeneratorIngress = "io.statefun.generator.v1/ingress"
	KindFileIngress      = "io.statefun.file.v1/ingress"
	KindFileEgress       = "io.statefun.file.v1/egress"
	KindStdoutEgress     = "io.statefun.stdout.v1/egress"
)

// HTTP transport types (the value of spec.transport.type of a v2 endpoint).
const (
	TransportAsync  = "io.statefun.transports.v1/async"
	TransportOkHTTP = "io.statefun.transports.v1/okhttp"
)

// Well-known value types used by the built-in ingresses.
const (
	TypeString = "io.statefun.types/string"
	TypeLong   = "io.statefun.types/long"
	TypeInt    = "io.statefun.types/int"
)

// Startup positions of the Kafka and Kinesis ingresses (StartupPosition.Type).
const (
	StartupGroupOffsets    = "group-offsets"
	StartupEarliest        = "earliest"
	StartupLatest          = "latest"
	StartupSpecificOffsets = "specific-offsets"
	StartupDate            = "date"
)

// Kafka egress delivery semantics (KafkaEgressSpec.DeliverySemantic).
const (
	DeliveryAtLeastOnce = "at-least-once"
	DeliveryExactlyOnce = "exactly-once"
	DeliveryNone        = "none"
)

// Record formats of the file and stdout connectors.
const (
	FormatLines = "lines"
	FormatJSONL = "jsonl"
)

// Key distributions of the generator ingress.
const (
	KeySequential = "sequential"
	KeyUniform    = "uniform"
)

// Error handling modes of the file ingress.
const (
	OnErrorFail = "fail"
	OnErrorSkip = "skip"
)

// AWS region and credential types of the Kinesis connectors.
const (
	AWSRegionDefault        = "default"
	AWSRegionSpecific       = "specific"
	AWSRegionCustomEndpoint = "custom-endpoint"

	AWSCredentialsDefault = "default"
	AWSCredentialsBasic   = "basic"
	AWSCredentialsProfile = "profile"
)

// Defaults applied by the loader, as upstream.
const (
	DefaultMaxNumBatchRequests   = 1000
	DefaultAsyncCall             = 2 * time.Minute
	DefaultAsyncConnect          = 20 * time.Second
	DefaultAsyncPoolTTL          = 15 * time.Second
	DefaultAsyncPoolSize         = 1024
	DefaultAsyncPayloadMaxBytes  = 32 * 1024 * 1024
	DefaultTimeoutsCall          = 1 * time.Minute // okhttp, and the async "timeouts" object
	DefaultTimeoutsConnect       = 10 * time.Second
	DefaultTimeoutsRead          = 10 * time.Second
	DefaultTimeoutsWrite         = 10 * time.Second
	DefaultMaxOutstandingRecords = 1000
	DefaultGeneratorKeys         = 1000
	DefaultGeneratorKeyPrefix    = "key-"
	DefaultGeneratorSeed         = 1
)

// Options tune Load.
type Options struct {
	// Strict turns every warning (such as an unknown key inside a spec) into
	// an error.
	Strict bool

	// FunctionKnown, when non-nil, enables the target check: every ingress
	// target must be bound by an endpoint of the loaded modules (exactly or
	// through its namespace) or be reported known by this callback (for
	// example because an embedded function is registered for it).
	FunctionKnown func(namespace, name string) bool
}

// Module is the result of loading one or more module files.
type Module struct {
	Endpoints []*Endpoint
	Ingresses []*Ingress
	Egresses  []*Egress
	// Warnings holds the non-fatal diagnostics (for example unknown keys).
	Warnings []Diagnostic
	// Files lists every module file that was read, in load order.
	Files []string
}

// Pos is a position in a module file. Line and Column are 1-based; zero
// means unknown.
type Pos struct {
	File         string
	Line, Column int
}

// String renders file:line:column, leaving out unknown parts.
func (p Pos) String() string {
	s := p.File
	if p.Line > 0 {
		s += fmt.Sprintf(":%d", p.Line)
		if p.Column > 0 {
			s += fmt.Sprintf(":%d", p.Column)
		}
	}
	return s
}

// TypeName is a StateFun typename namespace/name.
type TypeName struct {
	Namespace, Name string
}

// String renders "namespace/name".
func (t TypeName) String() string { return t.Namespace + "/" + t.Name }

// IsZero reports whether t is the zero TypeName.
func (t TypeName) IsZero() bool { return t.Namespace == "" && t.Name == "" }

// ParseTypeName parses "namespace/name": exactly one '/', both parts
// non-empty (as the Java runtime's TypeName.parseFrom).
func ParseTypeName(s string) (TypeName, error) {
	i := strings.IndexByte(s, '/')
	if i <= 0 || i == len(s)-1 || strings.IndexByte(s[i+1:], '/') >= 0 {
		return TypeName{}, fmt.Errorf("must be a typename namespace/name, got %q", s)
	}
	return TypeName{Namespace: s[:i], Name: s[i+1:]}, nil
}

// Endpoint is one HTTP endpoint component (io.statefun.endpoints.v1/http or
// io.statefun.endpoints.v2/http): a binding of a function type, or of a
// whole namespace, to a URL template.
type Endpoint struct {
	// Pos is the position of the component.
	Pos Pos
	// Kind is KindHTTPv1 or KindHTTPv2.
	Kind string
	// Functions is the bound type. For a namespace binding ("ns/*")
	// Functions.Name is "*" and Wildcard is true.
	Functions TypeName
	Wildcard  bool
	// URLPathTemplate is the URL, in which every "{function.name}" is
	// replaced by the function's name (see URLFor).
	URLPathTemplate string
	// MaxNumBatchRequests is the per-address backlog limit; <= 0 means no
	// limit. Default 1000.
	MaxNumBatchRequests int
	Transport           Transport

	funcPos  Pos
	funcPath string
}

// Transport holds the HTTP client settings of an endpoint, with every
// default applied.
//
// For TransportAsync, Call, Connect, PoolTTL, PoolSize, PayloadMaxBytes and
// the TLS fields are used. For TransportOkHTTP, Call, Connect, Read and
// Write are used.
type Transport struct {
	// Type is TransportAsync or TransportOkHTTP.
	Type                                string
	Call, Connect, Read, Write, PoolTTL time.Duration
	PoolSize                            int
	PayloadMaxBytes                     int64
	// TLS material locations (async only): a "classpath:" resource, a file
	// path or a URL. ClientKeyPassword is the location of a file holding
	// the password.
	TrustCACerts, ClientCert, ClientKey, ClientKeyPassword string
}

// URLFor returns the endpoint URL of the function named functionName: the
// template with every "{function.name}" replaced.
func (e *Endpoint) URLFor(functionName string) string {
	return strings.ReplaceAll(e.URLPathTemplate, functionNamePlaceholder, functionName)
}

// Matches reports whether the endpoint binds fn (exactly or through its
// namespace).
func (e *Endpoint) Matches(fn TypeName) bool {
	if e.Wildcard {
		return e.Functions.Namespace == fn.Namespace
	}
	return e.Functions == fn
}

// Resolve finds the endpoint of a function type as the upstream runtime
// does: an exact binding first, then a namespace binding.
func (m *Module) Resolve(fn TypeName) (*Endpoint, bool) {
	for _, e := range m.Endpoints {
		if !e.Wildcard && e.Functions == fn {
			return e, true
		}
	}
	for _, e := range m.Endpoints {
		if e.Wildcard && e.Functions.Namespace == fn.Namespace {
			return e, true
		}
	}
	return nil, false
}

// Ingress is one ingress component.
type Ingress struct {
	Pos  Pos
	Kind string
	ID   TypeName
	// Spec is *KafkaIngressSpec, *KinesisIngressSpec, *GeneratorIngressSpec
	// or *FileIngressSpec, according to Kind.
	Spec any
}

// Egress is one egress component.
type Egress struct {
	Pos  Pos
	Kind string
	ID   TypeName
	// Spec is *KafkaEgressSpec, *KinesisEgressSpec, *FileEgressSpec or
	// *StdoutEgressSpec, according to Kind.
	Spec any
}

// Property is one item of a properties list (a single-key map), with the
// value turned into a string.
type Property struct {
	Key, Value string
}

// StartupPosition is where a Kafka or Kinesis ingress starts reading when it
// has no checkpointed position.
type StartupPosition struct {
	// Type is one of the Startup* constants. Kinesis supports earliest,
	// latest and date.
	Type string
	// Offsets is set for specific-offsets, in file order.
	Offsets []PartitionOffset
	// Date is set for date.
	Date time.Time
}

// PartitionOffset is one entry of a specific-offsets startup position.
type PartitionOffset struct {
	Topic     string
	Partition int32
	Offset    int64
}

// Route is one routing entry of an auto-routing ingress: a Kafka topic or a
// Kinesis stream, the typename stamped on each message, and the functions
// every record is sent to (at address (target, record key)).
type Route struct {
	Pos Pos
	// Name is the topic or stream.
	Name      string
	ValueType TypeName
	Targets   []TypeName
}

// KafkaIngressSpec is the spec of io.statefun.kafka.v1/ingress.
type KafkaIngressSpec struct {
	// Address sets bootstrap.servers when non-empty.
	Address string
	// ConsumerGroupID sets group.id when non-empty.
	ConsumerGroupID string
	// Topics is the routing table, one entry per topic (a topic listed
	// twice keeps its last entry).
	Topics []Route
	// AutoOffsetReset is "earliest" or "latest" (default).
	AutoOffsetReset string
	// StartupPosition defaults to latest.
	StartupPosition StartupPosition
	// Properties is the raw consumer configuration, in file order.
	Properties []Property
}

// ConsumerProperties returns the effective Kafka consumer configuration:
// Properties overridden by Address (bootstrap.servers), ConsumerGroupID
// (group.id) and AutoOffsetReset (auto.offset.reset), as upstream.
func (s *KafkaIngressSpec) ConsumerProperties() map[string]string {
	m := propertyMap(s.Properties)
	if s.Address != "" {
		m["bootstrap.servers"] = s.Address
	}
	if s.ConsumerGroupID != "" {
		m["group.id"] = s.ConsumerGroupID
	}
	m["auto.offset.reset"] = s.AutoOffsetReset
	return m
}

// KafkaEgressSpec is the spec of io.statefun.kafka.v1/egress.
type KafkaEgressSpec struct {
	// Address sets bootstrap.servers when non-empty.
	Address string
	// DeliverySemantic is one of the Delivery* constants (default
	// at-least-once).
	DeliverySemantic string
	// TransactionTimeout is set for exactly-once.
	TransactionTimeout time.Duration
	// Properties is the raw producer configuration, in file order.
	Properties []Property
}

// ProducerProperties returns the effective Kafka producer configuration:
// Properties overridden by Address (bootstrap.servers) and, for
// exactly-once, transaction.timeout.ms.
func (s *KafkaEgressSpec) ProducerProperties() map[string]string {
	m := propertyMap(s.Properties)
	if s.Address != "" {
		m["bootstrap.servers"] = s.Address
	}
	if s.DeliverySemantic == DeliveryExactlyOnce {
		m["transaction.timeout.ms"] = fmt.Sprint(s.TransactionTimeout.Milliseconds())
	}
	return m
}

// AWSRegion selects the AWS region of a Kinesis connector.
type AWSRegion struct {
	// Type is one of the AWSRegion* constants (default "default").
	Type string
	// ID is the region id (specific, custom-endpoint).
	ID string
	// Endpoint is the service endpoint URI (custom-endpoint).
	Endpoint string
}

// AWSCredentials selects the credentials of a Kinesis connector.
type AWSCredentials struct {
	// Type is one of the AWSCredentials* constants (default "default").
	Type                         string
	AccessKeyID, SecretAccessKey string // basic
	ProfileName, ProfilePath     string // profile; ProfilePath is optional
}

// KinesisIngressSpec is the spec of io.statefun.kinesis.v1/ingress.
type KinesisIngressSpec struct {
	Region      AWSRegion
	Credentials AWSCredentials
	// StartupPosition is earliest, latest (default) or date.
	StartupPosition StartupPosition
	// Streams is the routing table, one entry per stream.
	Streams []Route
	// ClientConfig is clientConfigProperties, in file order.
	ClientConfig []Property
}

// KinesisEgressSpec is the spec of io.statefun.kinesis.v1/egress.
type KinesisEgressSpec struct {
	Region      AWSRegion
	Credentials AWSCredentials
	// MaxOutstandingRecords is the producer queue limit (default 1000).
	MaxOutstandingRecords int
	// ClientConfig is clientConfigProperties, in file order.
	ClientConfig []Property
}

// GeneratorIngressSpec is the spec of io.statefun.generator.v1/ingress, a
// built-in source of synthetic messages.
type GeneratorIngressSpec struct {
	// Targets receive every message, at address (target, key).
	Targets []TypeName
	// Rate is messages per second; 0 means as fast as possible.
	Rate int64
	// Count is the total number of messages; 0 means unbounded.
	Count int64
	// Keys is the size of the key space (default 1000).
	Keys int64
	// KeyPrefix prefixes every key (default "key-"): key i is
	// KeyPrefix + decimal(i).
	KeyPrefix string
	// KeyDistribution is KeySequential (message i goes to key i mod Keys)
	// or KeyUniform (a key drawn by a random generator seeded with Seed).
	KeyDistribution string
	Seed            int64
	// ValueType is TypeString (the value is the key), TypeLong or TypeInt
	// (the value is the sequence number).
	ValueType TypeName
}

// FileIngressSpec is the spec of io.statefun.file.v1/ingress, a built-in
// source reading records from a file.
type FileIngressSpec struct {
	// Targets receive every record, at address (target, record id).
	Targets []TypeName
	// Path is the file to read; a relative path in the module file is
	// resolved against the module file's directory.
	Path string
	// Format is FormatLines (default) or FormatJSONL.
	Format string
	// KeyField (jsonl) is the top-level field holding the address id.
	KeyField string
	// ValueField (jsonl, optional) is the field holding the message; empty
	// means the whole line.
	ValueField string
	// Delimiter (lines, optional) splits a line into id and value at its
	// first occurrence; empty means id and value are both the whole line.
	Delimiter string
	// ValueType is the typename of the messages.
	ValueType TypeName
	// OnError is OnErrorFail (default) or OnErrorSkip.
	OnError string
}

// FileEgressSpec is the spec of io.statefun.file.v1/egress.
type FileEgressSpec struct {
	// Path is resolved against the module file's directory when relative.
	Path string
	// Format is FormatLines (default) or FormatJSONL.
	Format string
	// Append keeps the existing content (default false: truncate).
	Append bool
}

// StdoutEgressSpec is the spec of io.statefun.stdout.v1/egress.
type StdoutEgressSpec struct {
	// Format is FormatLines (default) or FormatJSONL.
	Format string
}

func propertyMap(props []Property) map[string]string {
	m := make(map[string]string, len(props)+3)
	for _, p := range props {
		m[p.Key] = p.Value
	}
	return m
}

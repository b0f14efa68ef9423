package module

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Describe writes a human-readable summary of the module: its files, every
// endpoint, ingress and egress with all their settings (defaults included),
// and the warnings. It is what `statefun validate` prints.
func (m *Module) Describe(w io.Writer) {
	p := &printer{w: w}
	p.line(0, "Files (%d):", len(m.Files))
	for _, f := range m.Files {
		p.line(1, "%s", f)
	}

	p.line(0, "Endpoints (%d):", len(m.Endpoints))
	for _, e := range m.Endpoints {
		binding := "function"
		if e.Wildcard {
			binding = "namespace"
		}
		p.line(1, "%s [%s binding] %s at %s", e.Functions, binding, e.Kind, e.Pos)
		p.line(2, "urlPathTemplate: %s", e.URLPathTemplate)
		if e.MaxNumBatchRequests <= 0 {
			p.line(2, "maxNumBatchRequests: %d (no limit)", e.MaxNumBatchRequests)
		} else {
			p.line(2, "maxNumBatchRequests: %d", e.MaxNumBatchRequests)
		}
		t := e.Transport
		p.line(2, "transport: %s", t.Type)
		switch t.Type {
		case TransportOkHTTP:
			p.line(3, "call: %s, connect: %s, read: %s, write: %s", dur(t.Call), dur(t.Connect), dur(t.Read), dur(t.Write))
		default:
			p.line(3, "call: %s, connect: %s, pool_ttl: %s, pool_size: %d, payload_max_bytes: %d",
				dur(t.Call), dur(t.Connect), dur(t.PoolTTL), t.PoolSize, t.PayloadMaxBytes)
			p.opt(3, "trust_cacerts", t.TrustCACerts)
			p.opt(3, "client_cert", t.ClientCert)
			p.opt(3, "client_key", t.ClientKey)
			p.opt(3, "client_key_password", t.ClientKeyPassword)
		}
	}

	p.line(0, "Ingresses (%d):", len(m.Ingresses))
	for _, in := range m.Ingresses {
		p.line(1, "%s %s at %s", in.ID, in.Kind, in.Pos)
		switch s := in.Spec.(type) {
		case *KafkaIngressSpec:
			p.opt(2, "address", s.Address)
			p.opt(2, "consumerGroupId", s.ConsumerGroupID)
			p.routes("topic", s.Topics)
			p.line(2, "autoOffsetResetPosition: %s", s.AutoOffsetReset)
			p.startup(s.StartupPosition)
			p.props("properties", s.Properties)
			p.props("consumer config", sortedProps(s.ConsumerProperties()))
		case *KinesisIngressSpec:
			p.region(s.Region)
			p.credentials(s.Credentials)
			p.startup(s.StartupPosition)
			p.routes("stream", s.Streams)
			p.props("clientConfigProperties", s.ClientConfig)
		case *GeneratorIngressSpec:
			p.line(2, "targets: %s", typeNames(s.Targets))
			if s.Rate == 0 {
				p.line(2, "rate: unlimited")
			} else {
				p.line(2, "rate: %d/s", s.Rate)
			}
			if s.Count == 0 {
				p.line(2, "count: unbounded")
			} else {
				p.line(2, "count: %d", s.Count)
			}
			p.line(2, "keys: %d (%s%d .. %s%d), keyDistribution: %s, seed: %d",
				s.Keys, s.KeyPrefix, 0, s.KeyPrefix, s.Keys-1, s.KeyDistribution, s.Seed)
			p.line(2, "valueType: %s", s.ValueType)
		case *FileIngressSpec:
			p.line(2, "targets: %s", typeNames(s.Targets))
			p.line(2, "path: %s", s.Path)
			p.line(2, "format: %s", s.Format)
			if s.Format == FormatJSONL {
				p.line(2, "keyField: %s", s.KeyField)
				if s.ValueField == "" {
					p.line(2, "valueField: (whole line)")
				} else {
					p.line(2, "valueField: %s", s.ValueField)
				}
			} else if s.Delimiter == "" {
				p.line(2, "delimiter: (none; id and value are the whole line)")
			} else {
				p.line(2, "delimiter: %s", strconv.Quote(s.Delimiter))
			}
			p.line(2, "valueType: %s", s.ValueType)
			p.line(2, "onError: %s", s.OnError)
		}
	}

	p.line(0, "Egresses (%d):", len(m.Egresses))
	for _, eg := range m.Egresses {
		p.line(1, "%s %s at %s", eg.ID, eg.Kind, eg.Pos)
		switch s := eg.Spec.(type) {
		case *KafkaEgressSpec:
			p.opt(2, "address", s.Address)
			if s.DeliverySemantic == DeliveryExactlyOnce {
				p.line(2, "deliverySemantic: %s (transaction timeout %s)", s.DeliverySemantic, dur(s.TransactionTimeout))
			} else {
				p.line(2, "deliverySemantic: %s", s.DeliverySemantic)
			}
			p.props("properties", s.Properties)
			p.props("producer config", sortedProps(s.ProducerProperties()))
		case *KinesisEgressSpec:
			p.region(s.Region)
			p.credentials(s.Credentials)
			p.line(2, "maxOutstandingRecords: %d", s.MaxOutstandingRecords)
			p.props("clientConfigProperties", s.ClientConfig)
		case *FileEgressSpec:
			p.line(2, "path: %s", s.Path)
			p.line(2, "format: %s, append: %t", s.Format, s.Append)
		case *StdoutEgressSpec:
			p.line(2, "format: %s", s.Format)
		}
	}

	if len(m.Warnings) > 0 {
		p.line(0, "Warnings (%d):", len(m.Warnings))
		for _, d := range m.Warnings {
			p.line(1, "%s", d)
		}
	}
}

type printer struct {
	w io.Writer
}

func (p *printer) line(indent int, format string, args ...any) {
	fmt.Fprintf(p.w, "%s%s\n", strings.Repeat("  ", indent), fmt.Sprintf(format, args...))
}

func (p *printer) opt(indent int, key, value string) {
	if value != "" {
		p.line(indent, "%s: %s", key, value)
	}
}

func (p *printer) routes(what string, rs []Route) {
	for _, r := range rs {
		p.line(2, "%s %s -> %s as %s (at %s)", what, strconv.Quote(r.Name), typeNames(r.Targets), r.ValueType, r.Pos)
	}
}

func (p *printer) startup(sp StartupPosition) {
	switch sp.Type {
	case StartupSpecificOffsets:
		p.line(2, "startupPosition: %s", sp.Type)
		for _, o := range sp.Offsets {
			p.line(3, "%s partition %d: offset %d", strconv.Quote(o.Topic), o.Partition, o.Offset)
		}
	case StartupDate:
		p.line(2, "startupPosition: %s %s (epoch ms %d)", sp.Type,
			sp.Date.UTC().Format("2006-01-02 15:04:05.000 -0700"), sp.Date.UnixMilli())
	default:
		p.line(2, "startupPosition: %s", sp.Type)
	}
}

func (p *printer) props(what string, props []Property) {
	if len(props) == 0 {
		return
	}
	p.line(2, "%s:", what)
	for _, pr := range props {
		p.line(3, "%s = %s", pr.Key, strconv.Quote(pr.Value))
	}
}

func (p *printer) region(r AWSRegion) {
	switch r.Type {
	case AWSRegionSpecific:
		p.line(2, "awsRegion: %s %s", r.Type, r.ID)
	case AWSRegionCustomEndpoint:
		p.line(2, "awsRegion: %s %s (endpoint %s)", r.Type, r.ID, r.Endpoint)
	default:
		p.line(2, "awsRegion: %s", r.Type)
	}
}

func (p *printer) credentials(c AWSCredentials) {
	switch c.Type {
	case AWSCredentialsBasic:
		// The secret is never printed.
		p.line(2, "awsCredentials: %s (accessKeyId %s, secretAccessKey set)", c.Type, c.AccessKeyID)
	case AWSCredentialsProfile:
		if c.ProfilePath != "" {
			p.line(2, "awsCredentials: %s %s (profilePath %s)", c.Type, c.ProfileName, c.ProfilePath)
		} else {
			p.line(2, "awsCredentials: %s %s", c.Type, c.ProfileName)
		}
	default:
		p.line(2, "awsCredentials: %s", c.Type)
	}
}

func typeNames(ts []TypeName) string {
	s := make([]string, len(ts))
	for i, t := range ts {
		s[i] = t.String()
	}
	return "[" + strings.Join(s, ", ") + "]"
}

func sortedProps(m map[string]string) []Property {
	out := make([]Property, 0, len(m))
	for k, v := range m {
		out = append(out, Property{k, v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}

// dur renders a duration compactly: 1m, 30s, 1m30s, 250ms.
func dur(d time.Duration) string {
	if d == 0 {
		return "0s"
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

package module

import (
	"math"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// --- shared pieces ---------------------------------------------------------

// componentID reads the required spec.id typename.
func componentID(c *component) (TypeName, idRef, bool) {
	n, p := c.spec.get("id")
	if n == nil {
		if ov, ok := c.spec.overrides["id"]; !ok || !ov.reported {
			c.spec.missing("id", p)
		}
		return TypeName{}, idRef{}, false
	}
	t, ok := c.f.typeName(n, p)
	return t, idRef{c.f.pos(n), p}, ok
}

// idRef is where a component id was written.
type idRef struct {
	pos  Pos
	path string
}

func (l *loader) addIngress(c *component, id TypeName, ref idRef, spec any) {
	l.mod.Ingresses = append(l.mod.Ingresses, &Ingress{Pos: c.pos(), Kind: c.kind, ID: id, Spec: spec})
	l.ingressIDs = append(l.ingressIDs, posName{id, ref.pos, ref.path})
}

func (l *loader) addEgress(c *component, id TypeName, ref idRef, spec any) {
	l.mod.Egresses = append(l.mod.Egresses, &Egress{Pos: c.pos(), Kind: c.kind, ID: id, Spec: spec})
	l.egressIDs = append(l.egressIDs, posName{id, ref.pos, ref.path})
}

// parseTargets reads a required, non-empty list of function types.
func (l *loader) parseTargets(o *obj, key string) ([]TypeName, bool) {
	n, p := o.require(key)
	if n == nil {
		return nil, false
	}
	f := o.f
	if n.Kind == yaml.ScalarNode {
		f.errorf(n, p, "must be a list of function types (\"- namespace/name\"), got %s", describe(n))
		return nil, false
	}
	items, ok := f.list(n, p)
	if !ok {
		return nil, false
	}
	if len(items) == 0 {
		f.errorf(n, p, "must list at least one function type")
		return nil, false
	}
	var out []TypeName
	var refs []posName
	for i, it := range items {
		ip := index(p, i)
		t, good := f.typeName(it, ip)
		if !good {
			ok = false
			continue
		}
		if strings.Contains(t.Namespace, "*") || strings.Contains(t.Name, "*") {
			f.errorf(it, ip, "a target must be a function type namespace/name, not a pattern, got %q", t.String())
			ok = false
			continue
		}
		out = append(out, t)
		refs = append(refs, posName{t, f.pos(resolve(it)), ip})
	}
	if !ok {
		return nil, false
	}
	l.targets = append(l.targets, refs...)
	return out, true
}

// routes reads the routing table of a Kafka (nameKey "topic") or Kinesis
// (nameKey "stream") ingress. A name listed twice keeps its last entry, as
// upstream.
func (l *loader) routes(o *obj, key, nameKey string) ([]Route, bool) {
	n, p := o.require(key)
	if n == nil {
		return nil, false
	}
	f := o.f
	items, ok := f.list(n, p)
	if !ok {
		return nil, false
	}
	if len(items) == 0 {
		f.errorf(n, p, "must list at least one %s", nameKey)
		return nil, false
	}
	var out []Route
	byName := map[string]int{}
	for i, it := range items {
		ip := index(p, i)
		it = resolve(it)
		if it != nil && it.Kind == yaml.ScalarNode {
			f.errorf(it, ip, "must be an object {%s, valueType, targets}, got %s", nameKey, describe(it))
			ok = false
			continue
		}
		ro, good := f.object(it, it, ip)
		if !good {
			ok = false
			continue
		}
		r := Route{Pos: f.pos(it)}
		good = ro.reqText(nameKey, &r.Name)
		if t, _, g := ro.reqTypeName("valueType"); g {
			r.ValueType = t
		} else {
			good = false
		}
		if ts, g := l.parseTargets(ro, "targets"); g {
			r.Targets = ts
		} else {
			good = false
		}
		ro.finish()
		if !good {
			ok = false
			continue
		}
		if j, dup := byName[r.Name]; dup {
			f.warnf(ro.keyNode(nameKey), join(ip, nameKey), "%s %q is also listed at line %d; this entry replaces it", nameKey, r.Name, out[j].Pos.Line)
			out[j] = r
			continue
		}
		byName[r.Name] = len(out)
		out = append(out, r)
	}
	return out, ok
}

// startupPosition reads a startupPosition object. Kafka supports every
// type; Kinesis earliest, latest and date.
func startupPosition(o *obj, kafka bool) (StartupPosition, bool) {
	sp := StartupPosition{Type: StartupLatest}
	so, ok := o.optObject("startupPosition")
	if !ok {
		return sp, !o.has("startupPosition")
	}
	f := o.f
	valid := []string{StartupEarliest, StartupLatest, StartupDate}
	if kafka {
		valid = []string{StartupGroupOffsets, StartupEarliest, StartupLatest, StartupSpecificOffsets, StartupDate}
	}
	tn, tp := so.require("type")
	if tn == nil {
		so.ignoreAll()
		return sp, false
	}
	typ, ok := f.oneOf(tn, tp, "startup position type", valid...)
	if !ok {
		so.ignoreAll()
		return sp, false
	}
	sp.Type = typ
	switch typ {
	case StartupSpecificOffsets:
		sp.Offsets, ok = specificOffsets(so)
	case StartupDate:
		n, p := so.require("date")
		if n == nil {
			ok = false
			break
		}
		s, good := f.text(n, p)
		if !good {
			ok = false
			break
		}
		t, err := ParseStartupDate(s)
		if err != nil {
			f.errorf(n, p, "%v", err)
			ok = false
			break
		}
		sp.Date = t
	}
	if typ != StartupSpecificOffsets {
		so.onlyFor("offsets", "with type specific-offsets")
	}
	if typ != StartupDate {
		so.onlyFor("date", "with type date")
	}
	so.finish()
	return sp, ok
}

// specificOffsets reads offsets: [{"<topic>/<partition>": <offset>}, ...].
func specificOffsets(so *obj) ([]PartitionOffset, bool) {
	f := so.f
	n, p := so.require("offsets")
	if n == nil {
		return nil, false
	}
	items, ok := f.list(n, p)
	if !ok {
		return nil, false
	}
	if len(items) == 0 {
		f.errorf(n, p, "must list at least one \"<topic>/<partition>: <offset>\" entry")
		return nil, false
	}
	var out []PartitionOffset
	for i, it := range items {
		ip := index(p, i)
		it = resolve(it)
		if it == nil || it.Kind != yaml.MappingNode || len(it.Content) != 2 {
			f.errorf(it, ip, "must be a single-key map \"<topic>/<partition>: <offset>\", got %s", describe(it))
			ok = false
			continue
		}
		k := resolve(it.Content[0])
		if k == nil || k.Kind != yaml.ScalarNode {
			f.errorf(it.Content[0], ip, "keys must be strings, got %s", describe(k))
			ok = false
			continue
		}
		slash := strings.LastIndexByte(k.Value, '/')
		if slash <= 0 || slash == len(k.Value)-1 {
			f.errorf(k, ip, "invalid topic partition %q: the key must be <topic>/<partition>", k.Value)
			ok = false
			continue
		}
		part, err := strconv.ParseInt(k.Value[slash+1:], 10, 32)
		if err != nil {
			f.errorf(k, ip, "invalid topic partition %q: the partition must be an integer", k.Value)
			ok = false
			continue
		}
		if part < 0 {
			f.errorf(k, ip, "Invalid partition id: %d; value must be larger or equal to 0.", part)
			ok = false
			continue
		}
		off, good := f.integer(it.Content[1], join(ip, k.Value), 0, math.MaxInt64)
		if !good {
			ok = false
			continue
		}
		out = append(out, PartitionOffset{Topic: k.Value[:slash], Partition: int32(part), Offset: off})
	}
	return out, ok
}

// --- Kafka -----------------------------------------------------------------

func (l *loader) bindKafkaIngress(c *component) {
	s, f := c.spec, c.f
	spec := &KafkaIngressSpec{AutoOffsetReset: "latest"}
	id, idNode, ok := componentID(c)
	addrOK := s.optNonEmpty("address", &spec.Address)
	groupOK := s.optNonEmpty("consumerGroupId", &spec.ConsumerGroupID)
	ok = ok && addrOK && groupOK
	topics, good := l.routes(s, "topics", "topic")
	spec.Topics = topics
	ok = ok && good
	if n, p := s.get("autoOffsetResetPosition"); n != nil {
		if v, good := f.text(n, p); !good {
			ok = false
		} else if lv := strings.ToLower(v); lv == "earliest" || lv == "latest" {
			spec.AutoOffsetReset = lv
		} else {
			f.errorf(n, p, "Invalid autoOffsetResetPosition: %s; valid values are [EARLIEST, LATEST]", v)
			ok = false
		}
	}
	spec.StartupPosition, good = startupPosition(s, true)
	ok = ok && good
	spec.Properties = s.properties("properties")

	props := spec.ConsumerProperties()
	if addrOK && props["bootstrap.servers"] == "" {
		f.errorf(s.at, join(s.path, "address"), "missing Kafka bootstrap servers: set address (or a bootstrap.servers property)")
		ok = false
	}
	if groupOK && props["group.id"] == "" {
		f.errorf(s.at, join(s.path, "consumerGroupId"), "missing Kafka consumer group: set consumerGroupId (or a group.id property)")
		ok = false
	}
	s.finish()
	if ok {
		l.addIngress(c, id, idNode, spec)
	}
}

func (l *loader) bindKafkaEgress(c *component) {
	s, f := c.spec, c.f
	spec := &KafkaEgressSpec{DeliverySemantic: DeliveryAtLeastOnce}
	id, idNode, ok := componentID(c)
	addrOK := s.optNonEmpty("address", &spec.Address)
	ok = ok && addrOK
	if n, p := s.get("deliverySemantic"); n != nil {
		if n.Kind == yaml.ScalarNode {
			f.errorf(n, p, "must be an object such as {type: at-least-once}, got %s", describe(n))
			ok = false
		} else if ds, good := f.object(n, s.keyNode("deliverySemantic"), p); !good {
			ok = false
		} else {
			ok = deliverySemantic(ds, spec) && ok
		}
	}
	spec.Properties = s.properties("properties")
	if addrOK && spec.ProducerProperties()["bootstrap.servers"] == "" {
		f.errorf(s.at, join(s.path, "address"), "missing Kafka bootstrap servers: set address (or a bootstrap.servers property)")
		ok = false
	}
	s.finish()
	if ok {
		l.addEgress(c, id, idNode, spec)
	}
}

func deliverySemantic(ds *obj, spec *KafkaEgressSpec) bool {
	f := ds.f
	tn, tp := ds.require("type")
	if tn == nil {
		ds.ignoreAll()
		return false
	}
	typ, ok := f.oneOf(tn, tp, "delivery semantic type", DeliveryAtLeastOnce, DeliveryExactlyOnce, DeliveryNone)
	if !ok {
		ds.ignoreAll()
		return false
	}
	spec.DeliverySemantic = typ
	if typ != DeliveryExactlyOnce {
		ds.onlyFor("transactionTimeout", "with type exactly-once")
		ds.onlyFor("transactionTimeoutMillis", "with type exactly-once")
		ds.finish()
		return true
	}
	// The legacy numeric transactionTimeoutMillis takes precedence.
	if n, p := ds.get("transactionTimeoutMillis"); n != nil {
		if n.Kind == yaml.ScalarNode && n.ShortTag() == "!!str" {
			if _, err := strconv.ParseInt(strings.TrimSpace(n.Value), 10, 64); err != nil {
				f.errorf(n, p, "must be a number of milliseconds, got %s; for a duration such as 15min use transactionTimeout", describe(n))
				ds.finish()
				return false
			}
		}
		ms, good := f.integer(n, p, 1, math.MaxInt64/int64(time.Millisecond))
		if !good {
			ds.finish()
			return false
		}
		spec.TransactionTimeout = durationMillis(ms)
		if ds.has("transactionTimeout") {
			ds.ignore("transactionTimeout")
			f.warnf(ds.keyNode("transactionTimeout"), join(ds.path, "transactionTimeout"), "ignored: transactionTimeoutMillis takes precedence")
		}
		ds.finish()
		return true
	}
	n, p := ds.get("transactionTimeout")
	if n == nil {
		f.errorf(ds.at, join(ds.path, "transactionTimeout"), "missing required field: exactly-once needs a transaction timeout (for example transactionTimeout: 15min)")
		ds.finish()
		return false
	}
	d, good := f.duration(n, p)
	if good && d <= 0 {
		f.errorf(n, p, "the transaction timeout must be larger than 0")
		good = false
	}
	spec.TransactionTimeout = d
	ds.finish()
	return good
}

// --- Kinesis ---------------------------------------------------------------

func awsRegion(o *obj) (AWSRegion, bool) {
	r := AWSRegion{Type: AWSRegionDefault}
	ro, ok := o.optObject("awsRegion")
	if !ok {
		return r, !o.has("awsRegion")
	}
	f := ro.f
	tn, tp := ro.require("type")
	if tn == nil {
		ro.ignoreAll()
		return r, false
	}
	typ, ok := f.oneOf(tn, tp, "AWS region type", AWSRegionDefault, AWSRegionSpecific, AWSRegionCustomEndpoint)
	if !ok {
		ro.ignoreAll()
		return r, false
	}
	r.Type = typ
	switch typ {
	case AWSRegionSpecific:
		ok = ro.reqText("id", &r.ID)
	case AWSRegionCustomEndpoint:
		if ro.reqText("endpoint", &r.Endpoint) {
			if u, err := url.Parse(r.Endpoint); err != nil || u.Scheme == "" || u.Host == "" {
				n, p := ro.get("endpoint")
				f.errorf(n, p, "must be an absolute URI such as https://localhost:4567, got %q", r.Endpoint)
				ok = false
			}
		} else {
			ok = false
		}
		ok = ro.reqText("id", &r.ID) && ok
	}
	ro.finish()
	return r, ok
}

func awsCredentials(o *obj) (AWSCredentials, bool) {
	c := AWSCredentials{Type: AWSCredentialsDefault}
	co, ok := o.optObject("awsCredentials")
	if !ok {
		return c, !o.has("awsCredentials")
	}
	f := co.f
	tn, tp := co.require("type")
	if tn == nil {
		co.ignoreAll()
		return c, false
	}
	typ, ok := f.oneOf(tn, tp, "AWS credential type", AWSCredentialsDefault, AWSCredentialsBasic, AWSCredentialsProfile)
	if !ok {
		co.ignoreAll()
		return c, false
	}
	c.Type = typ
	switch typ {
	case AWSCredentialsBasic:
		ok = co.reqText("accessKeyId", &c.AccessKeyID)
		ok = co.reqText("secretAccessKey", &c.SecretAccessKey) && ok
	case AWSCredentialsProfile:
		ok = co.reqText("profileName", &c.ProfileName)
		co.optText("profilePath", &c.ProfilePath)
	}
	co.finish()
	return c, ok
}

func (l *loader) bindKinesisIngress(c *component) {
	s := c.spec
	spec := &KinesisIngressSpec{}
	id, idNode, ok := componentID(c)
	var good bool
	spec.Region, good = awsRegion(s)
	ok = ok && good
	spec.Credentials, good = awsCredentials(s)
	ok = ok && good
	spec.StartupPosition, good = startupPosition(s, false)
	ok = ok && good
	spec.Streams, good = l.routes(s, "streams", "stream")
	ok = ok && good
	spec.ClientConfig = s.properties("clientConfigProperties")
	s.finish()
	if ok {
		l.addIngress(c, id, idNode, spec)
	}
}

func (l *loader) bindKinesisEgress(c *component) {
	s := c.spec
	spec := &KinesisEgressSpec{MaxOutstandingRecords: DefaultMaxOutstandingRecords}
	id, idNode, ok := componentID(c)
	var good bool
	spec.Region, good = awsRegion(s)
	ok = ok && good
	spec.Credentials, good = awsCredentials(s)
	ok = ok && good
	if n, p := s.get("maxOutstandingRecords"); n != nil {
		if v, g := c.f.integer(n, p, 1, math.MaxInt32); g {
			spec.MaxOutstandingRecords = int(v)
		} else {
			ok = false
		}
	}
	spec.ClientConfig = s.properties("clientConfigProperties")
	s.finish()
	if ok {
		l.addEgress(c, id, idNode, spec)
	}
}

// --- built-in connectors ---------------------------------------------------

func (l *loader) bindGeneratorIngress(c *component) {
	s, f := c.spec, c.f
	spec := &GeneratorIngressSpec{
		Keys:            DefaultGeneratorKeys,
		KeyPrefix:       DefaultGeneratorKeyPrefix,
		KeyDistribution: KeySequential,
		Seed:            DefaultGeneratorSeed,
		ValueType:       mustTypeName(TypeString),
	}
	id, idNode, ok := componentID(c)
	var good bool
	spec.Targets, good = l.parseTargets(s, "targets")
	ok = ok && good
	check := func(key string, min int64, dst *int64) {
		if n, p := s.get(key); n != nil {
			if v, g := f.integer(n, p, min, math.MaxInt64); g {
				*dst = v
			} else {
				ok = false
			}
		}
	}
	check("rate", 0, &spec.Rate)
	check("count", 0, &spec.Count)
	check("keys", 1, &spec.Keys)
	if n, p := s.get("seed"); n != nil {
		if v, g := f.integer(n, p, math.MinInt64, math.MaxInt64); g {
			spec.Seed = v
		} else {
			ok = false
		}
	}
	if n, p := s.get("keyPrefix"); n != nil {
		if v, g := f.text(n, p); g {
			spec.KeyPrefix = v
		} else {
			ok = false
		}
	}
	if n, p := s.get("keyDistribution"); n != nil {
		if v, g := f.oneOf(n, p, "key distribution", KeySequential, KeyUniform); g {
			spec.KeyDistribution = v
		} else {
			ok = false
		}
	}
	if n, p := s.get("valueType"); n != nil {
		if v, g := f.oneOf(n, p, "generator value type", TypeString, TypeLong, TypeInt); g {
			spec.ValueType = mustTypeName(v)
		} else {
			ok = false
		}
	}
	s.finish()
	if ok {
		l.addIngress(c, id, idNode, spec)
	}
}

func (l *loader) bindFileIngress(c *component) {
	s, f := c.spec, c.f
	spec := &FileIngressSpec{Format: FormatLines, OnError: OnErrorFail}
	id, idNode, ok := componentID(c)
	var good bool
	spec.Targets, good = l.parseTargets(s, "targets")
	ok = ok && good
	if s.reqText("path", &spec.Path) {
		spec.Path = resolvePath(f, spec.Path)
	} else {
		ok = false
	}
	if n, p := s.get("format"); n != nil {
		if v, g := f.oneOf(n, p, "format", FormatLines, FormatJSONL); g {
			spec.Format = v
		} else {
			ok = false
		}
	}
	if n, p := s.get("onError"); n != nil {
		if v, g := f.oneOf(n, p, "onError", OnErrorFail, OnErrorSkip); g {
			spec.OnError = v
		} else {
			ok = false
		}
	}
	valueTypeRequired := false
	switch spec.Format {
	case FormatJSONL:
		ok = s.reqText("keyField", &spec.KeyField) && ok
		if n, p := s.get("valueField"); n != nil {
			if v, g := f.nonEmptyText(n, p); g {
				spec.ValueField = v
			} else {
				ok = false
			}
		}
		s.onlyFor("delimiter", "with format lines")
		valueTypeRequired = true
	default:
		if n, p := s.get("delimiter"); n != nil {
			if v, g := f.text(n, p); !g {
				ok = false
			} else if v == "" {
				f.errorf(n, p, "must not be empty (leave delimiter out to use the whole line as id and value)")
				ok = false
			} else {
				spec.Delimiter = v
			}
		}
		s.onlyFor("keyField", "with format jsonl")
		s.onlyFor("valueField", "with format jsonl")
	}
	if valueTypeRequired {
		if t, _, g := s.reqTypeName("valueType"); g {
			spec.ValueType = t
		} else {
			ok = false
		}
	} else {
		spec.ValueType = mustTypeName(TypeString)
		if n, p := s.get("valueType"); n != nil {
			if t, g := f.typeName(n, p); g {
				spec.ValueType = t
			} else {
				ok = false
			}
		}
	}
	s.finish()
	if ok {
		l.addIngress(c, id, idNode, spec)
	}
}

func (l *loader) bindFileEgress(c *component) {
	s, f := c.spec, c.f
	spec := &FileEgressSpec{Format: FormatLines}
	id, idNode, ok := componentID(c)
	if s.reqText("path", &spec.Path) {
		spec.Path = resolvePath(f, spec.Path)
	} else {
		ok = false
	}
	if n, p := s.get("format"); n != nil {
		if v, g := f.oneOf(n, p, "format", FormatLines, FormatJSONL); g {
			spec.Format = v
		} else {
			ok = false
		}
	}
	if n, p := s.get("append"); n != nil {
		if v, g := f.boolean(n, p); g {
			spec.Append = v
		} else {
			ok = false
		}
	}
	s.finish()
	if ok {
		l.addEgress(c, id, idNode, spec)
	}
}

func (l *loader) bindStdoutEgress(c *component) {
	s, f := c.spec, c.f
	spec := &StdoutEgressSpec{Format: FormatLines}
	id, idNode, ok := componentID(c)
	if n, p := s.get("format"); n != nil {
		if v, g := f.oneOf(n, p, "format", FormatLines, FormatJSONL); g {
			spec.Format = v
		} else {
			ok = false
		}
	}
	s.finish()
	if ok {
		l.addEgress(c, id, idNode, spec)
	}
}

// resolvePath resolves a path of a module file against the file's directory.
func resolvePath(f *fileCtx, p string) string {
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(f.dir, p)
}

func mustTypeName(s string) TypeName {
	t, err := ParseTypeName(s)
	if err != nil {
		panic(err)
	}
	return t
}

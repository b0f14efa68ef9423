// Package datagen is the generator ingress (kind
// io.statefun.generator.v1/ingress): a bounded or unbounded stream of keyed
// messages at a fixed rate or as fast as possible, with no external service.
//
// Message i (0-based, counted over the whole ingress) goes to key
// KeyPrefix+(i mod Keys) (sequential) or to a seeded random key (uniform);
// source subtask s of p generates the messages with i mod p == s, so the
// output is the same whatever the parallelism.
package datagen

import (
	"encoding/binary"
	"fmt"
	"strconv"
	"time"

	"github.com/statefun-go/statefun/connectors"
	"github.com/statefun-go/statefun/dataflow"
	"github.com/statefun-go/statefun/statefun"
)

// Config of a generator. Zero values: unbounded, unthrottled.
type Config struct {
	Count     int64   // total messages; 0 = unbounded
	Rate      float64 // messages per second over all subtasks; 0 = as fast as possible
	Keys      int     // key space size (>= 1)
	KeyPrefix string
	Uniform   bool  // random keys instead of sequential
	Seed      int64 // for Uniform
	// ValueType is io.statefun.types/string (the value is the key),
	// io.statefun.types/long or io.statefun.types/int (the sequence number).
	ValueType string
}

// Validate reports a bad configuration.
func (c Config) Validate() error {
	switch c.ValueType {
	case "io.statefun.types/string", "io.statefun.types/long", "io.statefun.types/int":
	default:
		return fmt.Errorf("datagen: unsupported valueType %q", c.ValueType)
	}
	if c.Keys < 1 || c.Count < 0 || c.Rate < 0 {
		return fmt.Errorf("datagen: keys must be >= 1, count and rate >= 0")
	}
	return nil
}

// Source generates the share of one subtask.
type Source struct {
	cfg      Config
	ctx      dataflow.Context
	next     int64 // next global sequence number of this subtask
	stride   int64
	start    time.Time
	emitted  int64
	keys     []string // precomputed key strings
	restored bool
}

// New returns a generator source.
func New(cfg Config) *Source { return &Source{cfg: cfg} }

// Open implements connectors.Source.
func (s *Source) Open(ctx dataflow.Context) error {
	if err := s.cfg.Validate(); err != nil {
		return err
	}
	s.ctx = ctx
	if !s.restored {
		s.next = int64(ctx.SubtaskIndex())
	}
	s.stride = int64(ctx.Parallelism())
	s.start = ctx.Clock().Now()
	if s.cfg.Keys <= 1<<20 {
		s.keys = make([]string, s.cfg.Keys)
		for i := range s.keys {
			s.keys[i] = s.cfg.KeyPrefix + strconv.Itoa(i)
		}
	}
	return nil
}

func (s *Source) key(i int64) string {
	k := int(i % int64(s.cfg.Keys))
	if s.cfg.Uniform {
		// A stateless hash of (seed, i): the same key for message i
		// whatever the parallelism.
		k = int(splitmix64(uint64(s.cfg.Seed)^uint64(i)*0x9e3779b97f4a7c15) % uint64(s.cfg.Keys))
	}
	if s.keys != nil {
		return s.keys[k]
	}
	return s.cfg.KeyPrefix + strconv.Itoa(k)
}

// Read implements connectors.Source.
func (s *Source) Read(dst []connectors.Record) ([]connectors.Record, time.Duration, error) {
	if s.cfg.Count > 0 && s.next >= s.cfg.Count {
		return dst, 0, dataflow.ErrEndOfInput
	}
	room := int64(cap(dst) - len(dst))
	if s.cfg.Rate > 0 {
		// This subtask's share of the rate.
		rate := s.cfg.Rate / float64(s.stride)
		due := int64(s.ctx.Clock().Now().Sub(s.start).Seconds()*rate) + 1
		if due-s.emitted <= 0 {
			return dst, time.Duration(float64(time.Second) / rate), nil
		}
		room = min(room, due-s.emitted)
	}
	for ; room > 0; room-- {
		if s.cfg.Count > 0 && s.next >= s.cfg.Count {
			break
		}
		k := s.key(s.next)
		var v []byte
		switch s.cfg.ValueType {
		case "io.statefun.types/string":
			v, _ = statefun.EncodeValue(statefun.StringType, k)
		case "io.statefun.types/long":
			v, _ = statefun.EncodeValue(statefun.Int64Type, s.next)
		default:
			v, _ = statefun.EncodeValue(statefun.Int32Type, int32(s.next))
		}
		dst = append(dst, connectors.Record{Key: k, HasKey: true, Value: v})
		s.next += s.stride
		s.emitted++
	}
	return dst, 0, nil
}

func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// Position implements connectors.Checkpointed: the next sequence number and
// the count emitted (the rate clock restarts on restore).
func (s *Source) Position() ([]byte, error) {
	return binary.AppendVarint(binary.AppendVarint(nil, s.next), s.emitted), nil
}

// RestorePosition implements connectors.Checkpointed.
func (s *Source) RestorePosition(pos []byte) error {
	next, n := binary.Varint(pos)
	if n <= 0 {
		return fmt.Errorf("datagen: corrupt position")
	}
	emitted, m := binary.Varint(pos[n:])
	if m <= 0 {
		return fmt.Errorf("datagen: corrupt position")
	}
	s.next, s.emitted, s.restored = next, emitted, true
	return nil
}

// Close implements connectors.Source.
func (s *Source) Close() error { return nil }

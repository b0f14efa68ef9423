package smoke

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/statefun-go/statefun/connectors"
	"github.com/statefun-go/statefun/dataflow"
	"github.com/statefun-go/statefun/statefun/translate"
)

// Ingress returns the generator ingress of a smoke run, declared in code.
func Ingress(p Params) translate.Ingress {
	p.EnsureDefaults()
	return translate.Ingress{
		ID:          IngressID,
		Parallelism: p.SourceParallelism,
		Source:      func(int) connectors.Source { return &Source{p: p} },
		ValueType:   "statefun.smoke.e2e/source-command",
		Targets:     []string{FunctionTypeName},
	}
}

// Source is the generator of one source subtask s of par: it emits source
// commands s, s+par, s+2*par, ... below MessageCount, then Verify{expected}
// to ids s, s+par, ... below N, then ends. Its position (next command,
// next verified id) makes a restore resume exactly where the checkpoint
// was taken; it cannot be split, so a restore needs the same source
// parallelism.
type Source struct {
	p          Params
	ctx        dataflow.Context
	stride     int64
	next       int64 // next command index of this subtask
	nextVerify int64 // next id to verify
	restored   bool
	expected   []int64 // the model, computed when the verification phase starts

	start   time.Time
	emitted int64 // commands emitted since start (rate)
}

// Open implements connectors.Source.
func (s *Source) Open(ctx dataflow.Context) error {
	if err := s.p.Validate(); err != nil {
		return err
	}
	s.ctx = ctx
	s.stride = int64(ctx.Parallelism())
	if !s.restored {
		s.next, s.nextVerify = int64(ctx.SubtaskIndex()), int64(ctx.SubtaskIndex())
	}
	s.start = ctx.Clock().Now()
	return nil
}

// Read implements connectors.Source.
func (s *Source) Read(dst []connectors.Record) ([]connectors.Record, time.Duration, error) {
	room := int64(cap(dst) - len(dst))
	if s.next < s.p.MessageCount {
		if s.p.Rate > 0 {
			rate := s.p.Rate / float64(s.stride)
			due := int64(s.ctx.Clock().Now().Sub(s.start).Seconds()*rate) + 1
			if due <= s.emitted {
				return dst, time.Duration(float64(time.Second) / rate), nil
			}
			room = min(room, due-s.emitted)
		}
		for ; room > 0 && s.next < s.p.MessageCount; room-- {
			rec, err := record(s.p.Command(s.next))
			if err != nil {
				return dst, 0, err
			}
			dst = append(dst, rec)
			s.next += s.stride
			s.emitted++
		}
		return dst, 0, nil
	}
	if s.nextVerify < int64(s.p.N) {
		if s.expected == nil {
			s.expected = s.p.Model().Expected
		}
		for ; room > 0 && s.nextVerify < int64(s.p.N); room-- {
			id := int(s.nextVerify)
			rec, err := record(SourceCommand{Index: -1, Target: id, Commands: Commands{Command: []Command{{Verify: &Verify{Expected: s.expected[id]}}}}})
			if err != nil {
				return dst, 0, err
			}
			dst = append(dst, rec)
			s.nextVerify += s.stride
		}
		return dst, 0, nil
	}
	return dst, 0, dataflow.ErrEndOfInput
}

func record(sc SourceCommand) (connectors.Record, error) {
	v, err := json.Marshal(sc)
	if err != nil {
		return connectors.Record{}, err
	}
	return connectors.Record{Key: strconv.Itoa(sc.Target), HasKey: true, Value: v, Origin: "smoke command " + strconv.FormatInt(sc.Index, 10)}, nil
}

// Close implements connectors.Source.
func (s *Source) Close() error { return nil }

// Position implements connectors.Checkpointed: the next command index and
// the next id to verify.
func (s *Source) Position() ([]byte, error) {
	return binary.AppendVarint(binary.AppendVarint(nil, s.next), s.nextVerify), nil
}

// RestorePosition implements connectors.Checkpointed.
func (s *Source) RestorePosition(pos []byte) error {
	next, n := binary.Varint(pos)
	if n <= 0 {
		return fmt.Errorf("smoke source: corrupt position %x", pos)
	}
	nv, m := binary.Varint(pos[n:])
	if m <= 0 || next < 0 || nv < 0 {
		return fmt.Errorf("smoke source: corrupt position %x", pos)
	}
	s.next, s.nextVerify, s.restored = next, nv, true
	return nil
}

package state

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/statefun-go/statefun/dataflow"
)

type modelValue struct {
	v   []byte
	exp int64
}

// model is the naive specification of a Store.
type model struct {
	m   map[Key]modelValue
	clk *clock
}

func (m *model) live(k Key) (modelValue, bool) {
	mv, ok := m.m[k]
	if !ok || (mv.exp != 0 && m.clk.t >= mv.exp) {
		return modelValue{}, false
	}
	return mv, true
}

// TestModel runs random operation sequences against a Store and a map and
// compares every observation. Set STATE_MODEL_SEED to replay a failure.
func TestModel(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("STATE_MODEL_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("seed %d (STATE_MODEL_SEED=%d to replay)", seed, seed)
	steps := 4000
	if testing.Short() {
		steps = 1000
	}
	for _, m := range []struct {
		name string
		wb   int64
	}{
		{"tiny", 600},
		{"small", 4 << 10},
		{"default", 0},
		{"disabled", -1},
	} {
		t.Run(m.name, func(t *testing.T) {
			for run := range 4 {
				runModel(t, seed+uint64(run), m.wb, steps)
			}
		})
	}
}

func runModel(t *testing.T, seed uint64, wb int64, steps int) {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	clk := &clock{t: 1_000_000}
	fs := vfs.NewMem()
	open := func() *Store {
		s, err := Open(Options{FS: fs, Dir: "db", WriteBackBytes: wb, Now: clk.now, CacheBytes: 1 << 20})
		if err != nil {
			t.Fatalf("seed %d: open: %v", seed, err)
		}
		return s
	}
	s := open()
	defer func() { s.Close() }()
	md := &model{m: map[Key]modelValue{}, clk: clk}

	// A small key universe so operations collide; several key groups and
	// spaces so Scan ranges matter.
	var keys []Key
	for kg := range 4 {
		for _, sp := range []Space{SpaceValue, SpaceRequest} {
			for id := range 6 {
				for _, name := range []string{"a", "bb"} {
					id := strconv.Itoa(id)
					if id == "5" {
						id = strings.Repeat("long-id-", 20) // header varints of 2 bytes
					}
					keys = append(keys, Key{KeyGroup: dataflow.KeyGroup(kg * 3), Space: sp, Namespace: "ns", Type: "t", ID: id, Name: name})
				}
			}
		}
	}
	randExp := func() int64 {
		switch r.IntN(3) {
		case 0:
			return clk.t + 1 + r.Int64N(2000)
		default:
			return 0
		}
	}
	fail := func(step int, format string, args ...any) {
		t.Helper()
		t.Fatalf("seed %d step %d: %s", seed, step, fmt.Sprintf(format, args...))
	}
	var log []string
	defer func() {
		if t.Failed() {
			n := max(0, len(log)-30)
			t.Logf("last operations:\n%v", log[n:])
		}
	}()

	for step := range steps {
		k := keys[r.IntN(len(keys))]
		switch op := r.IntN(100); {
		case op < 30: // Get
			v, ok, err := s.Get(k)
			log = append(log, fmt.Sprintf("get %v", k))
			if err != nil {
				fail(step, "Get: %v", err)
			}
			mv, mok := md.live(k)
			if ok != mok || !bytes.Equal(v, mv.v) {
				fail(step, "Get(%v) = %q,%v; model %q,%v", k, v, ok, mv.v, mok)
			}
		case op < 60: // Set
			v := []byte(fmt.Sprintf("v%d", r.IntN(1000)))
			if r.IntN(10) == 0 {
				v = bytes.Repeat([]byte{'L'}, 200+r.IntN(300)) // bigger than the tiny budget's share
			}
			exp := randExp()
			log = append(log, fmt.Sprintf("set %v %q exp %d", k, v, exp))
			if err := s.Set(k, v, exp); err != nil {
				fail(step, "Set: %v", err)
			}
			md.m[k] = modelValue{v: bytes.Clone(v), exp: exp}
		case op < 70: // Touch
			exp := randExp()
			log = append(log, fmt.Sprintf("touch %v exp %d", k, exp))
			if err := s.Touch(k, exp); err != nil {
				fail(step, "Touch: %v", err)
			}
			if mv, ok := md.live(k); ok {
				mv.exp = exp
				md.m[k] = mv
			}
		case op < 80: // Delete
			log = append(log, fmt.Sprintf("delete %v", k))
			if err := s.Delete(k); err != nil {
				fail(step, "Delete: %v", err)
			}
			delete(md.m, k)
		case op < 86: // advance the clock
			d := r.Int64N(500)
			clk.t += d
			log = append(log, fmt.Sprintf("clock +%d = %d", d, clk.t))
		case op < 90:
			log = append(log, "flush")
			if err := s.Flush(); err != nil {
				fail(step, "Flush: %v", err)
			}
		case op < 93:
			log = append(log, "reopen")
			if err := s.Close(); err != nil {
				fail(step, "Close: %v", err)
			}
			s = open()
		case op < 96:
			n := 1 + r.IntN(5)
			log = append(log, fmt.Sprintf("sweep %d", n))
			if _, err := s.SweepExpired(n); err != nil {
				fail(step, "SweepExpired: %v", err)
			}
		default: // Scan a random range and compare it with the model
			a, b := dataflow.KeyGroup(r.IntN(12)), dataflow.KeyGroup(r.IntN(12))
			if a > b {
				a, b = b, a
			}
			rg := dataflow.KeyGroupRange{Start: a, End: b}
			log = append(log, fmt.Sprintf("scan %v", rg))
			got := map[Key]modelValue{}
			err := s.Scan(rg, func(k Key, v []byte, exp int64) error {
				got[k] = modelValue{v: bytes.Clone(v), exp: exp}
				return nil
			})
			if err != nil {
				fail(step, "Scan: %v", err)
			}
			want := 0
			for mk := range md.m {
				mv, ok := md.live(mk)
				if !ok || !rg.Contains(mk.KeyGroup) {
					continue
				}
				want++
				gv, ok := got[mk]
				if !ok || !bytes.Equal(gv.v, mv.v) || gv.exp != mv.exp {
					fail(step, "Scan(%v)[%v] = %q exp %d (found %v); model %q exp %d", rg, mk, gv.v, gv.exp, ok, mv.v, mv.exp)
				}
			}
			if len(got) != want {
				fail(step, "Scan(%v) returned %d values, model %d", rg, len(got), want)
			}
		}
		if err := s.checkInvariants(); err != nil {
			fail(step, "invariants: %v", err)
		}
		if wb > 0 {
			if st := s.Stats(); st.Bytes > wb {
				fail(step, "cache holds %d bytes > budget %d", st.Bytes, wb)
			}
		}
	}
	// Final full comparison after a reopen.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open()
	for _, k := range keys {
		v, ok, err := s.Get(k)
		mv, mok := md.live(k)
		if err != nil || ok != mok || !bytes.Equal(v, mv.v) {
			fail(steps, "final Get(%v) = %q,%v,%v; model %q,%v", k, v, ok, err, mv.v, mok)
		}
	}
}

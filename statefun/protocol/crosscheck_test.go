package protocol

import (
	"bytes"
	"flag"
	"reflect"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

var seedFlag = flag.Uint64("protocol.seed", 0, "seed of the randomized cross-checks (0: fixed seed 1 plus a time-based seed)")

// testSeeds returns the seeds to run: -protocol.seed alone when given,
// otherwise the fixed seed 1 and a time-based one. Each seed is logged so a
// failure can be replayed with -protocol.seed=N.
func testSeeds(t *testing.T) []uint64 {
	if *seedFlag != 0 {
		t.Logf("seed %d (from -protocol.seed)", *seedFlag)
		return []uint64{*seedFlag}
	}
	s := uint64(time.Now().UnixNano())
	t.Logf("seeds 1 and %d (replay with -protocol.seed=N)", s)
	return []uint64{1, s}
}

func crossCheckRounds() int {
	if testing.Short() {
		return 300
	}
	return 3000
}

func TestCrossCheckToFunction(t *testing.T) {
	for _, seed := range testSeeds(t) {
		g := newGen(seed)
		for i := range crossCheckRounds() {
			m := g.toFunction()
			crossCheckTo(t, seed, i, m)
			if t.Failed() {
				return
			}
		}
	}
}

func TestCrossCheckFromFunction(t *testing.T) {
	for _, seed := range testSeeds(t) {
		g := newGen(seed)
		for i := range crossCheckRounds() {
			m := g.fromFunction()
			crossCheckFrom(t, seed, i, m)
			if t.Failed() {
				return
			}
		}
	}
}

func crossCheckTo(t *testing.T, seed uint64, i int, m *ToFunction) {
	t.Helper()
	ours := m.AppendMarshal(nil)
	if len(ours) != m.Size() {
		t.Errorf("seed %d #%d: Size %d, encoded %d bytes", seed, i, m.Size(), len(ours))
	}

	// (a) our encoding, parsed by dynamicpb, is the message.
	d := newRefTo()
	if err := proto.Unmarshal(ours, d); err != nil {
		t.Fatalf("seed %d #%d: dynamicpb rejects our encoding: %v\n%x", seed, i, err, ours)
	}
	if got := toFunctionFromRef(d); !reflect.DeepEqual(got, m) {
		t.Fatalf("seed %d #%d: dynamicpb parse of our bytes differs\n got %s\nwant %s", seed, i, dump(got), dump(m))
	}

	// (b) dynamicpb's deterministic encoding, parsed by us, is the message.
	r := newRefTo()
	toFunctionToRef(m, r)
	theirs, err := deterministic.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var back ToFunction
	if err := back.Unmarshal(theirs); err != nil {
		t.Fatalf("seed %d #%d: Unmarshal of dynamicpb bytes: %v", seed, i, err)
	}
	if !reflect.DeepEqual(&back, m) {
		t.Fatalf("seed %d #%d: our parse of dynamicpb bytes differs\n got %s\nwant %s", seed, i, dump(&back), dump(m))
	}

	// (c) the bytes are identical.
	if !bytes.Equal(ours, theirs) {
		t.Fatalf("seed %d #%d: encodings differ\nours   %x\ntheirs %x", seed, i, ours, theirs)
	}

	// (d) and identical to the official SDK's generated code.
	s := sdkMessage(t, "ToFunction")
	toFunctionToRef(m, s)
	sdkBytes, err := deterministic.Marshal(s.Interface())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ours, sdkBytes) {
		t.Fatalf("seed %d #%d: encodings differ from the SDK's\nours %x\nsdk  %x", seed, i, ours, sdkBytes)
	}
}

func crossCheckFrom(t *testing.T, seed uint64, i int, m *FromFunction) {
	t.Helper()
	ours := m.AppendMarshal(nil)
	if len(ours) != m.Size() {
		t.Errorf("seed %d #%d: Size %d, encoded %d bytes", seed, i, m.Size(), len(ours))
	}

	d := newRefFrom()
	if err := proto.Unmarshal(ours, d); err != nil {
		t.Fatalf("seed %d #%d: dynamicpb rejects our encoding: %v\n%x", seed, i, err, ours)
	}
	if got := fromFunctionFromRef(d); !reflect.DeepEqual(got, m) {
		t.Fatalf("seed %d #%d: dynamicpb parse of our bytes differs\n got %s\nwant %s", seed, i, dump(got), dump(m))
	}

	r := newRefFrom()
	fromFunctionToRef(m, r)
	theirs, err := deterministic.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var back FromFunction
	if err := back.Unmarshal(theirs); err != nil {
		t.Fatalf("seed %d #%d: Unmarshal of dynamicpb bytes: %v", seed, i, err)
	}
	if !reflect.DeepEqual(&back, m) {
		t.Fatalf("seed %d #%d: our parse of dynamicpb bytes differs\n got %s\nwant %s", seed, i, dump(&back), dump(m))
	}

	if !bytes.Equal(ours, theirs) {
		t.Fatalf("seed %d #%d: encodings differ\nours   %x\ntheirs %x", seed, i, ours, theirs)
	}

	s := sdkMessage(t, "FromFunction")
	fromFunctionToRef(m, s)
	sdkBytes, err := deterministic.Marshal(s.Interface())
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ours, sdkBytes) {
		t.Fatalf("seed %d #%d: encodings differ from the SDK's\nours %x\nsdk  %x", seed, i, ours, sdkBytes)
	}
}

// TestCrossCheckSDKParsesOurs checks the other direction against the SDK's
// generated (fast-path) decoder: it parses our bytes to the same message.
func TestCrossCheckSDKParsesOurs(t *testing.T) {
	g := newGen(7)
	for i := range 500 {
		to := g.toFunction()
		s := sdkMessage(t, "ToFunction")
		if err := proto.Unmarshal(to.AppendMarshal(nil), s.Interface()); err != nil {
			t.Fatalf("#%d: SDK rejects our ToFunction: %v", i, err)
		}
		if got := toFunctionFromRef(s); !reflect.DeepEqual(got, to) {
			t.Fatalf("#%d: SDK parse differs\n got %s\nwant %s", i, dump(got), dump(to))
		}
		from := g.fromFunction()
		s = sdkMessage(t, "FromFunction")
		if err := proto.Unmarshal(from.AppendMarshal(nil), s.Interface()); err != nil {
			t.Fatalf("#%d: SDK rejects our FromFunction: %v", i, err)
		}
		if got := fromFunctionFromRef(s); !reflect.DeepEqual(got, from) {
			t.Fatalf("#%d: SDK parse differs\n got %s\nwant %s", i, dump(got), dump(from))
		}
	}
}

// refDecode runs a reference decoder (dynamicpb or the SDK's generated type)
// over b, and returns the decoded message, or the error.
func refDecodeTo(m protoreflect.Message, b []byte) (*ToFunction, error) {
	if err := proto.Unmarshal(b, m.Interface()); err != nil {
		return nil, err
	}
	return toFunctionFromRef(m), nil
}

func refDecodeFrom(m protoreflect.Message, b []byte) (*FromFunction, error) {
	if err := proto.Unmarshal(b, m.Interface()); err != nil {
		return nil, err
	}
	return fromFunctionFromRef(m), nil
}

package statefun

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

var noop = StatefulFunctionPointer(func(Context, Message) error { return nil })

func TestWithSpecValidation(t *testing.T) {
	fn := TypeNameFrom("example/fn")
	tests := []struct {
		name    string
		spec    StatefulFunctionSpec
		errText string
	}{
		{"no-type", StatefulFunctionSpec{Function: noop}, "FunctionType"},
		{"invalid-type", StatefulFunctionSpec{FunctionType: rawTypeName("bad"), Function: noop}, "invalid FunctionType"},
		{"no-function", StatefulFunctionSpec{FunctionType: fn}, "Function instance"},
		{"bad-state-name", StatefulFunctionSpec{FunctionType: fn, Function: noop, States: []ValueSpec{{Name: "1x", ValueType: Int32Type}}}, "invalid state name"},
		{"nil-state-type", StatefulFunctionSpec{FunctionType: fn, Function: noop, States: []ValueSpec{{Name: "x"}}}, "ValueType"},
		{"duplicate-state", StatefulFunctionSpec{FunctionType: fn, Function: noop, States: []ValueSpec{
			{Name: "x", ValueType: Int32Type}, {Name: "y", ValueType: Int32Type}, {Name: "x", ValueType: StringType}}}, "duplicate state name x"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := StatefulFunctionsBuilder()
			err := b.WithSpec(tc.spec)
			if err == nil || !strings.Contains(err.Error(), tc.errText) {
				t.Fatalf("WithSpec error = %v, want one containing %q", err, tc.errText)
			}
			if len(b.Specs()) != 0 {
				t.Fatal("a rejected spec was registered")
			}
		})
	}
}

func TestWithSpecDuplicateFunctionType(t *testing.T) {
	b := StatefulFunctionsBuilder()
	if err := b.WithSpec(StatefulFunctionSpec{FunctionType: TypeNameFrom("example/fn"), Function: noop}); err != nil {
		t.Fatal(err)
	}
	// Same typename, built differently.
	dup, _ := TypeNameFromParts("example", "fn")
	err := b.WithSpec(StatefulFunctionSpec{FunctionType: dup, Function: noop})
	if err == nil || !strings.Contains(err.Error(), "already a spec registered") {
		t.Fatalf("duplicate accepted: %v", err)
	}
	if len(b.Specs()) != 1 {
		t.Fatalf("%d specs registered", len(b.Specs()))
	}
}

func TestSpecsOrderAndCopies(t *testing.T) {
	b := StatefulFunctionsBuilder()
	names := []string{"example/c", "example/a", "other/b", "example/d"}
	states := []ValueSpec{{Name: "seen", ValueType: Int32Type, Expiration: ExpireAfterCall(time.Hour)}}
	for _, n := range names {
		if err := b.WithSpec(StatefulFunctionSpec{FunctionType: TypeNameFrom(n), Function: noop, States: states}); err != nil {
			t.Fatal(err)
		}
	}
	states[0].Name = "mutated"
	specs := b.Specs()
	if len(specs) != len(names) {
		t.Fatalf("%d specs", len(specs))
	}
	for i, s := range specs {
		if s.FunctionType.String() != names[i] {
			t.Fatalf("spec %d = %s, want %s", i, s.FunctionType, names[i])
		}
		if len(s.States) != 1 || s.States[0].Name != "seen" || s.States[0].Expiration.Duration() != time.Hour {
			t.Fatalf("spec %d states = %v", i, s.States)
		}
		if s.Function == nil {
			t.Fatal("function missing")
		}
	}
	specs[0].States[0].Name = "changed"
	specs[1] = StatefulFunctionSpec{}
	if again := b.Specs(); again[0].States[0].Name != "seen" || again[1].FunctionType == nil {
		t.Fatal("Specs() exposes the registry's slices")
	}
	if specs := StatefulFunctionsBuilder().Specs(); specs == nil || len(specs) != 0 {
		t.Fatalf("empty registry Specs() = %v", specs)
	}
}

func TestWithSpecConcurrent(t *testing.T) {
	b := StatefulFunctionsBuilder()
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := 0; i < 64; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			// Every type is registered twice; exactly one registration wins.
			errs <- b.WithSpec(StatefulFunctionSpec{FunctionType: TypeNameFrom(fmt.Sprintf("ns/fn%d", i%32)), Function: noop})
			_ = b.Specs()
		}(i)
	}
	wg.Wait()
	close(errs)
	failed := 0
	for err := range errs {
		if err != nil {
			failed++
		}
	}
	if failed != 32 || len(b.Specs()) != 32 {
		t.Fatalf("%d failures, %d specs", failed, len(b.Specs()))
	}
}

func TestStatefulFunctionPointer(t *testing.T) {
	want := errors.New("boom")
	var got Message
	f := StatefulFunctionPointer(func(_ Context, m Message) error { got = m; return want })
	var sf StatefulFunction = f
	msg := MessageFromTypedValue(&greeter, "io.statefun.types/bool", h("08 01"))
	if err := sf.Invoke(nil, msg); err != want || !got.AsBool() {
		t.Fatalf("Invoke = %v", err)
	}
}

// fakeContext is a minimal Context as the engine would provide.
type fakeContext struct {
	context.Context
	self    Address
	caller  *Address
	sent    []MessageBuilder
	egress  []EgressBuilder
	storage AddressScopedStorage
}

func (f *fakeContext) Self() Address                           { return f.self }
func (f *fakeContext) Caller() *Address                        { return f.caller }
func (f *fakeContext) Send(m MessageBuilder)                   { f.sent = append(f.sent, m) }
func (f *fakeContext) SendAfter(time.Duration, MessageBuilder) {}
func (f *fakeContext) SendAfterWithCancellationToken(time.Duration, CancellationToken, MessageBuilder) {
}
func (f *fakeContext) CancelDelayedMessage(CancellationToken) {}
func (f *fakeContext) SendEgress(e EgressBuilder)             { f.egress = append(f.egress, e) }
func (f *fakeContext) Storage() AddressScopedStorage          { return f.storage }

type ctxKey string

func TestDeriveContext(t *testing.T) {
	caller := Address{FunctionType: TypeNameFrom("example/caller"), Id: "c"}
	orig := &fakeContext{
		Context: context.WithValue(context.Background(), ctxKey("k1"), "v1"),
		self:    greeter,
		caller:  &caller,
	}
	ctx, cancel := context.WithCancel(context.WithValue(orig, ctxKey("k2"), "v2"))
	derived := DeriveContext(orig, ctx)

	if derived.Self() != orig.Self() || derived.Caller() != orig.Caller() || derived.Storage() != orig.Storage() {
		t.Fatal("derived context does not share the invocation state")
	}
	if derived.Value(ctxKey("k1")) != "v1" || derived.Value(ctxKey("k2")) != "v2" || orig.Value(ctxKey("k2")) != nil {
		t.Fatal("values not derived")
	}
	derived.Send(MessageBuilder{Target: greeter, Value: "x"})
	if len(orig.sent) != 1 {
		t.Fatal("side effects of the derived context are lost")
	}
	if derived.Err() != nil {
		t.Fatal("derived context already done")
	}
	cancel()
	<-derived.Done()
	if derived.Err() != context.Canceled || orig.Err() != nil {
		t.Fatal("cancellation not derived")
	}
	deadline := time.Now().Add(time.Hour)
	dctx, dcancel := context.WithDeadline(context.Background(), deadline)
	defer dcancel()
	if d, ok := DeriveContext(derived, dctx).Deadline(); !ok || !d.Equal(deadline) {
		t.Fatal("deadline not derived")
	}
	// Deriving twice does not nest wrappers.
	if dd := DeriveContext(derived, dctx).(*derivedContext); dd.Context != Context(orig) {
		t.Fatal("derived contexts are nested")
	}
}

type derivingContext struct{ fakeContext }

func (d *derivingContext) DeriveContext(ctx context.Context) Context {
	c := *d
	c.Context = ctx
	return &c
}

func TestDeriveContextDeriver(t *testing.T) {
	orig := &derivingContext{fakeContext{Context: context.Background(), self: greeter}}
	ctx := context.WithValue(context.Background(), ctxKey("k"), "v")
	derived, ok := DeriveContext(orig, ctx).(*derivingContext)
	if !ok || derived.Value(ctxKey("k")) != "v" || derived.Self() != greeter {
		t.Fatal("ContextDeriver not used")
	}
}

func TestDeriveContextPanics(t *testing.T) {
	for name, f := range map[string]func(){
		"nil-statefun-context": func() { DeriveContext(nil, context.Background()) },
		"nil-context":          func() { DeriveContext(&fakeContext{Context: context.Background()}, nil) },
	} {
		t.Run(name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Fatal("no panic")
				}
			}()
			f()
		})
	}
}

package statefun_test

import (
	"fmt"
	"time"

	"github.com/statefun-go/statefun/statefun"
)

// The code below is written exactly as for the official SDK; only the
// import path differs.

var (
	GreeterTypeName = statefun.TypeNameFrom("com.example.fns/greeter")
	SeenSpec        = statefun.ValueSpec{
		Name:       "seen_count",
		ValueType:  statefun.Int32Type,
		Expiration: statefun.ExpireAfterCall(24 * time.Hour),
	}
	KafkaEgress = statefun.TypeNameFrom("com.example/greets")
)

type Greeter struct{}

func (g *Greeter) Invoke(ctx statefun.Context, message statefun.Message) error {
	if !message.IsString() {
		return fmt.Errorf("unexpected message type %s", message.ValueTypeName())
	}
	name := message.AsString()

	var seen int32
	ctx.Storage().Get(SeenSpec, &seen)
	seen++
	ctx.Storage().Set(SeenSpec, seen)

	ctx.SendEgress(statefun.KafkaEgressBuilder{
		Target: KafkaEgress,
		Topic:  "greetings",
		Key:    name,
		Value:  fmt.Sprintf("Hello %s for the %dth time!", name, seen),
	})
	ctx.SendAfter(time.Minute, statefun.MessageBuilder{
		Target: statefun.Address{FunctionType: GreeterTypeName, Id: name},
		Value:  name,
	})
	return nil
}

func ExampleStatefulFunctionsBuilder() {
	builder := statefun.StatefulFunctionsBuilder()
	err := builder.WithSpec(statefun.StatefulFunctionSpec{
		FunctionType: GreeterTypeName,
		States:       []statefun.ValueSpec{SeenSpec},
		Function:     &Greeter{},
	})
	if err != nil {
		panic(err)
	}
	_ = builder.WithSpec(statefun.StatefulFunctionSpec{
		FunctionType: statefun.TypeNameFrom("com.example.fns/echo"),
		Function: statefun.StatefulFunctionPointer(func(ctx statefun.Context, m statefun.Message) error {
			if ctx.Caller() != nil {
				ctx.Send(statefun.MessageBuilder{Target: *ctx.Caller(), Value: m.AsString()})
			}
			return nil
		}),
	})

	// The embedded engine reads the registered specs (upstream: AsHandler).
	for _, spec := range builder.Specs() {
		fmt.Println(spec.FunctionType, len(spec.States))
	}
	// Output:
	// com.example.fns/greeter 1
	// com.example.fns/echo 0
}

func ExampleMessageBuilder_Build() {
	target, typename, value, err := statefun.MessageBuilder{
		Target: statefun.Address{FunctionType: GreeterTypeName, Id: "bob"},
		Value:  int64(42),
	}.Build()
	fmt.Println(target, typename, value, err)
	// Output: Address(com.example.fns, greeter, bob) io.statefun.types/long [9 42 0 0 0 0 0 0 0] <nil>
}

func ExampleEncodeValue() {
	b, _ := statefun.EncodeValue(statefun.StringType, "hi")
	var s string
	err := statefun.DecodeValue(statefun.StringType, b, &s)
	fmt.Printf("% X %q %v\n", b, s, err)
	// Output: 0A 02 68 69 "hi" <nil>
}

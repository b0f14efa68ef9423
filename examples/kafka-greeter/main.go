// Command kafka-greeter is the upstream-style greeter over Kafka: names in
// (topic "names", the record key is the user), greetings out (topic
// "greetings"), with a visit count per user in state. See README.md.
//
//	kafka-greeter run --module examples/kafka-greeter/module.yaml --state-dir /tmp/kg --checkpoint-interval 1s
package main

import (
	"fmt"

	"github.com/statefun-go/statefun/app"
	"github.com/statefun-go/statefun/statefun"
)

var (
	// GreeterType is the function type the ingress routes names to.
	GreeterType = statefun.TypeNameFrom("example/greeter")
	// GreetingsEgress is the Kafka egress.
	GreetingsEgress = statefun.TypeNameFrom("example/greets")

	seen = statefun.ValueSpec{Name: "seen", ValueType: statefun.Int32Type}
)

func greeter(ctx statefun.Context, msg statefun.Message) error {
	var n int32
	ctx.Storage().Get(seen, &n)
	n++
	ctx.Storage().Set(seen, n)
	name := ctx.Self().Id
	text := fmt.Sprintf("Hello %s! I have seen you %d times.", name, n)
	if n == 1 {
		text = fmt.Sprintf("Hello %s! Welcome!", name)
	}
	ctx.SendEgress(statefun.KafkaEgressBuilder{
		Target: GreetingsEgress,
		Topic:  "greetings",
		Key:    name,
		Value:  text,
	})
	return nil
}

func main() {
	app.Main(app.WithFunctions(statefun.StatefulFunctionSpec{
		FunctionType: GreeterType,
		States:       []statefun.ValueSpec{seen},
		Function:     statefun.StatefulFunctionPointer(greeter),
	}))
}

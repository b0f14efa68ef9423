// Command greeter is a StateFun application with embedded Go functions: the
// statefun CLI (app.Main) plus the functions below, built by importing the
// engine as a library.
//
//	greeter run --module examples/greeter/module.yaml
//
// Functions:
//   - example/greeter (id = user name) counts the visits of each user in its
//     state `seen`, asks example/messenger to greet the user, and on the
//     first visit schedules a delayed reminder to itself.
//   - example/messenger formats the greeting and sends it to the egresses
//     example/stdout and example/greetings.
package main

import (
	"fmt"
	"time"

	"github.com/statefun-go/statefun/app"
	"github.com/statefun-go/statefun/statefun"
)

var (
	// GreeterType and MessengerType are the function types.
	GreeterType   = statefun.TypeNameFrom("example/greeter")
	MessengerType = statefun.TypeNameFrom("example/messenger")

	// GreetType is the JSON message from greeter to messenger.
	GreetType = statefun.MakeJsonType(statefun.TypeNameFrom("example/greet"))
	// ReminderType is the delayed message a greeter sends itself.
	ReminderType = statefun.MakeJsonType(statefun.TypeNameFrom("example/reminder"))

	seen = statefun.ValueSpec{Name: "seen", ValueType: statefun.Int32Type}
)

// Greet asks the messenger to greet Name, seen Seen times.
type Greet struct {
	Name string `json:"name"`
	Seen int32  `json:"seen"`
}

// Reminder is sent by a greeter to itself after a user's first visit.
type Reminder struct {
	Name string `json:"name"`
}

// ReminderDelay is how long after a first visit the reminder arrives.
var ReminderDelay = 300 * time.Millisecond

func greeter(ctx statefun.Context, msg statefun.Message) error {
	name := ctx.Self().Id
	if msg.Is(ReminderType) {
		var r Reminder
		if err := msg.As(ReminderType, &r); err != nil {
			return err
		}
		var n int32
		ctx.Storage().Get(seen, &n)
		ctx.Send(statefun.MessageBuilder{
			Target: statefun.Address{FunctionType: MessengerType, Id: name},
			Value:  Greet{Name: r.Name, Seen: -n}, ValueType: GreetType,
		})
		return nil
	}
	var n int32
	ctx.Storage().Get(seen, &n)
	n++
	ctx.Storage().Set(seen, n)
	ctx.Send(statefun.MessageBuilder{
		Target:    statefun.Address{FunctionType: MessengerType, Id: name},
		Value:     Greet{Name: name, Seen: n},
		ValueType: GreetType,
	})
	if n == 1 {
		ctx.SendAfter(ReminderDelay, statefun.MessageBuilder{
			Target:    ctx.Self(),
			Value:     Reminder{Name: name},
			ValueType: ReminderType,
		})
	}
	return nil
}

func messenger(ctx statefun.Context, msg statefun.Message) error {
	var g Greet
	if err := msg.As(GreetType, &g); err != nil {
		return err
	}
	var text string
	switch {
	case g.Seen < 0:
		text = fmt.Sprintf("Still there, %s? You visited %d time(s).", g.Name, -g.Seen)
	case g.Seen == 1:
		text = fmt.Sprintf("Hello %s! Welcome!", g.Name)
	default:
		text = fmt.Sprintf("Hello %s! I have seen you %d times.", g.Name, g.Seen)
	}
	for _, egress := range []string{"example/stdout", "example/greetings"} {
		ctx.SendEgress(statefun.GenericEgressBuilder{
			Target:    statefun.TypeNameFrom(egress),
			Value:     text,
			ValueType: statefun.StringType,
		})
	}
	return nil
}

// Functions returns the greeter application's embedded functions.
func Functions() []statefun.StatefulFunctionSpec {
	b := statefun.StatefulFunctionsBuilder()
	for _, s := range []statefun.StatefulFunctionSpec{
		{FunctionType: GreeterType, States: []statefun.ValueSpec{seen}, Function: statefun.StatefulFunctionPointer(greeter)},
		{FunctionType: MessengerType, Function: statefun.StatefulFunctionPointer(messenger)},
	} {
		if err := b.WithSpec(s); err != nil {
			panic(err)
		}
	}
	return b.Specs()
}

func main() { app.Main(app.WithFunctions(Functions()...)) }

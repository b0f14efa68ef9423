package dispatch

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"testing"

	"github.com/statefun-go/statefun/dataflow"
	"github.com/statefun-go/statefun/dataflow/dataflowtest"
	"github.com/statefun-go/statefun/statefun/envelope"
	"github.com/statefun-go/statefun/statefun/protocol"
)

// replyInvoker answers every request with a fixed body.
type replyInvoker struct{ body []byte }

func (r *replyInvoker) Invoke(context.Context, string, []byte) ([]byte, error) { return r.body, nil }

// FuzzRemoteReply feeds arbitrary bytes as the reply of a remote function
// through decoding, the request-reply machine and the application of the
// result: the dispatcher must never panic, and either applies the reply or
// fails the job with an error naming the address.
func FuzzRemoteReply(f *testing.F) {
	tv := &protocol.TypedValue{Typename: "io.statefun.types/int", HasValue: true, Value: []byte{0x0d, 1, 0, 0, 0}}
	seeds := []protocol.FromFunction{
		{IncompleteInvocationContext: &protocol.IncompleteInvocationContext{MissingValues: []protocol.PersistedValueSpec{{StateName: "seen", TypeTypename: "io.statefun.types/int"}}}},
		{InvocationResult: &protocol.InvocationResponse{
			StateMutations:     []protocol.PersistedValueMutation{{MutationType: protocol.MutationModify, StateName: "seen", StateValue: tv}},
			OutgoingMessages:   []protocol.OutgoingMessage{{Target: &protocol.Address{Namespace: "remote", Type: "fn", ID: "x"}, Argument: tv}},
			DelayedInvocations: []protocol.DelayedInvocation{{DelayInMs: 5, CancellationToken: "t", Target: &protocol.Address{Namespace: "remote", Type: "fn", ID: "y"}, Argument: tv}, {IsCancellationRequest: true, CancellationToken: "t"}},
			OutgoingEgresses:   []protocol.EgressMessage{{EgressNamespace: "test", EgressType: "out", Argument: tv}},
		}},
		{InvocationResult: &protocol.InvocationResponse{StateMutations: []protocol.PersistedValueMutation{{MutationType: protocol.MutationModify, StateName: "nope", StateValue: tv}}}},
	}
	for _, s := range seeds {
		f.Add(s.AppendMarshal(nil))
	}
	f.Add([]byte("garbage"))
	f.Add([]byte{})

	inv := &replyInvoker{}
	ctx := dataflowtest.NewContext(f, dataflowtest.Options{Name: "functions"})
	reg := NewRegistry()
	reg.BindRemote(FunctionType{"remote", "fn"}, false, &RemoteBinding{Invoker: inv, MaxBatch: 10, Where: "fuzz"})
	cfg := &Config{Registry: reg, Egresses: map[string]int{"test/out": 1}, Quiescence: NewQuiescence(1), Broker: NewBroker(1),
		StateCacheBytes: 1 << 20, StateWriteBackBytes: 1 << 20}
	op := NewOperator(cfg, 0)
	if err := op.Open(ctx); err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { op.Close() })
	n := 0
	f.Fuzz(func(t *testing.T, body []byte) {
		inv.body = body
		n++
		id := fmt.Sprintf("id-%d", n)
		before := len(ctx.Errors())
		e := &envelope.Envelope{Target: envelope.Address{Namespace: "remote", Type: "fn", ID: id}, Typename: "io.statefun.types/int", Value: []byte{}}
		if err := op.ProcessRecord(0, dataflow.Record{Value: e}); err != nil {
			t.Fatal(err)
		}
		if err := op.EndOfStep(); err != nil {
			t.Fatal(err)
		}
		// Replies arrive through the mailbox; a reply may trigger a resend
		// (IncompleteInvocationContext), bounded here.
		for round := 0; round < 4 && op.remoteInFlight > 0; round++ {
			for spins := 0; ctx.Pending() == 0; spins++ {
				if spins > 1_000_000 {
					t.Fatal("reply never posted")
				}
				runtime.Gosched()
			}
			ctx.RunMailbox()
		}
		for _, err := range ctx.Errors()[before:] {
			if msg := err.Error(); !strings.Contains(msg, "remote/fn/") {
				t.Fatalf("failure does not name the address: %v", err)
			}
		}
		ctx.TakeEmitted()
	})
}

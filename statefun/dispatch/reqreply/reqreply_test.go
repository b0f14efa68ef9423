package reqreply

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/statefun-go/statefun/statefun/protocol"
)

func inv(v string) protocol.Invocation {
	return protocol.Invocation{Argument: &protocol.TypedValue{Typename: "t/v", HasValue: true, Value: []byte(v)}}
}

func names(r *Request) string {
	if r == nil {
		return "-"
	}
	var s []string
	for _, i := range r.Invocations {
		s = append(s, string(i.Argument.Value))
	}
	return r.ID + ":[" + strings.Join(s, " ") + "]"
}

func result() *protocol.FromFunction {
	return &protocol.FromFunction{InvocationResult: &protocol.InvocationResponse{}}
}

// TestBatchingScenario follows the contract's typical exchange (§1.4) and
// the RequestReplyFunctionTest cases: first contact, IncompleteInvocationContext,
// batching while in flight, the batch limit and blocking.
func TestBatchingScenario(t *testing.T) {
	m := New(2)
	var log []string
	step := func(format string, args ...any) { log = append(log, fmt.Sprintf(format, args...)) }

	step("deliver m1 -> send %s", names(m.Deliver("A", inv("m1"))))
	step("deliver m2 -> send %s", names(m.Deliver("A", inv("m2"))))
	// Probing: until the type's first reply, only A's request is in flight.
	step("deliver x1 to B -> send %s", names(m.Deliver("B", inv("x1"))))
	step("deliver m3 -> send %s blocked=%d", names(m.Deliver("A", inv("m3"))), m.Blocked())
	step("deliver m4 -> send %s blocked=%d queued=%d", names(m.Deliver("A", inv("m4"))), m.Blocked(), m.Queued())

	out, err := m.Complete("A", &protocol.FromFunction{IncompleteInvocationContext: &protocol.IncompleteInvocationContext{
		MissingValues: []protocol.PersistedValueSpec{{StateName: "seen", TypeTypename: "io.statefun.types/int",
			ExpirationSpec: &protocol.ExpirationSpec{Mode: protocol.ExpireAfterInvoke, ExpireAfterMillis: 1000}}, {StateName: "raw"}},
	}})
	if err != nil {
		t.Fatal(err)
	}
	step("incomplete -> resend %s released %s registered %d states: %+v", names(out.Resend), names(out.Released[0]), len(out.Registered), m.States())

	out, err = m.Complete("A", result())
	if err != nil {
		t.Fatal(err)
	}
	step("result -> completed %s next %s blocked=%d queued=%d inflight=%d", names(out.Completed), names(out.Next), m.Blocked(), m.Queued(), m.InFlight())
	out, _ = m.Complete("A", result())
	step("result -> completed %s next %s inflight=%d", names(out.Completed), names(out.Next), m.InFlight())
	out, _ = m.Complete("A", result())
	step("result -> completed %s next %s inflight=%d", names(out.Completed), names(out.Next), m.InFlight())
	_, err = m.Complete("A", result())
	step("unexpected result -> %v", err)

	want := []string{
		"deliver m1 -> send A:[m1]",
		"deliver m2 -> send -",
		"deliver x1 to B -> send -",
		"deliver m3 -> send - blocked=1",
		"deliver m4 -> send - blocked=1 queued=4",
		"incomplete -> resend A:[m1] released B:[x1] registered 2 states: [{Name:seen Typename:io.statefun.types/int Mode:AFTER_INVOKE TTL:1s} {Name:raw Typename:io.statefun.types/unset Mode:NONE TTL:0s}]",
		"result -> completed A:[m1] next A:[m2 m3] blocked=0 queued=1 inflight=2",
		"result -> completed A:[m2 m3] next A:[m4] inflight=2",
		"result -> completed A:[m4] next - inflight=1",
		"unexpected result -> reqreply: got an unexpected reply for A: no request in flight",
	}
	if got := strings.Join(log, "\n"); got != strings.Join(want, "\n") {
		t.Errorf("got:\n%s\n\nwant:\n%s", got, strings.Join(want, "\n"))
	}
}

func TestProbeReleasesWaitingAddressesOnAResult(t *testing.T) {
	m := New(0)
	m.Deliver("A", inv("a1"))
	for _, id := range []string{"C", "B", "C"} {
		if r := m.Deliver(id, inv(id)); r != nil {
			t.Fatalf("%s sent while probing", id)
		}
	}
	out, err := m.Complete("A", result())
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Released) != 2 || names(out.Released[0]) != "C:[C C]" || names(out.Released[1]) != "B:[B]" {
		t.Fatalf("released %v", out.Released)
	}
	if r := m.Deliver("D", inv("d")); names(r) != "D:[d]" {
		t.Fatalf("after probing a new address sends at once, got %s", names(r))
	}
}

func TestRegistrationAndMutationChecks(t *testing.T) {
	m := New(0)
	m.Deliver("A", inv("m1"))
	reg := func(name, typ string) error {
		_, err := m.Complete("A", &protocol.FromFunction{IncompleteInvocationContext: &protocol.IncompleteInvocationContext{
			MissingValues: []protocol.PersistedValueSpec{{StateName: name, TypeTypename: typ}}}})
		return err
	}
	if err := reg("seen", "io.statefun.types/int"); err != nil {
		t.Fatal(err)
	}
	// The request was built before "seen" existed: a resend is legitimate.
	if err := reg("seen", "io.statefun.types/int"); err != nil {
		t.Fatalf("duplicate registration for a request built before it must resend: %v", err)
	}
	m.addrs["A"].inFlight.StatesSent = len(m.States())
	if err := reg("seen", "io.statefun.types/int"); !errors.Is(err, ErrState) || !strings.Contains(err.Error(), "which were all sent") {
		t.Fatalf("an IncompleteInvocationContext for states already sent must fail instead of looping: %v", err)
	}
	if err := reg("seen", "io.statefun.types/long"); !errors.Is(err, ErrState) || !strings.Contains(err.Error(), `state "seen" is registered with type io.statefun.types/int, the function now declares io.statefun.types/long`) {
		t.Fatalf("mismatching registration: %v", err)
	}
	for _, tc := range []struct {
		mu   protocol.PersistedValueMutation
		want string
	}{
		{protocol.PersistedValueMutation{MutationType: protocol.MutationModify, StateName: "nope", StateValue: &protocol.TypedValue{Typename: "x/y"}},
			`state_mutations[0] modifies state "nope", which the function never declared`},
		{protocol.PersistedValueMutation{MutationType: protocol.MutationDelete, StateName: "nope"},
			`state_mutations[0] deletes state "nope", which the function never declared`},
		{protocol.PersistedValueMutation{MutationType: protocol.MutationModify, StateName: "seen", StateValue: &protocol.TypedValue{Typename: "io.statefun.types/long"}},
			`state_mutations[0] writes state "seen" with type "io.statefun.types/long", but it is registered with type io.statefun.types/int`},
		{protocol.PersistedValueMutation{MutationType: 7, StateName: "seen"}, `state_mutations[0] has unknown mutation type 7`},
		{protocol.PersistedValueMutation{MutationType: protocol.MutationModify, StateName: "seen", StateValue: &protocol.TypedValue{Typename: "io.statefun.types/int", HasValue: true}}, ""},
	} {
		out, err := m.Complete("A", &protocol.FromFunction{InvocationResult: &protocol.InvocationResponse{StateMutations: []protocol.PersistedValueMutation{tc.mu}}})
		if tc.want == "" {
			if err != nil || out.Completed == nil {
				t.Fatalf("valid mutation rejected: %v", err)
			}
			continue
		}
		if !errors.Is(err, ErrState) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("got %v, want %q", err, tc.want)
		}
		if m.InFlight() != 1 {
			t.Errorf("a rejected reply must leave the request in flight")
		}
	}
}

func TestEmptyReplyIsAnEmptyResult(t *testing.T) {
	m := New(0)
	m.Deliver("A", inv("m1"))
	out, err := m.Complete("A", &protocol.FromFunction{})
	if err != nil || out.Result == nil || out.Completed == nil || m.InFlight() != 0 {
		t.Fatalf("out %+v err %v", out, err)
	}
}

func TestMaxInFlightGrowsBatchesAndIsFair(t *testing.T) {
	m := New(0)
	m.MaxInFlight = 2
	m.Deliver("A", inv("a1"))
	m.Complete("A", result()) // end probing
	var sent []string
	send := func(r *Request) {
		if r != nil {
			sent = append(sent, names(r))
		}
	}
	send(m.Deliver("A", inv("a2")))
	send(m.Deliver("B", inv("b1")))
	send(m.Deliver("C", inv("c1"))) // no capacity: waits
	send(m.Deliver("C", inv("c2"))) // joins C's next batch
	send(m.Deliver("A", inv("a3"))) // queued behind A's request
	if got := strings.Join(sent, " "); got != "A:[a2] B:[b1]" || m.Waiting() != 1 {
		t.Fatalf("sent %q waiting %d", got, m.Waiting())
	}
	// A completes with work queued, but C waited first: C goes, A waits.
	out, _ := m.Complete("A", result())
	if out.Next != nil || len(out.Released) != 1 || names(out.Released[0]) != "C:[c1 c2]" {
		t.Fatalf("next %s released %v", names(out.Next), out.Released)
	}
	out, _ = m.Complete("B", result())
	if len(out.Released) != 1 || names(out.Released[0]) != "A:[a3]" || m.InFlight() != 2 {
		t.Fatalf("released %v inflight %d", out.Released, m.InFlight())
	}
}

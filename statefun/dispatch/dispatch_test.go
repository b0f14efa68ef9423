package dispatch

import (
	"context"
	"errors"
	"fmt"
	"github.com/statefun-go/statefun/internal/scripttest"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/statefun-go/statefun/dataflow"
	"github.com/statefun-go/statefun/dataflow/dataflowtest"
	"github.com/statefun-go/statefun/dataflow/state"
	"github.com/statefun-go/statefun/statefun"
	"github.com/statefun-go/statefun/statefun/envelope"
)

// TestScripts drives one function operator (NewOperator) with the fake
// context of dataflowtest, on the test goroutine: no goroutines, no sleeps,
// a manual clock. Each testdata/*.txt file is a script in the format of
// statefun/dispatch/delay's scripts (a subset of cockroachdb/datadriven):
//
//	# a comment, kept on rewrite
//	command key=value ...
//	----
//	expected output, up to a blank line
//
// Run with -rewrite to regenerate the expected output.
//
// Commands (the narration of each is described below):
//
//	setup [parallelism=1] [subtask=0] [max=128] [step-budget=N] [queue-limit=N]
//	    a fresh operator (the previous one is closed) with the test registry:
//	    embedded test/a and test/b (state n), test/ttl (state w expires 100ms
//	    after write, c 100ms after call, n never); egresses test/out
//	    (port 1) and test/audit (port 2).
//	deliver to=NS/T/ID [from=NS/T/ID] value=PROGRAM [type=long]
//	    ProcessRecord of a router message (from= fakes a function caller;
//	    type=long sends the value as an io.statefun.types/long)
//	feedback to=NS/T/ID from=NS/T/ID value=PROGRAM
//	    a message shuffled here by another subtask, through the feedback
//	    tail (the sender's +1 to the live count is published first)
//	step            EndOfStep, as the runtime ends every step
//	mailbox         run the posted functions, then end the step if any ran
//	advance DUR     move the manual clock
//	fire            consume due timers: OnTimer, then end the step
//	run             mailbox and due timers until idle (clock unchanged)
//	end-input       EndInput(0), then end the step
//	drain           Drain, then end the step unless done
//	timers          pending timer deadlines (relative to the start)
//	fifo            the local FIFO, head first
//	state NS/T/ID NAME   read a state value directly from the store
//	peer-ended      another subtask's router input ended (Quiescence)
//	peer-processed [n=1]  another subtask processed n messages this
//	                subtask shuffled to it (publishes -n)
//
// Effects are narrated in the order they happened: "invoke ADDR
// from=CALLER msg=PROGRAM" per invocation (indented lines for what the
// function observed), one "emit" line per record sent (port 0 with its key
// group and owner subtask, egress ports with the egress id), "quiescent"
// when the Quiescence callback fires; then "error:" for an error returned by
// the operator, "fail:" / "finish" for Context.Fail / Context.Finish, and
// finally a status line "fifo=N delayed=N live=N [mailbox=N] [paused]"
// (delayed: messages in the delay buffer; live: the job's Quiescence count).
//
// A PROGRAM is what the scripted test function does when it receives the
// message: actions separated by ';', arguments by ','. In a payload, '^'
// stands for ',' and '~' for ';' (and '{' for '^', '}' for '~', one level
// deeper), so one can send a program to another function. ADDR may be
// "self".
//
//	noop, or a word without ':' (a label, e.g. "1" or "hello")
//	send:ADDR,PAYLOAD
//	after:DUR,ADDR,PAYLOAD                 SendAfter
//	after-token:TOKEN,DUR,ADDR,PAYLOAD     SendAfterWithCancellationToken
//	cancel:TOKEN                           CancelDelayedMessage ("cancel:" = nil token)
//	egress:NS/NAME,PAYLOAD                 SendEgress (GenericEgressBuilder, string)
//	egress-untyped:NS/NAME,PAYLOAD         SendEgress without a ValueType (bad)
//	send-nil:ADDR                          Send with a nil value (bad)
//	get:NAME  set:NAME,VALUE  remove:NAME  AddressScopedStorage
//	loop:N                                 if N > 0, send loop:N-1 to self
//	panic:TEXT  fail:TEXT
func TestScripts(t *testing.T) {
	files, err := filepath.Glob("testdata/*.txt")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no testdata/*.txt scripts")
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			h := &harness{t: t}
			t.Cleanup(h.close)
			scripttest.Run(t, f, h.run)
		})
	}
}

// --- the harness ---

const (
	egressOut   = "test/out"
	egressAudit = "test/audit"
)

type harness struct {
	t     *testing.T
	ctx   *dataflowtest.Context
	cfg   *Config
	op    *Operator
	tail  *Tail
	start time.Time
	log   []string
	// seen counts the Finish calls and Fail errors already narrated.
	finishes, fails int
}

func (h *harness) close() {
	if h.op == nil {
		return
	}
	if err := h.op.Close(); err != nil {
		h.t.Errorf("close: %v", err)
	}
	h.op = nil
}

func testRegistry(h *harness) *Registry {
	reg := NewRegistry()
	str := statefun.StringType
	fn := statefun.StatefulFunctionPointer(h.invoke)
	err := reg.AddEmbedded(
		statefun.StatefulFunctionSpec{FunctionType: statefun.TypeNameFrom("test/a"), Function: fn,
			States: []statefun.ValueSpec{{Name: "n", ValueType: str}}},
		statefun.StatefulFunctionSpec{FunctionType: statefun.TypeNameFrom("test/b"), Function: fn,
			States: []statefun.ValueSpec{{Name: "n", ValueType: str}}},
		statefun.StatefulFunctionSpec{FunctionType: statefun.TypeNameFrom("test/ttl"), Function: fn,
			States: []statefun.ValueSpec{
				{Name: "w", ValueType: str, Expiration: statefun.ExpireAfterWrite(100 * time.Millisecond)},
				{Name: "c", ValueType: str, Expiration: statefun.ExpireAfterCall(100 * time.Millisecond)},
				{Name: "n", ValueType: str},
			}},
	)
	if err != nil {
		h.t.Fatal(err)
	}
	return reg
}

func (h *harness) setup(par, subtask, maxP, budget, limit int) string {
	h.close()
	h.ctx = dataflowtest.NewContext(h.t, dataflowtest.Options{
		Name: "functions", Subtask: subtask, Parallelism: par, MaxParallelism: maxP,
	})
	h.start = h.ctx.Now()
	h.finishes, h.fails, h.log = 0, 0, nil
	q := NewQuiescence(par)
	h.cfg = &Config{
		Registry:        testRegistry(h),
		Egresses:        map[string]int{egressOut: 1, egressAudit: 2},
		Quiescence:      q,
		Broker:          NewBroker(par),
		LocalQueueLimit: limit,
		StepBudget:      budget,
		// Small caches: the store is opened per setup.
		StateCacheBytes: 1 << 20, StateWriteBackBytes: 1 << 20,
	}
	op := NewOperator(h.cfg, subtask)
	q.OnQuiet(func() {
		h.flushEmits()
		h.log = append(h.log, "quiescent")
		op.PostQuiesced()
	})
	if err := op.Open(h.ctx); err != nil {
		h.t.Fatalf("open: %v", err)
	}
	h.op = op
	// Invariant: a shuffled message is counted as live before another
	// subtask can see (and process) it.
	h.ctx.SetEmitHook(func(port int, r dataflow.Record) error {
		if port == 0 && q.Live() < 1 {
			h.log = append(h.log, fmt.Sprintf("  BUG: shuffled to key group %d with live=%d: not published first", r.KeyGroup, q.Live()))
		}
		return nil
	})
	h.tail = NewTail(h.cfg.Broker, subtask)
	if err := h.tail.Open(h.ctx); err != nil {
		h.t.Fatal(err)
	}
	kgs := h.ctx.KeyGroups()
	return fmt.Sprintf("subtask %d/%d owns key groups %s of %d", subtask, par, kgs, h.ctx.MaxParallelism())
}

// invoke is the scripted test function.
func (h *harness) invoke(ctx statefun.Context, msg statefun.Message) error {
	program := msg.AsString()
	from := "ingress"
	if c := ctx.Caller(); c != nil {
		from = fmtAddr(*c)
	}
	self := ctx.Self()
	h.flushEmits()
	if tgt := msg.Target(); tgt == nil || fmtAddr(*tgt) != fmtAddr(self) {
		h.log = append(h.log, fmt.Sprintf("  BUG: message target %v is not self %v", tgt, self))
	}
	h.log = append(h.log, fmt.Sprintf("invoke %s from=%s msg=%s", fmtAddr(self), from, program))
	note := func(format string, args ...any) { h.log = append(h.log, "  "+fmt.Sprintf(format, args...)) }
	addr := func(s string) statefun.Address {
		if s == "self" {
			return self
		}
		i := strings.LastIndexByte(s, '/')
		if i < 0 {
			panic(fmt.Sprintf("test program: bad address %q", s))
		}
		return statefun.Address{FunctionType: statefun.TypeNameFrom(s[:i]), Id: s[i+1:]}
	}
	payload := func(s string) string { return strings.NewReplacer("^", ",", "~", ";", "{", "^", "}", "~").Replace(s) }
	spec := func(name string) statefun.ValueSpec {
		// The scripted function declares its states by name only; the
		// operator looks the spec up by name.
		return statefun.ValueSpec{Name: name, ValueType: statefun.StringType}
	}
	for _, action := range strings.Split(program, ";") {
		verb, rest, _ := strings.Cut(action, ":")
		if !strings.Contains(action, ":") && verb != "noop" {
			continue // a label such as "1" or "hello": nothing to do
		}
		args := strings.Split(rest, ",")
		need := func(n int) {
			if len(args) != n {
				panic(fmt.Sprintf("test program: %s needs %d arguments, got %q", verb, n, rest))
			}
		}
		dur := func(s string) time.Duration {
			d, err := time.ParseDuration(s)
			if err != nil {
				panic(fmt.Sprintf("test program: %v", err))
			}
			return d
		}
		switch verb {
		case "noop":
		case "send":
			need(2)
			ctx.Send(statefun.MessageBuilder{Target: addr(args[0]), Value: payload(args[1])})
		case "send-nil":
			need(1)
			ctx.Send(statefun.MessageBuilder{Target: addr(args[0])})
		case "after":
			need(3)
			ctx.SendAfter(dur(args[0]), statefun.MessageBuilder{Target: addr(args[1]), Value: payload(args[2])})
		case "after-token":
			need(4)
			tok, err := statefun.NewCancellationToken(args[0])
			if err != nil {
				return err
			}
			ctx.SendAfterWithCancellationToken(dur(args[1]), tok, statefun.MessageBuilder{Target: addr(args[2]), Value: payload(args[3])})
		case "cancel":
			need(1)
			var tok statefun.CancellationToken
			if args[0] != "" {
				var err error
				if tok, err = statefun.NewCancellationToken(args[0]); err != nil {
					return err
				}
			}
			ctx.CancelDelayedMessage(tok)
		case "egress":
			need(2)
			ctx.SendEgress(statefun.GenericEgressBuilder{Target: statefun.TypeNameFrom(args[0]), Value: payload(args[1]), ValueType: statefun.StringType})
		case "egress-untyped":
			need(2)
			ctx.SendEgress(statefun.GenericEgressBuilder{Target: statefun.TypeNameFrom(args[0]), Value: payload(args[1])})
		case "get":
			need(1)
			var v string
			if ctx.Storage().Get(spec(args[0]), &v) {
				note("get %s=%s", args[0], v)
			} else {
				note("get %s: absent", args[0])
			}
		case "set":
			need(2)
			ctx.Storage().Set(spec(args[0]), args[1])
		case "remove":
			need(1)
			ctx.Storage().Remove(spec(args[0]))
		case "loop":
			need(1)
			n, err := strconv.Atoi(args[0])
			if err != nil {
				return err
			}
			if n > 0 {
				ctx.Send(statefun.MessageBuilder{Target: self, Value: fmt.Sprintf("loop:%d", n-1)})
			}
		case "panic":
			panic(rest)
		case "fail":
			return errors.New(rest)
		default:
			panic(fmt.Sprintf("test program: unknown action %q", verb))
		}
	}
	return nil
}

func fmtAddr(a statefun.Address) string {
	return a.FunctionType.GetNamespace() + "/" + a.FunctionType.GetType() + "/" + a.Id
}

func parseAddr(s string) (envelope.Address, error) {
	parts := strings.Split(s, "/")
	if len(parts) != 3 {
		return envelope.Address{}, fmt.Errorf("%q is not ns/type/id", s)
	}
	return envelope.Address{Namespace: parts[0], Type: parts[1], ID: parts[2]}, nil
}

func stringValue(s string) []byte {
	b, err := statefun.EncodeValue(statefun.StringType, s)
	if err != nil {
		panic(err)
	}
	return b
}

func describeValue(e *envelope.Envelope) string {
	if e.Typename == "io.statefun.types/string" {
		var s string
		if err := statefun.DecodeValue(statefun.StringType, e.Value, &s); err == nil {
			return s
		}
	}
	return fmt.Sprintf("%s:%x", e.Typename, e.Value)
}

func describeEnvelope(e *envelope.Envelope) string {
	from := "ingress"
	if e.HasCaller {
		from = e.Caller.String()
	}
	return fmt.Sprintf("%s from=%s msg=%s", e.Target, from, describeValue(e))
}

func (h *harness) rel(t time.Time) string { return "+" + t.Sub(h.start).String() }

// flushEmits moves the records emitted so far into the narration log, so
// that they appear in order with the invocations.
func (h *harness) flushEmits() {
	for _, em := range h.ctx.TakeEmitted() {
		e, ok := em.Record.Value.(*envelope.Envelope)
		if !ok {
			h.log = append(h.log, fmt.Sprintf("emit port=%d value=%T (not an envelope)", em.Port, em.Record.Value))
			continue
		}
		switch {
		case em.Port == 0:
			kg := em.Record.KeyGroup
			owner := dataflow.SubtaskFor(kg, h.ctx.MaxParallelism(), h.ctx.Parallelism())
			if want := dataflow.KeyGroupFor(e.Target.ID, h.ctx.MaxParallelism()); want != kg || e.Kind != envelope.KindMessage {
				h.log = append(h.log, fmt.Sprintf("  BUG: record key group %d, want %d for %s (kind %d)", kg, want, e.Target.ID, e.Kind))
			}
			h.log = append(h.log, fmt.Sprintf("emit port=0 kg=%d subtask=%d to=%s", kg, owner, describeEnvelope(e)))
		default:
			eg := e.Target.Namespace + "/" + e.Target.Type
			if e.Kind != envelope.KindEgress || e.Target.ID != "" {
				h.log = append(h.log, fmt.Sprintf("  BUG: egress record of kind %d to %s", e.Kind, e.Target))
			}
			from := "none"
			if e.HasCaller {
				from = e.Caller.String()
			}
			h.log = append(h.log, fmt.Sprintf("emit port=%d egress=%s from=%s value=%s", em.Port, eg, from, describeValue(e)))
		}
	}
}

// narrate returns the effects recorded since the last narration, and the
// status line.
func (h *harness) narrate(err error) string {
	h.flushEmits()
	var out []string
	out = append(out, h.log...)
	h.log = nil
	if err != nil {
		out = append(out, "error: "+err.Error())
	}
	errs := h.ctx.Errors()
	for _, e := range errs[h.fails:] {
		out = append(out, "fail: "+e.Error())
	}
	h.fails = len(errs)
	if n := h.ctx.Finished(); n > h.finishes {
		out = append(out, "finish")
		h.finishes = n
	}
	status := fmt.Sprintf("fifo=%d delayed=%d live=%d", h.op.fifo.len(), h.op.delays.Len(), h.cfg.Quiescence.Live())
	if n := h.ctx.Pending(); n > 0 {
		status += fmt.Sprintf(" mailbox=%d", n)
	}
	if h.op.Paused() {
		status += " paused"
	}
	out = append(out, status)
	return strings.Join(out, "\n")
}

func (h *harness) envelope(r *argReader, needCaller bool) *envelope.Envelope {
	to := r.str("to", true)
	from := r.str("from", needCaller)
	value := r.str("value", true)
	typ := r.str("type", false)
	if r.err != nil {
		return nil
	}
	e := &envelope.Envelope{Typename: "io.statefun.types/string", Value: stringValue(value)}
	var err error
	if typ == "long" {
		n, err := strconv.ParseInt(value, 10, 64)
		if err != nil {
			r.err = err
			return nil
		}
		e.Typename = "io.statefun.types/long"
		if e.Value, err = statefun.EncodeValue(statefun.Int64Type, n); err != nil {
			r.err = err
			return nil
		}
	} else if typ != "" {
		r.err = fmt.Errorf("type=%s: only long is supported", typ)
		return nil
	}
	if e.Target, err = parseAddr(to); err != nil {
		r.err = err
		return nil
	}
	if from != "" {
		if e.Caller, err = parseAddr(from); err != nil {
			r.err = err
			return nil
		}
		e.HasCaller = true
	}
	return e
}

func (h *harness) run(cmd string, args map[string]string) (string, error) {
	r := &argReader{args: args}
	if cmd != "setup" && h.op == nil {
		return "", fmt.Errorf("%s before setup", cmd)
	}
	switch cmd {
	case "setup":
		par := r.intDefault("parallelism", 1)
		sub := r.intDefault("subtask", 0)
		maxP := r.intDefault("max", 128)
		budget := r.intDefault("step-budget", 0)
		limit := r.intDefault("queue-limit", 0)
		if err := r.done(); err != nil {
			return "", err
		}
		return h.setup(par, sub, maxP, budget, limit), nil
	case "deliver":
		e := h.envelope(r, false)
		if err := r.done(); err != nil {
			return "", err
		}
		err := h.op.ProcessRecord(0, dataflow.Record{KeyGroup: dataflow.KeyGroupFor(e.Target.ID, h.ctx.MaxParallelism()), Value: e})
		return h.narrate(err), nil
	case "feedback":
		e := h.envelope(r, true)
		if err := r.done(); err != nil {
			return "", err
		}
		// The sending subtask published the message as live before it
		// shuffled it. The tail is another operator of the same process;
		// here it runs on the test goroutine too.
		h.cfg.Quiescence.add(1)
		err := h.tail.ProcessRecord(0, dataflow.Record{KeyGroup: dataflow.KeyGroupFor(e.Target.ID, h.ctx.MaxParallelism()), Value: e})
		return h.narrate(err), nil
	case "step":
		if err := r.done(); err != nil {
			return "", err
		}
		return h.narrate(h.ctx.Step(h.op)), nil
	case "mailbox":
		if err := r.done(); err != nil {
			return "", err
		}
		n, err := h.ctx.Mailbox(h.op)
		return fmt.Sprintf("ran %d\n%s", n, h.narrate(err)), nil
	case "advance":
		d, err := time.ParseDuration(r.str("_", true))
		if err != nil {
			return "", err
		}
		if err := r.done(); err != nil {
			return "", err
		}
		h.ctx.Advance(d)
		due := h.ctx.DueTimers()
		s := "now=" + h.rel(h.ctx.Now())
		if len(due) > 0 {
			s += fmt.Sprintf(" due=%d", len(due))
		}
		return s, nil
	case "fire":
		if err := r.done(); err != nil {
			return "", err
		}
		n, err := h.ctx.FireTimers(h.op)
		if err == nil && n > 0 {
			err = h.ctx.Step(h.op)
		}
		return fmt.Sprintf("fired %d\n%s", n, h.narrate(err)), nil
	case "run":
		if err := r.done(); err != nil {
			return "", err
		}
		return h.narrate(h.ctx.Settle(h.op, 100)), nil
	case "end-input":
		if err := r.done(); err != nil {
			return "", err
		}
		// As the runtime: EndInput, then the end of the step.
		err := h.op.EndInput(0)
		if err == nil {
			err = h.ctx.Step(h.op)
		}
		return h.narrate(err), nil
	case "drain":
		if err := r.done(); err != nil {
			return "", err
		}
		// As the runtime once all inputs ended: Drain, and if the operator
		// is not done, the end of the step.
		done, err := h.op.Drain()
		if err == nil && !done {
			err = h.ctx.Step(h.op)
		}
		return fmt.Sprintf("done=%t\n%s", done, h.narrate(err)), nil
	case "timers":
		if err := r.done(); err != nil {
			return "", err
		}
		ts := h.ctx.Timers()
		if len(ts) == 0 {
			return "none", nil
		}
		var out []string
		for _, t := range ts {
			out = append(out, h.rel(t))
		}
		return strings.Join(out, " "), nil
	case "fifo":
		if err := r.done(); err != nil {
			return "", err
		}
		var out []string
		f := &h.op.fifo
		for i := 0; i < f.size; i++ {
			out = append(out, describeEnvelope(f.buf[(f.head+i)%len(f.buf)]))
		}
		if len(out) == 0 {
			return "empty", nil
		}
		return strings.Join(out, "\n"), nil
	case "state":
		pos := r.positional()
		if err := r.done(); err != nil {
			return "", err
		}
		if len(pos) != 2 {
			return "", fmt.Errorf("state needs ADDR NAME")
		}
		a, err := parseAddr(pos[0])
		if err != nil {
			return "", err
		}
		k := state.Key{KeyGroup: dataflow.KeyGroupFor(a.ID, h.ctx.MaxParallelism()), Space: state.SpaceValue,
			Namespace: a.Namespace, Type: a.Type, ID: a.ID, Name: pos[1]}
		v, ok, err := h.op.Store().Get(k)
		if err != nil {
			return "", err
		}
		if !ok {
			return pos[1] + ": absent", nil
		}
		var s string
		if err := statefun.DecodeValue(statefun.StringType, v, &s); err != nil {
			return "", err
		}
		return pos[1] + "=" + s, nil
	case "peer-ended":
		if err := r.done(); err != nil {
			return "", err
		}
		h.cfg.Quiescence.inputEnded()
		return h.narrate(nil), nil
	case "peer-processed":
		n := r.intDefault("n", 1)
		if err := r.done(); err != nil {
			return "", err
		}
		h.cfg.Quiescence.add(-int64(n))
		return h.narrate(nil), nil
	}
	return "", fmt.Errorf("unknown command %q", cmd)
}

// --- direct tests (no script) ---

func TestRegistry(t *testing.T) {
	reg := NewRegistry()
	fn := statefun.StatefulFunctionPointer(func(statefun.Context, statefun.Message) error { return nil })
	spec := statefun.StatefulFunctionSpec{FunctionType: statefun.TypeNameFrom("ns/f"), Function: fn}
	if err := reg.AddEmbedded(spec); err != nil {
		t.Fatal(err)
	}
	if err := reg.AddEmbedded(spec); err == nil || !strings.Contains(err.Error(), "ns/f is registered twice") {
		t.Errorf("duplicate registration: got %v", err)
	}
	if err := reg.AddEmbedded(statefun.StatefulFunctionSpec{FunctionType: statefun.TypeNameFrom("ns/g")}); err == nil {
		t.Error("a spec without a function was accepted")
	}
	bad := statefun.StatefulFunctionSpec{FunctionType: statefun.TypeNameFrom("ns/h"), Function: fn,
		States: []statefun.ValueSpec{{Name: "1bad", ValueType: statefun.StringType}}}
	if err := reg.AddEmbedded(bad); err == nil || !strings.Contains(err.Error(), "ns/h") {
		t.Errorf("invalid state name: got %v", err)
	}
	for _, c := range []struct {
		ft   FunctionType
		want bool
	}{
		{FunctionType{"ns", "f"}, true},
		{FunctionType{"ns", "h"}, false},
		{FunctionType{"other", "f"}, false},
	} {
		if got := reg.Known(c.ft); got != c.want {
			t.Errorf("Known(%s) = %t, want %t", c.ft, got, c.want)
		}
	}
	if got := reg.Embedded(); len(got) != 1 || got[0] != (FunctionType{"ns", "f"}) {
		t.Errorf("Embedded() = %v", got)
	}
}

// TestLocalFIFOOrderManyAddresses checks per-address FIFO order over a
// larger, interleaved input than the scripts: every address sees its
// messages in delivery order, whatever mix of paths and budgets.
func TestLocalFIFOOrderManyAddresses(t *testing.T) {
	ctx := dataflowtest.NewContext(t, dataflowtest.Options{Name: "functions"})
	seen := map[string][]int{}
	fn := statefun.StatefulFunctionPointer(func(c statefun.Context, m statefun.Message) error {
		n, err := strconv.Atoi(m.AsString())
		if err != nil {
			return err
		}
		id := c.Self().Id
		seen[id] = append(seen[id], n)
		// Every third message also goes to a neighbour through the local
		// path, tagged with a large number.
		if n%3 == 0 && n < 1000 {
			c.Send(statefun.MessageBuilder{Target: statefun.Address{FunctionType: c.Self().FunctionType, Id: "k" + strconv.Itoa((n+1)%5)}, Value: strconv.Itoa(1000 + n)})
		}
		return nil
	})
	reg := NewRegistry()
	if err := reg.AddEmbedded(statefun.StatefulFunctionSpec{FunctionType: statefun.TypeNameFrom("t/f"), Function: fn}); err != nil {
		t.Fatal(err)
	}
	q := NewQuiescence(1)
	cfg := &Config{Registry: reg, Egresses: map[string]int{}, Quiescence: q, Broker: NewBroker(1), StepBudget: 7,
		StateCacheBytes: 1 << 20, StateWriteBackBytes: 1 << 20}
	op := NewOperator(cfg, 0)
	q.OnQuiet(op.PostQuiesced)
	if err := op.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer op.Close()
	for i := 0; i < 300; i++ {
		e := &envelope.Envelope{Target: envelope.Address{Namespace: "t", Type: "f", ID: "k" + strconv.Itoa(i%5)},
			Typename: "io.statefun.types/string", Value: stringValue(strconv.Itoa(i))}
		if err := op.ProcessRecord(0, dataflow.Record{Value: e}); err != nil {
			t.Fatal(err)
		}
		if i%11 == 10 {
			if err := ctx.Step(op); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := ctx.Step(op); err != nil {
		t.Fatal(err)
	}
	if err := ctx.Settle(op, 0); err != nil {
		t.Fatal(err)
	}
	total := 0
	for id, ns := range seen {
		total += len(ns)
		// Router messages (< 1000) arrive in delivery order.
		var router []int
		for _, n := range ns {
			if n < 1000 {
				router = append(router, n)
			}
		}
		if !sort.IntsAreSorted(router) {
			t.Errorf("%s: router messages out of order: %v", id, router)
		}
		var local []int
		for _, n := range ns {
			if n >= 1000 {
				local = append(local, n)
			}
		}
		if !sort.IntsAreSorted(local) {
			t.Errorf("%s: local messages out of order: %v", id, local)
		}
	}
	if total != 300+100 {
		t.Errorf("%d invocations, want 400", total)
	}
	if op.Invocations != 400 {
		t.Errorf("Invocations = %d, want 400", op.Invocations)
	}
	if q.Live() != 0 {
		t.Errorf("live = %d after all work", q.Live())
	}
	if err := ctx.Err(); err != nil {
		t.Error(err)
	}
}

// TestQuiescenceWaitsForQueuedRouterMessages: router messages still in the
// local FIFO when the router input ends must all be processed before the
// job is declared quiescent, also when there are more of them than the
// steps around EndInput may process (StepBudget). The calls follow the
// runtime's task loop exactly: a delivery of records plus end-of-input is
// ProcessRecord*, EndInput, end of step; then the loop runs the mailbox
// (ending the step), fires timers, and calls Drain once.
func TestQuiescenceWaitsForQueuedRouterMessages(t *testing.T) {
	ctx := dataflowtest.NewContext(t, dataflowtest.Options{Name: "functions"})
	var events []string
	fn := statefun.StatefulFunctionPointer(func(c statefun.Context, m statefun.Message) error {
		events = append(events, "invoke "+c.Self().Id)
		return nil
	})
	reg := NewRegistry()
	if err := reg.AddEmbedded(statefun.StatefulFunctionSpec{FunctionType: statefun.TypeNameFrom("t/f"), Function: fn}); err != nil {
		t.Fatal(err)
	}
	q := NewQuiescence(1)
	cfg := &Config{Registry: reg, Egresses: map[string]int{}, Quiescence: q, Broker: NewBroker(1), StepBudget: 2,
		StateCacheBytes: 1 << 20, StateWriteBackBytes: 1 << 20}
	op := NewOperator(cfg, 0)
	q.OnQuiet(func() {
		events = append(events, "quiescent")
		op.PostQuiesced()
	})
	if err := op.Open(ctx); err != nil {
		t.Fatal(err)
	}
	defer op.Close()

	const n = 7
	for i := 0; i < n; i++ {
		e := &envelope.Envelope{Target: envelope.Address{Namespace: "t", Type: "f", ID: fmt.Sprint("k", i)},
			Typename: "io.statefun.types/string", Value: stringValue("x")}
		if err := op.ProcessRecord(0, dataflow.Record{Value: e}); err != nil {
			t.Fatal(err)
		}
	}
	if err := op.EndInput(0); err != nil {
		t.Fatal(err)
	}
	if err := ctx.Step(op); err != nil {
		t.Fatal(err)
	}
	drained := false
	for round := 0; round < 100 && ctx.Finished() == 0 && ctx.Err() == nil; round++ {
		if _, err := ctx.Mailbox(op); err != nil {
			t.Fatal(err)
		}
		if fired, err := ctx.FireTimers(op); err != nil {
			t.Fatal(err)
		} else if fired > 0 {
			if err := ctx.Step(op); err != nil {
				t.Fatal(err)
			}
		}
		if !drained {
			drained = true
			if done, err := op.Drain(); err != nil || done {
				t.Fatalf("Drain: %t, %v", done, err)
			}
			if err := ctx.Step(op); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := ctx.Err(); err != nil {
		t.Errorf("the subtask failed: %v\nevents: %v", err, events)
	}
	if ctx.Finished() != 1 {
		t.Errorf("Finish called %d times, want 1", ctx.Finished())
	}
	invoked := 0
	for i, ev := range events {
		if strings.HasPrefix(ev, "invoke ") {
			invoked++
		}
		if ev == "quiescent" && invoked < n {
			t.Errorf("quiescent after %d of %d router messages (event %d of %v): the rest were still queued "+
				"in the local FIFO, and they may still send messages", invoked, n, i, events)
		}
	}
	if invoked != n {
		t.Errorf("%d invocations, want %d", invoked, n)
	}
}

// newDirectOperator opens an operator with one embedded function t/f (state
// n) for the direct tests.
func newDirectOperator(t *testing.T, fn statefun.StatefulFunction) (*Operator, *dataflowtest.Context) {
	t.Helper()
	ctx := dataflowtest.NewContext(t, dataflowtest.Options{Name: "functions"})
	reg := NewRegistry()
	if err := reg.AddEmbedded(statefun.StatefulFunctionSpec{FunctionType: statefun.TypeNameFrom("t/f"), Function: fn,
		States: []statefun.ValueSpec{{Name: "n", ValueType: statefun.StringType}}}); err != nil {
		t.Fatal(err)
	}
	q := NewQuiescence(1)
	cfg := &Config{Registry: reg, Egresses: map[string]int{"t/out": 1}, Quiescence: q, Broker: NewBroker(1),
		StateCacheBytes: 1 << 20, StateWriteBackBytes: 1 << 20}
	op := NewOperator(cfg, 0)
	q.OnQuiet(op.PostQuiesced)
	if err := op.Open(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := op.Close(); err != nil {
			t.Error(err)
		}
	})
	return op, ctx
}

func deliverDirect(t *testing.T, op *Operator, ctx *dataflowtest.Context, id, value string) {
	t.Helper()
	e := &envelope.Envelope{Target: envelope.Address{Namespace: "t", Type: "f", ID: id},
		Typename: "io.statefun.types/string", Value: stringValue(value)}
	if err := op.ProcessRecord(0, dataflow.Record{Value: e}); err != nil {
		t.Fatal(err)
	}
	if err := ctx.Settle(op, 0); err != nil {
		t.Fatal(err)
	}
	if err := ctx.Step(op); err != nil {
		t.Fatal(err)
	}
}

// TestInvocationContextCanceledAfterInvoke: the SDK promises that "the
// passed Context is canceled as soon as Invoke returns as a signal to any
// spawned go routines" (statefun.StatefulFunction), and statefun.Context is
// documented as usable "to ensure any spawned go routines do not outlive the
// current function invocation".
func TestInvocationContextCanceledAfterInvoke(t *testing.T) {
	var done <-chan struct{}
	var errDuring error
	op, ctx := newDirectOperator(t, statefun.StatefulFunctionPointer(func(c statefun.Context, m statefun.Message) error {
		done, errDuring = c.Done(), c.Err()
		return nil
	}))
	deliverDirect(t, op, ctx, "a", "x")
	if errDuring != nil {
		t.Errorf("Err() during the invocation: %v", errDuring)
	}
	if done == nil {
		t.Fatal("Done() returned nil during the invocation: the context can never be canceled, so goroutines " +
			"waiting on it outlive the invocation")
	}
	select {
	case <-done:
	default:
		t.Error("the invocation's context is not canceled after Invoke returned")
	}
}

// TestInvocationContextDerived: statefun.DeriveContext keeps the identity
// and the side effects of the engine's context.
func TestInvocationContextDerived(t *testing.T) {
	type key struct{}
	var got []string
	op, ctx := newDirectOperator(t, statefun.StatefulFunctionPointer(func(c statefun.Context, m statefun.Message) error {
		if m.AsString() != "x" {
			got = append(got, "second "+fmtAddr(*c.Caller()))
			return nil
		}
		d := statefun.DeriveContext(c, context.WithValue(c, key{}, "v"))
		got = append(got, fmt.Sprint(d.Value(key{}), " ", fmtAddr(d.Self())))
		d.Storage().Set(statefun.ValueSpec{Name: "n", ValueType: statefun.StringType}, "stored")
		d.Send(statefun.MessageBuilder{Target: d.Self(), Value: "again"})
		d.SendEgress(statefun.GenericEgressBuilder{Target: statefun.TypeNameFrom("t/out"), Value: "out", ValueType: statefun.StringType})
		return nil
	}))
	deliverDirect(t, op, ctx, "a", "x")
	if want := []string{"v t/f/a", "second t/f/a"}; !slices.Equal(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	if em := ctx.TakeEmitted(); len(em) != 1 || em[0].Port != 1 {
		t.Errorf("emitted %v, want one egress record on port 1", em)
	}
	if err := ctx.Err(); err != nil {
		t.Error(err)
	}
}

// TestInvocationContextConcurrentSends: like the official SDK's context
// (whose sending methods lock), the engine's context must accept side
// effects from the goroutines a function spawns and waits for. Run with
// -race.
func TestInvocationContextConcurrentSends(t *testing.T) {
	var received []string
	op, ctx := newDirectOperator(t, statefun.StatefulFunctionPointer(func(c statefun.Context, m statefun.Message) error {
		if m.AsString() != "fan-out" {
			received = append(received, m.AsString())
			return nil
		}
		var wg sync.WaitGroup
		for i := 0; i < 2; i++ {
			wg.Add(1)
			go func(i int) {
				defer wg.Done()
				c.Send(statefun.MessageBuilder{Target: statefun.Address{FunctionType: c.Self().FunctionType, Id: fmt.Sprint("g", i)}, Value: fmt.Sprint("from-", i)})
			}(i)
		}
		wg.Wait()
		return nil
	}))
	deliverDirect(t, op, ctx, "a", "fan-out")
	slices.Sort(received)
	if want := []string{"from-0", "from-1"}; !slices.Equal(received, want) {
		t.Errorf("received %q, want %q", received, want)
	}
}

// argReader consumes arguments and reports unknown ones.
type argReader struct {
	args map[string]string
	err  error
}

func (r *argReader) str(k string, required bool) string {
	v, ok := r.args[k]
	if !ok && required && r.err == nil {
		r.err = fmt.Errorf("missing argument %q", k)
	}
	delete(r.args, k)
	return v
}

func (r *argReader) intDefault(k string, def int) int {
	s, ok := r.args[k]
	delete(r.args, k)
	if !ok {
		return def
	}
	n, err := strconv.Atoi(s)
	if err != nil && r.err == nil {
		r.err = fmt.Errorf("argument %s: %v", k, err)
	}
	return n
}

func (r *argReader) positional() []string {
	var out []string
	for i := 0; ; i++ {
		k := "_"
		if i > 0 {
			k = "_" + strconv.Itoa(i)
		}
		v, ok := r.args[k]
		if !ok {
			return out
		}
		delete(r.args, k)
		out = append(out, v)
	}
}

func (r *argReader) done() error {
	if r.err != nil {
		return r.err
	}
	for k := range r.args {
		return fmt.Errorf("unknown argument %q", k)
	}
	return nil
}

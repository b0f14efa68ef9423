package smoke

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"
)

// Params of a smoke run. Zero values mean the defaults of EnsureDefaults.
type Params struct {
	// N is the number of function instances (ids "0".."N-1").
	N int
	// MessageCount is the number of generated source commands.
	MessageCount int64
	// Seed makes the run: command i is a pure function of (Seed, i).
	Seed uint64
	// CommandDepth bounds the nesting (upstream commandDepth, 10).
	CommandDepth int
	// MaxCommandsPerDepth: each level draws up to this minus one commands
	// (upstream maxCommandsPerDepth, 3).
	MaxCommandsPerDepth int
	// Rate is the number of source commands per second over all source
	// subtasks; 0 is as fast as possible. The rate clock restarts when a
	// subtask restarts.
	Rate float64
	// SourceParallelism is the ingress parallelism; 0 is the job's. With 1
	// the ingress can be restored into any job parallelism (its position
	// is a single index); otherwise only into the same one.
	SourceParallelism int
	// VerifyAttempts bounds the re-sends of a Verify that finds the
	// counter below the expected value (VerifyRetryDelay apart).
	VerifyAttempts int
	// FailFlag, when set, makes the interpreter fail (return an error) on
	// source command FailAt if the file FailFlag does not exist yet; it
	// creates the file first, so the failure happens once per test, across
	// restarts and restores.
	FailFlag string
	FailAt   int64
}

// Upstream defaults (contract §6.1) and ours.
const (
	DefaultN                   = 32
	DefaultMessageCount        = 3000
	DefaultCommandDepth        = 10
	DefaultMaxCommandsPerDepth = 3
	DefaultVerifyAttempts      = 2000
	// VerifyRetryDelay separates the re-sends of a Verify.
	VerifyRetryDelay = 10 * time.Millisecond
)

// Weights of the command distribution (upstream's probabilities; they are
// normalised). Async operations are not supported.
const (
	stateModificationsPr        = 0.4
	sendPr                      = 0.9
	sendAfterPr                 = 0.1
	noopPr                      = 0.2
	sendEgressPr                = 0.03
	sendAfterWithCancellationPr = 0.1
)

// EnsureDefaults fills zero fields.
func (p *Params) EnsureDefaults() {
	if p.N == 0 {
		p.N = DefaultN
	}
	if p.MessageCount == 0 {
		p.MessageCount = DefaultMessageCount
	}
	if p.CommandDepth == 0 {
		p.CommandDepth = DefaultCommandDepth
	}
	if p.MaxCommandsPerDepth == 0 {
		p.MaxCommandsPerDepth = DefaultMaxCommandsPerDepth
	}
	if p.VerifyAttempts == 0 {
		p.VerifyAttempts = DefaultVerifyAttempts
	}
}

// Validate reports every problem at once.
func (p Params) Validate() error {
	var errs []error
	if p.N < 1 {
		errs = append(errs, fmt.Errorf("smoke: N must be >= 1, got %d", p.N))
	}
	if p.MessageCount < 0 {
		errs = append(errs, fmt.Errorf("smoke: message count must be >= 0, got %d", p.MessageCount))
	}
	if p.CommandDepth < 1 || p.MaxCommandsPerDepth < 1 {
		errs = append(errs, fmt.Errorf("smoke: command depth and max commands per depth must be >= 1"))
	}
	if p.Rate < 0 || p.SourceParallelism < 0 || p.VerifyAttempts < 0 {
		errs = append(errs, fmt.Errorf("smoke: rate, source parallelism and verify attempts must be >= 0"))
	}
	return errors.Join(errs...)
}

// Command returns source command i: a pure function of (Seed, i).
func (p Params) Command(i int64) SourceCommand {
	g := &generator{p: p, r: rand.New(rand.NewPCG(p.Seed, uint64(i))), index: i}
	depth := g.r.IntN(p.CommandDepth)
	target := g.address()
	return SourceCommand{Index: i, Target: target, Commands: g.commands(depth)}
}

type generator struct {
	p     Params
	r     *rand.Rand
	index int64
	node  int // egress ids within the command
}

func (g *generator) address() int { return g.r.IntN(g.p.N) }

var increment = Command{Increment: &Increment{}}

// commands follows upstream CommandGenerator.commands.
func (g *generator) commands(depth int) Commands {
	var b Commands
	if depth <= 0 {
		b.Command = append(b.Command, increment)
		return b
	}
	n := g.r.IntN(g.p.MaxCommandsPerDepth)
	for range n {
		g.generate(&b, depth)
	}
	if len(b.Command) == 0 {
		b.Command = append(b.Command, increment)
	}
	return b
}

const totalWeight = stateModificationsPr + sendPr + sendAfterPr + noopPr + sendEgressPr + sendAfterWithCancellationPr

func (g *generator) generate(b *Commands, depth int) {
	u := g.r.Float64() * totalWeight
	switch {
	case u < stateModificationsPr:
		b.Command = append(b.Command, increment)
	case u < stateModificationsPr+sendPr:
		target := g.address()
		b.Command = append(b.Command, Command{Send: &Send{Target: target, Commands: g.commands(depth - 1)}})
	case u < stateModificationsPr+sendPr+sendAfterPr:
		target := g.address()
		cmds := g.commands(depth - 1)
		b.Command = append(b.Command, Command{SendAfter: &SendAfter{Target: target, Commands: cmds, DelayMs: 1 + g.r.IntN(5)}})
	case u < stateModificationsPr+sendPr+sendAfterPr+noopPr:
	case u < stateModificationsPr+sendPr+sendAfterPr+noopPr+sendEgressPr:
		b.Command = append(b.Command, Command{SendEgress: &SendEgress{ID: strconv.FormatInt(g.index, 10) + "-" + strconv.Itoa(g.node)}})
		g.node++
	default:
		// The pair: the delayed message carries a canary instead of
		// upstream's empty commands, so a failed cancellation shows.
		token := uuid(g.r.Uint64(), g.r.Uint64())
		target := g.address()
		b.Command = append(b.Command,
			Command{SendAfter: &SendAfter{Target: target, Token: token, Commands: Commands{Canary: token}, DelayMs: 1 + g.r.IntN(5)}},
			Command{CancelSendAfter: &CancelSendAfter{Target: target, Token: token}})
	}
}

// uuid renders two 64-bit values as a UUID-like string (as Java's
// new UUID(msb, lsb).toString()).
func uuid(msb, lsb uint64) string {
	h := fmt.Sprintf("%016x%016x", msb, lsb)
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}

// DiscardRecord is one expected discard-sink record: Discard{ID} sent by
// function From.
type DiscardRecord struct {
	ID   string
	From int
}

// Model is what a run of Params must produce.
type Model struct {
	// Expected is the final counter of each id (the tracker).
	Expected []int64
	// Discards are the discard-sink records, sorted by ID, each exactly
	// once.
	Discards []DiscardRecord
	// Stats counts the generated commands by kind (for logs).
	Stats Stats
}

// Stats counts the commands of a run.
type Stats struct {
	Increments, Sends, SendAfters, Cancels, Egresses, MaxDepth int
}

func (s Stats) String() string {
	return fmt.Sprintf("%d increments, %d sends, %d send_afters, %d cancellations, %d egress records, depth %d",
		s.Increments, s.Sends, s.SendAfters, s.Cancels, s.Egresses, s.MaxDepth)
}

// Model walks every command tree (the tracker of upstream): an increment
// counts for the function that runs it; send and send_after run their
// commands at their target.
func (p Params) Model() Model {
	m := Model{Expected: make([]int64, p.N)}
	var walk func(self int, c Commands, depth int)
	walk = func(self int, c Commands, depth int) {
		m.Stats.MaxDepth = max(m.Stats.MaxDepth, depth)
		for _, cmd := range c.Command {
			switch {
			case cmd.Increment != nil:
				m.Expected[self]++
				m.Stats.Increments++
			case cmd.Send != nil:
				m.Stats.Sends++
				walk(cmd.Send.Target, cmd.Send.Commands, depth+1)
			case cmd.SendAfter != nil:
				m.Stats.SendAfters++
				walk(cmd.SendAfter.Target, cmd.SendAfter.Commands, depth+1)
			case cmd.CancelSendAfter != nil:
				m.Stats.Cancels++
			case cmd.SendEgress != nil:
				m.Stats.Egresses++
				m.Discards = append(m.Discards, DiscardRecord{ID: cmd.SendEgress.ID, From: self})
			}
		}
	}
	for i := range p.MessageCount {
		sc := p.Command(i)
		walk(sc.Target, sc.Commands, 0)
	}
	slices.SortFunc(m.Discards, func(a, b DiscardRecord) int {
		if a.ID < b.ID {
			return -1
		} else if a.ID > b.ID {
			return 1
		}
		return 0
	})
	return m
}

package dataflow

import (
	"errors"
	"fmt"
	"strings"
)

// Partitioning decides which consumer subtask receives a record on an edge.
type Partitioning uint8

const (
	// Forward sends subtask i's records to subtask i of the consumer; both
	// sides must have the same parallelism.
	Forward Partitioning = iota
	// Keyed sends a record to the subtask that owns its KeyGroup.
	Keyed
	// Rebalance spreads records round-robin over all consumer subtasks.
	Rebalance
	// Broadcast sends every record to every consumer subtask.
	Broadcast
)

func (p Partitioning) String() string {
	switch p {
	case Forward:
		return "forward"
	case Keyed:
		return "keyed"
	case Rebalance:
		return "rebalance"
	case Broadcast:
		return "broadcast"
	}
	return fmt.Sprintf("Partitioning(%d)", uint8(p))
}

// Vertex is a logical operator with a parallelism.
type Vertex struct {
	ID          int
	Name        string
	Parallelism int
	// NewSource or NewOperator builds the operator of one subtask; exactly
	// one is set.
	NewSource   func(subtask int) Source
	NewOperator func(subtask int) Operator
	// CoLocationGroup: subtasks with the same index of vertices in the same
	// group always run in the same process (the feedback loop's operators).
	CoLocationGroup string
	// Chained names operators fused into this vertex (for display only; a
	// chain is built by the operator itself, e.g. source + router).
	Chained []string

	in, out []*Edge
}

// IsSource reports whether the vertex is a source.
func (v *Vertex) IsSource() bool { return v.NewSource != nil }

// Inputs returns the in-edges, in port order.
func (v *Vertex) Inputs() []*Edge { return v.in }

// Outputs returns the out-edges, in port order.
func (v *Vertex) Outputs() []*Edge { return v.out }

// Edge connects two vertices.
type Edge struct {
	From, To     *Vertex
	Partitioning Partitioning
	// FromPort is the index among From's out-edges (Output.Emit's port);
	// ToPort the index among To's in-edges (ProcessRecord's input).
	FromPort, ToPort int
}

// FeedbackEdge declares an in-memory back edge from Tail to Head: it is not
// a channel of the graph (it never applies backpressure) but requires the
// two vertices to be co-located with equal parallelism.
type FeedbackEdge struct {
	Tail, Head *Vertex
}

// Graph is the logical job graph. Build it with AddSource, AddOperator,
// Connect and Feedback, then Validate.
type Graph struct {
	Name           string
	MaxParallelism int
	vertices       []*Vertex
	edges          []*Edge
	feedback       []FeedbackEdge
}

// NewGraph returns an empty graph; maxParallelism 0 means
// DefaultMaxParallelism.
func NewGraph(name string, maxParallelism int) *Graph {
	if maxParallelism == 0 {
		maxParallelism = DefaultMaxParallelism
	}
	return &Graph{Name: name, MaxParallelism: maxParallelism}
}

// AddSource adds a source vertex.
func (g *Graph) AddSource(name string, parallelism int, f func(subtask int) Source) *Vertex {
	v := &Vertex{ID: len(g.vertices), Name: name, Parallelism: parallelism, NewSource: f}
	g.vertices = append(g.vertices, v)
	return v
}

// AddOperator adds an operator vertex.
func (g *Graph) AddOperator(name string, parallelism int, f func(subtask int) Operator) *Vertex {
	v := &Vertex{ID: len(g.vertices), Name: name, Parallelism: parallelism, NewOperator: f}
	g.vertices = append(g.vertices, v)
	return v
}

// Connect adds an edge and assigns its ports.
func (g *Graph) Connect(from, to *Vertex, p Partitioning) *Edge {
	e := &Edge{From: from, To: to, Partitioning: p, FromPort: len(from.out), ToPort: len(to.in)}
	from.out = append(from.out, e)
	to.in = append(to.in, e)
	g.edges = append(g.edges, e)
	return e
}

// Feedback declares the in-memory back edge tail -> head.
func (g *Graph) Feedback(tail, head *Vertex) {
	g.feedback = append(g.feedback, FeedbackEdge{Tail: tail, Head: head})
}

// Vertices returns the vertices in creation order.
func (g *Graph) Vertices() []*Vertex { return g.vertices }

// Edges returns the edges in creation order.
func (g *Graph) Edges() []*Edge { return g.edges }

// FeedbackEdges returns the declared back edges.
func (g *Graph) FeedbackEdges() []FeedbackEdge { return g.feedback }

// Validate reports every structural problem of the graph at once.
func (g *Graph) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if g.MaxParallelism < 1 || g.MaxParallelism > MaxKeyGroups {
		bad("graph %q: max parallelism %d out of range [1, %d]", g.Name, g.MaxParallelism, MaxKeyGroups)
	}
	if len(g.vertices) == 0 {
		bad("graph %q has no vertices", g.Name)
	}
	names := map[string]bool{}
	for _, v := range g.vertices {
		if v.Name == "" {
			bad("vertex %d has no name", v.ID)
		} else if names[v.Name] {
			bad("vertex name %q is used twice", v.Name)
		}
		names[v.Name] = true
		if (v.NewSource == nil) == (v.NewOperator == nil) {
			bad("vertex %q: exactly one of NewSource and NewOperator must be set", v.Name)
		}
		if v.Parallelism < 1 || v.Parallelism > g.MaxParallelism {
			bad("vertex %q: parallelism %d out of range [1, max parallelism %d]", v.Name, v.Parallelism, g.MaxParallelism)
		}
		if v.IsSource() && len(v.in) > 0 {
			bad("source %q has %d inputs", v.Name, len(v.in))
		}
		if !v.IsSource() && len(v.in) == 0 {
			bad("operator %q has no inputs", v.Name)
		}
	}
	for _, e := range g.edges {
		if e.Partitioning == Forward && e.From.Parallelism != e.To.Parallelism {
			bad("forward edge %s -> %s joins parallelism %d to %d", e.From.Name, e.To.Name, e.From.Parallelism, e.To.Parallelism)
		}
	}
	if cyc := g.findCycle(); cyc != "" {
		bad("the graph has a cycle through channels (%s): cycles must use a feedback edge", cyc)
	}
	groups := map[string]*Vertex{}
	for _, v := range g.vertices {
		if v.CoLocationGroup == "" {
			continue
		}
		if first, ok := groups[v.CoLocationGroup]; ok && first.Parallelism != v.Parallelism {
			bad("co-location group %q: %q has parallelism %d but %q has %d", v.CoLocationGroup, first.Name, first.Parallelism, v.Name, v.Parallelism)
		} else if !ok {
			groups[v.CoLocationGroup] = v
		}
	}
	for _, f := range g.feedback {
		if f.Tail.CoLocationGroup == "" || f.Tail.CoLocationGroup != f.Head.CoLocationGroup {
			bad("feedback edge %s -> %s: both ends must be in one co-location group", f.Tail.Name, f.Head.Name)
		}
	}
	return errors.Join(errs...)
}

// findCycle returns a description of a cycle through channel edges, or "".
func (g *Graph) findCycle() string {
	const (
		white = iota
		grey
		black
	)
	color := make([]int, len(g.vertices))
	var path []string
	var visit func(v *Vertex) string
	visit = func(v *Vertex) string {
		color[v.ID] = grey
		path = append(path, v.Name)
		for _, e := range v.out {
			switch color[e.To.ID] {
			case grey:
				start := 0
				for i, n := range path {
					if n == e.To.Name {
						start = i
					}
				}
				return strings.Join(append(path[start:], e.To.Name), " -> ")
			case white:
				if c := visit(e.To); c != "" {
					return c
				}
			}
		}
		path = path[:len(path)-1]
		color[v.ID] = black
		return ""
	}
	for _, v := range g.vertices {
		if color[v.ID] == white {
			if c := visit(v); c != "" {
				return c
			}
		}
	}
	return ""
}

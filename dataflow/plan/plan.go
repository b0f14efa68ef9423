// Package plan turns a validated dataflow.Graph and its parallelism into the
// physical plan: one Task per subtask with its key-group range, and for every
// logical edge the channels between producer and consumer subtasks.
//
// The plan is pure data: no goroutines, no I/O. dataflow/runtime executes it;
// `statefun validate` prints it.
//
// Invariants:
//   - Tasks of one vertex own disjoint, contiguous key-group ranges that
//     together cover [0, MaxParallelism).
//   - For every edge, the channels of a consumer subtask are numbered in
//     producer-subtask order, and the channel numbering of all in-edges of a
//     task is contiguous per edge (InputGate.Channels).
//   - Co-located tasks (same CoLocationGroup, same subtask index) are placed
//     in the same Slot.
package plan

import (
	"fmt"
	"io"
	"strings"

	"github.com/statefun-go/statefun/dataflow"
)

// TaskID identifies one subtask.
type TaskID struct {
	Vertex  int
	Subtask int
}

// Task is one subtask of a vertex.
type Task struct {
	ID        TaskID
	Vertex    *dataflow.Vertex
	Name      string // "vertex (i/n)"
	KeyGroups dataflow.KeyGroupRange
	// Slot groups co-located tasks: equal slots must run in one process.
	Slot string
	// Inputs has one gate per in-edge, in port order.
	Inputs []*InputGate
	// Outputs has one entry per out-edge, in port order.
	Outputs []*OutputPartition
}

// InputGate lists the producer subtasks feeding one input port.
type InputGate struct {
	Edge      *dataflow.Edge
	Producers []TaskID // channel i of the gate comes from Producers[i]
}

// OutputPartition lists the consumer subtasks of one output port.
type OutputPartition struct {
	Edge      *dataflow.Edge
	Consumers []TaskID // subpartition i goes to Consumers[i]
}

// Plan is the physical plan of a graph.
type Plan struct {
	Graph          *dataflow.Graph
	MaxParallelism int
	Tasks          []*Task // grouped by vertex, subtasks in order
	byVertex       [][]*Task
}

// Build validates g and builds its physical plan.
func Build(g *dataflow.Graph) (*Plan, error) {
	if err := g.Validate(); err != nil {
		return nil, err
	}
	p := &Plan{Graph: g, MaxParallelism: g.MaxParallelism}
	p.byVertex = make([][]*Task, len(g.Vertices()))
	for _, v := range g.Vertices() {
		for i := 0; i < v.Parallelism; i++ {
			t := &Task{
				ID:        TaskID{Vertex: v.ID, Subtask: i},
				Vertex:    v,
				Name:      fmt.Sprintf("%s (%d/%d)", v.Name, i+1, v.Parallelism),
				KeyGroups: dataflow.RangeForSubtask(i, v.Parallelism, g.MaxParallelism),
			}
			if v.CoLocationGroup != "" {
				t.Slot = fmt.Sprintf("%s-%d", v.CoLocationGroup, i)
			} else {
				t.Slot = fmt.Sprintf("%s-%d", v.Name, i)
			}
			p.byVertex[v.ID] = append(p.byVertex[v.ID], t)
			p.Tasks = append(p.Tasks, t)
		}
	}
	for _, v := range g.Vertices() {
		for _, e := range v.Inputs() {
			for _, t := range p.byVertex[v.ID] {
				gate := &InputGate{Edge: e}
				for _, prod := range p.byVertex[e.From.ID] {
					if connected(e, prod.ID.Subtask, t.ID.Subtask) {
						gate.Producers = append(gate.Producers, prod.ID)
					}
				}
				t.Inputs = append(t.Inputs, gate)
			}
		}
		for _, e := range v.Outputs() {
			for _, t := range p.byVertex[v.ID] {
				out := &OutputPartition{Edge: e}
				for _, cons := range p.byVertex[e.To.ID] {
					if connected(e, t.ID.Subtask, cons.ID.Subtask) {
						out.Consumers = append(out.Consumers, cons.ID)
					}
				}
				t.Outputs = append(t.Outputs, out)
			}
		}
	}
	return p, nil
}

func connected(e *dataflow.Edge, producer, consumer int) bool {
	if e.Partitioning == dataflow.Forward {
		return producer == consumer
	}
	return true
}

// TasksOf returns the subtasks of vertex v.
func (p *Plan) TasksOf(v *dataflow.Vertex) []*Task { return p.byVertex[v.ID] }

// Task returns the task with id.
func (p *Plan) Task(id TaskID) *Task { return p.byVertex[id.Vertex][id.Subtask] }

// NumChannels is the number of point-to-point channels in the plan.
func (p *Plan) NumChannels() int {
	n := 0
	for _, t := range p.Tasks {
		for _, g := range t.Inputs {
			n += len(g.Producers)
		}
	}
	return n
}

// Describe writes a human-readable account of the plan.
func (p *Plan) Describe(w io.Writer) {
	fmt.Fprintf(w, "job %q: %d vertices, %d subtasks, %d channels, max parallelism %d\n",
		p.Graph.Name, len(p.Graph.Vertices()), len(p.Tasks), p.NumChannels(), p.MaxParallelism)
	for _, v := range p.Graph.Vertices() {
		kind := "operator"
		if v.IsSource() {
			kind = "source"
		}
		extra := ""
		if len(v.Chained) > 0 {
			extra += " chained[" + strings.Join(v.Chained, " -> ") + "]"
		}
		if v.CoLocationGroup != "" {
			extra += " co-located(" + v.CoLocationGroup + ")"
		}
		fmt.Fprintf(w, "  %-8s %q parallelism %d%s\n", kind, v.Name, v.Parallelism, extra)
		for _, e := range v.Outputs() {
			fmt.Fprintf(w, "           -> %q [%s]\n", e.To.Name, e.Partitioning)
		}
	}
	for _, f := range p.Graph.FeedbackEdges() {
		fmt.Fprintf(w, "  feedback %q -> %q (in memory, spills to disk)\n", f.Tail.Name, f.Head.Name)
	}
}

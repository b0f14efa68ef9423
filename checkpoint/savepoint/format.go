package savepoint

import (
	"errors"
	"fmt"

	"github.com/apache/arrow-go/v18/arrow"

	"github.com/statefun-go/statefun/dataflow"
	"github.com/statefun-go/statefun/dataflow/state"
	"github.com/statefun-go/statefun/statefun/envelope"
)

// Version is the savepoint format version this package writes and reads.
const Version = 1

// Format is the "format" field of _savepoint.json.
const Format = "statefun-savepoint"

// File names in a savepoint directory.
const (
	ManifestName = "_savepoint.json"
	StateFile    = "state.arrow"
	MessagesFile = "messages.arrow"
	SourcesFile  = "sources.arrow"
)

// Names of the blobs and vertices of a stored checkpoint (app/checkpoints.go,
// statefun/dispatch/snapshot.go, statefun/translate/router.go).
const (
	functionsVertex = "functions"
	feedbackVertex  = "feedback"
	pebbleSuffix    = ".state"
	operatorBlob    = "operator"
	feedbackBlob    = "feedback"
	positionBlob    = "position"
	finishedBlob    = "finished"
	taskPropPrefix  = "task/"
)

// Batching of the Arrow files: a record batch holds at most batchRows rows
// and about batchBytes bytes of variable-length data (Arrow's 32-bit binary
// offsets cap a batch's column at 2 GiB).
const (
	batchRows  = 64 << 10
	batchBytes = 64 << 20
)

var (
	// ErrCorrupt is wrapped by every error about a savepoint whose files
	// do not match their manifest or do not decode.
	ErrCorrupt = errors.New("savepoint: corrupt")
	// ErrExists is returned when the destination directory already exists.
	ErrExists = errors.New("savepoint: already exists")
	// ErrUnsupported is returned for a savepoint of an unknown format version
	// and for checkpoints holding files this package does not know.
	ErrUnsupported = errors.New("savepoint: unsupported")
)

// IsCorruption reports whether err is (or wraps) ErrCorrupt.
func IsCorruption(err error) bool { return errors.Is(err, ErrCorrupt) }

func corruptf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}

// MessageKind tells where a queued message was when the checkpoint was
// taken. Restore replays, per key group, queued messages, then feedback
// messages, each in their order; delayed messages go back to the delay
// buffer.
type MessageKind string

// Message kinds.
const (
	// KindQueued: in the function operator's queues (local FIFO or remote
	// invocations waiting or in flight).
	KindQueued MessageKind = "queued"
	// KindFeedback: in the feedback log of the checkpoint (sent on the
	// feedback loop before the barrier, received after the snapshot).
	KindFeedback MessageKind = "feedback"
	// KindDelayed: a delayed message waiting for FireAt.
	KindDelayed MessageKind = "delayed"
)

// rank orders kinds as restore replays them.
func (k MessageKind) rank() int {
	switch k {
	case KindQueued:
		return 0
	case KindFeedback:
		return 1
	case KindDelayed:
		return 2
	}
	return 3
}

func (k MessageKind) valid() bool { return k.rank() < 3 }

// StateRow is one row of state.arrow: one stored value of the keyed state.
type StateRow struct {
	KeyGroup  dataflow.KeyGroup
	Space     state.Space
	Namespace string
	Type      string
	ID        string
	Name      string
	Value     []byte
	// ExpiresAt is the expiry in unix nanoseconds, 0 for none.
	ExpiresAt int64
}

// Key returns the row's state key.
func (r *StateRow) Key() state.Key {
	return state.Key{KeyGroup: r.KeyGroup, Space: r.Space, Namespace: r.Namespace, Type: r.Type, ID: r.ID, Name: r.Name}
}

// MessageRow is one row of messages.arrow.
type MessageRow struct {
	// KeyGroup is the key group of Envelope.Target.ID (queued, feedback) or
	// of Owner.ID (delayed): the key group that restores the message.
	KeyGroup dataflow.KeyGroup
	Kind     MessageKind
	// Order is the position of the message among those of its key group
	// and kind, from 0.
	Order    int64
	Envelope envelope.Envelope
	// Delayed messages only: the sender, its cancellation token ("" for
	// none) and the delivery time in unix milliseconds.
	Owner  envelope.Address
	Token  string
	FireAt int64
}

// SourceRow is one row of sources.arrow: a subtask of an ingress or egress
// vertex and its stored position. Such subtasks cannot be re-split, so they
// keep their task ids on restore.
type SourceRow struct {
	Vertex    string
	Task      string
	Subtask   int
	KeyGroups dataflow.KeyGroupRange
	// Position is nil when the subtask stored none.
	Position []byte
	Finished bool
}

// Arrow schemas. The metadata names the table and the format version.
var (
	stateSchema = arrow.NewSchema([]arrow.Field{
		{Name: "key_group", Type: arrow.PrimitiveTypes.Uint16},
		{Name: "space", Type: arrow.PrimitiveTypes.Uint8},
		{Name: "namespace", Type: arrow.BinaryTypes.String},
		{Name: "type", Type: arrow.BinaryTypes.String},
		{Name: "id", Type: arrow.BinaryTypes.String},
		{Name: "name", Type: arrow.BinaryTypes.String},
		{Name: "value", Type: arrow.BinaryTypes.Binary},
		{Name: "expires_at", Type: arrow.PrimitiveTypes.Int64},
	}, tableMeta("state"))

	messagesSchema = arrow.NewSchema([]arrow.Field{
		{Name: "key_group", Type: arrow.PrimitiveTypes.Uint16},
		{Name: "kind", Type: arrow.BinaryTypes.String},
		{Name: "order", Type: arrow.PrimitiveTypes.Int64},
		{Name: "envelope_kind", Type: arrow.PrimitiveTypes.Uint8},
		{Name: "target_namespace", Type: arrow.BinaryTypes.String},
		{Name: "target_type", Type: arrow.BinaryTypes.String},
		{Name: "target_id", Type: arrow.BinaryTypes.String},
		{Name: "caller_namespace", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "caller_type", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "caller_id", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "typename", Type: arrow.BinaryTypes.String},
		{Name: "value", Type: arrow.BinaryTypes.Binary},
		{Name: "owner_namespace", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "owner_type", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "owner_id", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "token", Type: arrow.BinaryTypes.String, Nullable: true},
		{Name: "fire_at", Type: arrow.PrimitiveTypes.Int64, Nullable: true},
	}, tableMeta("messages"))

	sourcesSchema = arrow.NewSchema([]arrow.Field{
		{Name: "vertex", Type: arrow.BinaryTypes.String},
		{Name: "task", Type: arrow.BinaryTypes.String},
		{Name: "subtask", Type: arrow.PrimitiveTypes.Int32},
		{Name: "key_group_start", Type: arrow.PrimitiveTypes.Uint16},
		{Name: "key_group_end", Type: arrow.PrimitiveTypes.Uint16},
		{Name: "position", Type: arrow.BinaryTypes.Binary, Nullable: true},
		{Name: "finished", Type: arrow.FixedWidthTypes.Boolean},
	}, tableMeta("sources"))
)

func tableMeta(table string) *arrow.Metadata {
	m := arrow.NewMetadata([]string{"statefun.savepoint.table", "statefun.savepoint.version"}, []string{table, fmt.Sprint(Version)})
	return &m
}

// Manifest is the content of _savepoint.json.
type Manifest struct {
	Format  string `json:"format"`
	Version int    `json:"version"`
	// CreatedBy is "checkpoint" (Write) or "import" (Import).
	CreatedBy string `json:"created_by"`
	// SourceCheckpointID and SourceSavepoint describe the stored checkpoint
	// Write converted (0 and false for an import).
	SourceCheckpointID uint64 `json:"source_checkpoint_id"`
	SourceSavepoint    bool   `json:"source_savepoint,omitempty"`
	// Timestamp is the source checkpoint's trigger time, unix milliseconds.
	Timestamp      int64 `json:"timestamp"`
	MaxParallelism int   `json:"max_parallelism"`
	// Parallelism is the parallelism of the job the checkpoint was taken
	// from (0 for an import). It does not constrain the restore.
	Parallelism int `json:"parallelism"`
	// Sources repeats sources.arrow, grouped by vertex.
	Sources []VertexPositions `json:"sources"`
	// Files lists the table files with their size, crc32c (Castagnoli) and
	// row count.
	Files []FileInfo `json:"files"`
}

// VertexPositions are the stored positions of one ingress or egress vertex.
type VertexPositions struct {
	Vertex string         `json:"vertex"`
	Tasks  []TaskPosition `json:"tasks"`
}

// TaskPosition is the position of one subtask; Position is base64 in JSON
// and absent when the subtask stored none.
type TaskPosition struct {
	Task          string `json:"task"`
	Subtask       int    `json:"subtask"`
	KeyGroupStart int    `json:"key_group_start"`
	KeyGroupEnd   int    `json:"key_group_end"`
	Position      []byte `json:"position"`
	Finished      bool   `json:"finished,omitempty"`
}

// FileInfo describes one table file.
type FileInfo struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	CRC32C uint32 `json:"crc32c"`
	Rows   int64  `json:"rows"`
}

// File returns the entry of name, or nil.
func (m *Manifest) File(name string) *FileInfo {
	for i := range m.Files {
		if m.Files[i].Name == name {
			return &m.Files[i]
		}
	}
	return nil
}

func manifestSources(rows []SourceRow) []VertexPositions {
	var out []VertexPositions
	for _, r := range rows {
		if len(out) == 0 || out[len(out)-1].Vertex != r.Vertex {
			out = append(out, VertexPositions{Vertex: r.Vertex})
		}
		v := &out[len(out)-1]
		v.Tasks = append(v.Tasks, TaskPosition{Task: r.Task, Subtask: r.Subtask,
			KeyGroupStart: int(r.KeyGroups.Start), KeyGroupEnd: int(r.KeyGroups.End), Position: r.Position, Finished: r.Finished})
	}
	return out
}

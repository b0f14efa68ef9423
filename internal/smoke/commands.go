package smoke

import (
	"encoding/json"
	"io"
	"strconv"

	"github.com/statefun-go/statefun/statefun"
)

// Names, all in namespace statefun.smoke.e2e (contract §6.1).
const (
	Namespace = "statefun.smoke.e2e"
	// FunctionTypeName is the one function type; ids are "0".."N-1".
	FunctionTypeName = Namespace + "/command-interpreter-fn"
	// IngressID is the generator ingress.
	IngressID = Namespace + "/command-generator-source"
	// DiscardEgressID and VerificationEgressID are the two egresses,
	// file egresses in jsonl format declared by the module (ModuleYAML).
	DiscardEgressID      = Namespace + "/discard-sink"
	VerificationEgressID = Namespace + "/verification-sink"
)

var (
	// FunctionType is the interpreter's function type.
	FunctionType = statefun.TypeNameFrom(FunctionTypeName)
	// SourceCommandType is what the ingress sends (upstream
	// statefun.smoke.e2e/source-command).
	SourceCommandType = statefun.MakeJsonType(statefun.TypeNameFrom(Namespace + "/source-command"))
	// CommandsType is what functions send each other.
	CommandsType = statefun.MakeJsonType(statefun.TypeNameFrom(Namespace + "/commands"))
	// VerificationResultType is the value of verification-sink records.
	VerificationResultType = compactJSON{statefun.TypeNameFrom(Namespace + "/verification-result")}
	// DiscardType is the value of discard-sink records.
	DiscardType = compactJSON{statefun.TypeNameFrom(Namespace + "/discard")}

	discardEgress      = statefun.TypeNameFrom(DiscardEgressID)
	verificationEgress = statefun.TypeNameFrom(VerificationEgressID)

	// stateSpec is the counter (upstream's one state).
	stateSpec = statefun.ValueSpec{Name: "state", ValueType: statefun.Int64Type}
	// verifiedSpec holds the expected value once the VerificationResult
	// was emitted (our over-count oracle).
	verifiedSpec = statefun.ValueSpec{Name: "verified", ValueType: statefun.Int64Type}
)

// SourceCommand is what the ingress sends to function Target. Index is the
// command's sequence number (-1 for a Verify of the verification phase);
// upstream has no index, we use it for failure injection and messages.
type SourceCommand struct {
	Index    int64    `json:"index"`
	Target   int      `json:"target"`
	Commands Commands `json:"commands"`
}

// Commands is a list of commands run in order. Canary is set only on the
// delayed message of a SendAfter+Cancel pair, which must never arrive.
type Commands struct {
	Command []Command `json:"command,omitempty"`
	Canary  string    `json:"canary,omitempty"`
}

// Command is a oneof: exactly one field is set.
type Command struct {
	Increment       *Increment       `json:"increment,omitempty"`
	Send            *Send            `json:"send,omitempty"`
	SendAfter       *SendAfter       `json:"send_after,omitempty"`
	SendEgress      *SendEgress      `json:"send_egress,omitempty"`
	Verify          *Verify          `json:"verify,omitempty"`
	CancelSendAfter *CancelSendAfter `json:"cancel_send_after,omitempty"`
}

// Increment adds one to the counter.
type Increment struct{}

// Send sends Commands to function Target.
type Send struct {
	Target   int      `json:"target"`
	Commands Commands `json:"commands"`
}

// SendAfter sends Commands to function Target after DelayMs milliseconds,
// with a cancellation token when Token is set.
type SendAfter struct {
	Target   int      `json:"target"`
	Commands Commands `json:"commands"`
	Token    string   `json:"cancellation_token,omitempty"`
	DelayMs  int      `json:"delay_ms"`
}

// CancelSendAfter cancels the delayed message with Token sent by this
// function (Target is informative, as upstream).
type CancelSendAfter struct {
	Target int    `json:"target"`
	Token  string `json:"cancellation_token"`
}

// SendEgress writes one Discard{ID} record to the discard sink.
type SendEgress struct {
	ID string `json:"id"`
}

// Verify emits VerificationResult{self, Expected, counter}. Attempt counts
// the re-sends while the counter is below Expected (ours, see the package
// doc).
type Verify struct {
	Expected int64 `json:"expected"`
	Attempt  int   `json:"attempt,omitempty"`
}

// VerificationResult is a verification-sink record value.
type VerificationResult struct {
	ID       int   `json:"id"`
	Expected int64 `json:"expected"`
	Actual   int64 `json:"actual"`
}

// Discard is a discard-sink record value.
type Discard struct {
	ID string `json:"id"`
}

func address(id int) statefun.Address {
	return statefun.Address{FunctionType: FunctionType, Id: strconv.Itoa(id)}
}

// From is the "from" field of the jsonl egress records of function id.
func From(id int) string { return FunctionTypeName + "/" + strconv.Itoa(id) }

// compactJSON is a JSON SimpleType without the trailing newline of
// statefun.MakeJsonType (whose json.Encoder output, as the official SDK's,
// ends with "\n"). The engine's jsonl rendering embeds a JSON value as it
// is, so MakeJsonType values break the one-record-per-line format
// (TestEngineJSONLOneRecordPerLine); the egress values use this type so
// that the smoke test checks checkpoints, not that bug.
type compactJSON struct{ name statefun.TypeName }

func (j compactJSON) GetTypeName() statefun.TypeName { return j.name }

func (j compactJSON) Deserialize(r io.Reader, receiver any) error {
	return json.NewDecoder(r).Decode(receiver)
}

func (j compactJSON) Serialize(w io.Writer, data any) error {
	b, err := json.Marshal(data)
	if err != nil {
		return err
	}
	_, err = w.Write(b)
	return err
}

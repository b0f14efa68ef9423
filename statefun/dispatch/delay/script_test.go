package delay

import (
	"fmt"
	"github.com/statefun-go/statefun/internal/scripttest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/statefun-go/statefun/statefun/envelope"
)

// The script format (a small subset of cockroachdb/datadriven, without the
// dependency):
//
//	# a comment, kept on rewrite
//	command key=value key=value
//	----
//	expected output, one or more lines, up to a blank line or the end of file
//
// Commands:
//
//	add owner=ns/fn/id [token=T] at=MS msg=M [to=ns/fn/id]   -> ok | error: ...
//	restore (same arguments as add)                          -> ok | error: ...
//	cancel owner=ns/fn/id [token=T]                          -> cancelled | not found | error: ...
//	pop now=MS        -> one "fire M from OWNER" line per message, then "popped N"
//	next              -> next=MS | next=none
//	len               -> len=N
//	snapshot          -> one "OWNER token=T at=MS msg=M" line per message | empty
//	restart           -> snapshot into a fresh buffer and restore: "restored N"
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
			scripttest.Run(t, f, func() func(cmd string, args map[string]string) (string, error) {
				b := NewBuffer()
				return func(cmd string, args map[string]string) (string, error) {
					return runCommand(&b, cmd, args)
				}
			}())
		})
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

func (r *argReader) int(k string) int64 {
	s := r.str(k, true)
	if r.err != nil {
		return 0
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		r.err = fmt.Errorf("argument %s: %v", k, err)
	}
	return n
}

func (r *argReader) addr(k string, def string) envelope.Address {
	s := r.str(k, def == "")
	if s == "" {
		s = def
	}
	parts := strings.Split(s, "/")
	if len(parts) != 3 {
		if r.err == nil {
			r.err = fmt.Errorf("argument %s: %q is not ns/type/id", k, s)
		}
		return envelope.Address{}
	}
	return envelope.Address{Namespace: parts[0], Type: parts[1], ID: parts[2]}
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

func runCommand(bp **Buffer, cmd string, args map[string]string) (string, error) {
	b := *bp
	r := &argReader{args: args}
	switch cmd {
	case "add", "restore":
		owner := r.addr("owner", "")
		token := r.str("token", false)
		at := r.int("at")
		msg := r.str("msg", true)
		to := r.addr("to", "t/fn/1")
		if err := r.done(); err != nil {
			return "", err
		}
		e := &envelope.Envelope{Target: to, Caller: owner, HasCaller: true, Typename: "test/msg", Value: []byte(msg)}
		add := b.Add
		if cmd == "restore" {
			add = b.Restore
		}
		if err := add(owner, token, at, e); err != nil {
			return "error: " + err.Error(), nil
		}
		return "ok", nil
	case "cancel":
		owner := r.addr("owner", "")
		token := r.str("token", false)
		if err := r.done(); err != nil {
			return "", err
		}
		found, err := b.Cancel(owner, token)
		switch {
		case err != nil:
			return "error: " + err.Error(), nil
		case found:
			return "cancelled", nil
		default:
			return "not found", nil
		}
	case "pop":
		now := r.int("now")
		if err := r.done(); err != nil {
			return "", err
		}
		var out strings.Builder
		n := b.PopDue(now, func(e *envelope.Envelope) {
			fmt.Fprintf(&out, "fire %s from %s\n", e.Value, e.Caller)
		})
		fmt.Fprintf(&out, "popped %d", n)
		return out.String(), nil
	case "next":
		if err := r.done(); err != nil {
			return "", err
		}
		if at, ok := b.NextDeadline(); ok {
			return fmt.Sprintf("next=%d", at), nil
		}
		return "next=none", nil
	case "len":
		if err := r.done(); err != nil {
			return "", err
		}
		return fmt.Sprintf("len=%d", b.Len()), nil
	case "snapshot":
		if err := r.done(); err != nil {
			return "", err
		}
		var out strings.Builder
		err := b.Snapshot(func(owner Owner, token string, fireAt int64, e *envelope.Envelope) error {
			fmt.Fprintf(&out, "%s token=%s at=%d msg=%s\n", owner, token, fireAt, e.Value)
			return nil
		})
		if err != nil {
			return "", err
		}
		if out.Len() == 0 {
			return "empty", nil
		}
		return out.String(), nil
	case "restart":
		if err := r.done(); err != nil {
			return "", err
		}
		nb := NewBuffer()
		err := b.Snapshot(func(owner Owner, token string, fireAt int64, e *envelope.Envelope) error {
			return nb.Restore(owner, token, fireAt, e)
		})
		if err != nil {
			return "", err
		}
		*bp = nb
		return fmt.Sprintf("restored %d", nb.Len()), nil
	}
	return "", fmt.Errorf("unknown command %q", cmd)
}

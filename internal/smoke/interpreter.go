package smoke

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"time"

	"github.com/statefun-go/statefun/statefun"
)

// Functions returns the embedded function specs of a smoke run.
func Functions(p Params) []statefun.StatefulFunctionSpec {
	p.EnsureDefaults()
	b := statefun.StatefulFunctionsBuilder()
	in := &interpreter{p: p}
	if err := b.WithSpec(statefun.StatefulFunctionSpec{
		FunctionType: FunctionType,
		States:       []statefun.ValueSpec{stateSpec, verifiedSpec},
		Function:     statefun.StatefulFunctionPointer(in.invoke),
	}); err != nil {
		panic(err) // static specs: a programming error
	}
	return b.Specs()
}

// interpreter is the command interpreter (upstream CommandInterpreter).
type interpreter struct{ p Params }

func (in *interpreter) invoke(ctx statefun.Context, msg statefun.Message) error {
	var cmds Commands
	switch {
	case msg.Is(SourceCommandType):
		var sc SourceCommand
		if err := msg.As(SourceCommandType, &sc); err != nil {
			return fmt.Errorf("smoke: decode source command: %w", err)
		}
		if err := in.maybeFail(ctx, sc.Index); err != nil {
			return err
		}
		cmds = sc.Commands
	case msg.Is(CommandsType):
		if err := msg.As(CommandsType, &cmds); err != nil {
			return fmt.Errorf("smoke: decode commands: %w", err)
		}
	default:
		return fmt.Errorf("smoke: %s got a message of unexpected type %s", ctx.Self(), msg.ValueTypeName())
	}
	if cmds.Canary != "" {
		// The delayed message of a SendAfter+Cancel pair arrived: the
		// cancellation did not work. No model has this record.
		ctx.SendEgress(statefun.GenericEgressBuilder{Target: discardEgress, Value: Discard{ID: "uncancelled:" + cmds.Canary}, ValueType: DiscardType})
	}
	for _, c := range cmds.Command {
		if err := in.apply(ctx, c); err != nil {
			return err
		}
	}
	return nil
}

func (in *interpreter) maybeFail(ctx statefun.Context, index int64) error {
	if in.p.FailFlag == "" || index != in.p.FailAt {
		return nil
	}
	f, err := os.OpenFile(in.p.FailFlag, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if errors.Is(err, fs.ErrExist) {
		return nil // failed once already
	} else if err != nil {
		return fmt.Errorf("smoke: failure flag: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("smoke: failure flag: %w", err)
	}
	return fmt.Errorf("smoke: injected failure at source command %d (%s)", index, ctx.Self())
}

func (in *interpreter) apply(ctx statefun.Context, c Command) error {
	switch {
	case c.Increment != nil:
		var n int64
		ctx.Storage().Get(stateSpec, &n)
		n++
		ctx.Storage().Set(stateSpec, n)
		var expected int64
		if ctx.Storage().Get(verifiedSpec, &expected) && n > expected {
			// Verified already: this increment can only be a duplicate.
			in.result(ctx, expected, n)
		}
	case c.Send != nil:
		ctx.Send(statefun.MessageBuilder{Target: address(c.Send.Target), Value: c.Send.Commands, ValueType: CommandsType})
	case c.SendAfter != nil:
		sa := c.SendAfter
		mb := statefun.MessageBuilder{Target: address(sa.Target), Value: sa.Commands, ValueType: CommandsType}
		delay := time.Duration(sa.DelayMs) * time.Millisecond
		if sa.Token != "" {
			tok, err := statefun.NewCancellationToken(sa.Token)
			if err != nil {
				return err
			}
			ctx.SendAfterWithCancellationToken(delay, tok, mb)
		} else {
			ctx.SendAfter(delay, mb)
		}
	case c.CancelSendAfter != nil:
		tok, err := statefun.NewCancellationToken(c.CancelSendAfter.Token)
		if err != nil {
			return err
		}
		ctx.CancelDelayedMessage(tok)
	case c.SendEgress != nil:
		ctx.SendEgress(statefun.GenericEgressBuilder{Target: discardEgress, Value: Discard{ID: c.SendEgress.ID}, ValueType: DiscardType})
	case c.Verify != nil:
		var n int64
		ctx.Storage().Get(stateSpec, &n)
		v := c.Verify
		if n < v.Expected && v.Attempt < in.p.VerifyAttempts {
			// Messages may still be in flight: look again later.
			ctx.SendAfter(VerifyRetryDelay, statefun.MessageBuilder{
				Target:    ctx.Self(),
				Value:     Commands{Command: []Command{{Verify: &Verify{Expected: v.Expected, Attempt: v.Attempt + 1}}}},
				ValueType: CommandsType,
			})
			return nil
		}
		ctx.Storage().Set(verifiedSpec, v.Expected)
		in.result(ctx, v.Expected, n)
	default:
		return fmt.Errorf("smoke: %s: empty command", ctx.Self())
	}
	return nil
}

func (in *interpreter) result(ctx statefun.Context, expected, actual int64) {
	id, _ := strconv.Atoi(ctx.Self().Id)
	ctx.SendEgress(statefun.GenericEgressBuilder{
		Target:    verificationEgress,
		Value:     VerificationResult{ID: id, Expected: expected, Actual: actual},
		ValueType: VerificationResultType,
	})
}

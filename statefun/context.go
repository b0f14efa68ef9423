package statefun

import (
	"context"
	"errors"
	"time"
)

// A Context contains information about the current function invocation, such
// as the invoked function instance's and caller's Address. It is also used
// for side effects as a result of the invocation such as send messages to
// other functions or egresses, and provides access to AddressScopedStorage
// scoped to the current Address. This type is also a context.Context and can
// be used to ensure any spawned go routines do not outlive the current
// function invocation.
//
// The engine provides the implementation. As in the official SDK, the
// sending methods panic if handed a builder that cannot be built (see
// MessageBuilder.Build and EgressBuilder.ToEgress); the panic is reported as
// a failure of the invocation.
type Context interface {
	context.Context

	// Self is the current invoked function instance's Address.
	Self() Address

	// Caller is the caller function instance's Address, if applicable. This is nil
	// if the message was sent to this function via an ingress.
	Caller() *Address

	// Send forwards out a MessageBuilder to another function.
	Send(message MessageBuilder)

	// SendAfter forwards out a MessageBuilder to another function, after a specified time.Duration delay.
	SendAfter(delay time.Duration, message MessageBuilder)

	// SendAfterWithCancellationToken forwards out a MessageBuilder to another function,
	// after a specified time.Duration delay. The message is tagged with a non-empty,
	// unique token to attach to this message, to be used for message cancellation
	SendAfterWithCancellationToken(delay time.Duration, token CancellationToken, message MessageBuilder)

	// CancelDelayedMessage cancels a delayed message (a message that was send via SendAfterWithCancellationToken).
	// NOTE: this is a best-effort operation, since the message might have been already delivered.
	// If the message was delivered, this is a no-op operation.
	CancelDelayedMessage(token CancellationToken)

	// SendEgress forwards out an EgressBuilder to an egress.
	SendEgress(egress EgressBuilder)

	// Storage returns the AddressScopedStorage, providing access to stored values scoped to the
	// current invoked function instance's Address (which is obtainable using Self()).
	Storage() AddressScopedStorage
}

// ContextDeriver may be implemented by a Context implementation to control
// what DeriveContext returns, for example to keep its concrete type.
type ContextDeriver interface {
	// DeriveContext returns a Context equal to the receiver except that its
	// context.Context methods are those of ctx.
	DeriveContext(ctx context.Context) Context
}

// DeriveContext derives a new statefun.Context with an updated context.Context.
// The derived Context has the same Self, Caller, Storage and side effects as
// statefunCtx; only Deadline, Done, Err and Value come from ctx. This is
// useful to add values or deadlines to a Context.
//
// If statefunCtx implements ContextDeriver, its DeriveContext method is used.
// DeriveContext panics if statefunCtx or ctx is nil.
func DeriveContext(statefunCtx Context, ctx context.Context) Context {
	if statefunCtx == nil {
		panic(errors.New("stateful function context supplied to DeriveContext is not recognized"))
	}
	if ctx == nil {
		panic(errors.New("cannot derive a stateful function context from a nil context.Context"))
	}
	if d, ok := statefunCtx.(ContextDeriver); ok {
		return d.DeriveContext(ctx)
	}
	if d, ok := statefunCtx.(*derivedContext); ok {
		return &derivedContext{Context: d.Context, ctx: ctx}
	}
	return &derivedContext{Context: statefunCtx, ctx: ctx}
}

// derivedContext is a Context whose context.Context part is replaced.
type derivedContext struct {
	Context
	ctx context.Context
}

func (d *derivedContext) Deadline() (time.Time, bool) { return d.ctx.Deadline() }
func (d *derivedContext) Done() <-chan struct{}       { return d.ctx.Done() }
func (d *derivedContext) Err() error                  { return d.ctx.Err() }
func (d *derivedContext) Value(key any) any           { return d.ctx.Value(key) }

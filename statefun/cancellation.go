package statefun

import "errors"

// CancellationToken tags a delayed message (see
// Context.SendAfterWithCancellationToken) so that it can later be cancelled
// with Context.CancelDelayedMessage. Tokens are created with
// NewCancellationToken; the interface cannot be implemented outside this
// package.
type CancellationToken interface {
	// String returns "CancellationToken(<token>)".
	String() string

	// Token returns the underlying string
	// used to create the CancellationToken.
	Token() string

	// internal prevents external implementations of the interface.
	internal()
}

type token string

func (t token) String() string { return "CancellationToken(" + string(t) + ")" }

func (t token) Token() string { return string(t) }

func (t token) internal() {}

// NewCancellationToken creates a new cancellation token from the given
// string. The token must be non-empty and should be unique among the pending
// delayed messages of the sending function instance.
func NewCancellationToken(t string) (CancellationToken, error) {
	if len(t) == 0 {
		return nil, errors.New("cancellation token cannot be empty")
	}
	return token(t), nil
}

package statefun

import (
	"errors"
	"fmt"
	"time"
)

// ExpirationMode is the kind of expiration configured for a persisted value.
type ExpirationMode int

// The expiration modes. The names differ from the upstream (unexported)
// ones because ExpireAfterCall and ExpireAfterWrite are the constructors of
// an Expiration.
const (
	// ExpireNone means the value never expires. It is the mode of the zero
	// Expiration.
	ExpireNone ExpirationMode = iota

	// ExpireAfterCallMode means the value expires when it has been neither
	// read nor written for the configured duration.
	ExpireAfterCallMode

	// ExpireAfterWriteMode means the value expires when it has not been
	// written for the configured duration.
	ExpireAfterWriteMode
)

// String returns "none", "expire_after_call" or "expire_after_write", as
// the official SDK, and "unknown(<n>)" for any other value.
func (e ExpirationMode) String() string {
	switch e {
	case ExpireNone:
		return "none"
	case ExpireAfterCallMode:
		return "expire_after_call"
	case ExpireAfterWriteMode:
		return "expire_after_write"
	default:
		return fmt.Sprintf("unknown(%d)", int(e))
	}
}

// Expiration configuration for a persisted value. The zero value means the
// value never expires; use ExpireAfterCall or ExpireAfterWrite otherwise.
type Expiration struct {
	mode     ExpirationMode
	duration time.Duration
}

// String returns "Expiration{mode=<mode>, duration=<duration>}".
func (e Expiration) String() string {
	return "Expiration{mode=" + e.mode.String() + ", duration=" + e.duration.String() + "}"
}

// Mode returns the expiration mode.
func (e Expiration) Mode() ExpirationMode { return e.mode }

// Duration returns the expiration duration (zero for ExpireNone).
func (e Expiration) Duration() time.Duration { return e.duration }

// ExpireAfterCall returns an Expiration configuration that would expire
// a duration after the last invocation of the function.
func ExpireAfterCall(duration time.Duration) Expiration {
	return Expiration{mode: ExpireAfterCallMode, duration: duration}
}

// ExpireAfterWrite returns an Expiration configuration that would expire
// a duration after the last write.
func ExpireAfterWrite(duration time.Duration) Expiration {
	return Expiration{mode: ExpireAfterWriteMode, duration: duration}
}

// A ValueSpec identifies a registered persistent value of a function, which
// will be managed by the Stateful Functions runtime for consistency and fault
// tolerance. A ValueSpec is registered for a function by configuring it on
// the function's associated StatefulFunctionSpec.
type ValueSpec struct {
	// The given tpe of the persistent value. The tpe must be a valid
	// identifier conforming to the following rules:
	//
	// 1. First character must be an alphabet letter [a-z] / [A-Z], or an underscore '_'.
	// 2. Remaining characters can be an alphabet letter [a-z] / [A-Z], a digit [0-9], or
	//    an underscore '_'.
	// 3. Must not contain any spaces.
	Name string

	// The SimpleType of the persistent value. Either
	// a built-in PrimitiveType or custom implementation.
	ValueType SimpleType

	// An optional expiration configuration.
	Expiration Expiration
}

// String returns "ValueSpec{name=<name>, type=<typename>, expiration=<expiration>}".
func (v *ValueSpec) String() string {
	return "ValueSpec{name=" + v.Name + ", type=" + TypeNameString(v.ValueType) + ", expiration=" + v.Expiration.String() + "}"
}

// validStateName reports whether name matches ^[a-zA-Z_][a-zA-Z_\d]*$.
func validStateName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c == '_', 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z':
		case '0' <= c && c <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// ValidateValueSpec checks a ValueSpec: its Name must match
// ^[a-zA-Z_][a-zA-Z_\d]*$, its ValueType must be set and have a valid
// typename, and the expiration duration must not be negative.
func ValidateValueSpec(s ValueSpec) error {
	if !validStateName(s.Name) {
		return fmt.Errorf("invalid state name %q. state names can only start with alphabet letters [a-z][A-Z] or an underscore '_' followed by zero or more characters that are alphanumeric or underscores", s.Name)
	}
	if s.ValueType == nil {
		return fmt.Errorf("state %s: missing ValueType", s.Name)
	}
	if _, err := ParseTypeName(TypeNameString(s.ValueType)); err != nil {
		return fmt.Errorf("state %s: invalid value type: %w", s.Name, err)
	}
	switch s.Expiration.mode {
	case ExpireNone:
	case ExpireAfterCallMode, ExpireAfterWriteMode:
		if s.Expiration.duration < 0 {
			return fmt.Errorf("state %s: negative expiration duration %v", s.Name, s.Expiration.duration)
		}
	default:
		return errors.New("state " + s.Name + ": unknown expiration mode " + s.Expiration.mode.String())
	}
	return nil
}

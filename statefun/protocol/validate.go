package protocol

import "unicode/utf8"

// AppendMarshal writes strings as they are, but every protobuf
// implementation (including the official SDKs) rejects a message whose
// string fields are not valid UTF-8. ValidateUTF8 lets the engine check data
// of outside origin (ids from record keys, for example) before it is sent.

func checkStr(s, name string) error {
	if utf8.ValidString(s) {
		return nil
	}
	return utf8Err(name)
}

func (m *Address) validate() error {
	if err := checkStr(m.Namespace, "namespace"); err != nil {
		return err
	}
	if err := checkStr(m.Type, "type"); err != nil {
		return err
	}
	return checkStr(m.ID, "id")
}

func validateAddress(m *Address, name string) error {
	if m == nil {
		return nil
	}
	if err := m.validate(); err != nil {
		return in(err, name, -1)
	}
	return nil
}

func validateTypedValue(m *TypedValue, name string) error {
	if m == nil {
		return nil
	}
	if err := checkStr(m.Typename, "typename"); err != nil {
		return in(err, name, -1)
	}
	return nil
}

// ValidateUTF8 reports the first string field of m that is not valid UTF-8,
// with its field path; the error wraps ErrMalformed. A nil m is valid.
func (m *ToFunction) ValidateUTF8() error {
	if m == nil || m.Invocation == nil {
		return nil
	}
	if err := m.Invocation.validate(); err != nil {
		return rooted(in(err, "invocation", -1), "ToFunction")
	}
	return nil
}

func (m *InvocationBatchRequest) validate() error {
	if err := validateAddress(m.Target, "target"); err != nil {
		return err
	}
	for k := range m.State {
		s := &m.State[k]
		err := checkStr(s.StateName, "state_name")
		if err == nil {
			err = validateTypedValue(s.StateValue, "state_value")
		}
		if err != nil {
			return in(err, "state", k)
		}
	}
	for k := range m.Invocations {
		v := &m.Invocations[k]
		err := validateAddress(v.Caller, "caller")
		if err == nil {
			err = validateTypedValue(v.Argument, "argument")
		}
		if err != nil {
			return in(err, "invocations", k)
		}
	}
	return nil
}

// ValidateUTF8 reports the first string field of m that is not valid UTF-8,
// with its field path; the error wraps ErrMalformed. A nil m is valid. Only
// the member that AppendMarshal would write is checked.
func (m *FromFunction) ValidateUTF8() error {
	switch {
	case m == nil:
		return nil
	case m.IncompleteInvocationContext != nil:
		for k := range m.IncompleteInvocationContext.MissingValues {
			s := &m.IncompleteInvocationContext.MissingValues[k]
			err := checkStr(s.StateName, "state_name")
			if err == nil {
				err = checkStr(s.TypeTypename, "type_typename")
			}
			if err != nil {
				return rooted(in(in(err, "missing_values", k), "incomplete_invocation_context", -1), "FromFunction")
			}
		}
	case m.InvocationResult != nil:
		if err := m.InvocationResult.validate(); err != nil {
			return rooted(in(err, "invocation_result", -1), "FromFunction")
		}
	}
	return nil
}

func (m *InvocationResponse) validate() error {
	for k := range m.StateMutations {
		s := &m.StateMutations[k]
		err := checkStr(s.StateName, "state_name")
		if err == nil {
			err = validateTypedValue(s.StateValue, "state_value")
		}
		if err != nil {
			return in(err, "state_mutations", k)
		}
	}
	for k := range m.OutgoingMessages {
		s := &m.OutgoingMessages[k]
		err := validateAddress(s.Target, "target")
		if err == nil {
			err = validateTypedValue(s.Argument, "argument")
		}
		if err != nil {
			return in(err, "outgoing_messages", k)
		}
	}
	for k := range m.DelayedInvocations {
		s := &m.DelayedInvocations[k]
		err := checkStr(s.CancellationToken, "cancellation_token")
		if err == nil {
			err = validateAddress(s.Target, "target")
		}
		if err == nil {
			err = validateTypedValue(s.Argument, "argument")
		}
		if err != nil {
			return in(err, "delayed_invocations", k)
		}
	}
	for k := range m.OutgoingEgresses {
		s := &m.OutgoingEgresses[k]
		err := checkStr(s.EgressNamespace, "egress_namespace")
		if err == nil {
			err = checkStr(s.EgressType, "egress_type")
		}
		if err == nil {
			err = validateTypedValue(s.Argument, "argument")
		}
		if err != nil {
			return in(err, "outgoing_egresses", k)
		}
	}
	return nil
}

package statefun

import (
	"errors"
	"fmt"
	"strings"
)

// Canonical strings of the built-in primitive typenames.
const (
	boolTypeNameString    = "io.statefun.types/bool"
	int32TypeNameString   = "io.statefun.types/int"
	int64TypeNameString   = "io.statefun.types/long"
	float32TypeNameString = "io.statefun.types/float"
	float64TypeNameString = "io.statefun.types/double"
	stringTypeNameString  = "io.statefun.types/string"
)

var (
	boolTypeName    = TypeNameFrom(boolTypeNameString)
	int32TypeName   = TypeNameFrom(int32TypeNameString)
	int64TypeName   = TypeNameFrom(int64TypeNameString)
	float32TypeName = TypeNameFrom(float32TypeNameString)
	float64TypeName = TypeNameFrom(float64TypeNameString)
	stringTypeName  = TypeNameFrom(stringTypeNameString)
)

// A TypeName is used to uniquely identify objects within
// a Stateful Functions application, including functions,
// egresses, and types. TypeName's serve as an integral
// part of identifying these objects for message delivery
// as well as message data serialization and deserialization.
//
// The canonical string form of a TypeName, returned by String,
// is `<namespace>/<type>`.
type TypeName interface {
	fmt.Stringer

	// GetNamespace returns the namespace part of the typename.
	GetNamespace() string

	// GetType returns the type (name) part of the typename.
	GetType() string
}

// typeName is the package's TypeName implementation. It is comparable, so
// TypeNames built from equal parts compare equal with ==.
type typeName struct {
	namespace string
	tpe       string
	canonical string
}

// String returns the canonical `<namespace>/<type>` form.
func (t typeName) String() string { return t.canonical }

// GetNamespace returns the namespace part of the typename.
func (t typeName) GetNamespace() string { return t.namespace }

// GetType returns the type (name) part of the typename.
func (t typeName) GetType() string { return t.tpe }

// TypeNameFrom creates a TypeName from a canonical string
// in the format `<namespace>/<type>`. This Function
// assumes correctly formatted strings and will panic
// on error. For runtime error handling please
// see ParseTypeName.
func TypeNameFrom(typename string) TypeName {
	result, err := ParseTypeName(typename)
	if err != nil {
		panic(err)
	}
	return result
}

// ParseTypeName creates a TypeName from a canonical string
// in the format `<namespace>/<type>`.
//
// As in the official SDK, the string is split on its last '/'; the namespace
// may therefore contain '/' but the type may not. A single trailing '/' of the
// namespace is dropped ("a//b" is namespace "a", type "b"). Both parts must be
// non-empty.
func ParseTypeName(typename string) (TypeName, error) {
	position := strings.LastIndexByte(typename, '/')
	if position <= 0 || position == len(typename)-1 {
		return nil, fmt.Errorf("%v does not conform to the <namespace>/<type> format", typename)
	}

	namespace := typename[:position]
	name := typename[position+1:]
	if namespace[len(namespace)-1] == '/' {
		namespace = namespace[:len(namespace)-1]
		return TypeNameFromParts(namespace, name)
	}

	// The input is already canonical: reuse it rather than concatenating.
	return typeName{namespace: namespace, tpe: name, canonical: typename}, nil
}

// TypeNameFromParts creates a TypeName from its namespace and type parts,
// which must both be non-empty.
func TypeNameFromParts(namespace, tpe string) (TypeName, error) {
	if len(namespace) == 0 {
		return nil, errors.New("namespace cannot be empty")
	}
	if len(tpe) == 0 {
		return nil, errors.New("type cannot be empty")
	}
	return typeName{
		namespace: namespace,
		tpe:       tpe,
		canonical: namespace + "/" + tpe,
	}, nil
}

// rawTypeName is returned by Message.ValueTypeName for a typename string that
// does not parse: the whole string is the type and the namespace is empty.
type rawTypeName string

func (r rawTypeName) String() string       { return string(r) }
func (r rawTypeName) GetNamespace() string { return "" }
func (r rawTypeName) GetType() string      { return string(r) }

// An Address is the unique identity of an individual StatefulFunction,
// containing the function's FunctionType and a unique identifier
// within the type. The function's type denotes the type (or class) of function
// to invoke, while the unique identifier addresses the invocation to a specific
// function instance.
type Address struct {
	// FunctionType is the TypeName of the function.
	FunctionType TypeName

	// Id identifies the function instance within its type.
	Id string
}

// String returns "Address(<namespace>, <type>, <id>)", as the official SDK.
// A nil FunctionType is rendered with empty namespace and type.
func (a Address) String() string {
	var namespace, tpe string
	if a.FunctionType != nil {
		namespace, tpe = a.FunctionType.GetNamespace(), a.FunctionType.GetType()
	}
	return "Address(" + namespace + ", " + tpe + ", " + a.Id + ")"
}

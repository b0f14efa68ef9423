package statefun

import (
	"strings"
	"testing"
)

func TestParseTypeName(t *testing.T) {
	tests := []struct {
		in        string
		namespace string
		tpe       string
		canonical string
	}{
		{"example/greeter", "example", "greeter", "example/greeter"},
		{"com.example/Greeter", "com.example", "Greeter", "com.example/Greeter"},
		{"io.statefun.types/long", "io.statefun.types", "long", "io.statefun.types/long"},
		{"type.googleapis.com/google.protobuf.StringValue", "type.googleapis.com", "google.protobuf.StringValue", "type.googleapis.com/google.protobuf.StringValue"},
		// Split on the last '/': the namespace may contain slashes.
		{"a/b/c", "a/b", "c", "a/b/c"},
		{"org/foo/bar/fn", "org/foo/bar", "fn", "org/foo/bar/fn"},
		// A single trailing slash of the namespace is dropped, as upstream.
		{"a//b", "a", "b", "a/b"},
		{"a b/c d", "a b", "c d", "a b/c d"},
		{"ns/é", "ns", "é", "ns/é"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseTypeName(tc.in)
			if err != nil {
				t.Fatalf("ParseTypeName(%q): %v", tc.in, err)
			}
			if got.GetNamespace() != tc.namespace || got.GetType() != tc.tpe || got.String() != tc.canonical {
				t.Fatalf("got (%q, %q, %q), want (%q, %q, %q)", got.GetNamespace(), got.GetType(), got.String(), tc.namespace, tc.tpe, tc.canonical)
			}
			if TypeNameFrom(tc.in) != got {
				t.Fatal("TypeNameFrom differs from ParseTypeName")
			}
		})
	}
}

func TestParseTypeNameInvalid(t *testing.T) {
	for _, in := range []string{"", "/", "noslash", "/type", "namespace/", "a/b/", "//b", "//", "///"} {
		t.Run(in, func(t *testing.T) {
			if got, err := ParseTypeName(in); err == nil {
				t.Fatalf("ParseTypeName(%q) = %v, want error", in, got)
			}
			defer func() {
				if recover() == nil {
					t.Fatalf("TypeNameFrom(%q) did not panic", in)
				}
			}()
			TypeNameFrom(in)
		})
	}
}

func TestTypeNameFromParts(t *testing.T) {
	tn, err := TypeNameFromParts("com.example", "fn")
	if err != nil || tn.String() != "com.example/fn" || tn.GetNamespace() != "com.example" || tn.GetType() != "fn" {
		t.Fatalf("got %v, %v", tn, err)
	}
	if tn != TypeNameFrom("com.example/fn") {
		t.Fatal("equal typenames are not ==")
	}
	if _, err := TypeNameFromParts("", "fn"); err == nil {
		t.Fatal("empty namespace accepted")
	}
	if _, err := TypeNameFromParts("ns", ""); err == nil {
		t.Fatal("empty type accepted")
	}
}

func TestAddressString(t *testing.T) {
	a := Address{FunctionType: TypeNameFrom("example/greeter"), Id: "bob"}
	if got := a.String(); got != "Address(example, greeter, bob)" {
		t.Fatalf("String() = %s", got)
	}
	if got := (Address{Id: "x"}).String(); got != "Address(, , x)" {
		t.Fatalf("String() of nil type = %s", got)
	}
	if a != (Address{FunctionType: TypeNameFrom("example/greeter"), Id: "bob"}) {
		t.Fatal("equal addresses are not ==")
	}
}

func TestCancellationToken(t *testing.T) {
	tok, err := NewCancellationToken("token-1")
	if err != nil {
		t.Fatal(err)
	}
	if tok.Token() != "token-1" || tok.String() != "CancellationToken(token-1)" {
		t.Fatalf("got %q %q", tok.Token(), tok.String())
	}
	if _, err := NewCancellationToken(""); err == nil {
		t.Fatal("empty token accepted")
	}
	long := strings.Repeat("x", 1000)
	if tok, err := NewCancellationToken(long); err != nil || tok.Token() != long {
		t.Fatal("long token rejected")
	}
}

package statefun

import (
	"strings"
	"testing"
	"time"
)

func TestValidateValueSpecNames(t *testing.T) {
	valid := []string{"a", "A", "_", "seen", "seen_count", "_private", "Count2", "x_1_y", "__", strings.Repeat("n", 200)}
	for _, name := range valid {
		if err := ValidateValueSpec(ValueSpec{Name: name, ValueType: Int64Type}); err != nil {
			t.Errorf("%q rejected: %v", name, err)
		}
	}
	invalid := []string{"", "1abc", "9", "has space", "dash-ed", "dot.ted", "slash/ed", "émoji", "tab\t", "a$", " lead", "trail "}
	for _, name := range invalid {
		if err := ValidateValueSpec(ValueSpec{Name: name, ValueType: Int64Type}); err == nil {
			t.Errorf("%q accepted", name)
		}
	}
}

func TestValidateValueSpecOther(t *testing.T) {
	tests := []struct {
		name string
		spec ValueSpec
		ok   bool
	}{
		{"plain", ValueSpec{Name: "v", ValueType: StringType}, true},
		{"json", ValueSpec{Name: "v", ValueType: MakeJsonType(TypeNameFrom("a/b"))}, true},
		{"after-call", ValueSpec{Name: "v", ValueType: BoolType, Expiration: ExpireAfterCall(time.Minute)}, true},
		{"after-write", ValueSpec{Name: "v", ValueType: BoolType, Expiration: ExpireAfterWrite(time.Second)}, true},
		{"zero-duration", ValueSpec{Name: "v", ValueType: BoolType, Expiration: ExpireAfterWrite(0)}, true},
		{"nil-type", ValueSpec{Name: "v"}, false},
		{"unknown-primitive", ValueSpec{Name: "v", ValueType: PrimitiveType(99)}, false},
		{"typeless-proto", ValueSpec{Name: "v", ValueType: MakeProtobufType(nil)}, false},
		{"negative-duration", ValueSpec{Name: "v", ValueType: BoolType, Expiration: ExpireAfterCall(-time.Second)}, false},
		{"unknown-mode", ValueSpec{Name: "v", ValueType: BoolType, Expiration: Expiration{mode: 7}}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidateValueSpec(tc.spec)
			if (err == nil) != tc.ok {
				t.Fatalf("ValidateValueSpec = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

func TestExpiration(t *testing.T) {
	var none Expiration
	if none.Mode() != ExpireNone || none.Duration() != 0 || none.String() != "Expiration{mode=none, duration=0s}" {
		t.Fatalf("zero expiration = %v %v %s", none.Mode(), none.Duration(), none)
	}
	call := ExpireAfterCall(90 * time.Second)
	if call.Mode() != ExpireAfterCallMode || call.Duration() != 90*time.Second || call.String() != "Expiration{mode=expire_after_call, duration=1m30s}" {
		t.Fatalf("after call = %v %v %s", call.Mode(), call.Duration(), call)
	}
	write := ExpireAfterWrite(time.Millisecond)
	if write.Mode() != ExpireAfterWriteMode || write.Duration() != time.Millisecond || write.String() != "Expiration{mode=expire_after_write, duration=1ms}" {
		t.Fatalf("after write = %v %v %s", write.Mode(), write.Duration(), write)
	}
	if ExpirationMode(9).String() != "unknown(9)" {
		t.Fatal("unknown mode string")
	}
	spec := ValueSpec{Name: "seen", ValueType: Int32Type, Expiration: call}
	if got := spec.String(); got != "ValueSpec{name=seen, type=io.statefun.types/int, expiration=Expiration{mode=expire_after_call, duration=1m30s}}" {
		t.Fatalf("String() = %s", got)
	}
}

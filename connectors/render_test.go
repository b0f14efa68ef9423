package connectors

import (
	"testing"

	"github.com/statefun-go/statefun/statefun"
	"github.com/statefun-go/statefun/statefun/envelope"
)

func TestAppendRendered(t *testing.T) {
	str, _ := statefun.EncodeValue(statefun.StringType, "Hello alice!")
	long, _ := statefun.EncodeValue(statefun.Int64Type, int64(-42))
	out := envelope.Address{Namespace: "ex", Type: "out"}
	from := envelope.Address{Namespace: "ex", Type: "greeter", ID: "alice"}
	for _, tc := range []struct {
		e           envelope.Envelope
		lines, json string
	}{
		{envelope.Envelope{Target: out, Caller: from, HasCaller: true, Typename: "io.statefun.types/string", Value: str},
			"Hello alice!\n", `{"egress":"ex/out","from":"ex/greeter/alice","typename":"io.statefun.types/string","value":"Hello alice!"}` + "\n"},
		{envelope.Envelope{Target: out, Typename: "io.statefun.types/long", Value: long},
			"-42\n", `{"egress":"ex/out","typename":"io.statefun.types/long","value":-42}` + "\n"},
		{envelope.Envelope{Target: out, Typename: "io.statefun.types/long"},
			"0\n", `{"egress":"ex/out","typename":"io.statefun.types/long","value":0}` + "\n"},
		{envelope.Envelope{Target: out, Typename: "ex/json", Value: []byte(`{"a":1}`)},
			`{"a":1}` + "\n", `{"egress":"ex/out","typename":"ex/json","value":{"a":1}}` + "\n"},
		{envelope.Envelope{Target: out, Typename: "ex/bin", Value: []byte{0xff, 0x00}},
			"/wA=\n", `{"egress":"ex/out","typename":"ex/bin","value":{"base64":"/wA="}}` + "\n"},
	} {
		if got := string(AppendRendered(nil, FormatLines, &tc.e)); got != tc.lines {
			t.Errorf("lines: got %q want %q", got, tc.lines)
		}
		if got := string(AppendRendered(nil, FormatJSONL, &tc.e)); got != tc.json {
			t.Errorf("jsonl: got %q want %q", got, tc.json)
		}
	}
}

package connectors

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"strconv"
	"unicode/utf8"

	"github.com/statefun-go/statefun/statefun"
	"github.com/statefun-go/statefun/statefun/envelope"
)

// Format is how a text sink renders an egress message.
type Format string

const (
	// FormatLines writes one line per message: the decoded value of a
	// well-known type, JSON and UTF-8 payloads as they are, anything else
	// base64.
	FormatLines Format = "lines"
	// FormatJSONL writes one JSON object per message with the egress, the
	// sender, the typename and the value.
	FormatJSONL Format = "jsonl"
)

// AppendRendered appends the rendering of e in format f, plus a newline.
func AppendRendered(dst []byte, f Format, e *envelope.Envelope) []byte {
	if f == FormatJSONL {
		dst = append(dst, `{"egress":`...)
		dst = strconv.AppendQuote(dst, e.Target.Namespace+"/"+e.Target.Type)
		if e.HasCaller {
			dst = append(dst, `,"from":`...)
			dst = strconv.AppendQuote(dst, e.Caller.String())
		}
		dst = append(dst, `,"typename":`...)
		dst = strconv.AppendQuote(dst, e.Typename)
		dst = append(dst, `,"value":`...)
		dst = appendJSONValue(dst, e.Typename, e.Value)
		return append(dst, "}\n"...)
	}
	if s, ok := wellKnownText(e.Typename, e.Value); ok {
		dst = append(dst, s...)
	} else if utf8.Valid(e.Value) {
		// One record per line: JSON encoders (and the SDKs' JSON types)
		// end values with a newline.
		dst = append(dst, bytes.TrimRight(e.Value, "\r\n")...)
	} else {
		dst = base64.StdEncoding.AppendEncode(dst, e.Value)
	}
	return append(dst, '\n')
}

func appendJSONValue(dst []byte, typename string, v []byte) []byte {
	if s, ok := wellKnownText(typename, v); ok {
		if typename == "io.statefun.types/string" {
			return strconv.AppendQuote(dst, s)
		}
		return append(dst, s...)
	}
	if json.Valid(v) {
		var b bytes.Buffer
		if json.Compact(&b, v) == nil {
			return append(dst, b.Bytes()...)
		}
	}
	if utf8.Valid(v) {
		return strconv.AppendQuote(dst, string(v))
	}
	dst = append(dst, `{"base64":"`...)
	dst = base64.StdEncoding.AppendEncode(dst, v)
	return append(dst, `"}`...)
}

// wellKnownText decodes a value of an io.statefun.types/* type to text.
func wellKnownText(typename string, v []byte) (string, bool) {
	switch typename {
	case "io.statefun.types/string":
		var s string
		if statefun.DecodeValue(statefun.StringType, v, &s) == nil {
			return s, true
		}
	case "io.statefun.types/long":
		var n int64
		if statefun.DecodeValue(statefun.Int64Type, v, &n) == nil {
			return strconv.FormatInt(n, 10), true
		}
	case "io.statefun.types/int":
		var n int32
		if statefun.DecodeValue(statefun.Int32Type, v, &n) == nil {
			return strconv.FormatInt(int64(n), 10), true
		}
	case "io.statefun.types/bool":
		var b bool
		if statefun.DecodeValue(statefun.BoolType, v, &b) == nil {
			return strconv.FormatBool(b), true
		}
	case "io.statefun.types/float":
		var f float32
		if statefun.DecodeValue(statefun.Float32Type, v, &f) == nil {
			return strconv.FormatFloat(float64(f), 'g', -1, 32), true
		}
	case "io.statefun.types/double":
		var f float64
		if statefun.DecodeValue(statefun.Float64Type, v, &f) == nil {
			return strconv.FormatFloat(f, 'g', -1, 64), true
		}
	}
	return "", false
}

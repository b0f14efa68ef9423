package savepoint

import "github.com/statefun-go/statefun/statefun/envelope"

// DecodeOperatorBlob exposes the operator blob decoder to the external
// tests, which read checkpoints written by the engine.
func DecodeOperatorBlob(blob []byte) (queued []*envelope.Envelope, delayed []MessageRow, err error) {
	return decodeOperatorBlob(blob)
}

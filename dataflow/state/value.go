package state

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Stored values carry a one-byte header so that TTL survives restarts:
//
//	0x00 payload...                      never expires
//	0x01 expiresAt(8 bytes, big-endian)  payload...   expires at expiresAt (unix ns)
//
// Other header bytes are reserved; reading one is reported as corruption.
const (
	hdrNoExpiry  = 0x00
	hdrExpiry    = 0x01
	hdrExpiryLen = 9
)

// ErrCorrupt is returned when a stored value has an invalid header.
var ErrCorrupt = errors.New("state: corrupt stored value")

func valueHeaderLen(expiresAt int64) int {
	if expiresAt == 0 {
		return 1
	}
	return hdrExpiryLen
}

// putValue writes the header and payload into dst, which must be exactly
// valueHeaderLen(expiresAt)+len(payload) bytes long.
func putValue(dst []byte, payload []byte, expiresAt int64) {
	if expiresAt == 0 {
		dst[0] = hdrNoExpiry
		copy(dst[1:], payload)
		return
	}
	dst[0] = hdrExpiry
	binary.BigEndian.PutUint64(dst[1:9], uint64(expiresAt))
	copy(dst[9:], payload)
}

// decodeValue splits a stored value into its payload (aliasing b) and expiry.
func decodeValue(b []byte) (payload []byte, expiresAt int64, err error) {
	if len(b) == 0 {
		return nil, 0, fmt.Errorf("%w: empty", ErrCorrupt)
	}
	switch b[0] {
	case hdrNoExpiry:
		return b[1:], 0, nil
	case hdrExpiry:
		if len(b) < hdrExpiryLen {
			return nil, 0, fmt.Errorf("%w: truncated expiry", ErrCorrupt)
		}
		return b[hdrExpiryLen:], int64(binary.BigEndian.Uint64(b[1:9])), nil
	}
	return nil, 0, fmt.Errorf("%w: unknown header 0x%02x", ErrCorrupt, b[0])
}

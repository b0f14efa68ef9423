package store

import (
	"sync"

	"github.com/klauspost/compress/zstd"
)

// compressMin is the blob size above which AddFile tries zstd; below it the
// frame overhead and the call cost outweigh the gain.
const compressMin = 4 << 10

// Encoder and decoder are safe for concurrent EncodeAll/DecodeAll and costly
// to build, so the package shares one of each, created on first use.
// SpeedFastest: about 0.27 GB/s at ratio ~4.5 on structured data, see
// dependencies.md §6.
var (
	zenc = sync.OnceValues(func() (*zstd.Encoder, error) {
		return zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest))
	})
	zdec = sync.OnceValues(func() (*zstd.Decoder, error) {
		return zstd.NewReader(nil, zstd.WithDecoderConcurrency(0))
	})
)

// maybeCompress returns the zstd frame of data when compression is on, the
// blob is larger than compressMin and the frame saves at least 1/8;
// otherwise data itself.
func maybeCompress(data []byte, on bool) ([]byte, bool, error) {
	if !on || len(data) <= compressMin {
		return data, false, nil
	}
	enc, err := zenc()
	if err != nil {
		return nil, false, err
	}
	c := enc.EncodeAll(data, make([]byte, 0, len(data)/2))
	if len(c) > len(data)-len(data)/8 {
		return data, false, nil
	}
	return c, true, nil
}

func decompress(data []byte) ([]byte, error) {
	dec, err := zdec()
	if err != nil {
		return nil, err
	}
	return dec.DecodeAll(data, nil)
}

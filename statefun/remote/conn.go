package remote

import (
	"bufio"
	"compress/flate"
	"compress/gzip"
	"compress/zlib"
	"io"
	"net"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// writeDeadlineConn maps the okhttp write timeout onto the socket: every
// Write must complete within d. Idle pooled connections do not write, so
// the deadline never closes them.
type writeDeadlineConn struct {
	net.Conn
	d time.Duration
}

func (c *writeDeadlineConn) Write(b []byte) (int, error) {
	if err := c.Conn.SetWriteDeadline(time.Now().Add(c.d)); err != nil {
		return 0, err
	}
	return c.Conn.Write(b)
}

// watchdogReader maps the okhttp read timeout onto the response body: the
// timer (which cancels the attempt) is pushed back each time bytes arrive.
type watchdogReader struct {
	r io.Reader
	t *time.Timer
	d time.Duration
}

func (w *watchdogReader) Read(p []byte) (int, error) {
	n, err := w.r.Read(p)
	if n > 0 {
		w.t.Reset(w.d)
	}
	return n, err
}

// decoder returns a reader that undoes the response Content-Encoding, and
// whether the encoding was the identity.
func decoder(encoding string, r io.Reader) (io.ReadCloser, bool, error) {
	switch enc := strings.ToLower(strings.TrimSpace(encoding)); enc {
	case "", "identity":
		return io.NopCloser(r), true, nil
	case "gzip", "x-gzip":
		zr, err := gzip.NewReader(r)
		if err != nil {
			return nil, false, err
		}
		return zr, false, nil
	case "deflate":
		// HTTP "deflate" is zlib (RFC 1950), but some servers send a raw
		// RFC 1951 stream: tell them apart by the zlib header.
		br := bufio.NewReader(r)
		if h, err := br.Peek(2); err == nil && isZlibHeader(h) {
			zr, err := zlib.NewReader(br)
			if err != nil {
				return nil, false, err
			}
			return zr, false, nil
		}
		return flate.NewReader(br), false, nil
	default:
		return nil, false, &unsupportedEncodingError{encoding: encoding}
	}
}

func isZlibHeader(h []byte) bool {
	return h[0]&0x0f == 8 && h[0]>>4 <= 7 && (uint16(h[0])<<8|uint16(h[1]))%31 == 0
}

// readLimited reads r to the end, failing with *ResponseTooLargeError as
// soon as more than limit bytes arrive (it reads at most limit+1 bytes).
func readLimited(r io.Reader, sizeHint int64, limit int64) ([]byte, error) {
	if sizeHint <= 0 {
		sizeHint = 512
	}
	if sizeHint > limit {
		sizeHint = limit
	}
	b := make([]byte, 0, sizeHint+1) // +1: the read that sees EOF needs room
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		room := b[len(b):cap(b)]
		if over := limit + 1 - int64(len(b)); int64(len(room)) > over {
			room = room[:over]
		}
		n, err := r.Read(room)
		b = b[:len(b)+n]
		if int64(len(b)) > limit {
			return nil, &ResponseTooLargeError{Limit: limit}
		}
		if err == io.EOF {
			return b, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

const (
	excerptBytes = 512
	excerptRunes = 200
	drainBytes   = 64 << 10
)

// excerpt reads the start of an error response body and returns it as a
// single line when it is printable text, then drains a bounded amount so
// the connection can be reused.
func excerpt(r io.Reader, encoding string) string {
	buf := make([]byte, excerptBytes)
	n, _ := io.ReadFull(r, buf)
	_, _ = io.CopyN(io.Discard, r, drainBytes)
	if enc := strings.ToLower(strings.TrimSpace(encoding)); enc != "" && enc != "identity" {
		return ""
	}
	b := buf[:n]
	// Drop a rune cut at the end of the window.
	for len(b) > 0 && !utf8.Valid(b) && len(b) > n-utf8.UTFMax {
		b = b[:len(b)-1]
	}
	if !utf8.Valid(b) {
		return ""
	}
	var sb strings.Builder
	space := false
	runes := 0
	for _, r := range string(b) {
		if unicode.IsSpace(r) {
			space = sb.Len() > 0
			continue
		}
		if !unicode.IsPrint(r) {
			return "" // binary
		}
		if runes >= excerptRunes {
			sb.WriteString("…")
			break
		}
		if space {
			sb.WriteByte(' ')
			space = false
		}
		sb.WriteRune(r)
		runes++
	}
	return sb.String()
}

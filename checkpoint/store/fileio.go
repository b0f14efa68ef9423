package store

import (
	"bytes"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"sync"
)

const copyBufSize = 512 << 10

var bufPool = sync.Pool{New: func() any { b := make([]byte, copyBufSize); return &b }}

// crcFile returns the size and crc32c of the file at path.
func crcFile(path string) (int64, uint32, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	return crcReader(f)
}

func crcReader(r io.Reader) (int64, uint32, error) {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	var crc uint32
	var n int64
	for {
		m, err := r.Read(buf)
		crc = crc32.Update(crc, castagnoli, buf[:m])
		n += int64(m)
		if err == io.EOF {
			return n, crc, nil
		}
		if err != nil {
			return n, crc, err
		}
	}
}

// copyFile copies src to the new file dst (created through fsys), computing
// the size and crc32c of what it read, and fsyncs dst when sync is set. On
// error dst is removed.
func copyFile(fsys writeFS, src, dst string, sync bool) (size int64, crc uint32, err error) {
	in, err := os.Open(src)
	if err != nil {
		return 0, 0, err
	}
	defer in.Close()
	out, err := fsys.Create(dst)
	if err != nil {
		return 0, 0, err
	}
	defer func() {
		if err != nil {
			_ = fsys.Remove(dst)
		}
	}()
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	for {
		m, rerr := in.Read(buf)
		if m > 0 {
			crc = crc32.Update(crc, castagnoli, buf[:m])
			size += int64(m)
			if _, werr := out.Write(buf[:m]); werr != nil {
				_ = out.Close()
				return 0, 0, werr
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			_ = out.Close()
			return 0, 0, rerr
		}
	}
	if sync {
		if err := out.Sync(); err != nil {
			_ = out.Close()
			return 0, 0, err
		}
	}
	return size, crc, out.Close()
}

// writeFile creates path through fsys with data, fsyncing it when sync is
// set. On error the partial file is removed.
func writeFile(fsys writeFS, path string, data []byte, sync bool) (err error) {
	f, err := fsys.Create(path)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = fsys.Remove(path)
		}
	}()
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return err
	}
	if sync {
		if err := f.Sync(); err != nil {
			_ = f.Close()
			return err
		}
	}
	return f.Close()
}

// verifyFile checks that path exists with the given size and crc32c. A
// missing file, a wrong size or a wrong checksum is a *CorruptionError
// naming rel; other I/O errors are returned wrapped.
func verifyFile(path, rel string, size int64, crc uint32) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return corruptf(rel, "missing")
	} else if err != nil {
		return fmt.Errorf("%s: %w", rel, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("%s: %w", rel, err)
	}
	if !fi.Mode().IsRegular() {
		return corruptf(rel, "not a regular file")
	}
	if fi.Size() != size {
		return corruptf(rel, "size %d, want %d", fi.Size(), size)
	}
	n, got, err := crcReader(f)
	if err != nil {
		return fmt.Errorf("%s: %w", rel, err)
	}
	if n != size {
		return corruptf(rel, "size %d, want %d", n, size)
	}
	if got != crc {
		return corruptf(rel, "checksum mismatch")
	}
	return nil
}

// sameContent reports whether two files hold the same bytes.
func sameContent(a, b string) (bool, error) {
	fa, err := os.Open(a)
	if err != nil {
		return false, err
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		return false, err
	}
	defer fb.Close()
	ba, bb := bufPool.Get().(*[]byte), bufPool.Get().(*[]byte)
	defer bufPool.Put(ba)
	defer bufPool.Put(bb)
	for {
		na, ea := io.ReadFull(fa, *ba)
		nb, eb := io.ReadFull(fb, *bb)
		if na != nb || !bytes.Equal((*ba)[:na], (*bb)[:nb]) {
			return false, nil
		}
		aEOF := ea == io.EOF || errors.Is(ea, io.ErrUnexpectedEOF)
		bEOF := eb == io.EOF || errors.Is(eb, io.ErrUnexpectedEOF)
		if ea != nil && !aEOF {
			return false, ea
		}
		if eb != nil && !bEOF {
			return false, eb
		}
		if aEOF || bEOF {
			return aEOF && bEOF, nil
		}
	}
}

func crc32Checksum(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

package store

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
)

func sampleMetadata() *Metadata {
	return &Metadata{
		Version: FormatVersion, Job: "job", ID: 7, Timestamp: 1700000000123,
		Parallelism: 4, MaxParallelism: 128,
		Tasks: []TaskMeta{
			{Task: "source-0", Files: []FileRef{{Name: "offsets", Size: 12, CRC32C: 0xdeadbeef}, {Name: "log", Size: 5000, CRC32C: 1, Compressed: true}}},
			{Task: "state-1", Pebble: true, Files: []FileRef{{Name: "000004.sst", Size: 4096, CRC32C: 2, Shared: "00000002-4096-000004.sst"}, {Name: "MANIFEST-000001", Size: 100, CRC32C: 3}}},
		},
		Properties: map[string]string{"k": "v"},
	}
}

func TestMetadataRoundTrip(t *testing.T) {
	m := sampleMetadata()
	b, err := encodeMetadata(m)
	must(t, err)
	got, err := decodeMetadata(b)
	must(t, err)
	if !reflect.DeepEqual(got, m) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, m)
	}
	b2, err := encodeMetadata(got)
	must(t, err)
	if !bytes.Equal(b, b2) {
		t.Fatal("encoding is not deterministic")
	}
}

func TestMetadataDecodeErrors(t *testing.T) {
	good, err := encodeMetadata(sampleMetadata())
	must(t, err)
	withBody := func(body string) []byte {
		b, err := encodeRaw(FormatVersion, []byte(body))
		must(t, err)
		return b
	}
	tests := []struct {
		name string
		in   []byte
		want string
	}{
		{"empty", nil, "_metadata: truncated (empty)"},
		{"short", good[:10], "_metadata: truncated (10 bytes, header is 57)"},
		{"header-only", good[:headerLen], "_metadata: truncated (57 of "},
		{"one-short", good[:len(good)-1], "_metadata: truncated"},
		{"trailing", append(bytes.Clone(good), '\n'), "_metadata: 1 trailing bytes"},
		{"not-metadata", []byte("hello world, this is not a checkpoint metadata file at all!!"), "_metadata: bad magic"},
		{"flipped-body", flip(good, len(good)-5), "_metadata: checksum mismatch"},
		{"version-not-digit", replaceAt(good, len(headerMagic)+3, 'x'), "_metadata: malformed header"},
		{"version-digit", replaceAt(good, len(headerMagic)+3, '3'), "_metadata: checksum mismatch"},
		{"flipped-crc", replaceAt(good, crcFieldOff, 'f'^good[crcFieldOff]^'0'), ""},
		{"future-version", func() []byte { b, _ := encodeRaw(2, good[headerLen:]); return b }(), "_metadata: unsupported version 2"},
		{"body-not-json", withBody("not json"), "_metadata: malformed body"},
		{"body-two-objects", withBody(`{"version":1,"job":"j","id":1,"timestamp":0,"parallelism":0,"max_parallelism":0,"tasks":[]}{}`), "_metadata: malformed body"},
		{"body-unknown-field", withBody(`{"version":1,"job":"j","bogus":1}`), "_metadata: malformed body"},
		{"body-version-mismatch", withBody(`{"version":2,"job":"j"}`), "_metadata: body version 2"},
		{"body-no-job", withBody(`{"version":1}`), "_metadata: invalid: job: empty name"},
		{"pebble-compressed", withBody(`{"version":1,"job":"j","tasks":[{"task":"t","pebble":true,"files":[{"name":"x","size":1,"crc32c":1,"compressed":true}]}]}`), "_metadata: invalid"},
		{"duplicate-task", withBody(`{"version":1,"job":"j","tasks":[{"task":"t","files":[]},{"task":"t","files":[]}]}`), "_metadata: invalid: task \"t\" listed twice"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodeMetadata(tc.in)
			if err == nil || !IsCorruption(err) || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("decode: %v, want corruption %q", err, tc.want)
			}
		})
	}
}

func flip(b []byte, i int) []byte { return replaceAt(b, i, b[i]^0x01) }

func replaceAt(b []byte, i int, c byte) []byte {
	out := bytes.Clone(b)
	out[i] = c
	return out
}

func TestParseChkDirName(t *testing.T) {
	tests := []struct {
		in         string
		id         uint64
		inprogress bool
		ok         bool
	}{
		{"chk-1", 1, false, true},
		{"chk-18446744073709551615", 1<<64 - 1, false, true},
		{"chk-7.inprogress", 7, true, true},
		{"chk-07", 0, false, false},
		{"chk-+7", 0, false, false},
		{"chk-", 0, false, false},
		{"chk-1.tmp", 0, false, false},
		{"shared", 0, false, false},
		{"chk-18446744073709551616", 0, false, false},
	}
	for _, tc := range tests {
		id, inprogress, ok := parseChkDirName(tc.in)
		if id != tc.id || inprogress != tc.inprogress || ok != tc.ok {
			t.Errorf("parseChkDirName(%q) = %d, %v, %v", tc.in, id, inprogress, ok)
		}
	}
}

// FuzzDecodeMetadata: the decoder never panics, and whatever it accepts is
// valid and re-encodes to an equivalent value.
func FuzzDecodeMetadata(f *testing.F) {
	good, err := encodeMetadata(sampleMetadata())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:headerLen])
	f.Add(good[:len(good)/2])
	f.Add([]byte{})
	for _, body := range []string{
		`{"version":1,"job":"j","id":1,"tasks":[{"task":"t","files":[{"name":"../x","size":1,"crc32c":1}]}]}`,
		`{"version":1,"job":"j","id":1,"tasks":[{"task":"t","files":[{"name":"x","shared":"a/b","size":1,"crc32c":1}]}]}`,
		`{"version":1,"job":"j","id":18446744073709551615,"properties":{"a":"b"},"tasks":null}`,
	} {
		b, _ := encodeRaw(1, []byte(body))
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		m, err := decodeMetadata(in)
		if err != nil {
			if !IsCorruption(err) {
				t.Fatalf("non-corruption error %v", err)
			}
			return
		}
		if err := m.validate(); err != nil {
			t.Fatalf("decoded invalid metadata: %v", err)
		}
		out, err := encodeMetadata(m)
		if err != nil {
			t.Fatal(err)
		}
		m2, err := decodeMetadata(out)
		if err != nil {
			t.Fatalf("re-encoded metadata does not decode: %v", err)
		}
		if !reflect.DeepEqual(m, m2) {
			t.Fatalf("round trip changed the metadata:\n%+v\n%+v", m, m2)
		}
	})
}

// FuzzDecodeMetadataBody fuzzes the JSON body behind a valid header and
// checksum, which random bytes would rarely get past: validation must
// reject every unsafe name and never panic.
func FuzzDecodeMetadataBody(f *testing.F) {
	good, err := encodeMetadata(sampleMetadata())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good[headerLen:])
	f.Add([]byte(`{"version":1,"job":"j","id":1,"tasks":[{"task":"..","files":[{"name":"/etc/passwd","size":1,"crc32c":1}]}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		in, err := encodeRaw(FormatVersion, body)
		if err != nil {
			return
		}
		m, err := decodeMetadata(in)
		if err != nil {
			if !IsCorruption(err) {
				t.Fatalf("non-corruption error %v", err)
			}
			return
		}
		for _, tm := range m.Tasks {
			for _, name := range []string{tm.Task} {
				if strings.ContainsAny(name, `/\`) || name == ".." || name == "." || name == "" {
					t.Fatalf("unsafe task name %q accepted", name)
				}
			}
			for _, fr := range tm.Files {
				for _, name := range []string{fr.Name, fr.Shared} {
					if strings.ContainsAny(name, "/\\\x00") || name == ".." || name == "." {
						t.Fatalf("unsafe file name %q accepted", name)
					}
				}
			}
		}
	})
}

package use

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
)

// FileName is the converted model file that Fetch writes into its directory
// and Load reads.
const FileName = "use-lite-v1.bin"

// The converted file is: magic (8 bytes), payload length (uint64 LE), SHA-256
// of the payload (32 bytes), payload. The payload holds the format version,
// the source it was converted from, the vocabulary (piece, float64 score) and
// named tensors, each fp16 or fp32. Everything is little-endian.
var fileMagic = [8]byte{'T', 'G', 'U', 'S', 'E', 'L', 'T', 1}

const (
	formatVersion = 1
	headerSize    = 8 + 8 + sha256.Size

	dtypeF16 = 1
	dtypeF32 = 2
)

// ErrCorrupt is wrapped by the errors Load returns for a converted file that
// is truncated, altered or not ours.
var ErrCorrupt = errors.New("use: converted model file is corrupt")

type tensor struct {
	name  string
	shape []int
	data  []float32
	half  bool // stored as fp16 on disk
}

func (t tensor) size() int {
	n := 1
	for _, d := range t.shape {
		n *= d
	}
	return n
}

// bundle is everything the converted file holds.
type bundle struct {
	source  string // integrity of the tarball it was converted from
	pieces  []string
	scores  []float64
	tensors []tensor
}

func (b *bundle) tensor(name string) (tensor, bool) {
	for _, t := range b.tensors {
		if t.name == name {
			return t, true
		}
	}
	return tensor{}, false
}

type encoder struct{ buf bytes.Buffer }

func (e *encoder) u8(v uint8) { e.buf.WriteByte(v) }
func (e *encoder) u32(v uint32) {
	e.buf.Write(binary.LittleEndian.AppendUint32(nil, v))
}
func (e *encoder) str(s string) { e.u32(uint32(len(s))); e.buf.WriteString(s) }

func encodeBundle(b *bundle) []byte {
	var e encoder
	e.u32(formatVersion)
	e.str(b.source)
	e.u32(uint32(len(b.pieces)))
	for i, p := range b.pieces {
		e.str(p)
		e.buf.Write(binary.LittleEndian.AppendUint64(nil, math.Float64bits(b.scores[i])))
	}
	e.u32(uint32(len(b.tensors)))
	for _, t := range b.tensors {
		e.str(t.name)
		e.u8(uint8(len(t.shape)))
		for _, d := range t.shape {
			e.u32(uint32(d))
		}
		if t.half {
			e.u8(dtypeF16)
			out := make([]byte, 2*len(t.data))
			for i, v := range t.data {
				binary.LittleEndian.PutUint16(out[2*i:], float32ToHalf(v))
			}
			e.buf.Write(out)
		} else {
			e.u8(dtypeF32)
			out := make([]byte, 4*len(t.data))
			for i, v := range t.data {
				binary.LittleEndian.PutUint32(out[4*i:], math.Float32bits(v))
			}
			e.buf.Write(out)
		}
	}
	payload := e.buf.Bytes()
	sum := sha256.Sum256(payload)
	file := make([]byte, 0, headerSize+len(payload))
	file = append(file, fileMagic[:]...)
	file = binary.LittleEndian.AppendUint64(file, uint64(len(payload)))
	file = append(file, sum[:]...)
	return append(file, payload...)
}

// verifyFile checks the header and checksum and returns the payload.
func verifyFile(file []byte) ([]byte, error) {
	if len(file) < headerSize {
		return nil, fmt.Errorf("%w: %d bytes, shorter than the header", ErrCorrupt, len(file))
	}
	if !bytes.Equal(file[:8], fileMagic[:]) {
		return nil, fmt.Errorf("%w: bad magic (not a %s file or another format version)", ErrCorrupt, FileName)
	}
	n := binary.LittleEndian.Uint64(file[8:16])
	payload := file[headerSize:]
	if uint64(len(payload)) != n {
		return nil, fmt.Errorf("%w: payload is %d bytes, header says %d (truncated?)", ErrCorrupt, len(payload), n)
	}
	if sum := sha256.Sum256(payload); !bytes.Equal(sum[:], file[16:headerSize]) {
		return nil, fmt.Errorf("%w: checksum mismatch", ErrCorrupt)
	}
	return payload, nil
}

type decoder struct {
	b   []byte
	err error
}

func (d *decoder) take(n int) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || n > len(d.b) {
		d.err = fmt.Errorf("%w: payload ends early", ErrCorrupt)
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) u8() uint8 {
	if v := d.take(1); v != nil {
		return v[0]
	}
	return 0
}

func (d *decoder) u32() uint32 {
	if v := d.take(4); v != nil {
		return binary.LittleEndian.Uint32(v)
	}
	return 0
}

func (d *decoder) str() string { return string(d.take(int(d.u32()))) }

func decodeBundle(payload []byte) (*bundle, error) {
	d := &decoder{b: payload}
	if v := d.u32(); d.err == nil && v != formatVersion {
		return nil, fmt.Errorf("%w: format version %d, want %d", ErrCorrupt, v, formatVersion)
	}
	b := &bundle{source: d.str()}
	n := int(d.u32())
	if n > len(d.b) {
		return nil, fmt.Errorf("%w: vocabulary size %d", ErrCorrupt, n)
	}
	b.pieces = make([]string, 0, n)
	b.scores = make([]float64, 0, n)
	for i := 0; i < n && d.err == nil; i++ {
		b.pieces = append(b.pieces, d.str())
		if v := d.take(8); v != nil {
			b.scores = append(b.scores, math.Float64frombits(binary.LittleEndian.Uint64(v)))
		}
	}
	nt := int(d.u32())
	for i := 0; i < nt && d.err == nil; i++ {
		t := tensor{name: d.str()}
		nd := int(d.u8())
		for j := 0; j < nd; j++ {
			t.shape = append(t.shape, int(d.u32()))
		}
		size := t.size()
		switch dt := d.u8(); dt {
		case dtypeF16:
			raw := d.take(2 * size)
			if raw == nil {
				break
			}
			t.half = true
			t.data = make([]float32, size)
			for k := range t.data {
				t.data[k] = halfToFloat32(binary.LittleEndian.Uint16(raw[2*k:]))
			}
		case dtypeF32:
			raw := d.take(4 * size)
			if raw == nil {
				break
			}
			t.data = make([]float32, size)
			for k := range t.data {
				t.data[k] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*k:]))
			}
		default:
			if d.err == nil {
				d.err = fmt.Errorf("%w: tensor %q has dtype %d", ErrCorrupt, t.name, dt)
			}
		}
		b.tensors = append(b.tensors, t)
	}
	if d.err != nil {
		return nil, d.err
	}
	if len(d.b) != 0 {
		return nil, fmt.Errorf("%w: %d trailing bytes", ErrCorrupt, len(d.b))
	}
	return b, nil
}

// readBundle reads and verifies the converted file in dir.
func readBundle(dir string) (*bundle, error) {
	path := filepath.Join(dir, FileName)
	file, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("use: read converted model: %w", err)
	}
	payload, err := verifyFile(file)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	b, err := decodeBundle(payload)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return b, nil
}

// writeFileAtomic writes data to dir/name through a temporary file in the
// same directory, synced and renamed, so that a crash leaves either the old
// file, no file or the whole new one.
func writeFileAtomic(dir, name string, data []byte) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, name+".tmp-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after a successful rename
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp, 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		return err
	}
	if d, err := os.Open(dir); err == nil { // persist the rename; best effort
		d.Sync()
		d.Close()
	}
	return nil
}

package sessionstore

import (
	"bytes"
	"encoding/binary"
	"encoding/gob"
	"errors"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/alexedwards/scs/v2"
)

// Codec is an scs.Codec that encodes the same session to the same bytes every
// time. Set it as the SessionManager's Codec:
//
//	sm.Codec = sessionstore.Codec{}
//
// Why it matters: under an IdleTimeout, scs commits every request, and the
// store skips the write when the data is byte-identical to what it last saw
// (see [Config.TouchInterval]). scs's default GobCodec writes the values map
// in Go's random map order, so a session holding two or more values encodes
// differently on most requests and would be written every time.
//
// Codec writes the values sorted by key. Sessions whose values are all of
// the common scalar types — string, []byte, bool, int, int32, int64,
// float64 and time.Time — get a compact binary form that decodes with a
// handful of allocations (gob builds its type descriptors again for every
// stream, which made it the most expensive step of an authenticated
// request). Any other value makes Codec fall back to gob for the whole
// session, behind its own version byte; concrete types stored in the session
// must then be registered with gob.Register, as with GobCodec. Values that
// are themselves maps are encoded in random order by gob; store structs or
// slices if those should benefit from skipped writes.
//
// Decode reads both forms and GobCodec's format, so switching an
// application to Codec keeps its existing sessions.
type Codec struct{}

var _ scs.Codec = Codec{}

// codecV1 marks the gob form and codecV2 the binary form. Gob encodes an
// unsigned integer below 128 as that byte and a larger one as its negated
// byte count (0xF8–0xFF), so no gob stream — in particular none written by
// GobCodec — starts with either.
const (
	codecV1 = 0xD9
	codecV2 = 0xDA
)

type codecRecord struct {
	Deadline time.Time
	Keys     []string
	Vals     []any
}

// ErrCodec is returned by Codec.Decode for bytes it cannot read.
var ErrCodec = errors.New("sessionstore: malformed session encoding")

// Value tags of the binary form.
const (
	tagString byte = 1 + iota
	tagBytes
	tagBool
	tagInt
	tagInt32
	tagInt64
	tagFloat64
	tagTime
)

// Encode writes deadline and values, the values sorted by key.
func (Codec) Encode(deadline time.Time, values map[string]any) ([]byte, error) {
	var small [16]string
	keys := small[:0] // on the stack for sessions of up to 16 values
	size, binaryForm := 32, true
	for k, v := range values {
		keys = append(keys, k)
		n, ok := binarySize(v)
		size += len(k) + n + 2*binary.MaxVarintLen64
		binaryForm = binaryForm && ok
	}
	slices.Sort(keys)
	if !binaryForm {
		return encodeGob(deadline, keys, values)
	}
	b := make([]byte, 0, size)
	b = append(b, codecV2)
	b, err := appendTime(b, deadline)
	if err != nil {
		return nil, err
	}
	b = binary.AppendUvarint(b, uint64(len(keys)))
	for _, k := range keys {
		b = binary.AppendUvarint(b, uint64(len(k)))
		b = append(b, k...)
		switch v := values[k].(type) {
		case string:
			b = append(b, tagString)
			b = binary.AppendUvarint(b, uint64(len(v)))
			b = append(b, v...)
		case []byte:
			b = append(b, tagBytes)
			b = binary.AppendUvarint(b, uint64(len(v)))
			b = append(b, v...)
		case bool:
			b = append(b, tagBool)
			if v {
				b = append(b, 1)
			} else {
				b = append(b, 0)
			}
		case int:
			b = append(b, tagInt)
			b = binary.AppendVarint(b, int64(v))
		case int32:
			b = append(b, tagInt32)
			b = binary.AppendVarint(b, int64(v))
		case int64:
			b = append(b, tagInt64)
			b = binary.AppendVarint(b, v)
		case float64:
			b = append(b, tagFloat64)
			b = binary.BigEndian.AppendUint64(b, math.Float64bits(v))
		case time.Time:
			b = append(b, tagTime)
			if b, err = appendTime(b, v); err != nil {
				return nil, err
			}
		}
	}
	return b, nil
}

// binarySize reports whether v has a binary form, and its size bound.
func binarySize(v any) (int, bool) {
	switch v := v.(type) {
	case string:
		return len(v), true
	case []byte:
		return len(v), true
	case bool, int, int32, int64, float64:
		return 10, true
	case time.Time:
		return 16, true
	}
	return 0, false
}

// appendTime appends t as its length-prefixed MarshalBinary form (what gob
// stores for a time.Time: instant and zone offset, no monotonic reading).
func appendTime(b []byte, t time.Time) ([]byte, error) {
	n := len(b)
	b = append(b, 0) // length, below 128
	b, err := t.AppendBinary(b)
	if err != nil {
		return nil, err
	}
	if len(b)-n-1 >= 128 {
		return nil, fmt.Errorf("sessionstore: time encoding of %d bytes", len(b)-n-1)
	}
	b[n] = byte(len(b) - n - 1)
	return b, nil
}

func encodeGob(deadline time.Time, keys []string, values map[string]any) ([]byte, error) {
	rec := codecRecord{Deadline: deadline, Keys: slices.Clone(keys), Vals: make([]any, len(keys))}
	for i, k := range keys {
		rec.Vals[i] = values[k]
	}
	var b bytes.Buffer
	b.WriteByte(codecV1)
	if err := gob.NewEncoder(&b).Encode(&rec); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// Decode reads what Encode (or scs.GobCodec) wrote. The values map is never
// nil.
func (Codec) Decode(b []byte) (time.Time, map[string]any, error) {
	if len(b) > 0 && b[0] == codecV2 {
		d, v, err := decodeBinary(b[1:])
		if err != nil {
			return time.Time{}, nil, errors.Join(ErrCodec, err)
		}
		return d, v, nil
	}
	if len(b) == 0 || b[0] != codecV1 {
		d, v, err := scs.GobCodec{}.Decode(b)
		if err == nil && v == nil {
			v = map[string]any{}
		}
		return d, v, err
	}
	var rec codecRecord
	if err := gob.NewDecoder(bytes.NewReader(b[1:])).Decode(&rec); err != nil {
		return time.Time{}, nil, errors.Join(ErrCodec, err)
	}
	if len(rec.Keys) != len(rec.Vals) {
		return time.Time{}, nil, ErrCodec
	}
	values := make(map[string]any, len(rec.Keys))
	for i, k := range rec.Keys {
		values[k] = rec.Vals[i]
	}
	return rec.Deadline, values, nil
}

// binReader reads the binary form. Keys and string values are substrings
// of one copy of the input: a single allocation for all of them.
type binReader struct {
	s   string
	err error
}

var errTruncated = errors.New("truncated")

func (r *binReader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	var v uint64
	for i := 0; i < len(r.s) && i < binary.MaxVarintLen64; i++ {
		c := r.s[i]
		if c < 0x80 {
			if i == binary.MaxVarintLen64-1 && c > 1 {
				break
			}
			r.s = r.s[i+1:]
			return v | uint64(c)<<(7*i)
		}
		v |= uint64(c&0x7f) << (7 * i)
	}
	r.err = errTruncated
	return 0
}

func (r *binReader) varint() int64 {
	u := r.uvarint()
	x := int64(u >> 1)
	if u&1 != 0 {
		x = ^x
	}
	return x
}

func (r *binReader) next(n uint64) string {
	if r.err != nil {
		return ""
	}
	if n > uint64(len(r.s)) {
		r.err = errTruncated
		return ""
	}
	v := r.s[:n]
	r.s = r.s[n:]
	return v
}

func (r *binReader) time() time.Time {
	var t time.Time
	raw := r.next(r.uvarint())
	if r.err == nil {
		if err := t.UnmarshalBinary([]byte(raw)); err != nil {
			r.err = err
		}
	}
	return t
}

func decodeBinary(b []byte) (time.Time, map[string]any, error) {
	r := &binReader{s: string(b)}
	deadline := r.time()
	n := r.uvarint()
	if r.err == nil && n > uint64(len(r.s))/3 { // each entry takes at least 3 bytes
		return time.Time{}, nil, errTruncated
	}
	values := make(map[string]any, n)
	for i := uint64(0); i < n && r.err == nil; i++ {
		k := r.next(r.uvarint())
		tag := r.next(1)
		if r.err != nil {
			break
		}
		var v any
		switch tag[0] {
		case tagString:
			v = r.next(r.uvarint())
		case tagBytes:
			v = []byte(r.next(r.uvarint()))
		case tagBool:
			switch r.next(1) {
			case "\x00":
				v = false
			case "\x01":
				v = true
			default:
				r.err = errors.New("bad bool")
			}
		case tagInt:
			x := r.varint()
			if int64(int(x)) != x {
				r.err = errors.New("int overflow")
			}
			v = int(x)
		case tagInt32:
			x := r.varint()
			if int64(int32(x)) != x {
				r.err = errors.New("int32 overflow")
			}
			v = int32(x)
		case tagInt64:
			v = r.varint()
		case tagFloat64:
			if raw := r.next(8); r.err == nil {
				v = math.Float64frombits(binary.BigEndian.Uint64([]byte(raw)))
			}
		case tagTime:
			v = r.time()
		default:
			r.err = fmt.Errorf("unknown value tag %d", tag[0])
		}
		if _, dup := values[k]; dup && r.err == nil {
			r.err = errors.New("duplicate key")
		}
		values[k] = v
	}
	if r.err == nil && len(r.s) != 0 {
		r.err = errors.New("trailing bytes")
	}
	if r.err != nil {
		return time.Time{}, nil, r.err
	}
	return deadline, values, nil
}

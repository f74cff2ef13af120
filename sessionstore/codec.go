package sessionstore

import (
	"bytes"
	"encoding/gob"
	"errors"
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
// Codec writes the values sorted by key, with gob, behind a version byte that
// a gob stream can never start with. Decode also reads GobCodec's format, so
// switching an application to Codec keeps its existing sessions. Values that
// are themselves maps are still encoded in random order; store structs or
// slices in the session if those should benefit from skipped writes.
// Concrete types stored in the session must be registered with gob.Register,
// as with GobCodec.
type Codec struct{}

var _ scs.Codec = Codec{}

// codecV1 marks Codec's format. Gob encodes an unsigned integer below 128 as
// that byte and a larger one as its negated byte count (0xF8–0xFF), so no gob
// stream — in particular none written by GobCodec — starts with 0xD9.
const codecV1 = 0xD9

type codecRecord struct {
	Deadline time.Time
	Keys     []string
	Vals     []any
}

// ErrCodec is returned by Codec.Decode for bytes it cannot read.
var ErrCodec = errors.New("sessionstore: malformed session encoding")

// Encode writes deadline and values, the values sorted by key.
func (Codec) Encode(deadline time.Time, values map[string]any) ([]byte, error) {
	rec := codecRecord{Deadline: deadline, Keys: make([]string, 0, len(values))}
	for k := range values {
		rec.Keys = append(rec.Keys, k)
	}
	slices.Sort(rec.Keys)
	rec.Vals = make([]any, len(rec.Keys))
	for i, k := range rec.Keys {
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

package sessionstore_test

import (
	"bytes"
	"encoding/gob"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/alexedwards/scs/v2"

	"github.com/dynaguard/dynaguard/sessionstore"
)

func init() { gob.Register(time.Time{}) } // as an application storing times must

func TestCodecIsDeterministic(t *testing.T) {
	values := map[string]any{}
	for i := range 12 {
		values[fmt.Sprintf("k%02d", i)] = i
	}
	values["s"], values["b"], values["t"] = "str", []byte{1, 2}, time.Unix(1700000000, 5).UTC()
	d := time.Unix(1800000000, 0).UTC()
	first, err := sessionstore.Codec{}.Encode(d, values)
	if err != nil {
		t.Fatal(err)
	}
	for range 100 {
		b, _ := sessionstore.Codec{}.Encode(d, values)
		if !bytes.Equal(b, first) {
			t.Fatal("two encodings of the same session differ")
		}
	}
	gd, gv, err := sessionstore.Codec{}.Decode(first)
	if err != nil || !gd.Equal(d) || !reflect.DeepEqual(gv, values) {
		t.Fatalf("round trip: %v %v %v", gd, gv, err)
	}
}

// Sessions written with scs's GobCodec remain readable after switching.
func TestCodecReadsGobCodec(t *testing.T) {
	d := time.Unix(1800000000, 0).UTC()
	values := map[string]any{"user": "u", "n": 3}
	b, err := scs.GobCodec{}.Encode(d, values)
	if err != nil {
		t.Fatal(err)
	}
	gd, gv, err := sessionstore.Codec{}.Decode(b)
	if err != nil || !gd.Equal(d) || !reflect.DeepEqual(gv, values) {
		t.Fatalf("Decode(GobCodec) = %v %v %v", gd, gv, err)
	}
	empty, _ := scs.GobCodec{}.Encode(d, map[string]any{})
	if _, v, err := (sessionstore.Codec{}).Decode(empty); err != nil || v == nil {
		t.Fatalf("empty session: %v %v", v, err)
	}
	if _, v, err := (sessionstore.Codec{}).Decode(must(sessionstore.Codec{}.Encode(d, nil))); err != nil || v == nil {
		t.Fatalf("empty session: %v %v", v, err)
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

func TestCodecRejectsMalformedInput(t *testing.T) {
	for _, b := range [][]byte{{0xD9}, {0xD9, 1, 2, 3}, {1, 2, 3}, nil} {
		if _, _, err := (sessionstore.Codec{}).Decode(b); err == nil {
			t.Errorf("Decode(%x) accepted", b)
		}
	}
	if _, _, err := (sessionstore.Codec{}).Decode([]byte{0xD9, 1, 2}); !errors.Is(err, sessionstore.ErrCodec) {
		t.Errorf("Decode of a damaged Codec record: %v", err)
	}
}

func FuzzCodecDecode(f *testing.F) {
	f.Add(must(sessionstore.Codec{}.Encode(time.Unix(1, 0), map[string]any{"a": 1, "b": "x"})))
	f.Add(must(scs.GobCodec{}.Encode(time.Unix(1, 0), map[string]any{"a": 1})))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, v, err := sessionstore.Codec{}.Decode(b)
		if err == nil && v == nil {
			t.Fatal("nil values without an error")
		}
	})
}

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

// Every value type of the binary form comes back as the same Go type and
// value; the encoding does not depend on map order.
func TestCodecBinaryFormRoundTrip(t *testing.T) {
	d := time.Date(2031, 5, 6, 7, 8, 9, 10, time.FixedZone("CEST", 2*3600))
	values := map[string]any{
		"s": "héllo", "empty": "", "b": []byte{0, 1, 255}, "t": true, "f": false,
		"i": -42, "i32": int32(-7), "i64": int64(1) << 62, "x": 3.25,
		"when": time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC), "": "empty key",
	}
	b, err := sessionstore.Codec{}.Encode(d, values)
	if err != nil {
		t.Fatal(err)
	}
	if b[0] != 0xDA {
		t.Fatalf("format byte %#x, want the binary form", b[0])
	}
	gd, gv, err := sessionstore.Codec{}.Decode(b)
	if err != nil || !gd.Equal(d) {
		t.Fatalf("Decode: %v %v", gd, err)
	}
	if _, off := gd.Zone(); off != 2*3600 {
		t.Errorf("deadline zone offset %d", off)
	}
	for k, want := range values {
		got := gv[k]
		if reflect.TypeOf(got) != reflect.TypeOf(want) {
			t.Errorf("%q: type %T, want %T", k, got, want)
		}
		if wt, ok := want.(time.Time); ok {
			if !wt.Equal(got.(time.Time)) {
				t.Errorf("%q: %v, want %v", k, got, want)
			}
		} else if !reflect.DeepEqual(got, want) {
			t.Errorf("%q: %#v, want %#v", k, got, want)
		}
	}
	if len(gv) != len(values) {
		t.Errorf("%d values, want %d", len(gv), len(values))
	}
	// Decoded []byte values are the session's own copies.
	gv["b"].([]byte)[0] = 9
	if _, again, _ := (sessionstore.Codec{}).Decode(b); again["b"].([]byte)[0] != 0 {
		t.Error("a decoded []byte shares memory with the encoding")
	}
	// Re-encoding what was decoded gives the same bytes (the skip rule
	// compares them).
	gv["b"].([]byte)[0] = 0
	if b2, _ := (sessionstore.Codec{}).Encode(gd, gv); !bytes.Equal(b2, b) {
		t.Error("re-encoding the decoded session gives other bytes")
	}
}

type codecCustom struct{ A int }

func init() { gob.Register(codecCustom{}) }

// A value of any other type makes the whole session use gob, which keeps
// its type.
func TestCodecFallsBackToGob(t *testing.T) {
	d := time.Unix(1800000000, 0).UTC()
	for _, odd := range []any{uint(3), float32(1.5), codecCustom{A: 2}, []string{"a"}} {
		values := map[string]any{"user": "u", "odd": odd}
		b, err := sessionstore.Codec{}.Encode(d, values)
		if err != nil {
			t.Fatalf("%T: %v", odd, err)
		}
		if b[0] != 0xD9 {
			t.Errorf("%T: format byte %#x, want gob's", odd, b[0])
		}
		_, gv, err := sessionstore.Codec{}.Decode(b)
		if err != nil || !reflect.DeepEqual(gv, values) {
			t.Errorf("%T: round trip %#v %v", odd, gv, err)
		}
	}
}

func TestCodecRejectsMalformedBinaryForm(t *testing.T) {
	good := must(sessionstore.Codec{}.Encode(time.Unix(1800000000, 0), map[string]any{"a": "x", "n": 5}))
	bad := [][]byte{
		{0xDA},
		good[:len(good)-1],                   // truncated
		append(append([]byte{}, good...), 0), // trailing byte
	}
	// An unknown value tag.
	tagged := append([]byte{}, good...)
	tagged[len(tagged)-2] = 0x7F
	bad = append(bad, tagged)
	// A count larger than the data can hold.
	huge := []byte{0xDA}
	huge = append(huge, good[1:1+1+good[1]]...)
	huge = append(huge, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F)
	bad = append(bad, huge)
	for _, b := range bad {
		if _, _, err := (sessionstore.Codec{}).Decode(b); !errors.Is(err, sessionstore.ErrCodec) {
			t.Errorf("Decode(%x) = %v, want ErrCodec", b, err)
		}
	}
}

func BenchmarkCodec(b *testing.B) {
	d := time.Now().Add(time.Hour)
	values := map[string]any{"userID": "0f5c2b9e4d7a41c8b3e6f9a2d5c8b1e4", "authAt": time.Now().Unix(), "authHash": "k3Jd9s0aPq1xZ7mN2bV4cX6zL8wE0rT5yU1iO3pA9sD", "theme": "dark"}
	enc := must(sessionstore.Codec{}.Encode(d, values))
	b.Run("Encode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := (sessionstore.Codec{}).Encode(d, values); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Decode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, _, err := (sessionstore.Codec{}).Decode(enc); err != nil {
				b.Fatal(err)
			}
		}
	})
}

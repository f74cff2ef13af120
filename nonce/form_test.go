package nonce

import (
	"mime"
	"testing"
)

// mimeFormType is the decision parseForm made with mime.ParseMediaType.
func mimeFormType(ct string) string {
	mt, _, _ := mime.ParseMediaType(ct)
	if mt == mediaURLEncoded || mt == mediaMultipart {
		return mt
	}
	return ""
}

// formMediaType accepts exactly the Content-Type values mime.ParseMediaType
// takes for the two form types, and refuses the rest.
func TestFormMediaType(t *testing.T) {
	cases := []struct {
		ct, want string
	}{
		{"application/x-www-form-urlencoded", mediaURLEncoded},
		{"application/x-www-form-urlencoded; charset=UTF-8", mediaURLEncoded},
		{"application/x-www-form-urlencoded;charset=utf-8;", mediaURLEncoded},
		{"APPLICATION/X-WWW-FORM-URLENCODED", mediaURLEncoded},
		{"  application/x-www-form-urlencoded\t; charset=UTF-8", mediaURLEncoded},
		{"application/x-www-form-urlencoded; charset", mediaURLEncoded}, // a bad parameter: the type still counts
		{"application/x-www-form-urlencoded; a=1; a=1", mediaURLEncoded},
		{"applİcation/x-www-form-urlencoded", mediaURLEncoded}, // U+0130 lowercases to "i"
		{"multipart/form-data", mediaMultipart},
		{"Multipart/Form-Data; boundary=x", mediaMultipart},
		{`multipart/form-data; boundary="a;b"`, mediaMultipart},
		{"multipart/form-data; boundary=x; charset=utf-8", mediaMultipart},
		{"multipart/form-data\u00a0; boundary=x", mediaMultipart}, // Unicode white space is trimmed too
		{"", ""},
		{";", ""},
		{"text/plain", ""},
		{"application/json; charset=utf-8", ""},
		{"application/x-www-form-urlencoded-x", ""},
		{"application/x-www-form-urlencode", ""},
		{"application /x-www-form-urlencoded", ""},
		{"multipart/mixed; boundary=x", ""},
		{"multipart/form-data; boundary=x; boundary=y", ""}, // duplicate parameter: mime refuses the value
		{"application/x-www-form-urlencoded; a=1; A=2", ""},
		{"multipart/form-datа", ""}, // Cyrillic а
		{"multipart/form-data\xff", ""},
		{"\xffmultipart/form-data", ""},
	}
	for _, c := range cases {
		if got := formMediaType(c.ct); got != c.want {
			t.Errorf("formMediaType(%q) = %q, want %q", c.ct, got, c.want)
		}
		if ref := mimeFormType(c.ct); ref != c.want {
			t.Errorf("test case %q: mime.ParseMediaType says %q", c.ct, ref)
		}
	}
}

// FuzzFormMediaType compares formMediaType with mime.ParseMediaType.
func FuzzFormMediaType(f *testing.F) {
	for _, s := range []string{
		"application/x-www-form-urlencoded; charset=UTF-8", "Multipart/Form-Data; boundary=x",
		"multipart/form-data; a*0=x; a*1=y", "multipart/form-data; a=\"=\"", "applİcation/x-www-form-urlencoded",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, ct string) {
		if got, want := formMediaType(ct), mimeFormType(ct); got != want {
			t.Fatalf("formMediaType(%q) = %q, mime.ParseMediaType gives %q", ct, got, want)
		}
	})
}

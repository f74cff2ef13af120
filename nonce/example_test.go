package nonce_test

import (
	"errors"
	"fmt"
	"html/template"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/nonce"
)

// newManager returns a Manager over a table it never calls in these
// examples (issuing makes no DynamoDB call).
func newManager() *nonce.Manager {
	keys, err := dynaguard.ParseKeyring(strings.Repeat("5e", 32))
	if err != nil {
		log.Fatal(err)
	}
	tbl := dynaguard.NewTable(dynamodb.New(dynamodb.Options{Region: "us-east-1"}), "myapp-auth")
	m, err := nonce.New(nonce.Config{Table: tbl, Keys: keys})
	if err != nil {
		log.Fatal(err)
	}
	return m
}

var transferPage = template.Must(template.New("transfer").Parse(`<form method="post" action="/transfer">
  {{.Nonce}}
  <input name="amount" value="{{.Amount}}">
  <button>Send</button>
</form>`))

// A form protected against double submission: Handler wraps the router so
// pages can issue tokens, Require guards the route that receives the form.
func Example() {
	keys, err := dynaguard.ParseKeyring(os.Getenv("DYNAGUARD_SECRET"))
	if err != nil {
		log.Fatal(err)
	}
	var client *dynamodb.Client // from config.LoadDefaultConfig
	nonces, err := nonce.New(nonce.Config{
		Table: dynaguard.NewTable(client, "myapp-auth"),
		Keys:  keys,
	})
	if err != nil {
		log.Fatal(err)
	}

	mux := http.NewServeMux()
	mux.HandleFunc("GET /transfer", func(w http.ResponseWriter, r *http.Request) {
		field, err := nonce.Field(r, "transfer") // a new token for every rendered form
		if err != nil {
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		_ = transferPage.Execute(w, map[string]any{"Nonce": field})
	})
	mux.Handle("POST /transfer", nonces.Require("transfer")(http.HandlerFunc(
		func(w http.ResponseWriter, r *http.Request) {
			// Runs at most once per rendered form.
			fmt.Fprintf(w, "sent %s", r.PostFormValue("amount"))
		})))

	cop := http.NewCrossOriginProtection()
	log.Fatal(http.ListenAndServe(":8080", cop.Handler(nonces.Handler(mux))))
}

// Field renders the hidden input that carries a new token.
func ExampleField() {
	m := newManager()
	m.Handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		field, err := nonce.Field(r, "transfer")
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println(strings.HasPrefix(string(field), `<input type="hidden" name="nonce" value="`))
	})).ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/transfer", nil))
	// Output: true
}

// For fetch and XHR, put a token where script can read it and send it back
// in the X-Nonce header.
func ExampleToken() {
	page := template.Must(template.New("app").Parse(`<meta name="nonce" content="{{.}}">
<script>
  const token = document.querySelector('meta[name="nonce"]').content;
  fetch("/api/save", {method: "POST", headers: {"X-Nonce": token}, body: JSON.stringify(data)});
</script>`))
	handler := func(w http.ResponseWriter, r *http.Request) {
		tok, err := nonce.Token(r, "save")
		if err != nil {
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		_ = page.Execute(w, tok)
	}
	_ = handler
}

// An ErrorHandler can re-render the form with what the user typed and a new
// token, instead of an error page, when the token expired or the session
// changed; everything else gets the default answer.
func ExampleConfig_errorHandler() {
	var (
		tbl  *dynaguard.Table
		keys *dynaguard.Keyring
	)
	cfg := nonce.Config{
		Table: tbl,
		Keys:  keys,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if !errors.Is(err, nonce.ErrExpired) && !errors.Is(err, nonce.ErrWrongSession) {
				nonce.DefaultErrorHandler(w, r, err)
				return
			}
			field, ferr := nonce.Field(r, "transfer")
			if ferr != nil {
				nonce.DefaultErrorHandler(w, r, err)
				return
			}
			w.WriteHeader(http.StatusUnprocessableEntity)
			_ = transferPage.Execute(w, map[string]any{
				"Nonce":  field,
				"Amount": r.PostForm.Get("amount"), // the form is already parsed
			})
		},
	}
	_ = cfg
}

// Consume lets a handler choose the purpose itself, here one per item.
func ExampleManager_Consume() {
	m := newManager()
	http.HandleFunc("POST /items/{id}/delete", func(w http.ResponseWriter, r *http.Request) {
		if err := m.Consume(w, r, "delete-item:"+r.PathValue("id")); err != nil {
			nonce.DefaultErrorHandler(w, r, err)
			return
		}
		// delete the item
	})
}

// Status and Reason tell what the default error handler answers.
func ExampleStatus() {
	for _, err := range []error{nonce.ErrAlreadyUsed, nonce.ErrExpired, nonce.ErrStorage} {
		fmt.Println(nonce.Status(err), nonce.Reason(err))
	}
	// Output:
	// 409 nonce-used
	// 403 nonce-expired
	// 503 nonce-storage-unavailable
}

package sessionstore_test

import (
	"bytes"
	"context"
	"fmt"
	"html/template"
	"log"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/sessionstore"
)

// Wiring the store into scs. The table is created (or checked) at start-up;
// the store itself makes no call until the first request.
func Example() {
	ctx := context.Background()
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		log.Fatal(err)
	}
	tbl := dynaguard.NewTable(dynamodb.NewFromConfig(cfg), "myapp-auth")
	if err := tbl.Ensure(ctx); err != nil {
		log.Fatal(err)
	}
	keys, err := dynaguard.ParseKeyring(os.Getenv("DYNAGUARD_SECRET"))
	if err != nil {
		log.Fatal(err)
	}
	store, err := sessionstore.New(sessionstore.Config{Table: tbl, Keys: keys})
	if err != nil {
		log.Fatal(err)
	}

	sm := scs.New()
	sm.Store = store
	sm.Codec = sessionstore.Codec{}   // deterministic: lets unchanged sessions skip their write
	sm.IdleTimeout = 30 * time.Minute // sliding expiry, at about one write per minute per session
	sm.Lifetime = 12 * time.Hour      // absolute limit
	sm.Cookie.Secure = true

	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s", sm.GetString(r.Context(), "userID"))
	})
	log.Fatal(http.ListenAndServe(":8080", sm.LoadAndSave(mux)))
}

// A session's ID is a keyed hash of its token: safe to show, log or store,
// useless to someone who wants to use the session.
func ExampleStore_ID() {
	keys, _ := dynaguard.NewKeyring(bytes.Repeat([]byte{0x42}, 32))
	tbl := dynaguard.NewTable(dynamodb.New(dynamodb.Options{Region: "us-east-1"}), "example")
	store, _ := sessionstore.New(sessionstore.Config{Table: tbl, Keys: keys})
	fmt.Println(store.ID("c2Vzc2lvbi10b2tlbi1mcm9tLXRoZS1jb29raWUhISE"))
	// Output: OmfXaGfJM0LCOmgq5B7hmtmSX2sOMS0Sm-qDYHef7To
}

// Logging in: renew the token (against session fixation), bind the new
// session to the user, then store the user in it. The binding is written by
// the commit LoadAndSave makes at the end of the request — no extra write.
func ExampleStore_Bind() {
	var (
		sm    *scs.SessionManager
		store *sessionstore.Store
	)
	login := func(w http.ResponseWriter, r *http.Request, userID string) error {
		ctx := r.Context()
		if err := sm.RenewToken(ctx); err != nil {
			return err
		}
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		info := sessionstore.ClientInfo{UserAgent: r.UserAgent(), IP: host}
		if err := store.Bind(ctx, sm.Token(ctx), userID, info); err != nil {
			return err
		}
		sm.Put(ctx, "userID", userID)
		return nil
	}
	_ = login
}

// A "your sessions" page with "sign out" per session and "sign out
// everywhere else".
func ExampleStore_List() {
	var (
		sm    *scs.SessionManager
		store *sessionstore.Store
	)
	page := template.Must(template.New("").Parse(`{{range .Sessions}}
<form method="post" action="/sessions/revoke"><input type="hidden" name="id" value="{{.ID}}">
{{.UserAgent}} from {{.IP}}, since {{.Created.Format "2 Jan 15:04"}}, last seen {{.LastSeen.Format "15:04"}}
{{if eq .ID $.Current}}(this browser){{else}}<button>Sign out</button>{{end}}</form>{{end}}`))

	mux := http.NewServeMux()
	mux.HandleFunc("GET /sessions", func(w http.ResponseWriter, r *http.Request) {
		userID := sm.GetString(r.Context(), "userID")
		list, err := store.List(r.Context(), userID)
		if err != nil {
			http.Error(w, "try again later", http.StatusServiceUnavailable)
			return
		}
		page.Execute(w, map[string]any{"Sessions": list, "Current": store.ID(sm.Token(r.Context()))})
	})
	mux.HandleFunc("POST /sessions/revoke", func(w http.ResponseWriter, r *http.Request) {
		userID := sm.GetString(r.Context(), "userID")
		err := store.Revoke(r.Context(), userID, r.FormValue("id"))
		if err != nil && err != sessionstore.ErrNotFound {
			http.Error(w, "try again later", http.StatusServiceUnavailable)
			return
		}
		http.Redirect(w, r, "/sessions", http.StatusSeeOther)
	})
	mux.HandleFunc("POST /sessions/revoke-others", func(w http.ResponseWriter, r *http.Request) {
		userID := sm.GetString(r.Context(), "userID")
		if _, err := store.RevokeAll(r.Context(), userID, store.ID(sm.Token(r.Context()))); err != nil {
			http.Error(w, "try again later", http.StatusServiceUnavailable)
			return
		}
		http.Redirect(w, r, "/sessions", http.StatusSeeOther)
	})
}

// Codec encodes the same session to the same bytes, whatever Go's map order.
func ExampleCodec() {
	values := map[string]any{"userID": "u-42", "theme": "dark", "cart": 3}
	deadline := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	a, _ := sessionstore.Codec{}.Encode(deadline, values)
	b, _ := sessionstore.Codec{}.Encode(deadline, values)
	_, decoded, _ := sessionstore.Codec{}.Decode(a)
	fmt.Println(bytes.Equal(a, b), decoded["userID"], len(decoded))
	// Output: true u-42 3
}

package authctx

import (
	"context"
	"testing"
)

func TestRoundTrip(t *testing.T) {
	ctx := context.Background()
	if _, ok := User(ctx); ok {
		t.Fatal("user in empty context")
	}
	if _, ok := Session(ctx); ok {
		t.Fatal("session in empty context")
	}
	name := ""
	ctx = WithSession(WithUser(ctx, "u1"), func() string { return name })
	if id, ok := User(ctx); !ok || id != "u1" {
		t.Fatalf("User = %q %v", id, ok)
	}
	if _, ok := Session(ctx); ok {
		t.Fatal("an unnamed session must not count")
	}
	name = "s1"
	if id, ok := Session(ctx); !ok || id != "s1" {
		t.Fatalf("Session = %q %v", id, ok)
	}
	if _, ok := User(WithUser(context.Background(), "")); ok {
		t.Fatal("empty user ID must not count")
	}
}

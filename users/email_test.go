package users

// changeEmail moves u to email through a pending change: request with the
// password, then confirm with the link sent to the new address.
func (e *env) changeEmail(u *User, email string) *User {
	e.t.Helper()
	if err := e.users.RequestEmailChange(ctx, nil, u, email, pw, Client{IP: ip("192.0.2.240")}); err != nil {
		e.t.Fatalf("RequestEmailChange: %v", err)
	}
	m := e.mail.last(MessageConfirmEmailChange)
	if m.To != email {
		e.t.Fatalf("confirmation sent to %q, want %q", m.To, email)
	}
	got, err := e.users.ConfirmEmailChange(ctx, nil, m.Token, Client{})
	if err != nil {
		e.t.Fatalf("ConfirmEmailChange: %v", err)
	}
	return got
}

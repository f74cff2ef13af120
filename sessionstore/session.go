package sessionstore

import "time"

// ClientInfo describes the client a session was bound from, for display in
// a "your sessions" list. It is informational only: never use it to
// authenticate.
type ClientInfo struct {
	UserAgent string
	IP        string
}

// Session is one active session of a user, as listed by Store.List.
type Session struct {
	// ID names the session without revealing its token: the keyed hash
	// under which it is stored. Pass it to Store.Revoke.
	ID       string
	UserID   string
	Created  time.Time
	LastSeen time.Time // accurate to Config.TouchInterval
	Expires  time.Time
	ClientInfo
}

package app

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// Message is an email the app sends: a password reset link, an email
// verification link, or a notice.
type Message struct {
	To      string    `json:"to"`
	Kind    string    `json:"kind"` // users.MessageKind: "password-reset", "verify-email", "password-changed", ...
	Subject string    `json:"subject"`
	Body    string    `json:"body"`
	Link    string    `json:"link,omitempty"`
	Token   string    `json:"token,omitempty"` // the one-time token in Link
	Sent    time.Time `json:"sent"`
}

// Mailer sends messages. Plug in your email service (SES, SMTP, ...); the
// example ships an in-memory Outbox for development and tests.
type Mailer interface {
	Send(ctx context.Context, m Message) error
}

// Outbox is a Mailer that keeps the messages in memory, newest last. With
// -dev the app shows them at /dev/outbox (JSON) and /dev/mail (a page), so
// the reset and verification links can be followed without a mail server.
// It keeps the last 200 messages. Safe for concurrent use.
type Outbox struct {
	mu   sync.Mutex
	msgs []Message
}

const outboxMax = 200

// Send records m.
func (o *Outbox) Send(_ context.Context, m Message) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if m.Sent.IsZero() {
		m.Sent = time.Now().UTC()
	}
	o.msgs = append(o.msgs, m)
	if len(o.msgs) > outboxMax {
		o.msgs = append([]Message(nil), o.msgs[len(o.msgs)-outboxMax:]...)
	}
	return nil
}

// Messages returns a copy of the recorded messages, oldest first.
func (o *Outbox) Messages() []Message {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]Message{}, o.msgs...)
}

// Last returns the newest message of kind sent to to, if any.
func (o *Outbox) Last(to, kind string) (Message, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for i := len(o.msgs) - 1; i >= 0; i-- {
		if m := o.msgs[i]; m.To == to && m.Kind == kind {
			return m, true
		}
	}
	return Message{}, false
}

// LogMailer is the Mailer of a deployment that has no mail transport
// configured: it logs that a message was due — recipient and kind, never
// the link or token — and drops it. Replace it with a real one.
type LogMailer struct{ Logger *slog.Logger }

// Send logs and drops m.
func (l LogMailer) Send(ctx context.Context, m Message) error {
	log := l.Logger
	if log == nil {
		log = slog.Default()
	}
	log.WarnContext(ctx, "app: no mail transport configured; message dropped", "kind", m.Kind)
	return nil
}

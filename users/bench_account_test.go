package users

import (
	"context"
	"testing"
	"time"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/internal/ddbtest"
	"github.com/dynaguard/dynaguard/internal/totp"
	"github.com/dynaguard/dynaguard/sessionstore"
)

// BenchmarkTOTPVerify is the second-factor check of CompleteLogin (throttle
// counters, account, unsealing, code match, the step's conditional write)
// over the stub API: this package's CPU and allocations, without the
// network.
func BenchmarkTOTPVerify(b *testing.B) {
	s, u := stubUsers(b, cheapArgon2, nil)
	api := stubOf(s)
	secret, _ := totp.NewSecret()
	sealed, err := s.sealSecret(u.ID, stateActive, secret)
	if err != nil {
		b.Fatal(err)
	}
	u.TOTPEnabled, u.totpSealed, u.totpStep = true, sealed, -1
	api.user = encodeUser(u)
	hash := authHash(s.keys.Key(dynaguard.PurposeSessionAuth), u)
	code := totp.Code(secret, totp.Step(time.Now(), totpParams), totpParams)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.secondFactor(context.Background(), u.ID, hash, code, ip("192.0.2.1")); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkResetPassword is a reset confirmation over the stub API: token
// and account reads, policy check, hashing (cheap argon2id, and the OWASP
// default), consume, update.
func BenchmarkResetPassword(b *testing.B) {
	for _, c := range []struct {
		name string
		h    Hasher
	}{{"argon2id-cheap", cheapArgon2}, {"argon2id-owasp", DefaultArgon2id}} {
		b.Run(c.name, func(b *testing.B) {
			s, u := stubUsers(b, c.h, nil)
			api := stubOf(s)
			token, pk := newToken()
			// The item as RequestReset writes it.
			api.token = s.st.tokenPut(pk, tokenRecord{uid: u.ID, purpose: purposeReset, email: u.Email, emailKey: u.emailKey,
				cv: u.credVersion, ver: u.version}, time.Now(), time.Now().Add(time.Hour)).Put.Item
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.ResetPassword(context.Background(), token, newPassword); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// accountBenchEnv is benchEnv with a fake clock and generous issuing limits.
func accountBenchEnv(b *testing.B) (*Users, *User, *ddbtest.Clock, *mailbox) {
	if ddbtest.Endpoint() == "" {
		b.Skip("set DYNAMODB_ENDPOINT to run the DynamoDB Local benchmarks")
	}
	tbl := ddbtest.NewTable(b)
	keys := keyring(b, secretA)
	store, err := sessionstore.New(sessionstore.Config{Table: tbl, Keys: keys, Logger: quietLogger()})
	if err != nil {
		b.Fatal(err)
	}
	clock := ddbtest.NewClock(time.Now().Truncate(time.Second))
	mail := &mailbox{}
	s, err := New(Config{Table: tbl, Keys: keys, Sessions: store, Hasher: cheapArgon2, Logger: quietLogger(), Clock: clock,
		Mailer: mail, Tokens: TokenConfig{PerAccount: 1 << 30, PerIP: 1 << 30}})
	if err != nil {
		b.Fatal(err)
	}
	u, err := s.Create(context.Background(), NewUser{Email: "bench@example.com", Username: "bench", Password: goodPassword})
	if err != nil {
		b.Fatal(err)
	}
	return s, u, clock, mail
}

// BenchmarkTOTPVerifyDynamoDB is the second-factor check end to end on
// DynamoDB Local: BatchGetItem, three conditional UpdateItems, DeleteItem.
// The fake clock moves one step per iteration, so every code is fresh.
func BenchmarkTOTPVerifyDynamoDB(b *testing.B) {
	s, u, clock, _ := accountBenchEnv(b)
	en, err := s.BeginTOTP(context.Background(), nil, u, Proof{Password: goodPassword}, Client{IP: ip("192.0.2.1")})
	if err != nil {
		b.Fatal(err)
	}
	secret, _ := totp.DecodeSecret(en.Secret)
	if _, err := s.ConfirmTOTP(context.Background(), nil, u, Proof{Password: goodPassword}, totp.Code(secret, totp.Step(clock.Now(), totpParams), totpParams), Client{IP: ip("192.0.2.1")}); err != nil {
		b.Fatal(err)
	}
	u, _ = s.Get(context.Background(), u.ID)
	hash := authHash(s.keys.Key(dynaguard.PurposeSessionAuth), u)
	b.ReportAllocs()
	for b.Loop() {
		clock.Advance(30 * time.Second)
		code := totp.Code(secret, totp.Step(clock.Now(), totpParams), totpParams)
		if _, err := s.secondFactor(context.Background(), u.ID, hash, code, ip("192.0.2.1")); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkResetPasswordDynamoDB is a reset confirmation end to end on
// DynamoDB Local (cheap argon2id); each token is requested outside the
// timed part.
func BenchmarkResetPasswordDynamoDB(b *testing.B) {
	s, _, _, mail := accountBenchEnv(b)
	b.ReportAllocs()
	for b.Loop() {
		b.StopTimer()
		if err := s.RequestReset(context.Background(), "bench@example.com", ip("192.0.2.1")); err != nil {
			b.Fatal(err)
		}
		token := mail.last(MessagePasswordReset).Token
		b.StartTimer()
		if _, err := s.ResetPassword(context.Background(), token, newPassword); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRequestResetDynamoDB is a reset request end to end on DynamoDB
// Local, for an address with an account and one without.
func BenchmarkRequestResetDynamoDB(b *testing.B) {
	s, _, _, _ := accountBenchEnv(b)
	for _, email := range []string{"bench@example.com", "nobody@example.com"} {
		b.Run(email, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := s.RequestReset(context.Background(), email, ip("192.0.2.1")); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

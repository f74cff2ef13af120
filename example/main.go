// Command example serves dynaguard's example app (package example/app).
//
//	make run                                  # DynamoDB Local + this, with -dev
//	go run ./example -dev                     # against AWS_ENDPOINT_URL_DYNAMODB
//	DYNAGUARD_SECRET=<hex> go run ./example -addr :8080 -table myapp
//
// Flags: -addr (default 127.0.0.1:8080), -table (default dynaguard; created
// when missing), -dev (DynamoDB Local credentials, a generated secret when
// DYNAGUARD_SECRET is unset, cookies over plain HTTP, the dev outbox and
// the Security page), -metrics (an address such as 127.0.0.1:9464: serve
// dynaguard's OpenTelemetry metrics there for Prometheus at /metrics; off
// by default).
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/dynaguard/dynaguard"
	"github.com/dynaguard/dynaguard/example/app"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "listen address")
	table := flag.String("table", "dynaguard", "DynamoDB table name (created when missing)")
	dev := flag.Bool("dev", false, "development mode: DynamoDB Local credentials, generated secret, cookies over plain HTTP, dev outbox")
	baseURL := flag.String("base-url", "", "absolute origin for links in emails, e.g. https://app.example.com (default in -dev: http://<addr>)")
	metrics := flag.String("metrics", "", "serve Prometheus metrics at http://<this address>/metrics, e.g. 127.0.0.1:9464 (default: off)")
	flag.Parse()

	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	slog.SetDefault(log)
	if *metrics != "" {
		stop, err := serveMetrics(log, *metrics)
		if err != nil {
			log.Error("example: metrics: " + err.Error())
			os.Exit(1)
		}
		defer stop()
	}
	if err := run(log, *addr, *table, *baseURL, *dev); err != nil {
		log.Error("example: " + err.Error())
		os.Exit(1)
	}
}

func run(log *slog.Logger, addr, table, baseURL string, dev bool) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	keys, err := secrets(log, dev)
	if err != nil {
		return err
	}

	// The standard SDK configuration: credentials, region and
	// AWS_ENDPOINT_URL_DYNAMODB (which make run sets to DynamoDB Local).
	// DynamoDB Local accepts any credentials, so -dev supplies fixed ones.
	var opts []func(*config.LoadOptions) error
	if dev {
		opts = append(opts, config.WithRegion("us-east-1"),
			config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("dynaguard", "dynaguard", "")))
	}
	setupCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cfg, err := config.LoadDefaultConfig(setupCtx, opts...)
	if err != nil {
		return fmt.Errorf("load AWS configuration: %w", err)
	}
	var ddbOpts []func(*dynamodb.Options)
	if dev {
		// DynamoDB Local sends error responses (a failed condition — an
		// already used nonce, say) without the CRC32 header that AWS sends,
		// and the SDK warns about each one.
		ddbOpts = append(ddbOpts, func(o *dynamodb.Options) { o.DisableValidateResponseChecksum = true })
	}
	// NewClient bounds every attempt, retries within the SDK's retry quota
	// and fails fast while DynamoDB is down (see the README's "Client and
	// budget"); its defaults fit the stack's 3 s budget.
	tbl := dynaguard.NewTable(dynaguard.NewClient(cfg, dynaguard.ClientConfig{}, ddbOpts...), table)
	if err := tbl.Ensure(setupCtx); err != nil {
		return fmt.Errorf("table %s: %w", table, err)
	}
	cancel()

	acfg := app.Config{Table: tbl, Keys: keys, Dev: dev, BaseURL: baseURL, Logger: log}
	if dev {
		if acfg.BaseURL == "" {
			acfg.BaseURL = "http://" + addr
		}
	} else {
		acfg.Mailer = app.LogMailer{Logger: log} // replace with your email service
	}
	handler, err := app.New(acfg)
	if err != nil {
		return err
	}

	srv := &http.Server{
		Addr:              addr,
		Handler:           handler,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       15 * time.Second,
		// Far above the request budget (3 s; 503 once it is spent), so an
		// answer is always written rather than the connection closed; well
		// below sessionstore's TombstoneTTL (1 h).
		WriteTimeout:   30 * time.Second,
		IdleTimeout:    120 * time.Second,
		MaxHeaderBytes: 64 << 10,
		ErrorLog:       slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	log.Info("example: listening", "url", "http://"+ln.Addr().String(), "table", table, "dev", dev)

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("example: shutting down")
	shutCtx, cancelShut := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancelShut()
	if err := srv.Shutdown(shutCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// secrets reads DYNAGUARD_SECRET: hex secrets of at least 32 bytes, the
// current one first, previous ones after commas while rotating. With -dev
// and no secret, it makes a random one — sessions and forms then do not
// survive a restart, which it says.
func secrets(log *slog.Logger, dev bool) (*dynaguard.Keyring, error) {
	s := os.Getenv("DYNAGUARD_SECRET")
	if s == "" {
		if !dev {
			return nil, errors.New("DYNAGUARD_SECRET is not set: give it at least 32 random bytes in hex " +
				"(make one with `go run ./cmd/dynaguard secret` or `openssl rand -hex 32`), or run with -dev")
		}
		var b [32]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, err
		}
		s = hex.EncodeToString(b[:])
		log.Warn("example: DYNAGUARD_SECRET is not set; generated a random secret for this run. " +
			"Sessions, forms and links will not survive a restart; set DYNAGUARD_SECRET to keep them.")
	}
	keys, err := dynaguard.ParseKeyring(s)
	if err != nil {
		return nil, fmt.Errorf("DYNAGUARD_SECRET: %w", err)
	}
	return keys, nil
}

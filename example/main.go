// Command example is the dynaguard example app. Until the full app lands it
// only creates (or checks) its table and serves a status page.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/dynaguard/dynaguard"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "listen address")
	table := flag.String("table", "dynaguard", "DynamoDB table name (created when missing)")
	dev := flag.Bool("dev", false, "development mode: DynamoDB Local credentials, generated secret, cookies over plain HTTP")
	flag.Parse()

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var opts []func(*config.LoadOptions) error
	if *dev {
		opts = append(opts, config.WithRegion("us-east-1"),
			config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("dynaguard", "dynaguard", "")))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		slog.Error("load AWS configuration", "err", err)
		os.Exit(1)
	}
	tbl := dynaguard.NewTable(dynamodb.NewFromConfig(cfg), *table)
	if err := tbl.Ensure(ctx); err != nil {
		slog.Error("table", "err", err)
		os.Exit(1)
	}
	http.HandleFunc("GET /", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "dynaguard example: table %s is ready\n", *table)
	})
	slog.Info("listening", "addr", "http://"+*addr, "table", *table)
	if err := http.ListenAndServe(*addr, nil); err != nil {
		slog.Error("serve", "err", err)
		os.Exit(1)
	}
}

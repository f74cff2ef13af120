package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.opentelemetry.io/otel"
	otelprom "go.opentelemetry.io/otel/exporters/prometheus"
	sdkmetric "go.opentelemetry.io/otel/sdk/metric"
)

// serveMetrics installs an OpenTelemetry MeterProvider that exports to
// Prometheus, and serves it at http://addr/metrics on a listener of its
// own: scrape endpoints belong on an internal port, never beside the
// public routes. dynaguard itself only uses the OpenTelemetry API (the
// global provider set here); the SDK and the exporter are this
// application's choice. It returns a function that stops the listener.
func serveMetrics(log *slog.Logger, addr string) (stop func(), err error) {
	mux, mp, err := metricsMux()
	if err != nil {
		return nil, err
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second, WriteTimeout: 10 * time.Second}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	log.Info("example: metrics", "url", "http://"+ln.Addr().String()+"/metrics")
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("example: metrics listener", "err", err)
		}
	}()
	return func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		_ = mp.Shutdown(ctx)
	}, nil
}

// metricsMux installs the global MeterProvider, exporting to a Prometheus
// registry of its own, and returns the handler that serves it.
func metricsMux() (*http.ServeMux, *sdkmetric.MeterProvider, error) {
	reg := prometheus.NewRegistry()
	exp, err := otelprom.New(otelprom.WithRegisterer(reg))
	if err != nil {
		return nil, nil, err
	}
	mp := sdkmetric.NewMeterProvider(sdkmetric.WithReader(exp))
	otel.SetMeterProvider(mp)
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Timeout: 5 * time.Second}))
	return mux, mp, nil
}

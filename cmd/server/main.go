// Command server runs the tollgate gateway.
//
//	go run ./cmd/server [-config tollgate.yaml] [-listen 127.0.0.1:8080] [-data ./data]
//
// Without a config file it serves the simulated models (sim-small, sim-large,
// sim-embed) and every provider whose key variable is set; see
// tollgate.example.yaml for every setting.
//
// SIGINT and SIGTERM shut the gateway down gracefully (drain_timeout);
// SIGHUP reloads the configuration file (reload.go): a valid file is
// applied without dropping a request in flight, an invalid one is refused
// and the running configuration kept.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	reload := make(chan struct{}, 1)
	go func() {
		for range hup {
			select {
			case reload <- struct{}{}:
			default: // one pending request stands for several signals
			}
		}
	}()
	if err := run(withReloadRequests(ctx, reload), os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "tollgate:", err)
		os.Exit(1)
	}
}

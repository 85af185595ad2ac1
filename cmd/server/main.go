// Command server runs the tollgate gateway.
//
//	go run ./cmd/server [-config tollgate.yaml] [-listen 127.0.0.1:8080] [-data ./data]
//
// Without a config file it serves the simulated models (sim-small, sim-large,
// sim-embed) and every provider whose key variable is set; see
// tollgate.example.yaml for every setting.
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
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "tollgate:", err)
		os.Exit(1)
	}
}

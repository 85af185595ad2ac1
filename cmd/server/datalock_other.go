//go:build !(linux || darwin || freebsd || openbsd || netbsd || dragonfly)

package main

import (
	"errors"
	"os"
)

// tryLock refuses to start where flock is not available, rather than let
// two gateways share a data directory unnoticed.
func tryLock(*os.File) error {
	return errors.New("locking the data directory is not supported on this platform")
}

package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
)

// lockFile is the data directory's lock, taken before its database is
// opened and held while the process lives. It holds the holder's pid.
const lockFile = "tollgate.lock"

// errLocked says another process holds the data directory.
var errLocked = errors.New("locked")

// lockDataDir takes the advisory lock of dir (creating dir if needed): one
// gateway process per data directory, since each enforces budgets and
// rate limits from its own memory and two would each spend the whole
// limit. The lock goes with the process, however it ends; release gives it
// back earlier.
func lockDataDir(dir string) (release func(), err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	path := filepath.Join(dir, lockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("data directory lock: %w", err)
	}
	if err := tryLock(f); err != nil {
		f.Close()
		if !errors.Is(err, errLocked) {
			return nil, fmt.Errorf("data directory lock %s: %w", path, err)
		}
		holder := "unknown"
		if b, err := os.ReadFile(path); err == nil {
			if pid, err := strconv.Atoi(string(bytes.TrimSpace(b))); err == nil {
				holder = strconv.Itoa(pid)
			}
		}
		return nil, fmt.Errorf("data directory %s is in use by another tollgate process (pid %s holds %s): run one process per data directory, or give this one another -data", dir, holder, path)
	}
	// The file is never removed: a process opening it while it is unlinked
	// would lock a file nobody else sees.
	if err := f.Truncate(0); err == nil {
		_, err = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("data directory lock %s: %w", path, err)
	}
	return func() {
		_ = f.Truncate(0) // no stale pid for the next reader
		f.Close()         // closing the last descriptor releases the lock
	}, nil
}

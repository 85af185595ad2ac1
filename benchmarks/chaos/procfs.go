package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"time"
)

// memStatus is what /proc/<pid>/status says of a process's resident
// memory, in bytes: RSS now and HWM, its peak since the process started.
type memStatus struct {
	RSS, HWM int64
}

func readMem(pid int) (memStatus, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return memStatus{}, err
	}
	m, err := parseMemStatus(b)
	if err != nil {
		return memStatus{}, fmt.Errorf("/proc/%d/status: %w", pid, err)
	}
	return m, nil
}

// parseMemStatus reads the VmRSS and VmHWM lines ("VmHWM:	  123456 kB").
func parseMemStatus(b []byte) (memStatus, error) {
	var m memStatus
	var seen int
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		name, rest, ok := bytes.Cut(sc.Bytes(), []byte(":"))
		if !ok {
			continue
		}
		var dst *int64
		switch string(name) {
		case "VmRSS":
			dst = &m.RSS
		case "VmHWM":
			dst = &m.HWM
		default:
			continue
		}
		f := bytes.Fields(rest)
		if len(f) != 2 || string(f[1]) != "kB" {
			return memStatus{}, fmt.Errorf("unexpected %s line %q", name, sc.Bytes())
		}
		kb, err := strconv.ParseInt(string(f[0]), 10, 64)
		if err != nil {
			return memStatus{}, fmt.Errorf("unexpected %s line %q", name, sc.Bytes())
		}
		*dst = kb << 10
		seen++
	}
	if seen != 2 {
		return memStatus{}, fmt.Errorf("no VmRSS and VmHWM lines (a kernel thread, or not Linux)")
	}
	return m, nil
}

// memWatch samples a process's memory until it exits, so that its peak is
// known even when it dies before it can be asked (an OOM kill). VmHWM is
// the kernel's own peak, so samples cannot miss a spike between them.
type memWatch struct {
	mu   sync.Mutex
	peak int64
	err  error // the last read's failure, once the process is gone
	stop chan struct{}
	done chan struct{}
}

func watchMem(pid int, every time.Duration) *memWatch {
	w := &memWatch{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			w.sample(pid)
			select {
			case <-t.C:
			case <-w.stop:
				return
			}
		}
	}()
	return w
}

func (w *memWatch) sample(pid int) {
	m, err := readMem(pid)
	w.mu.Lock()
	defer w.mu.Unlock()
	if err != nil {
		w.err = err
		return
	}
	w.peak = max(w.peak, m.HWM)
}

// Peak is the highest VmHWM seen so far (0 if none could be read).
func (w *memWatch) Peak() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.peak
}

// Stop ends the sampling; pid's last sample is taken first when it is
// still alive.
func (w *memWatch) Stop(pid int) {
	w.sample(pid)
	select {
	case <-w.stop:
	default:
		close(w.stop)
	}
	<-w.done
}

// cpuTicks is the CPU time (user + system, all threads) a process has
// used, from /proc/<pid>/stat, in clock ticks (USER_HZ, 100 a second on
// every architecture Go supports).
func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	return parseCPUTicks(b)
}

func parseCPUTicks(b []byte) (int64, error) {
	// The command name (field 2) is in parentheses and may hold spaces:
	// fields are counted from the last ')'. f[0] is field 3 (state);
	// utime and stime are fields 14 and 15.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("unexpected /proc stat %q", b)
	}
	f := bytes.Fields(b[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("unexpected /proc stat %q", b)
	}
	ut, err1 := strconv.ParseInt(string(f[11]), 10, 64)
	st, err2 := strconv.ParseInt(string(f[12]), 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("unexpected /proc stat %q", b)
	}
	return ut + st, nil
}

// clockTick is the unit of cpuTicks.
const clockTick = 10 * time.Millisecond

// waitIdle waits until pid has used at most maxShare of one core over
// window, or limit passes; it returns when the process went idle.
func waitIdle(ctx context.Context, pid int, window time.Duration, maxShare float64, limit time.Duration) (time.Time, error) {
	const step = 100 * time.Millisecond
	n := int(window / step)
	var ticks []int64
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		t, err := cpuTicks(pid)
		if err != nil {
			return time.Time{}, err
		}
		ticks = append(ticks, t)
		if len(ticks) > n+1 {
			ticks = ticks[1:]
		}
		if len(ticks) == n+1 {
			used := time.Duration(ticks[n]-ticks[0]) * clockTick
			if float64(used) <= maxShare*float64(window) {
				return time.Now(), nil
			}
		}
		select {
		case <-ctx.Done():
			return time.Time{}, ctx.Err()
		case <-time.After(step):
		}
	}
	return time.Time{}, errGaveUp
}

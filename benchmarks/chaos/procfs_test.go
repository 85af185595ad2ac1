package main

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"
)

func TestParseMemStatus(t *testing.T) {
	const status = "Name:\ttollgate\nVmPeak:\t 1300000 kB\nVmHWM:\t  204800 kB\nVmRSS:\t  102400 kB\nThreads:\t12\n"
	for _, tc := range []struct {
		name    string
		in      string
		want    memStatus
		wantErr string
	}{
		{"both lines", status, memStatus{RSS: 100 << 20, HWM: 200 << 20}, ""},
		{"kernel thread: no Vm lines", "Name:\tkthreadd\nThreads:\t1\n", memStatus{}, "no VmRSS and VmHWM"},
		{"only one line", "VmRSS:\t 10 kB\n", memStatus{}, "no VmRSS and VmHWM"},
		{"unit other than kB", "VmHWM:\t 10 MB\nVmRSS:\t 10 kB\n", memStatus{}, "unexpected VmHWM line"},
		{"not a number", "VmHWM:\t ten kB\nVmRSS:\t 10 kB\n", memStatus{}, "unexpected VmHWM line"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseMemStatus([]byte(tc.in))
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
}

// TestReadMemOwnProcess reads this test's own /proc entry: a live process
// has a resident set, and its peak is at least what it holds now.
func TestReadMemOwnProcess(t *testing.T) {
	m, err := readMem(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if m.RSS <= 0 || m.HWM < m.RSS {
		t.Fatalf("implausible %+v", m)
	}
	if _, err := readMem(-1); err == nil {
		t.Fatal("no error for a pid that cannot exist")
	}
}

func TestMemWatchKeepsThePeak(t *testing.T) {
	w := watchMem(os.Getpid(), 1<<40) // one sample at the start, one at Stop
	w.Stop(os.Getpid())
	m, err := readMem(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if p := w.Peak(); p <= 0 || p > m.HWM {
		t.Fatalf("peak %d, process HWM now %d", p, m.HWM)
	}
	w.Stop(os.Getpid()) // a second Stop is harmless
}

func TestParseCPUTicks(t *testing.T) {
	for _, tc := range []struct {
		name    string
		in      string
		want    int64
		wantErr bool
	}{
		{"plain", "42 (tollgate) S 1 42 42 0 -1 4194560 1 0 0 0 120 35 0 0 20 0 12 0", 155, false},
		{"a name with spaces and parentheses", "42 (a b) c) R 1 42 42 0 -1 4194560 1 0 0 0 7 3 0 0 20 0 1 0", 10, false},
		{"too short", "42 (x) S 1 2", 0, true},
		{"no name", "42 x S", 0, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseCPUTicks([]byte(tc.in))
			if (err != nil) != tc.wantErr || got != tc.want {
				t.Fatalf("got %d, %v; want %d (error %v)", got, err, tc.want, tc.wantErr)
			}
		})
	}
}

// TestWaitIdle: this test process, sleeping in waitIdle, is idle; a pid
// that does not exist is an error, not an idle process.
func TestWaitIdle(t *testing.T) {
	if _, err := waitIdle(context.Background(), os.Getpid(), 200*time.Millisecond, 0.9, time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := waitIdle(context.Background(), -1, 200*time.Millisecond, 0.9, time.Minute); err == nil {
		t.Fatal("no error for a missing process")
	}
}

// Package procstat reads a process's CPU time and memory from Linux /proc:
// utime+stime from /proc/<pid>/stat and VmRSS/VmHWM from /proc/<pid>/status.
// The benchmark uses them to report CPU per request and memory per stream,
// figures that survive a noisy machine better than wall-clock throughput.
package procstat

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"time"
)

// ClockTick is the unit of utime and stime (USER_HZ). It is 100 on every
// Linux architecture Go supports; /proc reports it in these units whatever
// the kernel's internal tick rate.
const ClockTick = 10 * time.Millisecond

// CPU returns the CPU time (user + system, all threads) the process pid has
// used so far.
func CPU(pid int) (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, fmt.Errorf("read cpu of %d: %w", pid, err)
	}
	u, s, err := ParseStat(data)
	if err != nil {
		return 0, fmt.Errorf("read cpu of %d: %w", pid, err)
	}
	return time.Duration(u+s) * ClockTick, nil
}

// ParseStat returns utime and stime (in clock ticks) of a /proc/<pid>/stat
// line. The command name (field 2) may contain spaces and parentheses, so
// fields are counted from the last ')'.
func ParseStat(data []byte) (utime, stime uint64, err error) {
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return 0, 0, errors.New("stat: no command name")
	}
	f := bytes.Fields(data[i+1:])
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, 0, fmt.Errorf("stat: %d fields after the command name, want at least 13", len(f))
	}
	if utime, err = strconv.ParseUint(string(f[11]), 10, 64); err != nil {
		return 0, 0, fmt.Errorf("stat: utime: %w", err)
	}
	if stime, err = strconv.ParseUint(string(f[12]), 10, 64); err != nil {
		return 0, 0, fmt.Errorf("stat: stime: %w", err)
	}
	return utime, stime, nil
}

// Mem is a process's resident memory in bytes.
type Mem struct {
	RSS int64 // VmRSS: resident now
	HWM int64 // VmHWM: peak resident since start
}

// Memory returns the resident memory of pid.
func Memory(pid int) (Mem, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return Mem{}, fmt.Errorf("read memory of %d: %w", pid, err)
	}
	m, err := ParseStatus(data)
	if err != nil {
		return Mem{}, fmt.Errorf("read memory of %d: %w", pid, err)
	}
	return m, nil
}

// ParseStatus extracts VmRSS and VmHWM from /proc/<pid>/status.
func ParseStatus(data []byte) (Mem, error) {
	var m Mem
	var haveRSS, haveHWM bool
	for line := range bytes.Lines(data) {
		key, rest, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		var dst *int64
		switch string(key) {
		case "VmRSS":
			dst, haveRSS = &m.RSS, true
		case "VmHWM":
			dst, haveHWM = &m.HWM, true
		default:
			continue
		}
		f := bytes.Fields(rest)
		if len(f) != 2 || string(f[1]) != "kB" {
			return Mem{}, fmt.Errorf("status: %s: unexpected value %q", key, bytes.TrimSpace(rest))
		}
		kb, err := strconv.ParseInt(string(f[0]), 10, 64)
		if err != nil {
			return Mem{}, fmt.Errorf("status: %s: %w", key, err)
		}
		*dst = kb << 10
	}
	if !haveRSS || !haveHWM {
		return Mem{}, errors.New("status: VmRSS or VmHWM missing (kernel thread or exited process?)")
	}
	return m, nil
}

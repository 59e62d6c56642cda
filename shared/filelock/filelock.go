// Package filelock takes exclusive, non-blocking locks on files (flock):
// how a process claims a slot (an outbox file, a stable consumer name) that
// the kernel frees as soon as the process dies.
package filelock

import "errors"

// ErrUnsupported is TryLock's error where the system has no flock.
var ErrUnsupported = errors.New("filelock: no flock on this system")

//go:build !unix

package events

import "os"

// tryLock does not lock where flock is missing: one process per outbox
// directory.
func tryLock(*os.File) (bool, error) { return true, nil }

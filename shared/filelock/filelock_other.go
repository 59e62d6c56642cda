//go:build !unix

package filelock

import "os"

// TryLock cannot lock where flock is missing: it returns ErrUnsupported.
func TryLock(*os.File) (bool, error) { return false, ErrUnsupported }

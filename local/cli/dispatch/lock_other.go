//go:build !unix

package dispatch

import (
	"errors"
	"os"
)

// tryLock cannot lock where flock is missing: the default consumer name
// falls back to the process id.
func tryLock(*os.File) (bool, error) { return false, errors.New("no flock on this system") }

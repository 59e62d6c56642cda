package dispatch

import (
	"fmt"
	"hash/fnv"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/llm-proxy/llm-proxy/shared/filelock"
)

// maxSlots bounds the default names one host hands out per stream and group.
const maxSlots = 256

// consumerName is the consumer's name in its group: configured (the
// --consumer flag or REDIS_CONSUMER_NAME), else
// dispatcher-<service>-<hostname>-<n>, n being the lowest slot that no other
// running dispatcher of this stream and group holds on this host.
//
// A slot is an exclusive lock (flock) on a file in the temporary directory,
// which the kernel releases when its process dies, however it dies. So a
// dispatcher started again on the same host (or in the same pod: the
// hostname is the pod's) comes back under the name it had and takes back at
// once the events and dedup leases its former run left, while two running
// on one host still get different names. Where no lock file can be made,
// the name ends in the process id instead: unique, but stable only where
// the id is (a container's first process). release frees the slot.
func consumerName(configured string, ev streamGroup, service string, log *slog.Logger) (name string, release func()) {
	if configured != "" {
		return configured, func() {}
	}
	host, _ := os.Hostname()
	h := fnv.New64a()
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s", ev.keyPrefix, ev.stream, ev.group, service)
	for n := range maxSlots {
		path := filepath.Join(os.TempDir(), fmt.Sprintf("llm-proxy-dispatch-%016x-%d.lock", h.Sum64(), n))
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			log.Warn("no lock file for a stable consumer name: the name ends in the process id; set REDIS_CONSUMER_NAME", "error", err)
			break
		}
		ok, err := filelock.TryLock(f)
		if ok {
			return fmt.Sprintf("dispatcher-%s-%s-%d", service, host, n), func() { f.Close() }
		}
		f.Close()
		if err != nil {
			log.Warn("cannot lock a consumer name slot: the name ends in the process id; set REDIS_CONSUMER_NAME", "error", err)
			break
		}
	}
	return fmt.Sprintf("dispatcher-%s-%s-pid%d", service, host, os.Getpid()), func() {}
}

// streamGroup is what a consumer name is unique within.
type streamGroup struct{ keyPrefix, stream, group string }

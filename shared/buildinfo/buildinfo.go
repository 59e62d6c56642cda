// Package buildinfo reports the version and commit of the running binary.
// Both are set at link time by the Makefile and the Dockerfile:
//
//	-ldflags "-X github.com/llm-proxy/llm-proxy/shared/buildinfo.version=v1.2.3
//	          -X github.com/llm-proxy/llm-proxy/shared/buildinfo.commit=abc123"
package buildinfo

import "runtime/debug"

var (
	version = "dev"
	commit  = ""
)

// Version is the release version ("dev" for local builds).
func Version() string { return version }

// Commit is the VCS revision the binary was built from, or "unknown".
func Commit() string {
	if commit != "" {
		return commit
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" {
				return s.Value
			}
		}
	}
	return "unknown"
}

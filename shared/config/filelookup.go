package config

import (
	"os"
	"strings"

	"github.com/sethvargo/go-envconfig"
)

// WithFileFallback lets every variable NAME be given as NAME_FILE, the path of
// a file holding the value (trailing newlines trimmed). This is how OpenFaaS
// and Docker secrets arrive (/var/openfaas/secrets/<name>). NAME wins when
// both are set. An unreadable NAME_FILE counts as unset here; Load reports it.
func WithFileFallback(l envconfig.Lookuper) envconfig.Lookuper {
	return envconfig.LookuperFunc(func(key string) (string, bool) {
		if v, ok := l.Lookup(key); ok {
			return v, true
		}
		path, ok := l.Lookup(key + "_FILE")
		if !ok || path == "" {
			return "", false
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return "", false
		}
		return strings.TrimRight(string(b), "\r\n"), true
	})
}

// unreadableSecretFiles returns the NAME_FILE variables that point at files
// that cannot be read, so Load can fail loudly instead of running without a
// secret.
func unreadableSecretFiles(l envconfig.Lookuper) []string {
	var bad []string
	for _, v := range Variables() {
		path, ok := l.Lookup(v.Name + "_FILE")
		if !ok || path == "" {
			continue
		}
		if _, err := os.Stat(path); err != nil {
			bad = append(bad, v.Name+"_FILE="+path)
		}
	}
	return bad
}

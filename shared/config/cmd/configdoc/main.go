// Command configdoc rewrites the configuration table in the README from the
// config structs (between the config:begin and config:end markers).
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/llm-proxy/llm-proxy/shared/config"
)

func main() {
	readme := flag.String("readme", "README.md", "file to update")
	flag.Parse()
	if err := run(*readme); err != nil {
		fmt.Fprintln(os.Stderr, "configdoc:", err)
		os.Exit(1)
	}
}

func run(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	out, err := config.ReplaceTable(string(b))
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return os.WriteFile(path, []byte(out), 0o644)
}

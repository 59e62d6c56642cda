// Command chartdoc rewrites the values table of the chart's README from the
// comments in its values.yaml. Run it from the knative directory:
//
//	go run ./cmd/chartdoc
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/llm-proxy/llm-proxy/knative/internal/chartdoc"
)

func main() {
	chart := flag.String("chart", "chart", "chart directory")
	flag.Parse()
	if err := run(*chart); err != nil {
		fmt.Fprintln(os.Stderr, "chartdoc:", err)
		os.Exit(1)
	}
}

func run(dir string) error {
	values, err := os.ReadFile(filepath.Join(dir, "values.yaml"))
	if err != nil {
		return err
	}
	path := filepath.Join(dir, "README.md")
	readme, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	out, err := chartdoc.Replace(string(readme), values)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return os.WriteFile(path, []byte(out), 0o644)
}

package chartdoc

import (
	"strings"
	"testing"
)

func TestRows(t *testing.T) {
	rows, err := Rows([]byte(`# File header, not a description.

# -- The mode.
mode: knative
# A section comment.
server:
  image:
    # -- Image repository,
    # on two lines.
    repository: ghcr.io/x
  # -- Resources, as one row.
  resources:
    requests: {cpu: 100m}
# -- Extra env.
extraEnv: []
`))
	if err != nil {
		t.Fatal(err)
	}
	want := []Row{
		{"mode", `"knative"`, "The mode."},
		{"server.image.repository", `"ghcr.io/x"`, "Image repository, on two lines."},
		{"server.resources", `{"requests":{"cpu":"100m"}}`, "Resources, as one row."},
		{"extraEnv", `[]`, "Extra env."},
	}
	if len(rows) != len(want) {
		t.Fatalf("rows = %+v, want %+v", rows, want)
	}
	for i := range want {
		if rows[i] != want[i] {
			t.Errorf("row %d = %+v, want %+v", i, rows[i], want[i])
		}
	}
}

func TestRowsRefusesUndocumented(t *testing.T) {
	for name, doc := range map[string]string{
		"leaf":        "# -- ok\na: 1\nb: 2\n",
		"nested leaf": "server:\n  # plain comment\n  port: 80\n",
		"empty map":   "labels: {}\n",
	} {
		if _, err := Rows([]byte(doc)); err == nil || !strings.Contains(err.Error(), "no `# -- description`") {
			t.Errorf("%s: err = %v, want an undocumented-value error", name, err)
		}
	}
}

func TestReplace(t *testing.T) {
	readme := "intro\n" + Begin + "\nstale\n" + End + "\nafter\n"
	got, err := Replace(readme, []byte("# -- Port with a | pipe.\nport: 80\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := "intro\n" + Begin + "\n| Key | Default | Description |\n|---|---|---|\n| `port` | `80` | Port with a \\| pipe. |\n" + End + "\nafter\n"
	if got != want {
		t.Errorf("Replace =\n%s\nwant\n%s", got, want)
	}
	if _, err := Replace("no markers", []byte("# -- x\nx: 1\n")); err == nil {
		t.Error("Replace without markers: want an error")
	}
}

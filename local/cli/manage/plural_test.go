package manage

import "testing"

func TestPluralAndUnescape(t *testing.T) {
	for _, tt := range []struct {
		n    int
		want string
	}{{0, "0 projects"}, {1, "1 project"}, {2, "2 projects"}} {
		if got := plural(tt.n, "project", "projects"); got != tt.want {
			t.Errorf("plural(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
	for in, want := range map[string]string{
		`"a\u003cb\u003e\u0026c"`: `"a<b>&c"`,
		`"\\u003e"`:               `"\\u003e"`, // an escaped backslash, then text
		`"\n\u00e9"`:              `"\n\u00e9"`,
	} {
		if got := string(unescapeHTML([]byte(in))); got != want {
			t.Errorf("unescapeHTML(%s) = %s, want %s", in, got, want)
		}
	}
}

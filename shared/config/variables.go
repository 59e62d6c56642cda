package config

import (
	"fmt"
	"reflect"
	"strings"
)

// Variable describes one environment variable of Config.
type Variable struct {
	Name        string
	Default     string
	Description string
	Group       string
}

// Variables lists every environment variable of Config, in declaration order,
// for the README table and its test.
func Variables() []Variable {
	var out []Variable
	walk(reflect.TypeOf(Config{}), "", &out)
	return out
}

func walk(t reflect.Type, group string, out *[]Variable) {
	for i := range t.NumField() {
		f := t.Field(i)
		tag := f.Tag.Get("env")
		if tag == "" {
			if f.Type.Kind() == reflect.Struct {
				walk(f.Type, f.Name, out)
			}
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		v := Variable{Name: strings.TrimSpace(name), Description: f.Tag.Get("desc"), Group: group}
		for _, o := range strings.Split(opts, ",") {
			if d, ok := strings.CutPrefix(strings.TrimSpace(o), "default="); ok {
				v.Default = d
			}
		}
		*out = append(*out, v)
	}
}

// MarkdownTable renders Variables as the README's configuration table.
func MarkdownTable() string {
	var b strings.Builder
	b.WriteString("| Variable | Default | Description |\n|---|---|---|\n")
	for _, v := range Variables() {
		def := v.Default
		if def == "" {
			def = "–"
		} else {
			def = "`" + def + "`"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", v.Name, def, strings.ReplaceAll(v.Description, "|", "\\|"))
	}
	return b.String()
}

package config

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/sethvargo/go-envconfig"
)

func TestDefaultsLoad(t *testing.T) {
	c, err := Load(context.Background(), envconfig.MapLookuper(nil))
	if err != nil {
		t.Fatalf("defaults must be valid: %v", err)
	}
	if c.Server.ServeAddr() != ":8080" || c.Database.Driver != "sqlite" {
		t.Fatalf("unexpected defaults: %+v", c.Server)
	}
}

func TestInvalidValuesNameTheVariable(t *testing.T) {
	tests := []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"DB_DRIVER": "mysql"}, "DB_DRIVER"},
		{map[string]string{"DB_DRIVER": "postgres"}, "DATABASE_URL"},
		{map[string]string{"LOG_LEVEL": "loud"}, "LOG_LEVEL"},
		{map[string]string{"LOG_FLUSH_INTERVAL": "1m"}, "LOG_FLUSH_INTERVAL"},
		{map[string]string{"LOG_FLUSH_INTERVAL": "-1s"}, "LOG_FLUSH_INTERVAL"},
		{map[string]string{"SHUTDOWN_GRACE_PERIOD": "soon"}, "SHUTDOWN_GRACE_PERIOD"},
		{map[string]string{"DATABASE_POOL_SIZE": "many"}, "DATABASE_POOL_SIZE"},
		{map[string]string{"TRUSTED_PROXIES": "10.0.0.0/8,not-an-ip"}, "TRUSTED_PROXIES"},
		{map[string]string{"RATE_LIMIT_BACKEND": "redis"}, "RATE_LIMIT_BACKEND"},
		{map[string]string{"PUBLIC_BASE_URL": "llm.example.com"}, "PUBLIC_BASE_URL"},
		{map[string]string{"PUBLIC_BASE_URL": "ftp://llm.example.com"}, "PUBLIC_BASE_URL"},
		{map[string]string{"PUBLIC_BASE_URL": "https://"}, "PUBLIC_BASE_URL"},
		{map[string]string{"PUBLIC_BASE_URL": "https://llm.example.com/?a=1"}, "PUBLIC_BASE_URL"},
		{map[string]string{"PUBLIC_BASE_URL": "https://llm.example.com/#x"}, "PUBLIC_BASE_URL"},
		{map[string]string{"PUBLIC_BASE_URL": "https://user:pw@llm.example.com"}, "PUBLIC_BASE_URL"},
		{map[string]string{"RATE_LIMIT_LEASE": "-1"}, "RATE_LIMIT_LEASE"},
		{map[string]string{"RATE_LIMIT_LEASE": "1000000"}, "RATE_LIMIT_LEASE"},
	}
	for _, tt := range tests {
		_, err := Load(context.Background(), envconfig.MapLookuper(tt.env))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: error %v does not name %s", tt.env, err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: error must be one line: %q", tt.env, err)
		}
	}
}

func TestOpenAIBaseURL(t *testing.T) {
	tests := []struct{ env, want string }{
		{"", ""},
		{"https://llm.example.com", "https://llm.example.com/v1"},
		{"https://llm.example.com/", "https://llm.example.com/v1"},
		{"http://10.0.0.1:8080/llm", "http://10.0.0.1:8080/llm/v1"},
	}
	for _, tt := range tests {
		c, err := Load(context.Background(), envconfig.MapLookuper(map[string]string{"PUBLIC_BASE_URL": tt.env}))
		if err != nil {
			t.Fatalf("%q: %v", tt.env, err)
		}
		if got := c.Server.OpenAIBaseURL(); got != tt.want {
			t.Errorf("PUBLIC_BASE_URL=%q: OpenAIBaseURL() = %q, want %q", tt.env, got, tt.want)
		}
	}
}

// TestReadmeTableIsCurrent keeps the README's configuration table in sync
// with the config structs: every variable, default and description.
func TestReadmeTableIsCurrent(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	want, err := ReplaceTable(string(b))
	if err != nil {
		t.Fatal(err)
	}
	if want != string(b) {
		t.Fatal("README configuration table is out of date: run `make generate`")
	}
	for _, v := range Variables() {
		if v.Description == "" {
			t.Errorf("%s has no desc tag", v.Name)
		}
	}
}

func TestVariableNamesAreUnique(t *testing.T) {
	seen := map[string]bool{}
	for _, v := range Variables() {
		if seen[v.Name] {
			t.Errorf("%s declared twice", v.Name)
		}
		seen[v.Name] = true
	}
}

func TestFileFallback(t *testing.T) {
	dir := t.TempDir()
	path := dir + "/token"
	if err := os.WriteFile(path, []byte("from-file-Zq8vN3kPq7rT2wXy5bLm9cHd\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(context.Background(), envconfig.MapLookuper(map[string]string{"MANAGEMENT_TOKEN_FILE": path}))
	if err != nil {
		t.Fatal(err)
	}
	if c.Server.ManagementToken != "from-file-Zq8vN3kPq7rT2wXy5bLm9cHd" {
		t.Fatalf("MANAGEMENT_TOKEN = %q, want from-file-…", c.Server.ManagementToken)
	}
	c, err = Load(context.Background(), envconfig.MapLookuper(map[string]string{"MANAGEMENT_TOKEN_FILE": path, "MANAGEMENT_TOKEN": "direct-Zq8vN3kPq7rT2wXy5bLm9cHd0123"}))
	if err != nil || c.Server.ManagementToken != "direct-Zq8vN3kPq7rT2wXy5bLm9cHd0123" {
		t.Fatalf("NAME must win over NAME_FILE: %q %v", c.Server.ManagementToken, err)
	}
	_, err = Load(context.Background(), envconfig.MapLookuper(map[string]string{"MANAGEMENT_TOKEN_FILE": dir + "/missing"}))
	if err == nil || !strings.Contains(err.Error(), "MANAGEMENT_TOKEN_FILE") {
		t.Fatalf("unreadable NAME_FILE must fail naming it, got %v", err)
	}
}

// TestListenAddrUnsetIsDetectable: LISTEN_ADDR unset is empty (a function
// then uses PORT) while serve still defaults to :8080.
func TestListenAddrUnsetIsDetectable(t *testing.T) {
	for _, tt := range []struct {
		env        map[string]string
		raw, serve string
	}{
		{nil, "", ":8080"},
		{map[string]string{"LISTEN_ADDR": "127.0.0.1:9000"}, "127.0.0.1:9000", "127.0.0.1:9000"},
	} {
		c, err := Load(context.Background(), envconfig.MapLookuper(tt.env))
		if err != nil {
			t.Fatal(err)
		}
		if c.Server.ListenAddr != tt.raw || c.Server.ServeAddr() != tt.serve {
			t.Errorf("%v: ListenAddr %q ServeAddr %q, want %q %q", tt.env, c.Server.ListenAddr, c.Server.ServeAddr(), tt.raw, tt.serve)
		}
	}
}

// TestAdminUIPath: the values ADMIN_UI_PATH accepts, where each puts the UI
// in serve and in the admin-ui function, and the ones it refuses.
func TestAdminUIPath(t *testing.T) {
	for _, tt := range []struct {
		value, serve, function string
	}{
		{"", "/admin", ""},
		{"/", "", ""},
		{"/admin", "/admin", "/admin"},
		{"/function/llm-proxy-admin-ui", "/function/llm-proxy-admin-ui", "/function/llm-proxy-admin-ui"},
		{"/v1beta", "/v1beta", "/v1beta"},
	} {
		c, err := Load(context.Background(), envconfig.MapLookuper(map[string]string{"ADMIN_UI_PATH": tt.value}))
		if err != nil {
			t.Errorf("ADMIN_UI_PATH=%q: %v", tt.value, err)
			continue
		}
		if c.Admin.ServePath() != tt.serve || c.Admin.FunctionPath() != tt.function {
			t.Errorf("ADMIN_UI_PATH=%q: serve %q function %q, want %q %q", tt.value, c.Admin.ServePath(), c.Admin.FunctionPath(), tt.serve, tt.function)
		}
	}
	for _, bad := range []string{"admin", "/admin/", "//admin", "/a b", "/a?b", "/v1", "/v1/admin", "/manage", "/metrics", "/health", "/ready", "/live", "/_/ui"} {
		_, err := Load(context.Background(), envconfig.MapLookuper(map[string]string{"ADMIN_UI_PATH": bad}))
		if err == nil || !strings.Contains(err.Error(), "ADMIN_UI_PATH") {
			t.Errorf("ADMIN_UI_PATH=%q: %v, want an error naming ADMIN_UI_PATH", bad, err)
		}
	}
}

package audit_test

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	_ "modernc.org/sqlite"

	"github.com/llm-proxy/llm-proxy/shared/audit"
	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
	"github.com/llm-proxy/llm-proxy/shared/management"
	"github.com/llm-proxy/llm-proxy/shared/management/managementtest"
	"github.com/llm-proxy/llm-proxy/shared/web"
)

// execSQL runs a statement directly against the test database, behind the
// store's back, as an attacker with database access would.
func execSQL(t *testing.T, env *managementtest.Env, stmt string) {
	t.Helper()
	ctx := context.Background()
	switch env.Engine {
	case "sqlite":
		db, err := sql.Open("sqlite", env.DB.Path)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	case "postgres":
		conn, err := pgx.Connect(ctx, env.DB.URL)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
}

func TestVerify(t *testing.T) {
	t.Parallel()
	for _, engine := range managementtest.Engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			for _, tc := range []struct {
				name   string
				tamper string // SQL; %s is none
				seq    int64
				reason string
			}{
				{name: "intact"},
				{name: "changed reason", tamper: "UPDATE audit_events SET reason = 'nothing happened' WHERE seq = 3", seq: 3, reason: audit.ReasonHashMismatch},
				{name: "changed action", tamper: "UPDATE audit_events SET action = 'project.read' WHERE seq = 2", seq: 2, reason: audit.ReasonHashMismatch},
				{name: "changed details", tamper: "UPDATE audit_events SET details = '{\"project_name\":\"other\"}' WHERE seq = 1", seq: 1, reason: audit.ReasonHashMismatch},
				{name: "rehashed record", tamper: "UPDATE audit_events SET hash = 'abc' WHERE seq = 4", seq: 4, reason: audit.ReasonHashMismatch},
				{name: "deleted record", tamper: "DELETE FROM audit_events WHERE seq = 3", seq: 4, reason: audit.ReasonSeqGap},
			} {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					env := managementtest.New(t, engine, managementtest.Options{})
					ctx := context.Background()
					a := managementtest.Actor()
					// Five records: create, failed create, list, update, read.
					p, err := env.Service.CreateProject(ctx, a, management.CreateProjectInput{Name: "p", APIKey: "sk-test-0123456789abcdefghij"})
					if err != nil {
						t.Fatal(err)
					}
					_, _ = env.Service.CreateProject(ctx, a, management.CreateProjectInput{Name: "p"})
					if _, err := env.Service.ListProjects(ctx, a, management.ProjectQuery{}); err != nil {
						t.Fatal(err)
					}
					if _, err := env.Service.UpdateProject(ctx, a, p.ID, management.UpdateProjectInput{IsActive: new(bool)}); err != nil {
						t.Fatal(err)
					}
					if _, err := env.Service.GetProject(ctx, a, p.ID); err != nil {
						t.Fatal(err)
					}
					if tc.tamper != "" {
						execSQL(t, env, tc.tamper)
					}
					res, err := audit.Verify(ctx, env.Store)
					if err != nil {
						t.Fatal(err)
					}
					if tc.tamper == "" {
						if !res.OK() || res.Count != 5 {
							t.Fatalf("intact chain: %+v %+v", res, res.Broken)
						}
						return
					}
					if res.OK() || res.Broken.Seq != tc.seq || res.Broken.Reason != tc.reason || res.Broken.ID == "" {
						t.Fatalf("got %+v (broken %+v), want seq %d %s", res, res.Broken, tc.seq, tc.reason)
					}
					if res.Count != int(tc.seq-1) && tc.reason != audit.ReasonSeqGap {
						t.Fatalf("count %d before seq %d", res.Count, tc.seq)
					}
				})
			}
		})
	}
}

func TestRecorderFileAndActor(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "nested", "audit.jsonl")
	now := time.Date(2026, 3, 4, 5, 6, 7, 891234567, time.UTC)
	rec, err := audit.NewRecorder(audit.Options{
		File: file, CreateDir: true, Clock: func() time.Time { return now },
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")},
	})
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest("PATCH", "/manage/projects/x", nil)
	req.RemoteAddr = "10.1.2.3:555"
	req.Header.Set("X-Forwarded-For", "203.0.113.9, 10.9.9.9")
	req.Header.Set("User-Agent", "cli/1")
	req = req.WithContext(web.ContextWithRequestID(req.Context(), "req-1"))
	a := rec.ActorFrom(req, audit.ActorManagementAPI)
	if a.ClientIP != "203.0.113.9" || a.RequestID != "req-1" || a.Method != "PATCH" || a.Path != "/manage/projects/x" || a.UserAgent != "cli/1" {
		t.Fatalf("actor %+v", a)
	}
	// Untrusted peer: X-Forwarded-For is ignored.
	req.RemoteAddr = "192.0.2.1:1"
	if got := rec.ActorFrom(req, "x").ClientIP; got != "192.0.2.1" {
		t.Fatalf("untrusted XFF honoured: %s", got)
	}
	e := rec.Event(a, "project.update", llmproxy.OutcomeSuccess, map[string]any{"updated_fields": []string{"name"}})
	if !e.Timestamp.Equal(now.Truncate(time.Microsecond)) || e.ID == "" || e.Actor != "management_api" {
		t.Fatalf("event %+v", e)
	}
	if err := rec.Record(context.Background(), e); err != nil { // no store: file only
		t.Fatal(err)
	}
	if rec.StoresInDB() {
		t.Fatal("no store, yet StoresInDB")
	}
	if err := rec.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	var lines []map[string]any
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		lines = append(lines, m)
	}
	if len(lines) != 1 || lines[0]["action"] != "project.update" || lines[0]["result"] != "success" || lines[0]["client_ip"] != "203.0.113.9" {
		t.Fatalf("file %+v", lines)
	}
	if _, ok := lines[0]["details"].(map[string]any); !ok {
		t.Fatalf("details not an object: %+v", lines[0])
	}
	if st, _ := os.Stat(file); st.Mode().Perm() != 0o600 {
		t.Fatalf("file mode %v", st.Mode())
	}
}

func TestRecorderDisabled(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "audit.jsonl")
	rec, err := audit.NewRecorder(audit.Options{Disabled: true, File: file})
	if err != nil {
		t.Fatal(err)
	}
	_ = rec.Record(context.Background(), rec.Event(audit.Actor{}, "x", "success", nil))
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Fatalf("disabled recorder created the file: %v", err)
	}
	if _, err := audit.NewRecorder(audit.Options{File: filepath.Join(t.TempDir(), "missing", "a.jsonl")}); err == nil {
		t.Fatal("missing directory without CreateDir must fail")
	}
}

package audit_test

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	_ "modernc.org/sqlite"

	"github.com/llm-proxy/llm-proxy/shared/audit"
	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
	"github.com/llm-proxy/llm-proxy/shared/management"
	"github.com/llm-proxy/llm-proxy/shared/management/managementtest"
	"github.com/llm-proxy/llm-proxy/shared/secrets"
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

// chainOfFive writes five records through the service: create, failed
// create, list, update, read.
func chainOfFive(t *testing.T, env *managementtest.Env) {
	t.Helper()
	ctx := context.Background()
	a := managementtest.Actor()
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
}

// resealUnkeyed rewrites record seq as an attacker without the key can: its
// legacy (unkeyed) hash recomputed, key id cleared.
func resealUnkeyed(t *testing.T, env *managementtest.Env, seq int64) string {
	t.Helper()
	var e llmproxy.AuditEvent
	_ = env.Store.AuditChain(context.Background(), func(x llmproxy.AuditEvent) error {
		if x.Seq == seq {
			e = x
		}
		return nil
	})
	e.Reason = "nothing happened"
	e = e.Seal(e.PrevHash, llmproxy.AuditKey{})
	return fmt.Sprintf("UPDATE audit_events SET reason = '%s', key_id = '', hash = '%s' WHERE seq = %d", e.Reason, e.Hash, seq)
}

func TestVerify(t *testing.T) {
	t.Parallel()
	for _, engine := range managementtest.Engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			for _, tc := range []struct {
				name     string
				tamper   func(env *managementtest.Env) []string // SQL
				withFile bool
				seq      int64
				reason   string
			}{
				{name: "intact"},
				{name: "intact against the file", withFile: true},
				{name: "changed reason", tamper: stmts("UPDATE audit_events SET reason = 'nothing happened' WHERE seq = 3"), seq: 3, reason: audit.ReasonHashMismatch},
				{name: "changed action", tamper: stmts("UPDATE audit_events SET action = 'project.read' WHERE seq = 2"), seq: 2, reason: audit.ReasonHashMismatch},
				{name: "changed details", tamper: stmts("UPDATE audit_events SET details = '{\"project_name\":\"other\"}' WHERE seq = 1"), seq: 1, reason: audit.ReasonHashMismatch},
				{name: "rehashed record", tamper: stmts("UPDATE audit_events SET hash = 'abc' WHERE seq = 4"), seq: 4, reason: audit.ReasonHashMismatch},
				{name: "changed and re-sealed with the unkeyed hash", tamper: func(env *managementtest.Env) []string {
					return []string{resealUnkeyed(t, env, 3)}
				}, seq: 3, reason: audit.ReasonUnkeyed},
				{name: "changed key id", tamper: stmts("UPDATE audit_events SET key_id = 'deadbeef' WHERE seq = 2"), seq: 2, reason: audit.ReasonUnknownKey},
				{name: "deleted record", tamper: stmts("DELETE FROM audit_events WHERE seq = 3"), seq: 4, reason: audit.ReasonSeqGap},
				{name: "reordered records", tamper: stmts("UPDATE audit_events SET seq = 100 WHERE seq = 2",
					"UPDATE audit_events SET seq = 2 WHERE seq = 3", "UPDATE audit_events SET seq = 3 WHERE seq = 100"), seq: 2, reason: audit.ReasonPrevHashMismatch},
				{name: "deleted newest", tamper: stmts("DELETE FROM audit_events WHERE seq = 5"), withFile: true, seq: 5, reason: audit.ReasonTruncated},
				{name: "deleted newest two", tamper: stmts("DELETE FROM audit_events WHERE seq >= 4"), withFile: true, seq: 4, reason: audit.ReasonTruncated},
				{name: "deleted all", tamper: stmts("DELETE FROM audit_events"), withFile: true, seq: 1, reason: audit.ReasonTruncated},
			} {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					env := managementtest.New(t, engine, managementtest.Options{})
					ctx := context.Background()
					chainOfFive(t, env)
					if tc.tamper != nil {
						for _, stmt := range tc.tamper(env) {
							execSQL(t, env, stmt)
						}
					}
					var o audit.VerifyOptions
					if tc.withFile {
						o.File = env.AuditFile
					}
					res, err := audit.Verify(ctx, env.Store, env.AuditKeys, o)
					if err != nil {
						t.Fatal(err)
					}
					if tc.tamper == nil {
						if !res.OK() || res.Count != 5 || res.Legacy != 0 || res.Head != 5 {
							t.Fatalf("intact chain: %+v %+v", res, res.Broken)
						}
						if tc.withFile && (res.File == nil || res.File.Matched != 5 || res.File.NotInFile != 0 || res.File.Lines != 5) {
							t.Fatalf("file check: %+v", res.File)
						}
						return
					}
					if res.OK() || res.Broken.Seq != tc.seq || res.Broken.Reason != tc.reason || res.Broken.ID == "" {
						t.Fatalf("got %+v (broken %+v), want seq %d %s", res, res.Broken, tc.seq, tc.reason)
					}
				})
			}
		})
	}
}

func stmts(list ...string) func(*managementtest.Env) []string {
	return func(*managementtest.Env) []string { return list }
}

// Records sealed under a key that has since been rotated into
// ENCRYPTION_KEY_PREVIOUS keep verifying; without the previous key they do
// not.
func TestVerifyAfterKeyRotation(t *testing.T) {
	t.Parallel()
	env := managementtest.New(t, "sqlite", managementtest.Options{})
	ctx := context.Background()
	oldKey, _ := secrets.GenerateKey()
	newKey, _ := secrets.GenerateKey()
	record := func(keys *audit.Keys, action string) {
		t.Helper()
		rec, err := audit.NewRecorder(audit.Options{Store: env.Store, StoreInDB: true, Keys: keys})
		if err != nil {
			t.Fatal(err)
		}
		if err := rec.Record(ctx, rec.Event(managementtest.Actor(), action, llmproxy.OutcomeSuccess, nil)); err != nil {
			t.Fatal(err)
		}
	}
	keysOf := func(current string, previous ...string) *audit.Keys {
		t.Helper()
		kr, err := secrets.NewKeyring(current, previous)
		if err != nil {
			t.Fatal(err)
		}
		k, err := audit.KeysFrom(kr)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	before, rotated, newOnly := keysOf(oldKey), keysOf(newKey, oldKey), keysOf(newKey)
	record(before, "before.one")
	record(before, "before.two")
	record(rotated, "after.rotation")
	if res, err := audit.Verify(ctx, env.Store, rotated, audit.VerifyOptions{}); err != nil || !res.OK() || res.Count != 3 {
		t.Fatalf("with the previous key: %+v %+v %v", res, res.Broken, err)
	}
	if res, _ := audit.Verify(ctx, env.Store, newOnly, audit.VerifyOptions{}); res.OK() || res.Broken.Seq != 1 || res.Broken.Reason != audit.ReasonUnknownKey {
		t.Fatalf("without the previous key: %+v", res.Broken)
	}
}

// Records written before the chain was keyed verify as legacy; once a keyed
// record follows them, changing one (even re-hashing the whole legacy
// prefix) breaks the link into the first keyed record.
func TestVerifyLegacyPrefix(t *testing.T) {
	t.Parallel()
	for _, engine := range managementtest.Engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			env := managementtest.New(t, engine, managementtest.Options{})
			ctx := context.Background()
			env.Store.SetAuditKey(llmproxy.AuditKey{}) // as before the upgrade
			unkeyed, err := audit.NewRecorder(audit.Options{Store: env.Store, StoreInDB: true})
			if err != nil {
				t.Fatal(err)
			}
			for _, action := range []string{"old.one", "old.two", "old.three"} {
				if err := unkeyed.Record(ctx, unkeyed.Event(managementtest.Actor(), action, llmproxy.OutcomeSuccess, nil)); err != nil {
					t.Fatal(err)
				}
			}
			env.Store.SetAuditKey(env.AuditKeys.Current()) // the upgraded binary starts
			chainOfFive(t, env)
			res, err := audit.Verify(ctx, env.Store, env.AuditKeys, audit.VerifyOptions{})
			if err != nil || !res.OK() || res.Count != 8 || res.Legacy != 3 || res.LegacyThrough != 3 {
				t.Fatalf("legacy prefix: %+v %+v %v", res, res.Broken, err)
			}
			// Change legacy record 2 and re-hash records 2 and 3 as anyone can.
			var chain []llmproxy.AuditEvent
			_ = env.Store.AuditChain(ctx, func(e llmproxy.AuditEvent) error { chain = append(chain, e); return nil })
			two := chain[1]
			two.Reason = "forged"
			two = two.Seal(chain[0].Hash, llmproxy.AuditKey{})
			three := chain[2].Seal(two.Hash, llmproxy.AuditKey{})
			execSQL(t, env, fmt.Sprintf("UPDATE audit_events SET reason = 'forged', hash = '%s' WHERE seq = 2", two.Hash))
			execSQL(t, env, fmt.Sprintf("UPDATE audit_events SET prev_hash = '%s', hash = '%s' WHERE seq = 3", two.Hash, three.Hash))
			res, _ = audit.Verify(ctx, env.Store, env.AuditKeys, audit.VerifyOptions{})
			if res.OK() || res.Broken.Seq != 4 || res.Broken.Reason != audit.ReasonPrevHashMismatch {
				t.Fatalf("re-hashed legacy prefix: %+v", res.Broken)
			}
		})
	}
}

// Every line of the audit file carries the record's sequence number, key id
// and chain hash, the same as the database's.
func TestFileLinesCarrySeqAndHash(t *testing.T) {
	t.Parallel()
	env := managementtest.New(t, "sqlite", managementtest.Options{})
	chainOfFive(t, env)
	lines := readLines(t, env.AuditFile)
	if len(lines) != 5 {
		t.Fatalf("%d file lines", len(lines))
	}
	for _, l := range lines {
		seq, _ := l["seq"].(float64)
		stored, err := env.Store.GetAudit(context.Background(), l["id"].(string))
		if err != nil {
			t.Fatal(err)
		}
		if int64(seq) != stored.Seq || l["hash"] != stored.Hash || l["key_id"] != stored.KeyID || stored.KeyID == "" {
			t.Fatalf("line %v, stored seq %d hash %s key %s", l, stored.Seq, stored.Hash, stored.KeyID)
		}
	}
}

func readLines(t *testing.T, path string) []map[string]any {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	var lines []map[string]any
	for sc.Scan() {
		var m map[string]any
		if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		lines = append(lines, m)
	}
	return lines
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
	lines := readLines(t, file)
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

// countRows is the number of audit records in the database.
func countRows(t *testing.T, env *managementtest.Env) []llmproxy.AuditEvent {
	t.Helper()
	var all []llmproxy.AuditEvent
	if err := env.Store.AuditChain(context.Background(), func(e llmproxy.AuditEvent) error {
		all = append(all, e)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return all
}

// A denied request with a 900 KB URL (and user agent) writes a bounded row.
func TestDeniedHugeRequestWritesBoundedRow(t *testing.T) {
	t.Parallel()
	env := managementtest.New(t, "sqlite", managementtest.Options{})
	huge := "/manage/projects/" + strings.Repeat("x", 900<<10)
	req := httptest.NewRequest("GET", huge, nil)
	req.Header.Set("User-Agent", strings.Repeat("u", 900<<10))
	req.Header.Set("Authorization", "Bearer wrong-token")
	rr := httptest.NewRecorder()
	env.Auth.Wrap(http.NotFoundHandler()).ServeHTTP(rr, req)
	if rr.Code != http.StatusUnauthorized {
		t.Fatalf("status %d", rr.Code)
	}
	rows := countRows(t, env)
	if len(rows) != 1 {
		t.Fatalf("%d rows", len(rows))
	}
	e := rows[0]
	size := len(e.Path) + len(e.UserAgent) + len(e.Reason) + len(fmt.Sprint(e.Details))
	if size > 4<<10 || !strings.Contains(e.Path, "…[truncated, ") || !strings.Contains(e.UserAgent, "…[truncated, ") {
		t.Fatalf("row of %d bytes: path ...%q ua ...%q", size, e.Path[max(0, len(e.Path)-40):], e.UserAgent[max(0, len(e.UserAgent)-40):])
	}
	if line := readLines(t, env.AuditFile); len(line) != 1 || len(fmt.Sprint(line[0])) > 4<<10 {
		t.Fatalf("file line not bounded (%d lines)", len(line))
	}
}

// 100 denials from one IP write O(1) rows, and the rows carry the count.
func TestRepeatedDenialsAggregate(t *testing.T) {
	t.Parallel()
	env := managementtest.New(t, "postgres", managementtest.Options{FailureLimit: 1000})
	for range 100 {
		req := httptest.NewRequest("GET", "/manage/projects", nil)
		req.RemoteAddr = "198.51.100.7:4000"
		req.Header.Set("Authorization", "Bearer wrong-token")
		env.Auth.Wrap(http.NotFoundHandler()).ServeHTTP(httptest.NewRecorder(), req)
	}
	if rows := countRows(t, env); len(rows) != 1 {
		t.Fatalf("%d rows while the window is open, want the first only", len(rows))
	}
	if err := env.Recorder.Close(); err != nil { // ends the window
		t.Fatal(err)
	}
	rows := countRows(t, env)
	if len(rows) != 2 {
		t.Fatalf("%d rows after 100 denials, want 2", len(rows))
	}
	sum := rows[1].Details
	if sum["aggregated"] != true || fmt.Sprint(sum["count"]) != "99" || rows[1].ClientIP != "198.51.100.7" || rows[1].Action != "management.auth" {
		t.Fatalf("summary %+v", rows[1])
	}
	if res, err := audit.Verify(context.Background(), env.Store, env.AuditKeys, audit.VerifyOptions{File: env.AuditFile}); err != nil || !res.OK() {
		t.Fatalf("verify: %+v %v", res.Broken, err)
	}
}

// A window ends after DenialWindow: the next denial writes the summary of
// the last window and opens a new one; other clients have windows of their
// own up to DenialSources, beyond which they share one.
func TestDenialWindows(t *testing.T) {
	t.Parallel()
	env := managementtest.New(t, "sqlite", managementtest.Options{})
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	rec, err := audit.NewRecorder(audit.Options{Store: env.Store, StoreInDB: true, Keys: env.AuditKeys,
		DenialWindow: time.Hour, DenialSources: 2, Clock: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	deny := func(ip string) {
		e := rec.Event(audit.Actor{Name: "x", ClientIP: ip}, "management.auth", llmproxy.OutcomeDenied, nil)
		if err := rec.RecordDenial(context.Background(), e); err != nil {
			t.Fatal(err)
		}
	}
	deny("192.0.2.1")
	deny("192.0.2.1")
	deny("192.0.2.1")
	deny("192.0.2.2")
	deny("192.0.2.3") // the table is full: a shared window
	deny("192.0.2.4") // counted in it
	if n := len(countRows(t, env)); n != 3 {
		t.Fatalf("%d rows, want 3 (first of each window)", n)
	}
	now = now.Add(time.Hour)
	deny("192.0.2.1") // ends its window: summary (2) and a new first
	rows := countRows(t, env)
	if len(rows) != 5 || fmt.Sprint(rows[3].Details["count"]) != "2" || rows[4].Details["aggregated"] != nil {
		t.Fatalf("after the window: %d rows, %+v", len(rows), rows[len(rows)-2:])
	}
	_ = rec.Close()
	rows = countRows(t, env)
	var shared *llmproxy.AuditEvent
	for i := range rows {
		if rows[i].Details["other_sources"] == true {
			shared = &rows[i]
		}
	}
	if shared == nil || fmt.Sprint(shared.Details["count"]) != "1" || shared.ClientIP != "" {
		t.Fatalf("no shared-window summary: %+v", rows)
	}
}

// Package storetest is the contract suite of store.Store. Every adapter runs
// it unchanged against a real engine (PostgreSQL schema, SQLite file):
//
//	func TestContract(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) store.Store { … fresh migrated store … })
//	}
//
// open must return an empty, migrated store of its own (subtests run in
// parallel) and close it when the test ends.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
	"github.com/llm-proxy/llm-proxy/shared/store"
)

// Run runs every contract test against stores made by open.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"ProjectCreateGet", testProjectCreateGet},
		{"ProjectConflict", testProjectConflict},
		{"ProjectNotFound", testProjectNotFound},
		{"ProjectList", testProjectList},
		{"ProjectUpdate", testProjectUpdate},
		{"ProjectDeactivation", testProjectDeactivation},
		{"ProjectRevokeTokens", testProjectRevokeTokens},
		{"TokenCreateGet", testTokenCreateGet},
		{"TokenCreateRules", testTokenCreateRules},
		{"TokenUpdate", testTokenUpdate},
		{"TokenRevoke", testTokenRevoke},
		{"TokenList", testTokenList},
		{"AddUsage", testAddUsage},
		{"AddUsageConcurrent", testAddUsageConcurrent},
		{"ProjectUsage", testProjectUsage},
		{"ProjectUsageConcurrent", testProjectUsageConcurrent},
		{"AuditAppendAndChain", testAuditAppendAndChain},
		{"AuditConcurrentAppends", testAuditConcurrentAppends},
		{"AuditFilters", testAuditFilters},
		{"AuditKeyedSeal", testAuditKeyedSeal},
		{"AuditBounded", testAuditBounded},
		{"AuditSameTransaction", testAuditSameTransaction},
		{"ReencryptProjectKeys", testReencrypt},
		{"Settings", testSettings},
		{"AdminSessions", testAdminSessions},
		{"Ping", testPing},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, open(t))
		})
	}
}

// ---- helpers

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return c
}

// res carries a call's two results to must: try(s.GetProject(…)).must(t).
type res[T any] struct {
	v   T
	err error
}

func try[T any](v T, err error) res[T] { return res[T]{v, err} }

func (r res[T]) must(t *testing.T) T {
	t.Helper()
	if r.err != nil {
		t.Fatalf("unexpected error: %v", r.err)
	}
	return r.v
}

// wantErr checks that err is of kind and, when code is set, carries code and
// message.
func wantErr(t *testing.T, err error, kind error, code, msg string) {
	t.Helper()
	if !errors.Is(err, kind) {
		t.Fatalf("error = %v, want kind %v", err, kind)
	}
	if code != "" && llmproxy.ErrorCode(err) != code {
		t.Fatalf("error code = %q, want %q (%v)", llmproxy.ErrorCode(err), code, err)
	}
	if msg != "" && llmproxy.ErrorMessage(err) != msg {
		t.Fatalf("error message = %q, want %q", llmproxy.ErrorMessage(err), msg)
	}
}

func newProject(name string) llmproxy.Project {
	return llmproxy.Project{Name: name, APIKeyEncrypted: "ct:" + name, APIKeyHint: "sk-...abcd", IsActive: true}
}

func createProject(t *testing.T, s store.Store, name string) llmproxy.Project {
	t.Helper()
	return try(s.CreateProject(ctx(t), newProject(name), nil)).must(t)
}

var hashSeq struct {
	sync.Mutex
	n int
}

func newToken(projectID string) llmproxy.Token {
	hashSeq.Lock()
	hashSeq.n++
	n := hashSeq.n
	hashSeq.Unlock()
	return llmproxy.Token{Hash: fmt.Sprintf("hash-%d-%d", time.Now().UnixNano(), n), Hint: "sk-...x", ProjectID: projectID, IsActive: true}
}

func createToken(t *testing.T, s store.Store, projectID string) llmproxy.Token {
	t.Helper()
	return try(s.CreateToken(ctx(t), newToken(projectID), nil)).must(t)
}

func checkUTC(t *testing.T, what string, ts ...*time.Time) {
	t.Helper()
	for _, v := range ts {
		if v != nil && v.Location() != time.UTC {
			t.Errorf("%s: time %v is in %v, want UTC", what, v, v.Location())
		}
	}
}

func near(a, b time.Time) bool {
	d := a.Sub(b)
	return d > -time.Minute && d < time.Minute
}

// auditEvent returns a success event for action.
func auditEvent(action string) llmproxy.AuditEvent {
	return llmproxy.AuditEvent{Action: action, Actor: "management_api", Outcome: llmproxy.OutcomeSuccess}
}

// VerifyChain checks that the audit chain is complete and that every hash
// of an unkeyed record recomputes (a keyed record's MAC needs its key:
// shared/audit's Verify checks those); it returns the records in chain order.
func VerifyChain(t *testing.T, s store.Store) []llmproxy.AuditEvent {
	t.Helper()
	var all []llmproxy.AuditEvent
	prev := ""
	err := s.AuditChain(ctx(t), func(e llmproxy.AuditEvent) error {
		if e.Seq != int64(len(all)+1) {
			return fmt.Errorf("record %s has seq %d, want %d", e.ID, e.Seq, len(all)+1)
		}
		if e.PrevHash != prev {
			return fmt.Errorf("record %d: prev_hash %q, want %q", e.Seq, e.PrevHash, prev)
		}
		if h := e.ComputeHash(e.PrevHash); e.KeyID == "" && h != e.Hash {
			return fmt.Errorf("record %d: hash %q does not recompute (%q)", e.Seq, e.Hash, h)
		}
		prev = e.Hash
		all = append(all, e)
		return nil
	})
	if err != nil {
		t.Fatalf("audit chain: %v", err)
	}
	return all
}

// ---- projects

func testProjectCreateGet(t *testing.T, s store.Store) {
	c := ctx(t)
	in := newProject("alpha")
	in.Limits = llmproxy.Limits{RequestsPerMinute: 1, RequestsPerDay: 2, TokensPerMinute: 3, TokensPerDay: 4}
	in.TokenDefaults = llmproxy.Limits{RequestsPerMinute: 5, RequestsPerDay: 6, TokensPerMinute: 7, TokensPerDay: 8}
	before := time.Now()
	p := try(s.CreateProject(c, in, nil)).must(t)
	if p.ID == "" {
		t.Fatal("CreateProject did not assign an id")
	}
	if p.CreatedAt.IsZero() || !near(p.CreatedAt, before) || !p.UpdatedAt.Equal(p.CreatedAt) {
		t.Fatalf("created_at %v updated_at %v, want now and equal", p.CreatedAt, p.UpdatedAt)
	}
	got := try(s.GetProject(c, p.ID)).must(t)
	if got.ID != p.ID || got.Name != "alpha" || got.APIKeyEncrypted != "ct:alpha" || got.APIKeyHint != "sk-...abcd" ||
		!got.IsActive || got.DeactivatedAt != nil || got.Limits != in.Limits || got.TokenDefaults != in.TokenDefaults {
		t.Fatalf("GetProject = %+v, want the created project %+v", got, p)
	}
	if !got.CreatedAt.Equal(p.CreatedAt) || !got.UpdatedAt.Equal(p.UpdatedAt) {
		t.Fatalf("stored times %v/%v differ from returned %v/%v", got.CreatedAt, got.UpdatedAt, p.CreatedAt, p.UpdatedAt)
	}
	checkUTC(t, "project", &got.CreatedAt, &got.UpdatedAt, &p.CreatedAt)

	// Caller-supplied id and times are kept (truncated to microseconds, UTC).
	at := time.Date(2025, 3, 4, 5, 6, 7, 891234567, time.FixedZone("X", 3600))
	in2 := newProject("beta")
	in2.ID, in2.CreatedAt = "fixed-id", at
	p2 := try(s.CreateProject(c, in2, nil)).must(t)
	got2 := try(s.GetProject(c, "fixed-id")).must(t)
	want := at.UTC().Truncate(time.Microsecond)
	if p2.ID != "fixed-id" || !got2.CreatedAt.Equal(want) || got2.CreatedAt.Nanosecond() != want.Nanosecond() {
		t.Fatalf("created_at = %v, want %v", got2.CreatedAt, want)
	}
	checkUTC(t, "project", &got2.CreatedAt)
}

func testProjectConflict(t *testing.T, s store.Store) {
	c := ctx(t)
	a := createProject(t, s, "same")
	_, err := s.CreateProject(c, newProject("same"), nil)
	wantErr(t, err, llmproxy.ErrConflict, llmproxy.CodeConflict, "a project with this name already exists")
	dup := newProject("other")
	dup.ID = a.ID
	_, err = s.CreateProject(c, dup, nil)
	wantErr(t, err, llmproxy.ErrConflict, llmproxy.CodeConflict, "")
	b := createProject(t, s, "b")
	_, _, err = s.UpdateProject(c, b.ID, store.ProjectUpdate{Name: new("same")}, nil)
	wantErr(t, err, llmproxy.ErrConflict, llmproxy.CodeConflict, "a project with this name already exists")
	if got := try(s.GetProject(c, b.ID)).must(t); got.Name != "b" {
		t.Fatalf("name after failed rename = %q, want b", got.Name)
	}
	_, total, err := s.ListProjects(c, store.ProjectFilter{})
	if err != nil || total != 2 {
		t.Fatalf("ListProjects total = %d, %v; want 2", total, err)
	}
}

func testProjectNotFound(t *testing.T, s store.Store) {
	c := ctx(t)
	_, err := s.GetProject(c, "missing")
	wantErr(t, err, llmproxy.ErrNotFound, llmproxy.CodeNotFound, "project not found")
	_, _, err = s.UpdateProject(c, "missing", store.ProjectUpdate{Name: new("x")}, nil)
	wantErr(t, err, llmproxy.ErrNotFound, llmproxy.CodeNotFound, "project not found")
	_, err = s.RevokeProjectTokens(c, "missing", nil)
	wantErr(t, err, llmproxy.ErrNotFound, llmproxy.CodeNotFound, "project not found")
	_, err = s.GetToken(c, "missing")
	wantErr(t, err, llmproxy.ErrNotFound, llmproxy.CodeNotFound, "token not found")
	_, err = s.GetTokenByHash(c, "missing")
	wantErr(t, err, llmproxy.ErrNotFound, llmproxy.CodeNotFound, "token not found")
	_, err = s.UpdateToken(c, "missing", store.TokenUpdate{IsActive: new(false)}, nil)
	wantErr(t, err, llmproxy.ErrNotFound, llmproxy.CodeNotFound, "token not found")
	_, _, err = s.RevokeToken(c, "missing", nil)
	wantErr(t, err, llmproxy.ErrNotFound, llmproxy.CodeNotFound, "token not found")
	_, err = s.GetAudit(c, "missing")
	wantErr(t, err, llmproxy.ErrNotFound, llmproxy.CodeNotFound, "audit event not found")
}

func names(ps []llmproxy.Project) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Name
	}
	return out
}

func testProjectList(t *testing.T, s store.Store) {
	c := ctx(t)
	empty, total, err := s.ListProjects(c, store.ProjectFilter{})
	if err != nil || total != 0 || empty == nil || len(empty) != 0 {
		t.Fatalf("empty list = %v (nil: %v), %d, %v; want [] 0", empty, empty == nil, total, err)
	}
	for _, n := range []string{"Delta", "alpha", "Charlie", "bravo", "echo_1", "echo%2", "foxtrot"} {
		createProject(t, s, n)
	}
	inactive := createProject(t, s, "golf-alpha")
	try(func() (llmproxy.Project, error) {
		p, _, err := s.UpdateProject(c, inactive.ID, store.ProjectUpdate{IsActive: new(false)}, nil)
		return p, err
	}()).must(t)

	tests := []struct {
		name  string
		f     store.ProjectFilter
		want  []string
		total int
	}{
		{"all, by name", store.ProjectFilter{}, []string{"Charlie", "Delta", "alpha", "bravo", "echo%2", "echo_1", "foxtrot", "golf-alpha"}, 8},
		{"search is case-insensitive", store.ProjectFilter{Search: "ALPHA"}, []string{"alpha", "golf-alpha"}, 2},
		{"search active only", store.ProjectFilter{Search: "alpha", ActiveOnly: true}, []string{"alpha"}, 1},
		{"underscore is literal", store.ProjectFilter{Search: "_"}, []string{"echo_1"}, 1},
		{"percent is literal", store.ProjectFilter{Search: "%"}, []string{"echo%2"}, 1},
		{"no match", store.ProjectFilter{Search: "zulu"}, []string{}, 0},
		{"page 2 of 3", store.ProjectFilter{Page: store.Page{Number: 2, Size: 3}}, []string{"bravo", "echo%2", "echo_1"}, 8},
		{"last page", store.ProjectFilter{Page: store.Page{Number: 3, Size: 3}}, []string{"foxtrot", "golf-alpha"}, 8},
		{"beyond the end", store.ProjectFilter{Page: store.Page{Number: 9, Size: 3}}, []string{}, 8},
		{"active only", store.ProjectFilter{ActiveOnly: true, Page: store.Page{Size: 100}}, []string{"Charlie", "Delta", "alpha", "bravo", "echo%2", "echo_1", "foxtrot"}, 7},
	}
	for _, tc := range tests {
		got, total, err := s.ListProjects(c, tc.f)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		// Collation differs between engines for mixed case; compare as the
		// engine's byte order, which both use for ASCII.
		if strings.Join(names(got), ",") != strings.Join(tc.want, ",") || total != tc.total {
			t.Errorf("%s: got %v total %d, want %v total %d", tc.name, names(got), total, tc.want, tc.total)
		}
	}
	// Page sizes are capped.
	got, _, err := s.ListProjects(c, store.ProjectFilter{Page: store.Page{Size: 100000}})
	if err != nil || len(got) != 8 {
		t.Fatalf("capped page: %d projects, %v", len(got), err)
	}
}

func testProjectUpdate(t *testing.T, s store.Store) {
	c := ctx(t)
	p := createProject(t, s, "upd")
	time.Sleep(2 * time.Millisecond) // updated_at must move past created_at
	lim := llmproxy.Limits{RequestsPerMinute: 10, TokensPerDay: 1000}
	def := llmproxy.Limits{RequestsPerDay: 50}
	got, r, err := s.UpdateProject(c, p.ID, store.ProjectUpdate{
		Name: new("upd2"), APIKeyEncrypted: new("ct2"), APIKeyHint: new("sk-...wxyz"), Limits: &lim, TokenDefaults: &def,
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.Counts() != (store.RevokeResult{}).Counts() {
		t.Fatalf("RevokeResult = %+v without RevokeTokens, want zero", r)
	}
	if got.Name != "upd2" || got.APIKeyEncrypted != "ct2" || got.APIKeyHint != "sk-...wxyz" || got.Limits != lim || got.TokenDefaults != def || !got.IsActive {
		t.Fatalf("UpdateProject returned %+v", got)
	}
	if !got.UpdatedAt.After(p.UpdatedAt) || !got.CreatedAt.Equal(p.CreatedAt) {
		t.Fatalf("updated_at %v not after %v, or created_at changed", got.UpdatedAt, p.UpdatedAt)
	}
	read := try(s.GetProject(c, p.ID)).must(t)
	if read.Name != "upd2" || read.APIKeyEncrypted != "ct2" || read.Limits != lim || read.TokenDefaults != def || !read.UpdatedAt.Equal(got.UpdatedAt) {
		t.Fatalf("GetProject after update = %+v, want %+v", read, got)
	}
	checkUTC(t, "updated project", &read.UpdatedAt)
	// An empty update still bumps updated_at and changes nothing else.
	again, _, err := s.UpdateProject(c, p.ID, store.ProjectUpdate{}, nil)
	if err != nil || again.Name != "upd2" || again.Limits != lim {
		t.Fatalf("empty update = %+v, %v", again, err)
	}
	// RevokeTokens requires IsActive=false.
	_, _, err = s.UpdateProject(c, p.ID, store.ProjectUpdate{RevokeTokens: true}, nil)
	wantErr(t, err, llmproxy.ErrInvalid, "", "")
	_, _, err = s.UpdateProject(c, p.ID, store.ProjectUpdate{RevokeTokens: true, IsActive: new(true)}, nil)
	wantErr(t, err, llmproxy.ErrInvalid, "", "")
}

func testProjectDeactivation(t *testing.T, s store.Store) {
	c := ctx(t)
	p := createProject(t, s, "deact")
	tok := createToken(t, s, p.ID)
	before := time.Now()
	got, _, err := s.UpdateProject(c, p.ID, store.ProjectUpdate{IsActive: new(false)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	read := try(s.GetProject(c, p.ID)).must(t)
	if read.IsActive || read.DeactivatedAt == nil || !near(*read.DeactivatedAt, before) || !read.DeactivatedAt.Equal(*got.DeactivatedAt) {
		t.Fatalf("after deactivation: is_active %v deactivated_at %v (returned %v)", read.IsActive, read.DeactivatedAt, got.DeactivatedAt)
	}
	checkUTC(t, "deactivated_at", read.DeactivatedAt)
	// Deactivating again keeps the first deactivation time.
	first := *read.DeactivatedAt
	time.Sleep(2 * time.Millisecond)
	try(func() (llmproxy.Project, error) {
		p, _, err := s.UpdateProject(c, p.ID, store.ProjectUpdate{IsActive: new(false)}, nil)
		return p, err
	}()).must(t)
	if read := try(s.GetProject(c, p.ID)).must(t); read.DeactivatedAt == nil || !read.DeactivatedAt.Equal(first) {
		t.Fatalf("deactivated_at after second deactivation = %v, want %v", read.DeactivatedAt, first)
	}
	// Without RevokeTokens, tokens stay active.
	if tk := try(s.GetToken(c, tok.ID)).must(t); !tk.IsActive {
		t.Fatal("deactivating a project without revoke_tokens revoked its token")
	}
	// No new tokens for an inactive project.
	_, err = s.CreateToken(c, newToken(p.ID), nil)
	wantErr(t, err, llmproxy.ErrForbidden, llmproxy.CodeProjectInactive, "cannot create tokens for inactive projects")
	// Reactivation clears deactivated_at.
	try(func() (llmproxy.Project, error) {
		p, _, err := s.UpdateProject(c, p.ID, store.ProjectUpdate{IsActive: new(true)}, nil)
		return p, err
	}()).must(t)
	if read := try(s.GetProject(c, p.ID)).must(t); !read.IsActive || read.DeactivatedAt != nil {
		t.Fatalf("after reactivation: is_active %v deactivated_at %v", read.IsActive, read.DeactivatedAt)
	}
	createToken(t, s, p.ID)
}

func testProjectRevokeTokens(t *testing.T, s store.Store) {
	c := ctx(t)
	p := createProject(t, s, "rev")
	other := createProject(t, s, "other")
	var toks []llmproxy.Token
	for range 4 {
		toks = append(toks, createToken(t, s, p.ID))
	}
	otherTok := createToken(t, s, other.ID)
	try(func() (llmproxy.Token, error) { t, _, err := s.RevokeToken(c, toks[0].ID, nil); return t, err }()).must(t)

	r, err := s.RevokeProjectTokens(c, p.ID, nil)
	if err != nil {
		t.Fatal(err)
	}
	if r.Counts() != (store.RevokeResult{Total: 4, Revoked: 3, AlreadyRevoked: 1}).Counts() {
		t.Fatalf("RevokeProjectTokens = %+v, want total 4 revoked 3 already 1", r)
	}
	if !sameIDs(r.TokenIDs, []string{toks[1].ID, toks[2].ID, toks[3].ID}) {
		t.Fatalf("RevokeProjectTokens TokenIDs = %v, want the three active tokens", r.TokenIDs)
	}
	for _, tk := range toks {
		got := try(s.GetToken(c, tk.ID)).must(t)
		if got.IsActive || got.DeactivatedAt == nil {
			t.Fatalf("token %s: is_active %v deactivated_at %v after bulk revoke", tk.ID, got.IsActive, got.DeactivatedAt)
		}
	}
	if got := try(s.GetToken(c, otherTok.ID)).must(t); !got.IsActive {
		t.Fatal("bulk revoke touched another project's token")
	}
	r, err = s.RevokeProjectTokens(c, p.ID, nil)
	if err != nil || r.Counts() != (store.RevokeResult{Total: 4, Revoked: 0, AlreadyRevoked: 4}).Counts() {
		t.Fatalf("second RevokeProjectTokens = %+v, %v", r, err)
	}
	if len(r.TokenIDs) != 0 {
		t.Fatalf("second RevokeProjectTokens TokenIDs = %v, want none", r.TokenIDs)
	}
	empty := createProject(t, s, "empty")
	if r, err := s.RevokeProjectTokens(c, empty.ID, nil); err != nil || r.Counts() != (store.RevokeResult{}).Counts() {
		t.Fatalf("RevokeProjectTokens without tokens = %+v, %v", r, err)
	}

	// UpdateProject with RevokeTokens deactivates and revokes in one go.
	p2 := createProject(t, s, "rev2")
	a, b := createToken(t, s, p2.ID), createToken(t, s, p2.ID)
	got, r, err := s.UpdateProject(c, p2.ID, store.ProjectUpdate{IsActive: new(false), RevokeTokens: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got.IsActive || got.DeactivatedAt == nil || r.Counts() != (store.RevokeResult{Total: 2, Revoked: 2}).Counts() {
		t.Fatalf("UpdateProject(revoke) = %+v %+v", got, r)
	}
	if !sameIDs(r.TokenIDs, []string{a.ID, b.ID}) {
		t.Fatalf("UpdateProject(revoke) TokenIDs = %v, want %s %s", r.TokenIDs, a.ID, b.ID)
	}
	for _, id := range []string{a.ID, b.ID} {
		if tk := try(s.GetToken(c, id)).must(t); tk.IsActive || tk.DeactivatedAt == nil {
			t.Fatalf("token %s still active after UpdateProject(revoke)", id)
		}
	}
}

// ---- tokens

func testTokenCreateGet(t *testing.T, s store.Store) {
	c := ctx(t)
	p := createProject(t, s, "tok")
	exp := time.Now().Add(time.Hour).In(time.FixedZone("Y", -7200))
	in := newToken(p.ID)
	in.ExpiresAt = &exp
	in.MaxRequests = new(int64(50))
	in.Limits = llmproxy.Limits{RequestsPerMinute: 3}
	tk := try(s.CreateToken(c, in, nil)).must(t)
	if tk.ID == "" || tk.CreatedAt.IsZero() {
		t.Fatalf("CreateToken did not assign id/created_at: %+v", tk)
	}
	for _, got := range []llmproxy.Token{try(s.GetToken(c, tk.ID)).must(t), try(s.GetTokenByHash(c, in.Hash)).must(t)} {
		if got.ID != tk.ID || got.Hash != in.Hash || got.Hint != in.Hint || got.ProjectID != p.ID || !got.IsActive ||
			got.DeactivatedAt != nil || got.RequestCount != 0 || got.CacheHitCount != 0 || got.LastUsedAt != nil ||
			got.MaxRequests == nil || *got.MaxRequests != 50 || got.Limits != in.Limits {
			t.Fatalf("read token = %+v, want %+v", got, tk)
		}
		if got.ExpiresAt == nil || !got.ExpiresAt.Equal(exp.Truncate(time.Microsecond)) || !got.CreatedAt.Equal(tk.CreatedAt) {
			t.Fatalf("expires_at %v created_at %v, want %v %v", got.ExpiresAt, got.CreatedAt, exp, tk.CreatedAt)
		}
		checkUTC(t, "token", got.ExpiresAt, &got.CreatedAt)
	}
	// max_requests 0 means unlimited (NULL); no expiry is NULL.
	in2 := newToken(p.ID)
	in2.MaxRequests = new(int64(0))
	tk2 := try(s.CreateToken(c, in2, nil)).must(t)
	if got := try(s.GetToken(c, tk2.ID)).must(t); got.MaxRequests != nil || got.ExpiresAt != nil {
		t.Fatalf("max_requests %v expires_at %v, want nil nil", got.MaxRequests, got.ExpiresAt)
	}
}

func testTokenCreateRules(t *testing.T, s store.Store) {
	c := ctx(t)
	_, err := s.CreateToken(c, newToken("missing"), nil)
	wantErr(t, err, llmproxy.ErrNotFound, llmproxy.CodeNotFound, "project not found")

	p := createProject(t, s, "rules")
	tk := createToken(t, s, p.ID)
	dup := newToken(p.ID)
	dup.Hash = tk.Hash
	_, err = s.CreateToken(c, dup, nil)
	wantErr(t, err, llmproxy.ErrConflict, llmproxy.CodeConflict, "")

	// The store keeps a token's limits as given: zero limits mean unlimited,
	// even when the project has token defaults (the service applies those).
	def := llmproxy.Limits{RequestsPerMinute: 7, TokensPerDay: 9}
	withDefaults := newProject("defaults")
	withDefaults.TokenDefaults = def
	pd := try(s.CreateProject(c, withDefaults, nil)).must(t)
	td := createToken(t, s, pd.ID)
	if got := try(s.GetToken(c, td.ID)).must(t); !got.Limits.IsZero() {
		t.Fatalf("token limits = %+v, want none (unlimited) as given", got.Limits)
	}
	explicit := newToken(pd.ID)
	explicit.Limits = llmproxy.Limits{RequestsPerDay: 1}
	te := try(s.CreateToken(c, explicit, nil)).must(t)
	if got := try(s.GetToken(c, te.ID)).must(t); got.Limits != explicit.Limits {
		t.Fatalf("token limits = %+v, want explicit %+v", got.Limits, explicit.Limits)
	}

	// Inactive project: forbidden, nothing stored.
	inactive := createProject(t, s, "inactive")
	try(func() (llmproxy.Project, error) {
		p, _, err := s.UpdateProject(c, inactive.ID, store.ProjectUpdate{IsActive: new(false)}, nil)
		return p, err
	}()).must(t)
	_, err = s.CreateToken(c, newToken(inactive.ID), nil)
	wantErr(t, err, llmproxy.ErrForbidden, llmproxy.CodeProjectInactive, "cannot create tokens for inactive projects")
	if _, n, err := s.ListTokens(c, store.TokenFilter{ProjectID: inactive.ID}); err != nil || n != 0 {
		t.Fatalf("tokens of inactive project = %d, %v; want 0", n, err)
	}
}

func testTokenUpdate(t *testing.T, s store.Store) {
	c := ctx(t)
	p := createProject(t, s, "tu")
	tk := createToken(t, s, p.ID)
	exp := time.Now().Add(48 * time.Hour)
	lim := llmproxy.Limits{TokensPerMinute: 99}
	got, err := s.UpdateToken(c, tk.ID, store.TokenUpdate{MaxRequests: new(int64(10)), ExpiresAt: &exp, Limits: &lim}, nil)
	if err != nil {
		t.Fatal(err)
	}
	read := try(s.GetToken(c, tk.ID)).must(t)
	for _, g := range []llmproxy.Token{got, read} {
		if g.MaxRequests == nil || *g.MaxRequests != 10 || g.ExpiresAt == nil || !g.ExpiresAt.Equal(exp.Truncate(time.Microsecond)) || g.Limits != lim || !g.IsActive {
			t.Fatalf("after update: %+v", g)
		}
	}
	// Zero values mean unlimited / never expires.
	read = try(func() (llmproxy.Token, error) {
		_, err := s.UpdateToken(c, tk.ID, store.TokenUpdate{MaxRequests: new(int64(0)), ExpiresAt: &time.Time{}}, nil)
		if err != nil {
			return llmproxy.Token{}, err
		}
		return s.GetToken(c, tk.ID)
	}()).must(t)
	if read.MaxRequests != nil || read.ExpiresAt != nil || read.Limits != lim {
		t.Fatalf("after clearing: max_requests %v expires_at %v limits %+v", read.MaxRequests, read.ExpiresAt, read.Limits)
	}
	// Deactivate persists deactivated_at; reactivate clears it.
	try(s.UpdateToken(c, tk.ID, store.TokenUpdate{IsActive: new(false)}, nil)).must(t)
	read = try(s.GetToken(c, tk.ID)).must(t)
	if read.IsActive || read.DeactivatedAt == nil || !near(*read.DeactivatedAt, time.Now()) {
		t.Fatalf("after deactivation: %+v", read)
	}
	checkUTC(t, "token deactivated_at", read.DeactivatedAt)
	try(s.UpdateToken(c, tk.ID, store.TokenUpdate{IsActive: new(true)}, nil)).must(t)
	if read = try(s.GetToken(c, tk.ID)).must(t); !read.IsActive || read.DeactivatedAt != nil {
		t.Fatalf("after reactivation: %+v", read)
	}
}

func testTokenRevoke(t *testing.T, s store.Store) {
	c := ctx(t)
	p := createProject(t, s, "tr")
	tk := createToken(t, s, p.ID)
	got, already, err := s.RevokeToken(c, tk.ID, nil)
	if err != nil || already || got.IsActive || got.DeactivatedAt == nil {
		t.Fatalf("RevokeToken = %+v already=%v err=%v", got, already, err)
	}
	first := *got.DeactivatedAt
	got, already, err = s.RevokeToken(c, tk.ID, nil)
	if err != nil || !already || got.IsActive || got.DeactivatedAt == nil || !got.DeactivatedAt.Equal(first) {
		t.Fatalf("second RevokeToken = %+v already=%v err=%v", got, already, err)
	}
	if read := try(s.GetToken(c, tk.ID)).must(t); read.IsActive || read.DeactivatedAt == nil || !read.DeactivatedAt.Equal(first) {
		t.Fatalf("revoked token reads %+v", read)
	}
}

func ids(ts []llmproxy.Token) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = t.ID
	}
	return out
}

func testTokenList(t *testing.T, s store.Store) {
	c := ctx(t)
	p1, p2 := createProject(t, s, "l1"), createProject(t, s, "l2")
	base := time.Now().Add(-time.Hour).UTC().Truncate(time.Microsecond)
	mk := func(id, project string, age int, mut func(*llmproxy.Token)) {
		tk := newToken(project)
		tk.ID = id
		tk.CreatedAt = base.Add(time.Duration(age) * time.Second)
		if mut != nil {
			mut(&tk)
		}
		try(s.CreateToken(c, tk, nil)).must(t)
	}
	past, future := time.Now().Add(-time.Minute), time.Now().Add(time.Hour)
	mk("a-valid", p1.ID, 1, nil)
	mk("b-expired", p1.ID, 2, func(tk *llmproxy.Token) { tk.ExpiresAt = &past })
	mk("c-future", p1.ID, 3, func(tk *llmproxy.Token) { tk.ExpiresAt = &future })
	mk("d-revoked", p1.ID, 4, nil)
	mk("e-other", p2.ID, 5, nil)
	mk("f-same-time", p1.ID, 5, nil) // same created_at as e: ordered by id
	try(func() (llmproxy.Token, error) { t, _, err := s.RevokeToken(c, "d-revoked", nil); return t, err }()).must(t)

	tests := []struct {
		name  string
		f     store.TokenFilter
		want  []string
		total int
	}{
		{"all, newest first", store.TokenFilter{}, []string{"e-other", "f-same-time", "d-revoked", "c-future", "b-expired", "a-valid"}, 6},
		{"project", store.TokenFilter{ProjectID: p1.ID}, []string{"f-same-time", "d-revoked", "c-future", "b-expired", "a-valid"}, 5},
		{"active only excludes expired and revoked", store.TokenFilter{ProjectID: p1.ID, ActiveOnly: true}, []string{"f-same-time", "c-future", "a-valid"}, 3},
		{"active only, all projects", store.TokenFilter{ActiveOnly: true}, []string{"e-other", "f-same-time", "c-future", "a-valid"}, 4},
		{"page 2", store.TokenFilter{Page: store.Page{Number: 2, Size: 4}}, []string{"b-expired", "a-valid"}, 6},
		{"unknown project", store.TokenFilter{ProjectID: "nope"}, []string{}, 0},
	}
	for _, tc := range tests {
		got, total, err := s.ListTokens(c, tc.f)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got == nil || strings.Join(ids(got), ",") != strings.Join(tc.want, ",") || total != tc.total {
			t.Errorf("%s: got %v total %d, want %v total %d", tc.name, ids(got), total, tc.want, tc.total)
		}
	}
}

// ---- usage

func testAddUsage(t *testing.T, s store.Store) {
	c := ctx(t)
	p := createProject(t, s, "usage")
	a, b := createToken(t, s, p.ID), createToken(t, s, p.ID)
	t1 := time.Now().Add(-time.Minute)
	t2 := time.Now()
	err := s.AddUsage(c, []store.UsageDelta{
		{TokenID: a.ID, Requests: 2, CacheHits: 1, LastUsedAt: t2},
		{TokenID: b.ID, Requests: 5},
		{TokenID: a.ID, Requests: 3, LastUsedAt: t1}, // merged with the first
		{TokenID: "unknown", Requests: 9},            // ignored
	})
	if err != nil {
		t.Fatal(err)
	}
	ga, gb := try(s.GetToken(c, a.ID)).must(t), try(s.GetToken(c, b.ID)).must(t)
	if ga.RequestCount != 5 || ga.CacheHitCount != 1 || ga.LastUsedAt == nil || !ga.LastUsedAt.Equal(t2.Truncate(time.Microsecond)) {
		t.Fatalf("token a = count %d hits %d last %v", ga.RequestCount, ga.CacheHitCount, ga.LastUsedAt)
	}
	if gb.RequestCount != 5 || gb.LastUsedAt != nil {
		t.Fatalf("token b = count %d last %v", gb.RequestCount, gb.LastUsedAt)
	}
	checkUTC(t, "last_used_at", ga.LastUsedAt)
	// last_used_at never moves back.
	if err := s.AddUsage(c, []store.UsageDelta{{TokenID: a.ID, Requests: 1, LastUsedAt: t1}}); err != nil {
		t.Fatal(err)
	}
	if ga = try(s.GetToken(c, a.ID)).must(t); ga.RequestCount != 6 || !ga.LastUsedAt.Equal(t2.Truncate(time.Microsecond)) {
		t.Fatalf("after older usage: count %d last %v", ga.RequestCount, ga.LastUsedAt)
	}
	if err := s.AddUsage(c, nil); err != nil {
		t.Fatalf("AddUsage(nil) = %v", err)
	}
}

func testAddUsageConcurrent(t *testing.T, s store.Store) {
	c := ctx(t)
	p := createProject(t, s, "conc")
	a, b := createToken(t, s, p.ID), createToken(t, s, p.ID)
	const n = 200
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Half the batches touch both tokens, in both orders.
			d := []store.UsageDelta{{TokenID: a.ID, Requests: 1, LastUsedAt: time.Now()}}
			switch i % 4 {
			case 1:
				d = append(d, store.UsageDelta{TokenID: b.ID, Requests: 1})
			case 3:
				d = append([]store.UsageDelta{{TokenID: b.ID, Requests: 1}}, d...)
			}
			errs <- s.AddUsage(c, d)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("AddUsage: %v", err)
		}
	}
	if got := try(s.GetToken(c, a.ID)).must(t); got.RequestCount != n {
		t.Fatalf("request_count = %d after %d concurrent increments", got.RequestCount, n)
	}
	if got := try(s.GetToken(c, b.ID)).must(t); got.RequestCount != n/2 {
		t.Fatalf("request_count of b = %d, want %d", got.RequestCount, n/2)
	}
}

// usageHour is a fixed UTC hour for hourly usage tests.
var usageHour = time.Date(2026, 3, 4, 10, 0, 0, 0, time.UTC)

func projectUsage(t *testing.T, s store.Store, since time.Time) map[string]store.ProjectUsage {
	t.Helper()
	got := try(s.ProjectUsage(ctx(t), since)).must(t)
	if got == nil {
		t.Fatalf("ProjectUsage(%v) = nil, want a non-nil slice", since)
	}
	m := map[string]store.ProjectUsage{}
	for i, u := range got {
		if i > 0 && got[i-1].ProjectID >= u.ProjectID {
			t.Fatalf("ProjectUsage(%v) not ordered by project id: %v", since, got)
		}
		m[u.ProjectID] = u
	}
	return m
}

func testProjectUsage(t *testing.T, s store.Store) {
	c := ctx(t)
	p1, p2, p3 := createProject(t, s, "usage-1"), createProject(t, s, "usage-2"), createProject(t, s, "usage-3")
	a, b, tc, td := createToken(t, s, p1.ID), createToken(t, s, p1.ID), createToken(t, s, p2.ID), createToken(t, s, p3.ID)
	h0 := usageHour
	plus5 := time.FixedZone("UTC+5", 5*3600)
	err := s.AddUsage(c, []store.UsageDelta{
		{TokenID: a.ID, ProjectID: p1.ID, Requests: 2, CacheHits: 1, PromptTokens: 10, CompletionTokens: 5, LastUsedAt: h0.Add(10 * time.Minute)},
		{TokenID: a.ID, ProjectID: p1.ID, Requests: 1, PromptTokens: 3, CompletionTokens: 4, LastUsedAt: h0.Add(2*time.Hour - time.Microsecond)}, // h0+1h
		{TokenID: b.ID, ProjectID: p1.ID, Requests: 4, PromptTokens: 100, CompletionTokens: 50, LastUsedAt: h0},                                  // h0, boundary
		{TokenID: tc.ID, ProjectID: p2.ID, Requests: 7, CompletionTokens: 70, LastUsedAt: h0.Add(-55 * time.Minute)},                             // h0-1h
		{TokenID: tc.ID, ProjectID: p2.ID, Requests: 1, PromptTokens: 1, LastUsedAt: h0.Add(time.Hour).In(plus5)},                                // h0+1h, not UTC
		{TokenID: a.ID, Requests: 100, LastUsedAt: h0},                              // no project: token only
		{TokenID: "unknown", ProjectID: p1.ID, Requests: 1000, LastUsedAt: h0},      // unknown token: ignored
		{TokenID: td.ID, ProjectID: p3.ID, LastUsedAt: h0},                          // counts nothing: no row
		{TokenID: tc.ID, ProjectID: "no-such-project", Requests: 1, LastUsedAt: h0}, // kept as given
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := try(s.GetToken(c, a.ID)).must(t); got.RequestCount != 103 || got.CacheHitCount != 1 {
		t.Fatalf("token a: count %d hits %d, want 103 and 1", got.RequestCount, got.CacheHitCount)
	}
	if got := try(s.GetToken(c, tc.ID)).must(t); got.RequestCount != 9 {
		t.Fatalf("token c: count %d, want 9", got.RequestCount)
	}
	type want map[string]store.ProjectUsage
	u := func(id string, req, hits, prompt, completion int64) store.ProjectUsage {
		return store.ProjectUsage{ProjectID: id, Requests: req, CacheHits: hits, PromptTokens: prompt, CompletionTokens: completion}
	}
	check := func(name string, since time.Time, w want) {
		t.Helper()
		got := projectUsage(t, s, since)
		if len(got) != len(w) {
			t.Errorf("%s: got %v, want %v", name, got, w)
			return
		}
		for id, wu := range w {
			if got[id] != wu {
				t.Errorf("%s: project %s = %+v, want %+v", name, id, got[id], wu)
			}
		}
	}
	check("everything", time.Time{}, want{
		p1.ID: u(p1.ID, 7, 1, 113, 59), p2.ID: u(p2.ID, 8, 0, 1, 70), "no-such-project": u("no-such-project", 1, 0, 0, 0),
	})
	// since is rounded down to its hour: the whole of h0 counts.
	check("since inside h0", h0.Add(59*time.Minute), want{
		p1.ID: u(p1.ID, 7, 1, 113, 59), p2.ID: u(p2.ID, 1, 0, 1, 0), "no-such-project": u("no-such-project", 1, 0, 0, 0),
	})
	check("since h0+1h (non-UTC)", h0.Add(time.Hour).In(plus5), want{p1.ID: u(p1.ID, 1, 0, 3, 4), p2.ID: u(p2.ID, 1, 0, 1, 0)})
	check("since after all usage", h0.Add(2*time.Hour), want{})

	// Later batches add to the same hours.
	if err := s.AddUsage(c, []store.UsageDelta{
		{TokenID: b.ID, ProjectID: p1.ID, Requests: 1, CacheHits: 1, LastUsedAt: h0.Add(90 * time.Minute)},
		{TokenID: b.ID, ProjectID: p1.ID, Requests: 2, PromptTokens: 20, LastUsedAt: h0.Add(91 * time.Minute)},
	}); err != nil {
		t.Fatal(err)
	}
	check("after a second batch", h0.Add(time.Hour), want{p1.ID: u(p1.ID, 4, 1, 23, 4), p2.ID: u(p2.ID, 1, 0, 1, 0)})

	// Without LastUsedAt the hour is the time of the call.
	p4 := createProject(t, s, "usage-4")
	te := createToken(t, s, p4.ID)
	before := time.Now()
	if err := s.AddUsage(c, []store.UsageDelta{{TokenID: te.ID, ProjectID: p4.ID, Requests: 3, PromptTokens: 9}}); err != nil {
		t.Fatal(err)
	}
	if got := projectUsage(t, s, before)[p4.ID]; got != u(p4.ID, 3, 0, 9, 0) {
		t.Fatalf("usage without LastUsedAt = %+v, want 3 requests and 9 prompt tokens in the current hour", got)
	}
	if got := projectUsage(t, s, time.Now().Add(2*time.Hour))[p4.ID]; got != (store.ProjectUsage{}) {
		t.Fatalf("usage of the current hour counted in a later one: %+v", got)
	}
}

func testProjectUsageConcurrent(t *testing.T, s store.Store) {
	c := ctx(t)
	p, q := createProject(t, s, "conc-usage-p"), createProject(t, s, "conc-usage-q")
	a, b := createToken(t, s, p.ID), createToken(t, s, q.ID)
	h0, h1 := usageHour, usageHour.Add(time.Hour)
	const n = 200
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			// Two hours of project p; half the batches also touch project
			// q, in both orders and over two hours.
			at := h0.Add(time.Duration(i) * time.Second)
			if i%2 == 1 {
				at = h1.Add(time.Duration(i) * time.Second)
			}
			d := []store.UsageDelta{{TokenID: a.ID, ProjectID: p.ID, Requests: 1, PromptTokens: 2, CompletionTokens: 3, LastUsedAt: at}}
			bt := h0
			if (i/2)%2 == 1 {
				bt = h1
			}
			other := store.UsageDelta{TokenID: b.ID, ProjectID: q.ID, Requests: 1, CacheHits: 1, LastUsedAt: bt}
			switch i % 4 {
			case 1:
				d = append(d, other)
			case 3:
				d = append([]store.UsageDelta{other}, d...)
			}
			errs <- s.AddUsage(c, d)
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("AddUsage: %v", err)
		}
	}
	all := projectUsage(t, s, time.Time{})
	if got, want := all[p.ID], (store.ProjectUsage{ProjectID: p.ID, Requests: n, PromptTokens: 2 * n, CompletionTokens: 3 * n}); got != want {
		t.Fatalf("project p = %+v after %d concurrent increments, want %+v", got, n, want)
	}
	if got, want := all[q.ID], (store.ProjectUsage{ProjectID: q.ID, Requests: n / 2, CacheHits: n / 2}); got != want {
		t.Fatalf("project q = %+v, want %+v", got, want)
	}
	later := projectUsage(t, s, h1)
	if got := later[p.ID].Requests; got != n/2 {
		t.Fatalf("project p in the second hour: %d requests, want %d", got, n/2)
	}
	if got := later[q.ID].Requests; got != n/4 {
		t.Fatalf("project q in the second hour: %d requests, want %d", got, n/4)
	}
}

// ---- audit

func testAuditAppendAndChain(t *testing.T, s store.Store) {
	c := ctx(t)
	if got := VerifyChain(t, s); len(got) != 0 {
		t.Fatalf("empty store has %d audit records", len(got))
	}
	at := time.Date(2026, 2, 3, 4, 5, 6, 789123456, time.FixedZone("Z", 5*3600))
	in := llmproxy.AuditEvent{
		Timestamp: at, Action: "project.create", Actor: "management_api", Outcome: llmproxy.OutcomeSuccess,
		ProjectID: "p1", TokenID: "t1", RequestID: "r1", CorrelationID: "c1", ClientIP: "192.0.2.1", Method: "POST",
		Path: "/manage/projects", UserAgent: "ua/1", Reason: "because",
		Details: map[string]any{"project_name": "x", "n": 12345678901234567, "f": 1.5, "nested": map[string]any{"b": true, "a": []any{1, "two"}}, "s": struct{ B, A int }{2, 1}},
	}
	first := try(s.AppendAudit(c, in)).must(t)
	if first.ID == "" || first.Seq != 1 || first.PrevHash != "" || first.Hash == "" {
		t.Fatalf("first record = id %q seq %d prev %q hash %q", first.ID, first.Seq, first.PrevHash, first.Hash)
	}
	if !first.Timestamp.Equal(at.Truncate(time.Microsecond)) {
		t.Fatalf("timestamp = %v, want %v truncated to µs", first.Timestamp, at)
	}
	second := try(s.AppendAudit(c, auditEvent("token.create"))).must(t)
	if second.Seq != 2 || second.PrevHash != first.Hash || !near(second.Timestamp, time.Now()) {
		t.Fatalf("second record = seq %d prev %q ts %v", second.Seq, second.PrevHash, second.Timestamp)
	}
	third := try(s.AppendAudit(c, llmproxy.AuditEvent{Action: "x", Outcome: llmproxy.OutcomeDenied, Details: map[string]any{}})).must(t)

	got := try(s.GetAudit(c, first.ID)).must(t)
	if got.Action != in.Action || got.Actor != in.Actor || got.Outcome != in.Outcome || got.ProjectID != "p1" ||
		got.TokenID != "t1" || got.RequestID != "r1" || got.CorrelationID != "c1" || got.ClientIP != "192.0.2.1" ||
		got.Method != "POST" || got.Path != "/manage/projects" || got.UserAgent != "ua/1" || got.Reason != "because" ||
		got.Hash != first.Hash || got.Seq != 1 || !got.Timestamp.Equal(first.Timestamp) {
		t.Fatalf("GetAudit = %+v, want %+v", got, first)
	}
	checkUTC(t, "audit timestamp", &got.Timestamp, &first.Timestamp)
	if fmt.Sprint(got.Details["project_name"]) != "x" || fmt.Sprint(got.Details["n"]) != "12345678901234567" {
		t.Fatalf("details = %#v", got.Details)
	}
	if h := got.ComputeHash(got.PrevHash); h != got.Hash {
		t.Fatal("stored record does not recompute its hash")
	}
	if g := try(s.GetAudit(c, third.ID)).must(t); g.Details == nil || len(g.Details) != 0 {
		t.Fatalf("empty details read back as %#v, want empty map", g.Details)
	}
	if g := try(s.GetAudit(c, second.ID)).must(t); g.Details != nil {
		t.Fatalf("nil details read back as %#v, want nil", g.Details)
	}
	chain := VerifyChain(t, s)
	if len(chain) != 3 || chain[0].ID != first.ID || chain[1].ID != second.ID || chain[2].ID != third.ID {
		t.Fatalf("chain = %v", chain)
	}
	// A duplicate id is a conflict; an invalid outcome is rejected.
	dup := auditEvent("dup")
	dup.ID = first.ID
	_, err := s.AppendAudit(c, dup)
	wantErr(t, err, llmproxy.ErrConflict, llmproxy.CodeConflict, "")
	_, err = s.AppendAudit(c, llmproxy.AuditEvent{Action: "x", Outcome: "maybe"})
	wantErr(t, err, llmproxy.ErrInvalid, "", "")
	if n := len(VerifyChain(t, s)); n != 3 {
		t.Fatalf("failed appends changed the chain: %d records", n)
	}
}

// testAuditKeyedSeal: with a key set, the store seals records with its MAC
// and keeps the key id; a rotated key seals the next records under its own
// id, linked to the last record under the old one; the unkeyed records
// before the first keyed one stay as they were.
func testAuditKeyedSeal(t *testing.T, s store.Store) {
	c := ctx(t)
	legacy := try(s.AppendAudit(c, auditEvent("before.keys"))).must(t)
	if legacy.KeyID != "" || legacy.Hash != legacy.ComputeHash("") {
		t.Fatalf("unkeyed store sealed %+v", legacy)
	}
	k1 := llmproxy.AuditKey{ID: "k1", Secret: []byte("0123456789abcdef0123456789abcdef")}
	k2 := llmproxy.AuditKey{ID: "k2", Secret: []byte("fedcba9876543210fedcba9876543210")}
	s.SetAuditKey(k1)
	first := try(s.AppendAudit(c, auditEvent("keyed.one"))).must(t)
	var second llmproxy.AuditEvent
	_, err := s.CreateProject(c, newProject("keyed"), func(error) llmproxy.AuditEvent { return auditEvent("project.create") })
	if err != nil {
		t.Fatal(err)
	}
	s.SetAuditKey(k2)
	third := try(s.AppendAudit(c, auditEvent("keyed.two"))).must(t)
	chain := VerifyChain(t, s)
	if len(chain) != 4 {
		t.Fatalf("chain has %d records", len(chain))
	}
	second = chain[2]
	for _, tc := range []struct {
		got  llmproxy.AuditEvent
		key  llmproxy.AuditKey
		prev string
	}{{first, k1, legacy.Hash}, {chain[1], k1, legacy.Hash}, {second, k1, first.Hash}, {third, k2, second.Hash}} {
		stored := try(s.GetAudit(c, tc.got.ID)).must(t)
		if stored.KeyID != tc.key.ID || stored.PrevHash != tc.prev || stored.Hash != stored.ComputeMAC(stored.PrevHash, tc.key.Secret) {
			t.Fatalf("record %d: key %q prev %q, want key %q prev %q, MAC ok %v", stored.Seq, stored.KeyID, stored.PrevHash,
				tc.key.ID, tc.prev, stored.Hash == stored.ComputeMAC(stored.PrevHash, tc.key.Secret))
		}
		if stored.Hash == stored.ComputeHash(stored.PrevHash) {
			t.Fatalf("record %d carries the unkeyed hash", stored.Seq)
		}
	}
}

// testAuditBounded: a record built from a huge request is stored bounded,
// with the truncation marker, and still verifies.
func testAuditBounded(t *testing.T, s store.Store) {
	c := ctx(t)
	huge := "/manage/projects/" + strings.Repeat("a", 900<<10)
	e := auditEvent("management.auth")
	e.Outcome, e.Path, e.UserAgent, e.TokenID, e.Reason = llmproxy.OutcomeDenied, huge, huge, huge, huge+"\x00"
	e.Details = map[string]any{"name": huge, "list": []any{huge}}
	got := try(s.AppendAudit(c, e)).must(t)
	stored := try(s.GetAudit(c, got.ID)).must(t)
	size := len(stored.Path) + len(stored.UserAgent) + len(stored.TokenID) + len(stored.Reason) + len(fmt.Sprint(stored.Details))
	if size > 8<<10 {
		t.Fatalf("stored record is %d bytes", size)
	}
	if !strings.HasPrefix(stored.Path, "/manage/projects/aaa") || !strings.HasSuffix(stored.Path, fmt.Sprintf("[truncated, %d bytes]", len(huge))) {
		t.Fatalf("path not truncated with the marker: ...%q", stored.Path[max(0, len(stored.Path)-60):])
	}
	VerifyChain(t, s)
}

func testAuditConcurrentAppends(t *testing.T, s store.Store) {
	c := ctx(t)
	const n = 40
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for i := range n {
		wg.Add(2)
		go func() {
			defer wg.Done()
			_, err := s.AppendAudit(c, auditEvent(fmt.Sprintf("a%d", i)))
			errs <- err
		}()
		go func() {
			defer wg.Done()
			_, err := s.CreateProject(c, newProject(fmt.Sprintf("p%d", i)), func(err error) llmproxy.AuditEvent {
				return auditEvent("project.create")
			})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := VerifyChain(t, s); len(got) != 2*n {
		t.Fatalf("chain has %d records, want %d", len(got), 2*n)
	}
}

func testAuditFilters(t *testing.T, s store.Store) {
	c := ctx(t)
	base := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	type ev = llmproxy.AuditEvent
	events := []ev{
		{Action: "project.create", Actor: "management_api", Outcome: "success", ProjectID: "p1", RequestID: "req-1", ClientIP: "10.0.0.1", Method: "POST", Path: "/manage/projects", Details: map[string]any{"project_name": "Needle"}},
		{Action: "project.update", Actor: "management_api", Outcome: "failure", ProjectID: "p1", RequestID: "req-2", ClientIP: "10.0.0.2", Method: "PATCH", Path: "/manage/projects/p1", Reason: "project not found"},
		{Action: "token.create", Actor: "admin_ui", Outcome: "success", ProjectID: "p2", TokenID: "t1", RequestID: "req-3", ClientIP: "10.0.0.1", Method: "POST", Path: "/manage/tokens"},
		{Action: "token.revoke", Actor: "admin_ui", Outcome: "denied", ProjectID: "p2", TokenID: "t1", RequestID: "req-4", ClientIP: "10.0.0.3", Method: "DELETE", Path: "/manage/tokens/t1", CorrelationID: "corr_50%"},
		{Action: "admin.login", Actor: "anonymous", Outcome: "error", ClientIP: "10.0.0.3", Method: "POST", Path: "/auth/login", UserAgent: "Mozilla"},
	}
	byAction := map[string]ev{}
	for i, e := range events {
		e.Timestamp = base.Add(time.Duration(i) * time.Minute)
		byAction[e.Action] = try(s.AppendAudit(c, e)).must(t)
	}
	actions := func(es []ev) string {
		out := make([]string, len(es))
		for i, e := range es {
			out[i] = e.Action
		}
		return strings.Join(out, ",")
	}
	at := func(min int) *time.Time { v := base.Add(time.Duration(min) * time.Minute); return &v }
	tests := []struct {
		name  string
		f     store.AuditFilter
		want  string
		total int
	}{
		{"all, newest first", store.AuditFilter{}, "admin.login,token.revoke,token.create,project.update,project.create", 5},
		{"action", store.AuditFilter{Action: "token.create"}, "token.create", 1},
		{"outcome", store.AuditFilter{Outcome: "success"}, "token.create,project.create", 2},
		{"actor", store.AuditFilter{Actor: "admin_ui"}, "token.revoke,token.create", 2},
		{"project", store.AuditFilter{ProjectID: "p1"}, "project.update,project.create", 2},
		{"token", store.AuditFilter{TokenID: "t1"}, "token.revoke,token.create", 2},
		{"client ip", store.AuditFilter{ClientIP: "10.0.0.3"}, "admin.login,token.revoke", 2},
		{"request id", store.AuditFilter{RequestID: "req-2"}, "project.update", 1},
		{"method", store.AuditFilter{Method: "POST"}, "admin.login,token.create,project.create", 3},
		{"path", store.AuditFilter{Path: "/manage/tokens"}, "token.create", 1},
		{"combined", store.AuditFilter{Method: "POST", ClientIP: "10.0.0.1", Actor: "admin_ui"}, "token.create", 1},
		{"since (inclusive)", store.AuditFilter{Since: at(3)}, "admin.login,token.revoke", 2},
		{"until (inclusive)", store.AuditFilter{Until: at(1)}, "project.update,project.create", 2},
		{"range", store.AuditFilter{Since: at(1), Until: at(3)}, "token.revoke,token.create,project.update", 3},
		{"range in another zone", store.AuditFilter{Since: new(at(1).In(time.FixedZone("E", -5*3600)))}, "admin.login,token.revoke,token.create,project.update", 4},
		{"search details, any case", store.AuditFilter{Search: "nEEDLE"}, "project.create", 1},
		{"search reason", store.AuditFilter{Search: "not found"}, "project.update", 1},
		{"search path", store.AuditFilter{Search: "/manage/tokens"}, "token.revoke,token.create", 2},
		{"search user agent", store.AuditFilter{Search: "mozilla"}, "admin.login", 1},
		{"search ip", store.AuditFilter{Search: "10.0.0.2"}, "project.update", 1},
		{"search literal percent", store.AuditFilter{Search: "_50%"}, "token.revoke", 1},
		{"search literal underscore", store.AuditFilter{Search: "corr_"}, "token.revoke", 1},
		{"search and filter", store.AuditFilter{Search: "manage", Outcome: "success"}, "token.create,project.create", 2},
		{"no match", store.AuditFilter{Action: "nope"}, "", 0},
		{"page 1", store.AuditFilter{Page: store.Page{Number: 1, Size: 2}}, "admin.login,token.revoke", 5},
		{"page 3", store.AuditFilter{Page: store.Page{Number: 3, Size: 2}}, "project.create", 5},
		{"page beyond", store.AuditFilter{Page: store.Page{Number: 4, Size: 2}}, "", 5},
		{"filtered page", store.AuditFilter{Method: "POST", Page: store.Page{Number: 2, Size: 2}}, "project.create", 3},
	}
	for _, tc := range tests {
		got, total, err := s.ListAudit(c, tc.f)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got == nil || actions(got) != tc.want || total != tc.total {
			t.Errorf("%s: got [%s] total %d, want [%s] total %d", tc.name, actions(got), total, tc.want, tc.total)
		}
	}
	// Listed records are complete.
	got, _, err := s.ListAudit(c, store.AuditFilter{Action: "project.create"})
	if err != nil || len(got) != 1 || got[0].Hash != byAction["project.create"].Hash || got[0].Details["project_name"] != "Needle" {
		t.Fatalf("listed record = %+v, %v", got, err)
	}
	// Records with equal timestamps are ordered by chain position, newest first.
	same := base.Add(time.Hour)
	x := try(s.AppendAudit(c, ev{Action: "same.1", Outcome: "success", Timestamp: same})).must(t)
	y := try(s.AppendAudit(c, ev{Action: "same.2", Outcome: "success", Timestamp: same})).must(t)
	got, _, err = s.ListAudit(c, store.AuditFilter{Since: &same})
	if err != nil || len(got) != 2 || got[0].ID != y.ID || got[1].ID != x.ID {
		t.Fatalf("equal timestamps: %v, %v", got, err)
	}
}

func testAuditSameTransaction(t *testing.T, s store.Store) {
	c := ctx(t)
	var seen []error
	rec := func(action string) store.AuditFunc {
		return func(err error) llmproxy.AuditEvent {
			seen = append(seen, err)
			e := auditEvent(action)
			if err != nil {
				e.Outcome, e.Reason = llmproxy.OutcomeFailure, llmproxy.ErrorMessage(err)
			}
			return e
		}
	}
	last := func() llmproxy.AuditEvent {
		t.Helper()
		chain := VerifyChain(t, s)
		if len(chain) == 0 {
			t.Fatal("no audit record")
		}
		return chain[len(chain)-1]
	}

	// Success: the record is written with the change.
	p := try(s.CreateProject(c, newProject("audited"), func(err error) llmproxy.AuditEvent {
		e := auditEvent("project.create")
		e.Details = map[string]any{"project_name": "audited"}
		return e
	})).must(t)
	if e := last(); e.Action != "project.create" || e.Outcome != "success" || e.Details["project_name"] != "audited" {
		t.Fatalf("audit of create = %+v", e)
	}
	// Failure: nothing changes, a failure record is written with the error.
	_, err := s.CreateProject(c, newProject("audited"), rec("project.create"))
	wantErr(t, err, llmproxy.ErrConflict, llmproxy.CodeConflict, "")
	if e := last(); e.Outcome != "failure" || e.Reason != "a project with this name already exists" {
		t.Fatalf("audit of failed create = %+v", e)
	}
	if len(seen) != 1 || !errors.Is(seen[0], llmproxy.ErrConflict) {
		t.Fatalf("audit callback saw %v, want one conflict", seen)
	}
	if _, n, _ := s.ListProjects(c, store.ProjectFilter{}); n != 1 {
		t.Fatalf("%d projects after a failed create, want 1", n)
	}

	// UpdateProject: success record carries the result; not found writes a failure.
	var gotP llmproxy.Project
	var gotR store.RevokeResult
	createToken(t, s, p.ID)
	_, _, err = s.UpdateProject(c, p.ID, store.ProjectUpdate{IsActive: new(false), RevokeTokens: true}, func(p llmproxy.Project, r store.RevokeResult, err error) llmproxy.AuditEvent {
		gotP, gotR = p, r
		e := auditEvent("project.update")
		e.ProjectID = p.ID
		e.Details = map[string]any{"tokens_revoked": r.Revoked}
		return e
	})
	if err != nil || gotP.ID != p.ID || gotP.IsActive || gotR.Revoked != 1 {
		t.Fatalf("update audit callback saw %+v %+v (err %v)", gotP, gotR, err)
	}
	if e := last(); e.Action != "project.update" || e.ProjectID != p.ID || fmt.Sprint(e.Details["tokens_revoked"]) != "1" {
		t.Fatalf("audit of update = %+v", e)
	}
	_, _, err = s.UpdateProject(c, "missing", store.ProjectUpdate{Name: new("x")}, func(p llmproxy.Project, r store.RevokeResult, err error) llmproxy.AuditEvent {
		e := auditEvent("project.update")
		e.Outcome, e.ProjectID, e.Reason = llmproxy.OutcomeFailure, p.ID, llmproxy.ErrorMessage(err)
		return e
	})
	wantErr(t, err, llmproxy.ErrNotFound, "", "")
	if e := last(); e.Outcome != "failure" || e.ProjectID != "missing" || e.Reason != "project not found" {
		t.Fatalf("audit of failed update = %+v", e)
	}

	// CreateToken on an inactive project: forbidden, failure record, no token.
	_, err = s.CreateToken(c, newToken(p.ID), rec("token.create"))
	wantErr(t, err, llmproxy.ErrForbidden, llmproxy.CodeProjectInactive, "")
	if e := last(); e.Action != "token.create" || e.Outcome != "failure" {
		t.Fatalf("audit of forbidden token = %+v", e)
	}
	if _, n, _ := s.ListTokens(c, store.TokenFilter{ProjectID: p.ID}); n != 1 {
		t.Fatalf("%d tokens after forbidden create, want 1", n)
	}

	// A record that cannot be stored rolls the change back.
	_, err = s.CreateProject(c, newProject("rolled-back"), func(err error) llmproxy.AuditEvent {
		if err != nil {
			return auditEvent("project.create") // the failure record is fine
		}
		return llmproxy.AuditEvent{Action: "project.create", Outcome: "bogus"}
	})
	if err == nil {
		t.Fatal("CreateProject with an unstorable audit record succeeded")
	}
	if _, n, _ := s.ListProjects(c, store.ProjectFilter{Search: "rolled-back"}); n != 0 {
		t.Fatal("the project was stored although its audit record was not")
	}

	// Token updates and revocations carry their results.
	p2 := createProject(t, s, "audited2")
	tk := createToken(t, s, p2.ID)
	var already []bool
	for range 2 {
		_, _, err := s.RevokeToken(c, tk.ID, func(t llmproxy.Token, a bool, err error) llmproxy.AuditEvent {
			already = append(already, a)
			e := auditEvent("token.revoke")
			e.TokenID = t.ID
			e.Details = map[string]any{"already_revoked": a}
			return e
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(already) != 2 || already[0] || !already[1] {
		t.Fatalf("revoke callbacks saw already=%v", already)
	}
	if e := last(); e.TokenID != tk.ID || e.Details["already_revoked"] != true {
		t.Fatalf("audit of repeated revoke = %+v", e)
	}
	_, err = s.UpdateToken(c, tk.ID, store.TokenUpdate{MaxRequests: new(int64(3))}, func(t llmproxy.Token, err error) llmproxy.AuditEvent {
		e := auditEvent("token.update")
		e.TokenID = t.ID
		e.Details = map[string]any{"updated_max_requests": *t.MaxRequests}
		return e
	})
	if err != nil {
		t.Fatal(err)
	}
	if e := last(); e.Action != "token.update" || fmt.Sprint(e.Details["updated_max_requests"]) != "3" {
		t.Fatalf("audit of token update = %+v", e)
	}
	var bulk store.RevokeResult
	_, err = s.RevokeProjectTokens(c, p2.ID, func(r store.RevokeResult, err error) llmproxy.AuditEvent {
		bulk = r
		return auditEvent("token.revoke_batch")
	})
	if err != nil || bulk.Total != 1 || bulk.AlreadyRevoked != 1 {
		t.Fatalf("revoke batch audit saw %+v, %v", bulk, err)
	}
	if e := last(); e.Action != "token.revoke_batch" {
		t.Fatalf("audit of revoke batch = %+v", e)
	}
}

// ---- keys and settings

func testReencrypt(t *testing.T, s store.Store) {
	c := ctx(t)
	for _, n := range []string{"k1", "k2", "k3"} {
		p := newProject(n)
		p.APIKeyEncrypted = "v1:" + n
		try(s.CreateProject(c, p, nil)).must(t)
	}
	p4 := newProject("k4")
	p4.APIKeyEncrypted = "v2:k4"
	try(s.CreateProject(c, p4, nil)).must(t)

	// A failing callback changes nothing.
	calls := 0
	_, err := s.ReencryptProjectKeys(c, func(ct string) (string, bool, error) {
		calls++
		if calls == 2 {
			return "", false, errors.New("bad key")
		}
		return strings.Replace(ct, "v1:", "v2:", 1), true, nil
	})
	if err == nil {
		t.Fatal("ReencryptProjectKeys with a failing callback succeeded")
	}
	ps, _, _ := s.ListProjects(c, store.ProjectFilter{})
	for _, p := range ps {
		if p.Name != "k4" && !strings.HasPrefix(p.APIKeyEncrypted, "v1:") {
			t.Fatalf("project %s key %q changed by a failed re-encryption", p.Name, p.APIKeyEncrypted)
		}
	}

	n, err := s.ReencryptProjectKeys(c, func(ct string) (string, bool, error) {
		if strings.HasPrefix(ct, "v2:") {
			return ct, false, nil
		}
		return strings.Replace(ct, "v1:", "v2:", 1), true, nil
	})
	if err != nil || n != 3 {
		t.Fatalf("ReencryptProjectKeys = %d, %v; want 3", n, err)
	}
	ps, _, _ = s.ListProjects(c, store.ProjectFilter{})
	var keys []string
	for _, p := range ps {
		keys = append(keys, p.APIKeyEncrypted)
	}
	sort.Strings(keys)
	if strings.Join(keys, ",") != "v2:k1,v2:k2,v2:k3,v2:k4" {
		t.Fatalf("keys after rotation = %v", keys)
	}
}

func testSettings(t *testing.T, s store.Store) {
	c := ctx(t)
	_, err := s.GetSetting(c, "management_token_hash")
	wantErr(t, err, llmproxy.ErrNotFound, "", "")
	if err := s.PutSetting(c, "management_token_hash", "h1"); err != nil {
		t.Fatal(err)
	}
	if v := try(s.GetSetting(c, "management_token_hash")).must(t); v != "h1" {
		t.Fatalf("setting = %q, want h1", v)
	}
	if err := s.PutSetting(c, "management_token_hash", "h2"); err != nil {
		t.Fatal(err)
	}
	if v := try(s.GetSetting(c, "management_token_hash")).must(t); v != "h2" {
		t.Fatalf("overwritten setting = %q, want h2", v)
	}
	if err := s.PutSetting(c, "other", ""); err != nil {
		t.Fatal(err)
	}
	if v, err := s.GetSetting(c, "other"); err != nil || v != "" {
		t.Fatalf("empty setting = %q, %v", v, err)
	}
}

func testPing(t *testing.T, s store.Store) {
	if err := s.Ping(ctx(t)); err != nil {
		t.Fatalf("Ping = %v", err)
	}
}

// sameIDs reports whether got and want hold the same ids in any order.
func sameIDs(got, want []string) bool {
	if len(got) != len(want) {
		return false
	}
	seen := map[string]int{}
	for _, id := range want {
		seen[id]++
	}
	for _, id := range got {
		if seen[id] == 0 {
			return false
		}
		seen[id]--
	}
	return true
}

package events_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/cloudevents/sdk-go/v2/event"

	"github.com/llm-proxy/llm-proxy/events"
	"github.com/llm-proxy/llm-proxy/shared/audit"
	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
	"github.com/llm-proxy/llm-proxy/shared/management"
	"github.com/llm-proxy/llm-proxy/shared/management/managementtest"
	"github.com/llm-proxy/llm-proxy/shared/mgmtapi"
)

// The real emitter satisfies the dependency.
var _ management.ChangeSink = events.Changes{}

// fakeEmitter records emitted events; err, when set, is returned (the
// event is then dropped, as the real emitter does when its queue is full).
type fakeEmitter struct {
	mu     sync.Mutex
	events []event.Event
	err    error
}

func (f *fakeEmitter) Emit(_ context.Context, e event.Event) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return f.err
	}
	f.events = append(f.events, e)
	return nil
}

// since returns the events emitted after the first n.
func (f *fakeEmitter) since(n int) []event.Event {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.events[n:])
}

func (f *fakeEmitter) len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.events)
}

type emitter interface {
	Emit(ctx context.Context, e event.Event) error
}

func newEventService(t *testing.T, env *managementtest.Env, em emitter, source string) *management.Service {
	t.Helper()
	return management.New(management.Deps{
		Store: env.Store, Keyring: env.Keyring, Invalidator: env.Invalidations, Audit: env.Recorder, Log: env.Log,
		Changes: events.Changes{Sink: em, Source: source},
	})
}

// wantEvent is what one emitted event must carry.
type wantEvent struct {
	typ, project, token, action, idSuffix string
	// auditAction is the action of the audit record whose id the event
	// carries (its id, or its id + "/" + token id).
	auditAction string
}

func checkEvents(t *testing.T, env *managementtest.Env, step string, got []event.Event, want []wantEvent) {
	t.Helper()
	if len(got) != len(want) {
		var types []string
		for _, e := range got {
			types = append(types, e.Type()+" "+e.ID())
		}
		t.Fatalf("%s: %d events %v, want %d", step, len(got), types, len(want))
	}
	// Bulk revocations come in store order; match them by token id.
	for _, w := range want {
		i := slices.IndexFunc(got, func(e event.Event) bool {
			tok, _ := e.Extensions()[events.ExtTokenID].(string)
			return e.Type() == w.typ && tok == w.token
		})
		if i < 0 {
			t.Fatalf("%s: no %s event for token %q", step, w.typ, w.token)
		}
		e := got[i]
		if err := e.Validate(); err != nil {
			t.Errorf("%s: invalid CloudEvent: %v", step, err)
		}
		if e.Subject() != w.project || e.Extensions()[events.ExtProjectID] != w.project {
			t.Errorf("%s: subject %q projectid %v, want %s", step, e.Subject(), e.Extensions()[events.ExtProjectID], w.project)
		}
		if w.token == "" && e.Extensions()[events.ExtTokenID] != nil {
			t.Errorf("%s: unexpected tokenid %v", step, e.Extensions()[events.ExtTokenID])
		}
		auditID := e.ID()
		if w.token != "" && strings.Contains(e.ID(), "/") {
			var tok string
			auditID, tok, _ = strings.Cut(e.ID(), "/")
			if tok != w.token {
				t.Errorf("%s: id %s does not end in the token id %s", step, e.ID(), w.token)
			}
		}
		if (w.idSuffix == "/token") != strings.Contains(e.ID(), "/") {
			t.Errorf("%s: id %s, want bulk form %v", step, e.ID(), w.idSuffix == "/token")
		}
		rec, err := env.Store.GetAudit(context.Background(), auditID)
		if err != nil {
			t.Fatalf("%s: event id %s is not an audit record id: %v", step, e.ID(), err)
		}
		if rec.Action != w.auditAction || rec.Outcome != llmproxy.OutcomeSuccess {
			t.Errorf("%s: audit record %s is %s/%s, want %s/success", step, auditID, rec.Action, rec.Outcome, w.auditAction)
		}
		var d struct {
			Action    string `json:"action"`
			Actor     string `json:"actor"`
			RequestID string `json:"request_id"`
			ProjectID string `json:"project_id"`
			TokenID   string `json:"token_id"`
		}
		if err := json.Unmarshal(e.Data(), &d); err != nil {
			t.Fatalf("%s: data: %v", step, err)
		}
		if d.Action != w.action || d.Actor != audit.ActorManagementAPI || d.RequestID != "test-request" ||
			d.ProjectID != w.project || d.TokenID != w.token {
			t.Errorf("%s: data %+v, want action %s project %s token %s", step, d, w.action, w.project, w.token)
		}
		if !e.Time().Equal(rec.Timestamp) {
			t.Errorf("%s: time %v, want the audit record's %v", step, e.Time(), rec.Timestamp)
		}
	}
}

func projectData(t *testing.T, e event.Event) events.ProjectUpdated {
	t.Helper()
	var d events.ProjectUpdated
	if err := json.Unmarshal(e.Data(), &d); err != nil {
		t.Fatal(err)
	}
	return d
}

func TestChangeEvents(t *testing.T) {
	t.Parallel()
	for _, engine := range managementtest.Engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			env := managementtest.New(t, engine, managementtest.Options{})
			em := &fakeEmitter{}
			svc := newEventService(t, env, em, "")
			ctx := context.Background()
			a := managementtest.Actor()
			secrets := []string{}
			step := func(name string, want []wantEvent, fn func()) []event.Event {
				t.Helper()
				n := em.len()
				fn()
				got := em.since(n)
				checkEvents(t, env, name, got, want)
				return got
			}
			must := func(err error) {
				t.Helper()
				if err != nil {
					t.Fatal(err)
				}
			}

			// Project create.
			key1 := "sk-test-first-0123456789abcdefghij"
			secrets = append(secrets, key1)
			n := em.len()
			p, err := svc.CreateProject(ctx, a, management.CreateProjectInput{Name: "alpha", APIKey: key1, Limits: &llmproxy.Limits{RequestsPerMinute: 5}})
			must(err)
			got := em.since(n)
			checkEvents(t, env, "create project", got, []wantEvent{{typ: events.TypeProjectUpdated, project: p.ID, action: "project.create", auditAction: "project.create"}})
			if got[0].Source() != events.DefaultChangeSource {
				t.Errorf("source %q, want %q", got[0].Source(), events.DefaultChangeSource)
			}
			if d := projectData(t, got[0]); d.Name != "alpha" || !d.IsActive || !slices.Equal(d.Changed, []string{"name", "api_key", "is_active", "limits"}) {
				t.Errorf("create data %+v", d)
			}

			// Project update: name and key.
			key2 := "sk-test-second-0123456789abcdefghij"
			secrets = append(secrets, key2)
			got = step("update project", []wantEvent{{typ: events.TypeProjectUpdated, project: p.ID, action: "project.update", auditAction: "project.update"}}, func() {
				_, err := svc.UpdateProject(ctx, a, p.ID, management.UpdateProjectInput{Name: new("alpha2"), APIKey: &key2})
				must(err)
			})
			if d := projectData(t, got[0]); d.Name != "alpha2" || !d.IsActive || !slices.Equal(d.Changed, []string{"name", "api_key"}) {
				t.Errorf("update data %+v", d)
			}

			// Token create.
			n = em.len()
			tok, err := svc.CreateToken(ctx, a, management.CreateTokenInput{ProjectID: p.ID, Duration: "1h", MaxRequests: new(int64(7))})
			must(err)
			secrets = append(secrets, tok.Token, env.Keyring.HashToken(tok.Token))
			got = em.since(n)
			checkEvents(t, env, "create token", got, []wantEvent{{typ: events.TypeTokenCreated, project: p.ID, token: tok.ID, action: "token.create", auditAction: "token.create"}})
			var td events.TokenChanged
			must(json.Unmarshal(got[0].Data(), &td))
			if td.MaxRequests == nil || *td.MaxRequests != 7 || td.ExpiresAt == nil || !td.ExpiresAt.Equal(*tok.ExpiresAt) {
				t.Errorf("token.created data %+v", td)
			}

			// A token update that does not deactivate announces nothing.
			step("update token max_requests", nil, func() {
				_, err := svc.UpdateToken(ctx, a, tok.ID, management.UpdateTokenInput{MaxRequests: new(int64(9))})
				must(err)
			})
			// Deactivation through update is a revocation.
			step("update token is_active=false", []wantEvent{{typ: events.TypeTokenRevoked, project: p.ID, token: tok.ID, action: "token.update", auditAction: "token.update"}}, func() {
				_, err := svc.UpdateToken(ctx, a, tok.ID, management.UpdateTokenInput{IsActive: new(false)})
				must(err)
			})

			// DELETE: revoked once, a second revoke changes nothing.
			tok2, err := svc.CreateToken(ctx, a, management.CreateTokenInput{ProjectID: p.ID, Duration: "1h"})
			must(err)
			secrets = append(secrets, tok2.Token, env.Keyring.HashToken(tok2.Token))
			step("revoke token", []wantEvent{{typ: events.TypeTokenRevoked, project: p.ID, token: tok2.ID, action: "token.revoke", auditAction: "token.revoke"}}, func() {
				must(svc.RevokeToken(ctx, a, tok2.ID))
			})
			step("revoke token again", nil, func() { must(svc.RevokeToken(ctx, a, tok2.ID)) })

			// Bulk revocation: one event per token that was active.
			var bulk []mgmtapi.CreatedToken
			for range 2 {
				b, err := svc.CreateToken(ctx, a, management.CreateTokenInput{ProjectID: p.ID, Duration: "2h"})
				must(err)
				secrets = append(secrets, b.Token, env.Keyring.HashToken(b.Token))
				bulk = append(bulk, b)
			}
			got = step("revoke project tokens", []wantEvent{
				{typ: events.TypeTokenRevoked, project: p.ID, token: bulk[0].ID, action: "token.revoke_batch", auditAction: "token.revoke_batch", idSuffix: "/token"},
				{typ: events.TypeTokenRevoked, project: p.ID, token: bulk[1].ID, action: "token.revoke_batch", auditAction: "token.revoke_batch", idSuffix: "/token"},
			}, func() {
				r, err := svc.RevokeProjectTokens(ctx, a, p.ID)
				must(err)
				if r.Revoked != 2 {
					t.Fatalf("revoked %d", r.Revoked)
				}
			})
			if a, b := strings.Split(got[0].ID(), "/")[0], strings.Split(got[1].ID(), "/")[0]; a != b {
				t.Errorf("bulk events carry different audit ids %s, %s", a, b)
			}
			step("revoke project tokens again", nil, func() {
				_, err := svc.RevokeProjectTokens(ctx, a, p.ID)
				must(err)
			})

			// Deactivation with revoke_tokens: the project, then each token.
			var live []mgmtapi.CreatedToken
			for range 2 {
				b, err := svc.CreateToken(ctx, a, management.CreateTokenInput{ProjectID: p.ID, Duration: "2h"})
				must(err)
				secrets = append(secrets, b.Token, env.Keyring.HashToken(b.Token))
				live = append(live, b)
			}
			got = step("deactivate with revoke_tokens", []wantEvent{
				{typ: events.TypeProjectUpdated, project: p.ID, action: "project.update", auditAction: "project.update"},
				{typ: events.TypeTokenRevoked, project: p.ID, token: live[0].ID, action: "project.update", auditAction: "project.update", idSuffix: "/token"},
				{typ: events.TypeTokenRevoked, project: p.ID, token: live[1].ID, action: "project.update", auditAction: "project.update", idSuffix: "/token"},
			}, func() {
				_, err := svc.UpdateProject(ctx, a, p.ID, management.UpdateProjectInput{IsActive: new(false), RevokeTokens: new(true)})
				must(err)
			})
			if got[0].Type() != events.TypeProjectUpdated {
				t.Errorf("first event %s, want the project's", got[0].Type())
			}
			if d := projectData(t, got[0]); d.IsActive || !slices.Equal(d.Changed, []string{"is_active"}) {
				t.Errorf("deactivate data %+v", d)
			}

			// Reactivation.
			got = step("activate", []wantEvent{{typ: events.TypeProjectUpdated, project: p.ID, action: "project.update", auditAction: "project.update"}}, func() {
				_, err := svc.UpdateProject(ctx, a, p.ID, management.UpdateProjectInput{IsActive: new(true)})
				must(err)
			})
			if d := projectData(t, got[0]); !d.IsActive || !slices.Equal(d.Changed, []string{"is_active"}) {
				t.Errorf("activate data %+v", d)
			}

			// Every id is unique; no event carries a secret.
			all := em.since(0)
			seen := map[string]bool{}
			for _, e := range all {
				if seen[e.ID()] {
					t.Errorf("duplicate event id %s", e.ID())
				}
				seen[e.ID()] = true
				b, err := json.Marshal(e)
				must(err)
				for _, s := range secrets {
					if strings.Contains(string(b), s) {
						t.Errorf("event %s %s contains a secret: %s", e.Type(), e.ID(), b)
					}
				}
				pr, err := env.Store.GetProject(ctx, p.ID)
				must(err)
				if strings.Contains(string(b), pr.APIKeyEncrypted) {
					t.Errorf("event %s contains the encrypted key", e.ID())
				}
			}
			if svc.EventErrors() != 0 {
				t.Errorf("EventErrors = %d", svc.EventErrors())
			}
		})
	}
}

// Failed actions change nothing and announce nothing.
func TestChangeEventsNotOnFailure(t *testing.T) {
	t.Parallel()
	env := managementtest.New(t, "sqlite", managementtest.Options{})
	em := &fakeEmitter{}
	svc := newEventService(t, env, em, "/llmproxy/functions/manage-projects")
	ctx := context.Background()
	a := managementtest.Actor()
	p, err := svc.CreateProject(ctx, a, management.CreateProjectInput{Name: "p", APIKey: "sk-test-0123456789abcdefghij"})
	if err != nil {
		t.Fatal(err)
	}
	off, err := svc.CreateProject(ctx, a, management.CreateProjectInput{Name: "off", APIKey: "sk-test-0123456789abcdefghij"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.UpdateProject(ctx, a, off.ID, management.UpdateProjectInput{IsActive: new(false)}); err != nil {
		t.Fatal(err)
	}
	for _, e := range em.since(0) {
		if e.Source() != "/llmproxy/functions/manage-projects" {
			t.Errorf("source %q, want the configured one", e.Source())
		}
	}
	n := em.len()
	unknown := "00000000-0000-4000-8000-000000000000"
	for _, tc := range []struct {
		name string
		fn   func() error
	}{
		{"create without key", func() error {
			_, err := svc.CreateProject(ctx, a, management.CreateProjectInput{Name: "x"})
			return err
		}},
		{"create duplicate", func() error {
			_, err := svc.CreateProject(ctx, a, management.CreateProjectInput{Name: "p", APIKey: "sk-test-0123456789abcdefghij"})
			return err
		}},
		{"create negative limits", func() error {
			_, err := svc.CreateProject(ctx, a, management.CreateProjectInput{Name: "y", APIKey: "sk-test-0123456789abcdefghij", Limits: &llmproxy.Limits{RequestsPerDay: -1}})
			return err
		}},
		{"update unknown project", func() error {
			_, err := svc.UpdateProject(ctx, a, unknown, management.UpdateProjectInput{Name: new("z")})
			return err
		}},
		{"update duplicate name", func() error {
			_, err := svc.UpdateProject(ctx, a, off.ID, management.UpdateProjectInput{Name: new("p")})
			return err
		}},
		{"revoke_tokens while active", func() error {
			_, err := svc.UpdateProject(ctx, a, p.ID, management.UpdateProjectInput{RevokeTokens: new(true)})
			return err
		}},
		{"revoke tokens of unknown project", func() error {
			_, err := svc.RevokeProjectTokens(ctx, a, unknown)
			return err
		}},
		{"token for inactive project", func() error {
			_, err := svc.CreateToken(ctx, a, management.CreateTokenInput{ProjectID: off.ID, Duration: "1h"})
			return err
		}},
		{"token for unknown project", func() error {
			_, err := svc.CreateToken(ctx, a, management.CreateTokenInput{ProjectID: unknown, Duration: "1h"})
			return err
		}},
		{"token without lifetime", func() error {
			_, err := svc.CreateToken(ctx, a, management.CreateTokenInput{ProjectID: p.ID})
			return err
		}},
		{"update unknown token", func() error {
			_, err := svc.UpdateToken(ctx, a, unknown, management.UpdateTokenInput{IsActive: new(false)})
			return err
		}},
		{"revoke unknown token", func() error { return svc.RevokeToken(ctx, a, unknown) }},
		{"revoke malformed token id", func() error { return svc.RevokeToken(ctx, a, "nope") }},
	} {
		if err := tc.fn(); err == nil {
			t.Errorf("%s: no error", tc.name)
		}
		if got := em.since(n); len(got) != 0 {
			t.Errorf("%s: emitted %d events (%s)", tc.name, len(got), got[0].Type())
			n = em.len()
		}
	}
}

// An emitter that refuses events never fails the action; the drop is
// logged and counted.
func TestChangeEventsDroppedNeverFailTheAction(t *testing.T) {
	t.Parallel()
	env := managementtest.New(t, "sqlite", managementtest.Options{})
	em := &fakeEmitter{err: events.ErrQueueFull}
	svc := newEventService(t, env, em, "")
	ctx := context.Background()
	a := managementtest.Actor()
	p, err := svc.CreateProject(ctx, a, management.CreateProjectInput{Name: "p", APIKey: "sk-test-0123456789abcdefghij"})
	if err != nil {
		t.Fatalf("create project with a full queue: %v", err)
	}
	tok, err := svc.CreateToken(ctx, a, management.CreateTokenInput{ProjectID: p.ID, Duration: "1h"})
	if err != nil {
		t.Fatalf("create token with a full queue: %v", err)
	}
	if err := svc.RevokeToken(ctx, a, tok.ID); err != nil {
		t.Fatalf("revoke with a full queue: %v", err)
	}
	if got := svc.EventErrors(); got != 3 {
		t.Fatalf("EventErrors = %d, want 3", got)
	}
	logs := env.Logs.String()
	if strings.Count(logs, "management change event dropped") != 3 || !strings.Contains(logs, events.ErrQueueFull.Error()) {
		t.Fatalf("drops not logged: %s", logs)
	}
	if strings.Contains(logs, tok.Token) {
		t.Fatal("token in logs")
	}
	if !errors.Is(em.err, events.ErrQueueFull) {
		t.Fatal("unreachable")
	}
}

// With auditing switched off entirely, events still get unique ids.
func TestChangeEventsWithoutAudit(t *testing.T) {
	t.Parallel()
	env := managementtest.New(t, "sqlite", managementtest.Options{})
	rec, err := audit.NewRecorder(audit.Options{Store: env.Store, Disabled: true})
	if err != nil {
		t.Fatal(err)
	}
	if rec.Enabled() {
		t.Fatal("disabled recorder reports enabled")
	}
	em := &fakeEmitter{}
	svc := management.New(management.Deps{Store: env.Store, Keyring: env.Keyring, Audit: rec, Changes: events.Changes{Sink: em}})
	ctx := context.Background()
	a := managementtest.Actor()
	p, err := svc.CreateProject(ctx, a, management.CreateProjectInput{Name: "p", APIKey: "sk-test-0123456789abcdefghij"})
	if err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := svc.UpdateProject(ctx, a, p.ID, management.UpdateProjectInput{Name: new("q")}); err != nil {
			t.Fatal(err)
		}
	}
	got := em.since(0)
	if len(got) != 3 {
		t.Fatalf("%d events", len(got))
	}
	ids := map[string]bool{}
	for _, e := range got {
		if e.ID() == "" || ids[e.ID()] {
			t.Fatalf("event id %q empty or repeated", e.ID())
		}
		ids[e.ID()] = true
		if err := e.Validate(); err != nil {
			t.Fatal(err)
		}
	}
}

package management

import (
	"context"
	"errors"
	"strings"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
	"github.com/llm-proxy/llm-proxy/shared/mgmtapi"
	"github.com/llm-proxy/llm-proxy/shared/store"
)

// Audit action names (the original's).
const (
	ActionProjectCreate     = "project.create"
	ActionProjectRead       = "project.read"
	ActionProjectUpdate     = "project.update"
	ActionProjectDelete     = "project.delete"
	ActionProjectList       = "project.list"
	ActionTokenCreate       = "token.create"
	ActionTokenRead         = "token.read"
	ActionTokenUpdate       = "token.update"
	ActionTokenRevoke       = "token.revoke"
	ActionTokenRevokeBatch  = "token.revoke_batch"
	ActionTokenList         = "token.list"
	ActionAuditList         = "audit.list"
	ActionAuditShow         = "audit.show"
	ActionCachePurge        = "cache.purge"
	ActionManagementAuth    = "management.auth"
	maxNameLen              = 200
	maxAPIKeyLen            = 4096
	msgProjectNotFound      = "project not found"
	msgObfuscatedKey        = "cannot save obfuscated API key - please provide the full API key"
	msgNameAndKeyRequired   = "name and api_key are required"
	msgRevokeNeedsInactive  = "revoke_tokens requires is_active=false"
	msgNoFieldsToUpdate     = "no fields to update"
	msgTokenNotFound        = "token not found"
	msgAuditEventNotFound   = "audit event not found"
	msgCachingDisabled      = "caching is disabled"
	msgProjectDeleteRefused = "project deletion is not permitted"
)

// validID reports whether id looks like one of our ids (a UUID), so that
// garbage never reaches the database.
func validID(id string) bool {
	_, err := uuid.Parse(id)
	return err == nil && len(id) == 36
}

func validateName(name string) error {
	switch {
	case strings.TrimSpace(name) == "":
		return invalidf("name must not be empty")
	case utf8.RuneCountInString(name) > maxNameLen:
		return invalidf("name must be at most 200 characters")
	case !utf8.ValidString(name) || strings.ContainsAny(name, "\x00\r\n"):
		return invalidf("name contains invalid characters")
	}
	return nil
}

func validateAPIKey(key string) error {
	switch {
	case strings.Contains(key, "...") || strings.Contains(key, "****"):
		return invalidf(msgObfuscatedKey)
	case len(key) > maxAPIKeyLen:
		return invalidf("api_key is too long")
	case strings.TrimSpace(key) != key || strings.ContainsAny(key, " \t\r\n\x00"):
		return invalidf("api_key must not contain whitespace")
	}
	return nil
}

func validateLimits(field string, l *llmproxy.Limits) error {
	if l == nil {
		return nil
	}
	if l.RequestsPerMinute < 0 || l.RequestsPerDay < 0 || l.TokensPerMinute < 0 || l.TokensPerDay < 0 {
		return invalidf(field + " values must be >= 0")
	}
	return nil
}

// CreateProject creates an active project. The upstream key is encrypted
// before it reaches the store and only its masked form is returned.
func (s *Service) CreateProject(ctx context.Context, a Actor, in CreateProjectInput) (mgmtapi.Project, error) {
	details := map[string]any{"project_name": in.Name}
	if in.Name == "" || in.APIKey == "" {
		details["name_provided"] = in.Name != ""
		details["api_key_provided"] = in.APIKey != ""
		return mgmtapi.Project{}, s.fail(ctx, a, ActionProjectCreate, invalidf(msgNameAndKeyRequired), details)
	}
	if err := firstErr(validateName(in.Name), validateAPIKey(in.APIKey),
		validateLimits("limits", in.Limits), validateLimits("token_defaults", in.TokenDefaults)); err != nil {
		return mgmtapi.Project{}, s.fail(ctx, a, ActionProjectCreate, err, details)
	}
	ct, err := s.keyring.Encrypt(in.APIKey)
	if err != nil {
		err = llmproxy.Wrap(errInternal, llmproxy.CodeInternal, "failed to create project", err)
		return mgmtapi.Project{}, s.fail(ctx, a, ActionProjectCreate, err, details)
	}
	p := llmproxy.Project{
		ID: uuid.NewString(), Name: in.Name, APIKeyEncrypted: ct, APIKeyHint: s.mask(in.APIKey), IsActive: true,
	}
	if in.Limits != nil {
		p.Limits = *in.Limits
	}
	if in.TokenDefaults != nil {
		p.TokenDefaults = *in.TokenDefaults
	}
	m := s.newMutation()
	build := func(err error) llmproxy.AuditEvent {
		e := s.event(a, ActionProjectCreate, translate(err, msgProjectNotFound), details)
		e.ProjectID = p.ID
		return e
	}
	var cb store.AuditFunc
	if m.inDB() {
		cb = func(err error) llmproxy.AuditEvent { return m.keep(build(err)) }
	}
	created, err := s.store.CreateProject(ctx, p, cb)
	m.done(func() llmproxy.AuditEvent { return build(err) })
	if err != nil {
		return mgmtapi.Project{}, translate(err, msgProjectNotFound)
	}
	changed := []string{"name", "api_key", "is_active"}
	if in.Limits != nil {
		changed = append(changed, "limits")
	}
	if in.TokenDefaults != nil {
		changed = append(changed, "token_defaults")
	}
	s.announceProjectUpdated(ctx, m.ev, created, changed)
	return s.projectView(created), nil
}

// GetProject returns one project (audited as project.read).
func (s *Service) GetProject(ctx context.Context, a Actor, id string) (mgmtapi.Project, error) {
	p, err := s.getProject(ctx, id)
	e := s.event(a, ActionProjectRead, err, nil)
	e.ProjectID = id
	if err != nil {
		e.Details["provided_id"] = truncate(id, 64)
		e.ProjectID = ""
		return mgmtapi.Project{}, s.record(ctx, e, err)
	}
	return s.projectView(p), s.record(ctx, e, nil)
}

func (s *Service) getProject(ctx context.Context, id string) (llmproxy.Project, error) {
	if !validID(id) {
		return llmproxy.Project{}, notFound(msgProjectNotFound)
	}
	p, err := s.store.GetProject(ctx, id)
	return p, translate(err, msgProjectNotFound)
}

// ListProjects returns one page of projects ordered by name.
func (s *Service) ListProjects(ctx context.Context, a Actor, q ProjectQuery) (ProjectList, error) {
	page, err := pageOf(q.Page, q.PageSize)
	if err != nil {
		return ProjectList{}, s.fail(ctx, a, ActionProjectList, err, nil)
	}
	ps, total, err := s.store.ListProjects(ctx, store.ProjectFilter{Search: q.Search, ActiveOnly: q.ActiveOnly, Page: page})
	err = translate(err, msgProjectNotFound)
	details := map[string]any{"page": page.Number, "page_size": page.Limit()}
	if q.Search != "" {
		details["search"] = truncate(q.Search, 100)
	}
	if q.ActiveOnly {
		details["active_only"] = true
	}
	if err != nil {
		return ProjectList{}, s.record(ctx, s.event(a, ActionProjectList, err, details), err)
	}
	out := ProjectList{Projects: make([]mgmtapi.Project, 0, len(ps)), Pagination: mgmtapi.NewPagination(page.Number, page.Limit(), total)}
	for _, p := range ps {
		out.Projects = append(out.Projects, s.projectView(p))
	}
	details["project_count"] = len(out.Projects)
	details["total_count"] = total
	return out, s.record(ctx, s.event(a, ActionProjectList, nil, details), nil)
}

// UpdateProject changes a project. is_active=false persists deactivated_at
// (and with RevokeTokens revokes every active token in the same
// transaction); is_active=true reactivates.
func (s *Service) UpdateProject(ctx context.Context, a Actor, id string, in UpdateProjectInput) (mgmtapi.Project, error) {
	details := map[string]any{}
	if !validID(id) {
		details["provided_id"] = truncate(id, 64)
		return mgmtapi.Project{}, s.fail(ctx, a, ActionProjectUpdate, notFound(msgProjectNotFound), details)
	}
	var u store.ProjectUpdate
	var fields []string
	if in.Name != nil {
		if err := validateName(*in.Name); err != nil {
			return mgmtapi.Project{}, s.failProject(ctx, a, ActionProjectUpdate, id, err, details)
		}
		u.Name = in.Name
		fields = append(fields, "name")
	}
	if in.APIKey != nil && *in.APIKey != "" {
		if err := validateAPIKey(*in.APIKey); err != nil {
			return mgmtapi.Project{}, s.failProject(ctx, a, ActionProjectUpdate, id, err, details)
		}
		ct, err := s.keyring.Encrypt(*in.APIKey)
		if err != nil {
			err = llmproxy.Wrap(errInternal, llmproxy.CodeInternal, "failed to update project", err)
			return mgmtapi.Project{}, s.failProject(ctx, a, ActionProjectUpdate, id, err, details)
		}
		hint := s.mask(*in.APIKey)
		u.APIKeyEncrypted, u.APIKeyHint = &ct, &hint
		fields = append(fields, "api_key")
	}
	if in.RevokeTokens != nil && *in.RevokeTokens {
		if in.IsActive == nil || *in.IsActive {
			return mgmtapi.Project{}, s.failProject(ctx, a, ActionProjectUpdate, id, invalidf(msgRevokeNeedsInactive), details)
		}
		u.RevokeTokens = true
	}
	if in.IsActive != nil {
		u.IsActive = in.IsActive
		fields = append(fields, "is_active")
	}
	if in.Limits != nil {
		if err := validateLimits("limits", in.Limits); err != nil {
			return mgmtapi.Project{}, s.failProject(ctx, a, ActionProjectUpdate, id, err, details)
		}
		u.Limits = in.Limits
		fields = append(fields, "limits")
	}
	if in.TokenDefaults != nil {
		if err := validateLimits("token_defaults", in.TokenDefaults); err != nil {
			return mgmtapi.Project{}, s.failProject(ctx, a, ActionProjectUpdate, id, err, details)
		}
		u.TokenDefaults = in.TokenDefaults
		fields = append(fields, "token_defaults")
	}
	if len(fields) == 0 {
		return mgmtapi.Project{}, s.failProject(ctx, a, ActionProjectUpdate, id, invalidf(msgNoFieldsToUpdate), details)
	}
	details["updated_fields"] = fields
	m := s.newMutation()
	build := func(p llmproxy.Project, r store.RevokeResult, err error) llmproxy.AuditEvent {
		e := s.event(a, ActionProjectUpdate, translate(err, msgProjectNotFound), details)
		if !errors.Is(err, llmproxy.ErrNotFound) {
			e.ProjectID = id
		} else {
			e.Details["provided_id"] = id
		}
		if err == nil {
			e.Details["project_name"] = p.Name
			if u.RevokeTokens {
				e.Details["tokens_revoked"] = r.Revoked
			}
		}
		return e
	}
	var cb func(llmproxy.Project, store.RevokeResult, error) llmproxy.AuditEvent
	if m.inDB() {
		cb = func(p llmproxy.Project, r store.RevokeResult, err error) llmproxy.AuditEvent {
			return m.keep(build(p, r, err))
		}
	}
	p, r, err := s.store.UpdateProject(ctx, id, u, cb)
	m.done(func() llmproxy.AuditEvent { return build(p, r, err) })
	if err != nil {
		return mgmtapi.Project{}, translate(err, msgProjectNotFound)
	}
	// Deactivation, reactivation, revocation and key changes all change what
	// the proxy may have cached for this project.
	s.invalidateProject(ctx, id)
	s.announceProjectUpdated(ctx, m.ev, p, fields)
	if u.RevokeTokens {
		s.announceTokensRevoked(ctx, m.ev, id, r.TokenIDs, true)
	}
	return s.projectView(p), nil
}

func (s *Service) failProject(ctx context.Context, a Actor, action, projectID string, err error, details map[string]any) error {
	if details == nil {
		details = map[string]any{}
	}
	if errors.Is(err, llmproxy.ErrInvalid) {
		details["validation_error"] = llmproxy.ErrorMessage(err)
	}
	e := s.event(a, action, err, details)
	e.ProjectID = projectID
	return s.record(ctx, e, err)
}

// RevokeProjectTokens revokes every active token of a project
// (token.revoke_batch).
func (s *Service) RevokeProjectTokens(ctx context.Context, a Actor, projectID string) (RevokeResult, error) {
	if !validID(projectID) {
		return RevokeResult{}, s.fail(ctx, a, ActionTokenRevokeBatch, notFound(msgProjectNotFound),
			map[string]any{"provided_id": truncate(projectID, 64)})
	}
	m := s.newMutation()
	build := func(r store.RevokeResult, err error) llmproxy.AuditEvent {
		e := s.event(a, ActionTokenRevokeBatch, translate(err, msgProjectNotFound), nil)
		if !errors.Is(err, llmproxy.ErrNotFound) {
			e.ProjectID = projectID
		} else {
			e.Details["provided_id"] = projectID
		}
		if err == nil {
			e.Details["total_tokens"] = r.Total
			e.Details["revoked_count"] = r.Revoked
			e.Details["already_revoked_count"] = r.AlreadyRevoked
			e.Details["failed_count"] = 0
		}
		return e
	}
	var cb func(store.RevokeResult, error) llmproxy.AuditEvent
	if m.inDB() {
		cb = func(r store.RevokeResult, err error) llmproxy.AuditEvent { return m.keep(build(r, err)) }
	}
	r, err := s.store.RevokeProjectTokens(ctx, projectID, cb)
	m.done(func() llmproxy.AuditEvent { return build(r, err) })
	if err != nil {
		return RevokeResult{}, translate(err, msgProjectNotFound)
	}
	s.invalidateProject(ctx, projectID)
	s.announceTokensRevoked(ctx, m.ev, projectID, r.TokenIDs, true)
	return r, nil
}

// DenyProjectDelete records a refused project deletion and returns the 405
// error (projects are deactivated, never deleted).
func (s *Service) DenyProjectDelete(ctx context.Context, a Actor, projectID string) error {
	err := llmproxy.E(llmproxy.ErrMethodNotAllowed, llmproxy.CodeMethodNotAllowed, msgProjectDeleteRefused)
	e := s.event(a, ActionProjectDelete, err, map[string]any{"error_type": "method not allowed", "reason": msgProjectDeleteRefused})
	if validID(projectID) {
		e.ProjectID = projectID
	}
	return s.record(ctx, e, err)
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

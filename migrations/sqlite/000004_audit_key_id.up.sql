-- The audit chain is keyed: each record names the id of the audit key that
-- sealed it (derived from ENCRYPTION_KEY; see shared/llmproxy Seal). Records
-- written before this migration keep key_id '' and the unkeyed hash; they
-- verify as legacy records (shared/audit Verify). Touches only audit_events.
ALTER TABLE audit_events ADD COLUMN key_id TEXT NOT NULL DEFAULT '';

package sqlcore

import "context"

// EncryptionKeyIDs returns the distinct key ids that the stored upstream
// keys name ("v1:<kid>:…", see shared/secrets), in one query, so that a
// process can tell at start whether its keys can read the database. An
// empty database returns none.
func (c *Core) EncryptionKeyIDs(ctx context.Context) ([]string, error) {
	rows, err := c.db.Reader().Query(ctx, `SELECT DISTINCT substr(api_key_encrypted, 4, 8) FROM projects WHERE api_key_encrypted LIKE 'v1:%'`)
	if err != nil {
		return nil, c.translate("read key ids", "project", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, c.translate("read key ids", "project", err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, c.translate("read key ids", "project", err)
	}
	return ids, nil
}

package web

import "strings"

// BearerToken extracts the token of an `Authorization: Bearer <token>`
// header, the one parser of the proxy's and the management API's
// credentials. The scheme is matched case-insensitively (RFC 9110 §11.1);
// the header is trimmed, scheme and token are separated by at least one
// space (more are tolerated, as clients that build the header by hand
// send them), and the token is trimmed. ok is false for another scheme, a
// missing separator ("Bearerabc") or an empty token.
func BearerToken(h string) (token string, ok bool) {
	scheme, token, found := strings.Cut(strings.TrimSpace(h), " ")
	if !found || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

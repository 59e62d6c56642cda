package tokens_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/llm-proxy/llm-proxy/internal/faultproxy"
	"github.com/llm-proxy/llm-proxy/internal/testenv"
	"github.com/llm-proxy/llm-proxy/shared/config"
	"github.com/llm-proxy/llm-proxy/shared/llmproxy"
	"github.com/llm-proxy/llm-proxy/shared/secrets"
	"github.com/llm-proxy/llm-proxy/shared/store"
	"github.com/llm-proxy/llm-proxy/shared/store/dbopen"
	"github.com/llm-proxy/llm-proxy/shared/store/migrate"
	"github.com/llm-proxy/llm-proxy/shared/tokens"
)

// TestWithRealStores runs the token life cycle on both store engines:
// validation through the store, usage counters written in the background,
// revocation with invalidation, key rotation (re-encryption of upstream keys
// and validation of a token hashed under the previous key), and that no
// plaintext secret reaches the database.
func TestWithRealStores(t *testing.T) {
	t.Parallel()
	engines := []struct {
		name string
		cfg  func(t *testing.T) config.Database
		// dump returns every byte (or row text) the engine holds.
		dump func(t *testing.T, cfg config.Database) []byte
	}{
		{
			name: "sqlite",
			cfg: func(t *testing.T) config.Database {
				return config.Database{Driver: "sqlite", Path: testenv.SQLitePath(t), PoolSize: 4, MaxIdleConns: 2}
			},
			dump: func(t *testing.T, cfg config.Database) []byte {
				var all []byte
				for _, suffix := range []string{"", "-wal", "-shm"} {
					b, err := os.ReadFile(cfg.Path + suffix)
					if err != nil && !os.IsNotExist(err) {
						t.Fatal(err)
					}
					all = append(all, b...)
				}
				return all
			},
		},
		{
			name: "postgres",
			cfg: func(t *testing.T) config.Database {
				return config.Database{Driver: "postgres", URL: testenv.PostgresURL(t), PoolSize: 4, MaxIdleConns: 1}
			},
			dump: func(t *testing.T, cfg config.Database) []byte {
				ctx := context.Background()
				conn, err := pgx.Connect(ctx, cfg.URL)
				testenv.Must(t, err)
				defer conn.Close(ctx)
				var all []byte
				for _, q := range []string{"SELECT p::text FROM projects p", "SELECT t::text FROM tokens t", "SELECT a::text FROM audit_events a"} {
					rows, err := conn.Query(ctx, q)
					if err != nil {
						t.Logf("%s: %v", q, err)
						continue
					}
					for rows.Next() {
						var s string
						testenv.Must(t, rows.Scan(&s))
						all = append(all, s...)
					}
					testenv.Must(t, rows.Err())
				}
				return all
			},
		},
	}
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			cfg := e.cfg(t)
			testenv.Must(t, migrate.Up(ctx, cfg.Driver, migrate.DSN(cfg)))
			st, err := dbopen.Open(ctx, cfg)
			testenv.Must(t, err)
			t.Cleanup(func() { st.Close() })

			oldKey, _ := secrets.GenerateKey()
			newKey, _ := secrets.GenerateKey()
			kr, err := secrets.NewKeyring(oldKey, nil)
			testenv.Must(t, err)

			const upstream = "sk-proj-UPSTREAMSECRET0123456789abcdef"
			ct, err := kr.Encrypt(upstream)
			testenv.Must(t, err)
			p, err := st.CreateProject(ctx, llmproxy.Project{Name: "p-" + e.name, APIKeyEncrypted: ct, APIKeyHint: secrets.MaskAPIKey(upstream), IsActive: true}, nil)
			testenv.Must(t, err)
			future := time.Now().Add(time.Hour)
			newToken := func(kr *secrets.Keyring) (string, llmproxy.Token) {
				plain, err := tokens.Generate()
				testenv.Must(t, err)
				tok, err := st.CreateToken(ctx, llmproxy.Token{Hash: kr.HashToken(plain), Hint: tokens.Hint(plain), ProjectID: p.ID, IsActive: true, ExpiresAt: &future}, nil)
				testenv.Must(t, err)
				return plain, tok
			}
			plain, tok := newToken(kr)

			bus := tokens.NewLocalBus()
			v := tokens.NewValidator(st, kr, tokens.ValidatorOptions{})
			bus.Subscribe(v)
			auth, err := v.Validate(ctx, plain)
			testenv.Must(t, err)
			if auth.UpstreamKey != upstream || auth.Token.ID != tok.ID || auth.Project.ID != p.ID {
				t.Fatalf("auth = token %s project %s", auth.Token.ID, auth.Project.ID)
			}
			unknown, _ := tokens.Generate()
			if _, err := v.Validate(ctx, unknown); llmproxy.ErrorCode(err) != llmproxy.CodeTokenNotFound {
				t.Fatalf("unknown token: %v", err)
			}

			// Usage counters through the batcher.
			ub := tokens.NewUsageBatcher(st.AddUsage, tokens.UsageOptions{})
			before := time.Now()
			ub.Record(tok.ID, p.ID, false, 12, 30)
			ub.Record(tok.ID, p.ID, true, 0, 0)
			ub.Record(tok.ID, p.ID, false, 8, 0)
			ub.Record("no-such-token", p.ID, false, 1000, 1000)
			testenv.Must(t, ub.Close(ctx))
			got, err := st.GetToken(ctx, tok.ID)
			testenv.Must(t, err)
			if got.RequestCount != 3 || got.CacheHitCount != 1 || got.LastUsedAt == nil {
				t.Fatalf("after usage flush: requests %d, cache hits %d, last used %v", got.RequestCount, got.CacheHitCount, got.LastUsedAt)
			}
			pu, err := st.ProjectUsage(ctx, before)
			testenv.Must(t, err)
			if want := (store.ProjectUsage{ProjectID: p.ID, Requests: 3, CacheHits: 1, PromptTokens: 20, CompletionTokens: 30}); len(pu) != 1 || pu[0] != want {
				t.Fatalf("project usage after flush = %+v, want [%+v]", pu, want)
			}

			// Key rotation: a second token exists before it.
			plain2, tok2 := newToken(kr)
			rotating, err := secrets.NewKeyring(newKey, []string{oldKey})
			testenv.Must(t, err)
			n, err := st.ReencryptProjectKeys(ctx, rotating.Reencrypt)
			testenv.Must(t, err)
			if n != 1 {
				t.Fatalf("re-encrypted %d keys, want 1", n)
			}
			if n, err := st.ReencryptProjectKeys(ctx, rotating.Reencrypt); err != nil || n != 0 {
				t.Fatalf("second rotation: %d, %v; want 0", n, err)
			}
			rp, err := st.GetProject(ctx, p.ID)
			testenv.Must(t, err)
			onlyNew, err := secrets.NewKeyring(newKey, nil)
			testenv.Must(t, err)
			if k, err := onlyNew.Decrypt(rp.APIKeyEncrypted); err != nil || k != upstream {
				t.Fatalf("after rotation, the new key alone decrypts: %q, %v", k, err)
			}
			v2 := tokens.NewValidator(st, rotating, tokens.ValidatorOptions{})
			bus.Subscribe(v2)
			auth2, err := v2.Validate(ctx, plain2)
			testenv.Must(t, err)
			if auth2.Token.ID != tok2.ID || auth2.UpstreamKey != upstream {
				t.Fatal("token from before the rotation does not validate with the previous key listed")
			}
			plain3, _ := newToken(rotating)
			if _, err := tokens.NewValidator(st, onlyNew, tokens.ValidatorOptions{}).Validate(ctx, plain3); err != nil {
				t.Fatalf("token created after the rotation, new key only: %v", err)
			}

			// Revocation through the store and the bus.
			_, _, err = st.RevokeToken(ctx, tok.ID, nil)
			testenv.Must(t, err)
			testenv.Must(t, bus.InvalidateToken(ctx, tok.ID))
			if _, err := v.Validate(ctx, plain); llmproxy.ErrorCode(err) != llmproxy.CodeTokenRevoked {
				t.Fatalf("revoked token: %v", err)
			}
			// Deactivation of the project.
			inactive := false
			_, _, err = st.UpdateProject(ctx, p.ID, store.ProjectUpdate{IsActive: &inactive}, nil)
			testenv.Must(t, err)
			testenv.Must(t, bus.InvalidateProject(ctx, p.ID))
			if _, err := v2.Validate(ctx, plain2); llmproxy.ErrorCode(err) != llmproxy.CodeProjectInactive {
				t.Fatalf("token of a deactivated project: %v", err)
			}

			// No plaintext secret in the database.
			testenv.Must(t, st.Close())
			dump := e.dump(t, cfg)
			if len(dump) == 0 {
				t.Fatal("empty dump")
			}
			if !bytes.Contains(dump, []byte(tok.Hash)) {
				t.Fatal("dump does not contain the token hash: the dump is not looking at the data")
			}
			for _, secret := range []string{upstream, "UPSTREAMSECRET", plain, plain2, plain3, oldKey, newKey} {
				if bytes.Contains(dump, []byte(secret)) {
					t.Fatalf("database contains a plaintext secret (%d bytes)", len(secret))
				}
			}
		})
	}
}

// TestHungDatabase: a never-seen valid token while PostgreSQL accepts
// connections and never answers gets 503 (ErrUnavailable, never a 401)
// within DATABASE_QUERY_TIMEOUT, for every concurrent caller (callers that
// joined the lookup do not wait for a deadline of their own); once the
// database answers, the same validator admits the token (no restart).
func TestHungDatabase(t *testing.T) {
	t.Parallel()
	const timeout = 400 * time.Millisecond
	ctx := context.Background()
	direct := testenv.PostgresURL(t)
	testenv.Must(t, migrate.Up(ctx, "postgres", direct))
	proxy, viaProxy := faultproxy.StartURL(t, direct)
	st, err := dbopen.Open(ctx, config.Database{Driver: "postgres", URL: viaProxy, PoolSize: 4, QueryTimeout: timeout})
	testenv.Must(t, err)
	t.Cleanup(func() { st.Close() })
	key, _ := secrets.GenerateKey()
	kr, err := secrets.NewKeyring(key, nil)
	testenv.Must(t, err)
	ct, err := kr.Encrypt("sk-proj-UPSTREAM0123456789")
	testenv.Must(t, err)
	p, err := st.CreateProject(ctx, llmproxy.Project{Name: "hung", APIKeyEncrypted: ct, IsActive: true}, nil)
	testenv.Must(t, err)
	plain, err := tokens.Generate()
	testenv.Must(t, err)
	_, err = st.CreateToken(ctx, llmproxy.Token{Hash: kr.HashToken(plain), Hint: tokens.Hint(plain), ProjectID: p.ID, IsActive: true}, nil)
	testenv.Must(t, err)
	v := tokens.NewValidator(st, kr, tokens.ValidatorOptions{})

	proxy.Hang()
	const callers = 8
	var wg sync.WaitGroup
	errs := make([]error, callers)
	took := make([]time.Duration, callers)
	for i := range callers {
		wg.Go(func() {
			start := time.Now()
			_, errs[i] = v.Validate(ctx, plain) // no deadline of the caller's own
			took[i] = time.Since(start)
		})
	}
	wg.Wait()
	for i := range callers {
		if !errors.Is(errs[i], llmproxy.ErrUnavailable) || llmproxy.ErrorCode(errs[i]) != llmproxy.CodeUnavailable {
			t.Errorf("caller %d on a hung database: %v, want ErrUnavailable (503)", i, errs[i])
		}
		if took[i] > timeout*3/2 {
			t.Errorf("caller %d answered after %v, want within %v", i, took[i], timeout)
		}
		if testing.Verbose() {
			t.Logf("caller %d: %v", i, took[i])
		}
	}

	proxy.Restore()
	deadline := time.Now().Add(5 * time.Second)
	for {
		auth, err := v.Validate(ctx, plain)
		if err == nil && auth.Project.ID == p.ID {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the database answers again: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

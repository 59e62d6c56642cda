package dispatcher

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/llm-proxy/llm-proxy/internal/testenv"
)

// TestRedisDedupTakesBackDeadOwnersLeases: a lease naming its owner is
// taken back at once by a later run of the same name, and by anyone once
// the owner's liveness key no longer names its run; a running owner's lease,
// an anonymous one and a lease of this very run stay in flight.
func TestRedisDedupTakesBackDeadOwnersLeases(t *testing.T) {
	rdb, prefix := testenv.Redis(t)
	ctx := context.Background()
	a1 := Owner{Name: "a", Instance: "a1"}
	b1 := Owner{Name: "b/with/slashes", Instance: "b1"}
	for _, tc := range []struct {
		name    string
		holder  string            // the key's value before the claim
		alive   map[string]string // liveness keys: name → instance
		tracked bool              // the claimer tracks owners
		claimer Owner
		want    ClaimState
	}{
		{"free key", "", nil, true, a1, Claimed},
		{"done key", doneValue, nil, true, a1, Done},
		{"anonymous lease", Owner{}.lease(), nil, true, a1, InFlight},
		{"this very run's lease", a1.lease(), map[string]string{"a": "a1"}, true, a1, InFlight},
		{"a former run of my name", a1.lease(), map[string]string{"a": "a1"}, true, Owner{Name: "a", Instance: "a2"}, Claimed},
		{"a former run of my name, untracked", a1.lease(), nil, false, Owner{Name: "a", Instance: "a2"}, Claimed},
		{"another owner, running", b1.lease(), map[string]string{b1.Name: "b1"}, true, a1, InFlight},
		{"another owner, its liveness expired", b1.lease(), nil, true, a1, Claimed},
		{"another owner, restarted since", b1.lease(), map[string]string{b1.Name: "b2"}, true, a1, Claimed},
		{"another owner, owners untracked", b1.lease(), nil, false, a1, InFlight},
		{"an anonymous claimer, dead owner", b1.lease(), nil, true, Owner{}, Claimed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := prefix + strings.ReplaceAll(tc.name, " ", "-") + ":"
			d := NewRedisDedup(rdb, p+"dedup:", time.Hour, time.Minute)
			if tc.tracked {
				d.TrackOwners(p+"alive:", time.Minute)
			}
			if tc.holder != "" {
				rdb.Set(ctx, p+"dedup:k", tc.holder, time.Minute)
			}
			for name, inst := range tc.alive {
				rdb.Set(ctx, p+"alive:"+name, inst, time.Minute)
			}
			mine := tc.claimer.lease()
			got, err := d.Claim(ctx, []string{"k"}, mine)
			if err != nil {
				t.Fatal(err)
			}
			if got[0] != tc.want {
				t.Fatalf("claim of a key holding %q: %v, want %v (1 claimed, 2 done, 3 in flight)", tc.holder, got[0], tc.want)
			}
			v, _ := rdb.Get(ctx, p+"dedup:k").Result()
			if tc.want == Claimed && v != mine {
				t.Fatalf("claimed, but the key holds %q, not the claimer's lease", v)
			}
			if tc.want != Claimed && v != tc.holder {
				t.Fatalf("not claimed, but the key changed from %q to %q", tc.holder, v)
			}
		})
	}
}

func TestLeaseOwner(t *testing.T) {
	for _, tc := range []struct {
		lease string
		want  Owner
		ok    bool
	}{
		{Owner{Name: "dispatcher-file-host-0", Instance: "i1"}.lease(), Owner{Name: "dispatcher-file-host-0", Instance: "i1"}, true},
		{Owner{Name: "a/b", Instance: "i1"}.lease(), Owner{Name: "a/b", Instance: "i1"}, true},
		{Owner{}.lease(), Owner{}, false},
		{"lease:0123456789abcdef", Owner{}, false},
		{"lease:x//", Owner{}, false},
		{doneValue, Owner{}, false},
	} {
		got, ok := leaseOwner(tc.lease)
		if got != tc.want || ok != tc.ok {
			t.Errorf("leaseOwner(%q) = %+v, %v; want %+v, %v", tc.lease, got, ok, tc.want, tc.ok)
		}
	}
}

// TestKeepAlive: the liveness key names the run while it runs and is gone
// once it stopped; a second running instance of the name is reported.
func TestKeepAlive(t *testing.T) {
	rdb, prefix := testenv.Redis(t)
	ctx := context.Background()
	var logs testenv.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	d := NewRedisDedup(rdb, prefix+"dedup:", time.Hour, time.Minute).TrackOwners(prefix+"alive:", 150*time.Millisecond)
	o := NewOwner("c")
	stop := d.KeepAlive(ctx, o, log)
	time.Sleep(300 * time.Millisecond) // two TTLs: renewed meanwhile
	if v, _ := rdb.Get(ctx, prefix+"alive:c").Result(); v != o.Instance {
		t.Fatalf("liveness key %q while running, want %q", v, o.Instance)
	}
	twin := d.KeepAlive(ctx, NewOwner("c"), log)
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(logs.String(), "another running dispatcher uses this consumer name") {
		if time.Now().After(deadline) {
			t.Fatalf("two runs of one name not reported; logs:\n%s", logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	twin()
	stop()
	if n, _ := rdb.Exists(ctx, prefix+"alive:c").Result(); n != 0 {
		t.Fatal("the liveness key outlived its run")
	}
}

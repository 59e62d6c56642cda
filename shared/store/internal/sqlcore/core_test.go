package sqlcore

import (
	"testing"
	"time"
)

func TestRebind(t *testing.T) {
	t.Parallel()
	pg := &Dialect{Dollar: true}
	lite := &Dialect{}
	q := `SELECT a FROM t WHERE a = ? AND b LIKE ? ESCAPE '\' LIMIT ?`
	if got, want := pg.rebind(q), `SELECT a FROM t WHERE a = $1 AND b LIKE $2 ESCAPE '\' LIMIT $3`; got != want {
		t.Errorf("postgres rebind = %q, want %q", got, want)
	}
	if got := lite.rebind(q); got != q {
		t.Errorf("sqlite rebind changed the query: %q", got)
	}
}

func TestLikePattern(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"Abc":  "%abc%",
		"50%":  `%50\%%`,
		"a_b":  `%a\_b%`,
		`c:\x`: `%c:\\x%`,
		"":     "%%",
	} {
		if got := likePattern(in); got != want {
			t.Errorf("likePattern(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestTimeFormatSortsAndRoundTrips(t *testing.T) {
	t.Parallel()
	a := time.Date(2026, 1, 2, 3, 4, 5, 6000, time.FixedZone("A", 3600))
	b := a.Add(time.Microsecond)
	fa, fb := FormatTime(a), FormatTime(b)
	if fa != "2026-01-02T02:04:05.000006Z" || !(fa < fb) {
		t.Fatalf("FormatTime: %q, %q", fa, fb)
	}
	var got time.Time
	if err := (timeDst{&got}).Scan(fa); err != nil || !got.Equal(a) || got.Location() != time.UTC {
		t.Fatalf("scan %q = %v, %v", fa, got, err)
	}
}

func TestNormaliseDetailsRoundTrip(t *testing.T) {
	t.Parallel()
	in := map[string]any{"n": int64(9007199254740993), "s": struct{ B, A int }{1, 2}, "t": time.Unix(0, 0).UTC()}
	norm, text, err := normaliseDetails(in)
	if err != nil {
		t.Fatal(err)
	}
	back, err := decodeDetails(text.(string))
	if err != nil {
		t.Fatal(err)
	}
	e1 := eventWith(norm)
	e2 := eventWith(back)
	if e1.ComputeHash("") != e2.ComputeHash("") {
		t.Fatal("normalised details hash differently after a round trip")
	}
	if _, _, err := normaliseDetails(map[string]any{"f": func() {}}); err == nil {
		t.Fatal("unencodable details accepted")
	}
}

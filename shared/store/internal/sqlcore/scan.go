package sqlcore

import (
	"fmt"
	"time"
)

// Scanners that accept what either engine returns: time.Time from pgx,
// TEXT in TimeFormat (or RFC 3339) from SQLite; NULL where allowed.

type timeDst struct{ t *time.Time }

func (d timeDst) Scan(src any) error {
	t, ok, err := parseTime(src)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("unexpected NULL time")
	}
	*d.t = t
	return nil
}

type nullTimeDst struct{ t **time.Time }

func (d nullTimeDst) Scan(src any) error {
	t, ok, err := parseTime(src)
	if err != nil {
		return err
	}
	if !ok {
		*d.t = nil
		return nil
	}
	*d.t = &t
	return nil
}

func parseTime(src any) (time.Time, bool, error) {
	switch v := src.(type) {
	case nil:
		return time.Time{}, false, nil
	case time.Time:
		return v.UTC(), true, nil
	case string:
		return parseTimeText(v)
	case []byte:
		return parseTimeText(string(v))
	}
	return time.Time{}, false, fmt.Errorf("cannot scan %T into a time", src)
}

func parseTimeText(s string) (time.Time, bool, error) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("parse stored time %q: %w", s, err)
	}
	return t.UTC(), true, nil
}

type nullInt64Dst struct{ n **int64 }

func (d nullInt64Dst) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*d.n = nil
	case int64:
		*d.n = &v
	case int32:
		n := int64(v)
		*d.n = &n
	default:
		return fmt.Errorf("cannot scan %T into an integer", src)
	}
	return nil
}

type nullStringDst struct{ s *string }

func (d nullStringDst) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*d.s = ""
	case string:
		*d.s = v
	case []byte:
		*d.s = string(v)
	default:
		return fmt.Errorf("cannot scan %T into a string", src)
	}
	return nil
}

type boolDst struct{ b *bool }

func (d boolDst) Scan(src any) error {
	switch v := src.(type) {
	case bool:
		*d.b = v
	case int64:
		*d.b = v != 0
	default:
		return fmt.Errorf("cannot scan %T into a bool", src)
	}
	return nil
}

package events

import (
	"reflect"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/cloudevents/sdk-go/v2/event"
)

// newEventDirect and setIDs build exactly the event the sdk's setters do.
func TestNewEventDirect(t *testing.T) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 912700000, time.FixedZone("X", 3600))
	for _, tc := range []struct {
		name                      string
		typ, source, id, subject  string
		at                        time.Time
		projectID, tokenID, model string
		direct                    bool
	}{
		{"request", TypeRequestCompleted, DefaultSource, "req-1", "prj_1", at, "prj_1", "tok_1", "gpt-4o-mini", true},
		{"no subject, no ids", TypeRequestCompleted, DefaultSource, "req-2", "", at, "", "", "", true},
		{"token event", TypeTokenRevoked, "/llmproxy/functions/management", "aud-1/tok_1", "prj_1", at, "prj_1", "tok_1", "", true},
		{"source with a query", TypeProjectUpdated, "https://example.com/a?b=c#d", "x", "p", at, "p", "", "", true},
		{"model only", TypeRequestCompleted, DefaultSource, "r", "", at, "", "", "m <1>", true},
		{"id with spaces", TypeRequestCompleted, DefaultSource, " padded ", "s", at, "", "", "", false},
		{"empty id", TypeRequestCompleted, DefaultSource, "", "", at, "", "", "", false},
		{"subject with spaces", TypeRequestCompleted, DefaultSource, "r", " s ", at, "", "", "", false},
		{"zero time", TypeRequestCompleted, DefaultSource, "r", "", time.Time{}, "", "", "", false},
		{"bad source", TypeRequestCompleted, "%zz", "r", "", at, "", "", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := cloudevents.NewEvent()
			want.SetType(tc.typ)
			want.SetSource(tc.source)
			want.SetID(tc.id)
			if tc.subject != "" {
				want.SetSubject(tc.subject)
			}
			want.SetTime(tc.at.UTC())
			want.SetDataSchema(SchemaBase + tc.typ[len(TypePrefix):] + ".json")
			for _, ext := range [][2]string{{ExtProjectID, tc.projectID}, {ExtTokenID, tc.tokenID}, {ExtModel, tc.model}} {
				if ext[1] != "" {
					want.SetExtension(ext[0], ext[1])
				}
			}
			for range 2 { // the second time from the source cache
				_, direct := newEventDirect(tc.typ, tc.source, tc.id, tc.subject, tc.at)
				if direct != tc.direct {
					t.Errorf("built directly: %v, want %v", direct, tc.direct)
				}
				got := newEvent(tc.typ, tc.source, tc.id, tc.subject, tc.at)
				setIDs(&got, tc.projectID, tc.tokenID, tc.model)
				if !reflect.DeepEqual(got, want) {
					t.Fatalf("got  %#v\nwant %#v", got.Context, want.Context)
				}
				if (got.Validate() == nil) != (want.Validate() == nil) {
					t.Fatalf("validity differs: %v vs %v", got.Validate(), want.Validate())
				}
			}
		})
	}
	// Events built directly do not share what a consumer could change.
	a, _ := newEventDirect(TypeRequestCompleted, DefaultSource, "a", "", at)
	b, _ := newEventDirect(TypeRequestCompleted, DefaultSource, "b", "", at)
	a.Context.(*event.EventContextV1).DataSchema.Path = "/changed"
	if b.DataSchema() == a.DataSchema() {
		t.Fatal("events share their dataschema")
	}
}

// An event newRequestCompletedEvent reports valid by construction (the
// emitter then skips Validate) passes Validate.
func FuzzValidByConstruction(f *testing.F) {
	f.Add("req-1", "prj_1", DefaultSource, "tok_1", "gpt-4o-mini")
	f.Add(" x", " ", "", "", "")
	f.Add("x", "p", "#", "t", "m")
	f.Add("x", "p", " /a ", "t", "m")
	f.Fuzz(func(t *testing.T, id, project, source, token, model string) {
		d := RequestCompleted{RequestID: id, ProjectID: project, TokenID: token, Model: model, StartedAt: time.Unix(1700000000, 5)}
		ev, valid, err := newRequestCompletedEvent(source, &d)
		if err != nil {
			t.Fatal(err)
		}
		if valid {
			if err := ev.Validate(); err != nil {
				t.Fatalf("reported valid, Validate: %v (%q %q %q)", err, id, project, source)
			}
		}
		want, err := NewRequestCompletedEvent(source, &d)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(ev, want) {
			t.Fatalf("differs from NewRequestCompletedEvent:\n%#v\n%#v", ev.Context, want.Context)
		}
	})
}

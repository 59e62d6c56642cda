package events

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	cloudevents "github.com/cloudevents/sdk-go/v2"
	"github.com/cloudevents/sdk-go/v2/event"
)

// checkSameAsMarshal fails unless AppendEvent appends exactly what
// json.Marshal(ev) returns, and fails exactly when it fails.
func checkSameAsMarshal(t *testing.T, ev *event.Event) {
	t.Helper()
	want, wantErr := json.Marshal(ev)
	prefix := []byte("prefix\n")
	got, err := AppendEvent(bytes.Clone(prefix), ev)
	if (err != nil) != (wantErr != nil) {
		t.Fatalf("error %v, json.Marshal's %v", err, wantErr)
	}
	if wantErr != nil {
		if !bytes.Equal(got, prefix) {
			t.Fatalf("dst changed on error: %q", got)
		}
		return
	}
	if !bytes.HasPrefix(got, prefix) || !bytes.Equal(got[len(prefix):], want) {
		t.Fatalf("AppendEvent differs from json.Marshal:\n got %s\nwant %s", got[len(prefix):], want)
	}
}

func TestAppendEventIsJSONMarshal(t *testing.T) {
	withBodies := requestEventFor(t, "r1")
	noBodies, _ := NewRequestCompletedEvent(DefaultSource, BuildRequestCompleted(sampleInfo("r2"), false))
	awkward := requestEventFor(t, "id <&> \u2028 \u2029 \"q\" \\ \x01\x1f\x7f \b\f é € \xff \xe2\x80")
	awkward.SetSubject("prj <1> & \n\t\r")
	awkward.SetExtension(ExtModel, "gpt <4> & \u2028 \"x\"")
	awkward.SetSource("/llmproxy/functions/proxy?x=<a>&y=1")
	tok := tokenEvent(t, "t1", "p1")
	prettyData := requestEventFor(t, "pretty")
	prettyData.DataEncoded = []byte("{\n  \"a\": [1, 2],\t\"b\": \"x y\"\n}") // as an HTTP receiver keeps it
	htmlData := requestEventFor(t, "html")
	htmlData.DataEncoded = []byte(`{"a":"<b>&amp;</b>","s":"\u2028"}`)
	rawSeparator := requestEventFor(t, "sep")
	rawSeparator.DataEncoded = []byte("{\"a\":\"x\u2028y\u2029z…\"}")
	invalidData := requestEventFor(t, "invalid")
	invalidData.DataEncoded = []byte(`{"a":`)
	emptyData := requestEventFor(t, "empty")
	emptyData.DataEncoded = []byte{}
	text := requestEventFor(t, "text")
	_ = text.SetData("text/plain", []byte("hello <world>\n"))
	jsonWithParams := requestEventFor(t, "params")
	jsonWithParams.SetDataContentType(" Application/JSON ; charset=utf-8")
	noContentType := requestEventFor(t, "noct")
	noContentType.Context.(*event.EventContextV1).DataContentType = nil
	base64Data := requestEventFor(t, "b64")
	base64Data.DataBase64 = true
	noData := cloudevents.NewEvent()
	noData.SetID("n1")
	noData.SetSource("/s")
	noData.SetType(TypeTokenCreated)
	nonStringExt := requestEventFor(t, "ext")
	nonStringExt.SetExtension("count", 3)
	nonStringExt.SetExtension("flag", true)
	v03 := requestEventFor(t, "v03")
	v03.SetSpecVersion(event.CloudEventsVersionV03)
	noContext := event.Event{}
	manyExtensions := requestEventFor(t, "many")
	for _, k := range []string{"zz", "aa", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8"} {
		manyExtensions.SetExtension(k, k+"<v>")
	}

	onePass := map[string]bool{
		"request with bodies": true, "request without bodies": true, "awkward strings": true, "token event": true,
		"json with parameters": true, "no content type": true, "no data": true, "many extensions": true,
		"pretty data": true, "html in data": true, "raw line separators": true,
	}
	for name, ev := range map[string]*event.Event{
		"request with bodies": &withBodies, "request without bodies": &noBodies, "awkward strings": &awkward,
		"token event": &tok, "pretty data": &prettyData, "html in data": &htmlData, "raw line separators": &rawSeparator,
		"invalid data": &invalidData, "empty data": &emptyData, "text data": &text, "json with parameters": &jsonWithParams,
		"no content type": &noContentType, "base64 data": &base64Data, "no data": &noData, "non-string extensions": &nonStringExt,
		"spec 0.3": &v03, "no context": &noContext, "many extensions": &manyExtensions,
	} {
		t.Run(name, func(t *testing.T) {
			checkSameAsMarshal(t, ev)
			_, fast := appendEventFast(nil, ev)
			if want := onePass[name]; fast != want {
				t.Errorf("one-pass path taken: %v, want %v", fast, want)
			}
		})
	}
}

// The events llm-proxy emits take the one-pass path.
func TestAppendEventFastPathCoversOurEvents(t *testing.T) {
	info := sampleInfo("r1")
	info.RequestBody = []byte("{\"messages\": [{\"role\": \"user\", \"content\": \"<b>hi</b> & \u2028\"}]}")
	for _, bodies := range []bool{false, true} {
		ev, err := NewRequestCompletedEvent(DefaultSource, BuildRequestCompleted(info, bodies))
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := appendEventFast(nil, &ev); !ok {
			t.Errorf("bodies=%v: request event not encoded in one pass", bodies)
		}
	}
	for _, ev := range []event.Event{tokenEvent(t, "t1", "p1")} {
		if _, ok := appendEventFast(nil, &ev); !ok {
			t.Errorf("%s not encoded in one pass", ev.Type())
		}
	}
	p, err := NewProjectUpdatedEvent("/m", "a1", ProjectUpdated{ProjectID: "p", Action: "project.update", Name: "A & B <co>", At: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := appendEventFast(nil, &p); !ok {
		t.Error("project event not encoded in one pass")
	}
}

func FuzzAppendEvent(f *testing.F) {
	f.Add("r1", "prj_1", "gpt-4o-mini", []byte(`{"a":1}`), "application/json")
	f.Add("<&>", "\u2028", "\x00\"\\", []byte("{\n\"a\" : \"<\u2029>\"}"), "")
	f.Add("\xff\xfe", "", "é", []byte(`[1,2`), "text/plain")
	f.Fuzz(func(t *testing.T, id, subject, model string, data []byte, contentType string) {
		if id == "" {
			id = "x"
		}
		ev := cloudevents.NewEvent()
		ev.SetID(id)
		ev.SetSource("/s")
		ev.SetType(TypeRequestCompleted)
		if subject != "" {
			ev.SetSubject(subject)
		}
		ev.SetExtension(ExtModel, model)
		ev.SetTime(time.Unix(1700000000, 123456789))
		if contentType != "" {
			ev.SetDataContentType(contentType)
		}
		ev.DataEncoded = data
		checkSameAsMarshal(t, &ev)
	})
}

// BenchmarkEncodeEvent: a request event's structured JSON (the file
// backend's line) and its data, one-pass against json.Marshal.
func BenchmarkEncodeEvent(b *testing.B) {
	for _, bodies := range []bool{false, true} {
		d := BuildRequestCompleted(sampleInfo("3f6c2a9e-5b1d-4c1e-9a57-0b8f4f7d2c11"), bodies)
		ev, err := NewRequestCompletedEvent(DefaultSource, d)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("event/bodies=%v/AppendEvent", bodies), func(b *testing.B) {
			b.ReportAllocs()
			var buf []byte
			for b.Loop() {
				buf, _ = AppendEvent(buf[:0], &ev)
			}
		})
		b.Run(fmt.Sprintf("event/bodies=%v/json.Marshal", bodies), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_, _ = json.Marshal(&ev)
			}
		})
		b.Run(fmt.Sprintf("data/bodies=%v/appendJSON", bodies), func(b *testing.B) {
			b.ReportAllocs()
			var buf []byte
			for b.Loop() {
				buf, _ = d.appendJSON(buf[:0])
			}
		})
		b.Run(fmt.Sprintf("data/bodies=%v/json.Marshal", bodies), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_, _ = json.Marshal(d)
			}
		})
	}
}

// TestAppendEventAlternatingSources: the remembered source text never
// leaks into an event of another source.
func TestAppendEventAlternatingSources(t *testing.T) {
	sources := []string{"/llmproxy/functions/proxy", "/llmproxy/functions/management", "/llmproxy/functions/proxy?x=<a>"}
	for i := range 3 * len(sources) {
		ev := requestEventFor(t, fmt.Sprintf("alt-%d", i))
		ev.SetSource(sources[i%len(sources)])
		checkSameAsMarshal(t, &ev)
	}
}

package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"go.opentelemetry.io/otel/trace"
)

func TestPropagatingSetsTraceparentOnACopy(t *testing.T) {
	ts, err := trace.ParseTraceState("vendor=value")
	if err != nil {
		t.Fatal(err)
	}
	sc := trace.NewSpanContext(trace.SpanContextConfig{
		TraceID: trace.TraceID{0xaa, 1}, SpanID: trace.SpanID{0xbb, 2}, TraceFlags: trace.FlagsSampled, TraceState: ts,
	})
	cases := []struct {
		name       string
		ctx        context.Context
		wantParent string
		wantState  string
	}{
		{"under a span", trace.ContextWithSpanContext(context.Background(), sc),
			"00-aa010000000000000000000000000000-bb02000000000000-01", "vendor=value"},
		{"no span", context.Background(), "", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var got http.Header
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { got = r.Header.Clone() }))
			defer srv.Close()
			req, err := http.NewRequestWithContext(tc.ctx, http.MethodPost, srv.URL, strings.NewReader("{}"))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer upstream")
			req.Header.Add("X-Multi", "a")
			req.Header.Add("X-Multi", "b")
			before := req.Header.Clone()
			resp, err := (&http.Client{Transport: propagating{base: http.DefaultTransport}}).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if g := got.Get("Traceparent"); g != tc.wantParent {
				t.Errorf("traceparent %q, want %q", g, tc.wantParent)
			}
			if g := got.Get("Tracestate"); g != tc.wantState {
				t.Errorf("tracestate %q, want %q", g, tc.wantState)
			}
			if got.Get("Authorization") != "Bearer upstream" || strings.Join(got.Values("X-Multi"), ",") != "a,b" {
				t.Errorf("the caller's headers did not reach the upstream: %v", got)
			}
			if !reflect.DeepEqual(req.Header, before) {
				t.Errorf("the caller's request changed: %v, was %v", req.Header, before)
			}
		})
	}
}

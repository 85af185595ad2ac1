package tokens

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image"
	"image/gif"
	"image/jpeg"
	"strings"
	"sync"
	"testing"

	"github.com/tollgate/tollgate/pkg/llm"
)

func TestForModel(t *testing.T) {
	for _, tc := range []struct{ model, want string }{
		{"gpt-4o", O200K},
		{"gpt-4o-mini-2024-07-18", O200K},
		{"chatgpt-4o-latest", O200K},
		{"gpt-4.1-nano", O200K},
		{"gpt-4.5-preview", O200K},
		{"gpt-5", O200K},
		{"gpt-5-mini-2025-08-07", O200K},
		{"o1", O200K},
		{"o3-mini", O200K},
		{"o4-mini", O200K},
		{"gpt-oss-120b", O200K},
		{"openai/gpt-4o", O200K},
		{"GPT-4O", O200K},
		{"gpt-4", CL100K},
		{"gpt-4-turbo", CL100K},
		{"gpt-4-0613", CL100K},
		{"gpt-3.5-turbo", CL100K},
		{"gpt-35-turbo", CL100K},
		{"text-embedding-3-small", CL100K},
		{"text-embedding-ada-002", CL100K},
		{"claude-3-5-sonnet-20241022", EstimateAnthropic},
		{"anthropic/claude-opus-4", EstimateAnthropic},
		{"gemini-2.5-pro", EstimateGemini},
		{"gemma-3-27b", EstimateGemini},
		{"llama-3.1-70b", Estimate},
		{"mistral-large", Estimate},
		{"", Estimate},
	} {
		t.Run(tc.model, func(t *testing.T) {
			if got := ForModel(tc.model); got != tc.want {
				t.Errorf("ForModel(%q) = %q, want %q", tc.model, got, tc.want)
			}
		})
	}
}

func TestCountErrors(t *testing.T) {
	c := NewCounter()
	if _, err := c.Count("p50k_base", "hi"); err == nil {
		t.Error("Count with an unknown tokenizer: want an error")
	}
	if _, err := c.CountChat("nope", "gpt-4o", &llm.ChatRequest{}); err == nil {
		t.Error("CountChat with an unknown tokenizer: want an error")
	}
	want, _ := c.Count(Estimate, "hello world")
	if got := c.CountText("nope", "hello world"); got != want {
		t.Errorf("CountText with an unknown tokenizer = %d, want the generic estimate %d", got, want)
	}
}

// TestImageRules checks the rules against the examples in OpenAI's "Images
// and vision" guide and the other providers' published formulas.
func TestImageRules(t *testing.T) {
	for _, tc := range []struct {
		name, model string
		w, h        int
		detail      string
		want        int
	}{
		{"guide 1024x1024 high", "gpt-4o", 1024, 1024, "high", 765},
		{"guide 2048x4096 high", "gpt-4o", 2048, 4096, "high", 1105},
		{"guide low any size", "gpt-4o", 4096, 4096, "low", 85},
		{"auto counts as high", "gpt-4o", 1024, 1024, "auto", 765},
		{"small image one tile", "gpt-4.1", 128, 64, "high", 255},
		{"no upscaling", "gpt-4o", 500, 500, "high", 255},
		{"gpt-4o-mini low", "gpt-4o-mini", 1024, 1024, "low", 2833},
		{"gpt-4o-mini high", "gpt-4o-mini", 1024, 1024, "high", 2833 + 4*5667},
		{"o3 high", "o3", 1024, 1024, "high", 75 + 4*150},
		{"gpt-5 high", "gpt-5", 1024, 1024, "high", 70 + 4*140},
		// guide: 1024x1024 is 1024 patches; 1800x2400 scales to 1452 patches
		{"patches 1024x1024", "gpt-4.1-mini", 1024, 1024, "high", 1 + 1659},    // ceil(1024*1.62)
		{"patches scaled 1800x2400", "gpt-4.1-nano", 1800, 2400, "", 1 + 3572}, // ceil(1452*2.46)
		{"patches ignore low", "o4-mini", 1024, 1024, "low", 1 + 1762},         // ceil(1024*1.72)
		{"anthropic 1000x1000", "claude-sonnet-4", 1000, 1000, "", 1334},
		{"anthropic capped", "claude-sonnet-4", 4000, 4000, "", 1600},
		{"gemini small", "gemini-2.0-flash", 384, 384, "", 258},
		{"gemini tiles", "gemini-2.0-flash", 1000, 800, "", 258 * 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := imageRuleFor(tc.model).tokens(pngDataURL(t, tc.w, tc.h), tc.detail); got != tc.want {
				t.Errorf("%s %dx%d %q = %d, want %d", tc.model, tc.w, tc.h, tc.detail, got, tc.want)
			}
		})
	}
	if got, want := patches(1800, 2400), 1452; got != want {
		t.Errorf("patches(1800x2400) = %d, want %d (guide)", got, want)
	}
	if got, want := ImageTokens("gpt-4o", "https://example.com/cat.png", "high"), 85+8*170; got != want {
		t.Errorf("unknown size: %d, want the 2048x768 worst case %d", got, want)
	}
}

func TestImageSize(t *testing.T) {
	enc := func(b []byte, mime string) string {
		return "data:" + mime + ";base64," + base64.StdEncoding.EncodeToString(b)
	}
	img := image.NewRGBA(image.Rect(0, 0, 321, 123))
	var jpg, gf bytes.Buffer
	if err := jpeg.Encode(&jpg, img, nil); err != nil {
		t.Fatal(err)
	}
	if err := gif.Encode(&gf, img, nil); err != nil {
		t.Fatal(err)
	}
	// A JPEG whose frame header follows a large APP1 (EXIF-like) segment.
	exif := append([]byte{0xFF, 0xD8, 0xFF, 0xE1, 0xFF, 0xFF}, make([]byte, 0xFFFD)...)
	bigJPEG := append(exif, jpg.Bytes()[2:]...)
	webp := func(chunk string, payload []byte) []byte {
		b := append([]byte("RIFF\x00\x00\x00\x00WEBP"+chunk+"\x00\x00\x00\x00"), payload...)
		return append(b, make([]byte, 16)...)
	}
	vp8 := webp("VP8 ", []byte{0, 0, 0, 0x9d, 0x01, 0x2a, 321 & 0xff, 321 >> 8, 123, 0})
	vp8l := func() []byte { // 14-bit width-1, 14-bit height-1 after the 0x2f signature
		v := uint32(320) | uint32(122)<<14
		return webp("VP8L", []byte{0x2f, byte(v), byte(v >> 8), byte(v >> 16), byte(v >> 24)})
	}()
	vp8x := webp("VP8X", []byte{0, 0, 0, 0, 320 & 0xff, 320 >> 8, 0, 122, 0, 0})
	for _, tc := range []struct {
		name, url string
		ok        bool
	}{
		{"png", pngDataURL(t, 321, 123), true},
		{"jpeg", enc(jpg.Bytes(), "image/jpeg"), true},
		{"jpeg after 64KB segment", enc(bigJPEG, "image/jpeg"), true},
		{"gif", enc(gf.Bytes(), "image/gif"), true},
		{"webp lossy", enc(vp8, "image/webp"), true},
		{"webp lossless", enc(vp8l, "image/webp"), true},
		{"webp extended", enc(vp8x, "image/webp"), true},
		{"http url", "https://example.com/a.png", false},
		{"not base64", "data:image/png,abc", false},
		{"garbage", "data:image/png;base64,!!!!", false},
		{"truncated png", enc([]byte("\x89PNG\r\n\x1a\n"), "image/png"), false},
		{"truncated jpeg", enc(jpg.Bytes()[:20], "image/jpeg"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, h, ok := imageSize(tc.url)
			if ok != tc.ok || ok && (w != 321 || h != 123) {
				t.Errorf("imageSize = %d, %d, %v; want 321, 123, %v", w, h, ok, tc.ok)
			}
		})
	}
}

func TestToolResultNamedByCall(t *testing.T) {
	req := func(name string) *llm.ChatRequest {
		return &llm.ChatRequest{Messages: []llm.Message{
			{Role: "user", Content: llm.TextContent("weather in Boston?")},
			{Role: "assistant", Content: llm.Content{Null: true}, ToolCalls: []llm.ToolCall{{ID: "call_1", Type: "function",
				Function: llm.FunctionCall{Name: "get_current_weather", Arguments: `{"location":"Boston, MA"}`}}}},
			{Role: "tool", ToolCallID: "call_1", Name: name, Content: llm.TextContent("29 degrees")},
		}}
	}
	c := NewCounter()
	named, _ := c.CountChat("", "gpt-4o", req("get_current_weather"))
	looked, _ := c.CountChat("", "gpt-4o", req(""))
	if named != looked {
		t.Errorf("tool result with name: %d, named through its call: %d; want equal", named, looked)
	}
}

// TestEstimates checks the estimators' shape: English close to o200k, digits
// and non-Latin text moving the estimate the measured way.
func TestEstimates(t *testing.T) {
	c := NewCounter()
	count := func(tok, s string) int {
		n, err := c.Count(tok, s)
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	english := strings.Repeat("The quick brown fox jumps over the lazy dog. ", 20)
	base := count(O200K, english)
	for _, tok := range []string{EstimateAnthropic, EstimateGemini, Estimate} {
		if n := count(tok, english); n < base || n > base*13/10 {
			t.Errorf("%s on English = %d, want within [%d, %d]", tok, n, base, base*13/10)
		}
	}
	digits := strings.Repeat("1234567890 ", 50)
	if g, o := count(EstimateGemini, digits), count(O200K, digits); g <= o {
		t.Errorf("gemini estimate on digits %d, want above o200k's %d (digit-by-digit vocabulary)", g, o)
	}
	greek := strings.Repeat("Γαζέες καὶ μυρτιὲς δὲν θὰ βρῶ πιὰ στὸ χρυσαφὶ ξέφωτο. ", 10)
	if a, o := count(EstimateAnthropic, greek), count(O200K, greek); a <= o*3/2 {
		t.Errorf("anthropic estimate on Greek %d, want well above o200k's %d", a, o)
	}
	req := &llm.ChatRequest{Messages: []llm.Message{{Role: "user", Content: llm.TextContent(english)}}}
	chat, err := c.CountChat("", "claude-3-5-sonnet", req)
	if err != nil || chat < count(EstimateAnthropic, english) {
		t.Errorf("CountChat for claude = %d, %v; want at least the content's estimate", chat, err)
	}
}

// TestConcurrentCounting shares one Counter (with a tiny cache, so slots are
// replaced all the time) across goroutines; run with -race.
func TestConcurrentCounting(t *testing.T) {
	c := NewCounter(WithSegmentCache(4))
	texts := make([]string, 16)
	want := make([]int, len(texts))
	for i := range texts {
		texts[i] = strings.Repeat(fmt.Sprintf("segment %d: the system prompt says hello. ", i), 10+i)
		want[i] = refCount(t, O200K, texts[i])
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range 200 {
				i := (g + k) % len(texts)
				if n, _ := c.Count(O200K, texts[i]); n != want[i] {
					t.Errorf("text %d: %d, want %d", i, n, want[i])
					return
				}
				req := &llm.ChatRequest{Messages: []llm.Message{{Role: "system", Content: llm.TextContent(texts[i])}}}
				if n, _ := c.CountChat("", "gpt-4o", req); n != want[i]+3+1+3 {
					t.Errorf("chat %d: %d, want %d", i, n, want[i]+7)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// FuzzCount: for any string, both encodings count exactly what tiktoken-go
// counts, without panicking.
func FuzzCount(f *testing.F) {
	for _, s := range []string{"", "hello world", "I'M fine, y'all'd've", "  \n\t\r\n x", "\xff\xfe", "ǅemal x\u0301", "123456789", "日本語のテキスト", "👨‍👩‍👧 🏳️‍🌈", strings.Repeat("ab", 200)} {
		f.Add(s)
	}
	// No cache at all, and a small piece cache that fills up and evicts
	// (counted twice: the second count takes its pieces from the cache).
	uncached := NewCounter(WithSegmentCache(0), WithPieceCache(0))
	cached := NewCounter(WithSegmentCache(0), WithPieceCache(64))
	f.Fuzz(func(t *testing.T, s string) {
		for _, enc := range []string{O200K, CL100K} {
			want := refCount(t, enc, s)
			for _, c := range []*Counter{uncached, cached, cached} {
				got, err := c.Count(enc, s)
				if err != nil {
					t.Fatal(err)
				}
				if got != want {
					t.Fatalf("%s %q (piece cache %v): got %d, tiktoken-go %d; %s",
						enc, s, c.pieceEntries > 0, got, want, firstSplitDiff(t, enc, s))
				}
			}
		}
	})
}

// typicalChat is a representative request: a 2 KB system prompt, a few
// turns, two tools with schemas.
func typicalChat(t testing.TB) *llm.ChatRequest {
	system := strings.Repeat("You are a careful support assistant for an online store. Answer briefly, cite the order number, never invent policies. ", 16)
	body := fmt.Sprintf(`{"model":"gpt-4o","messages":[
		{"role":"system","content":%q},
		{"role":"user","content":"Where is my order 123-456? It was due on Monday."},
		{"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function","function":{"name":"lookup_order","arguments":"{\"order_id\":\"123-456\"}"}}]},
		{"role":"tool","tool_call_id":"call_1","content":"{\"status\":\"shipped\",\"carrier\":\"UPS\",\"eta\":\"2024-05-03\"}"},
		{"role":"assistant","content":"Your order 123-456 shipped with UPS and should arrive on May 3."},
		{"role":"user","content":"Can I change the delivery address to 12 Rue de la Paix, Paris?"}],
	"tools":[
		{"type":"function","function":{"name":"lookup_order","description":"Look up an order by its number.","parameters":{"type":"object","properties":{"order_id":{"type":"string","description":"The order number, e.g. 123-456."}},"required":["order_id"]}}},
		{"type":"function","function":{"name":"change_address","description":"Change the delivery address of an order that has not been delivered.","parameters":{"type":"object","properties":{"order_id":{"type":"string","description":"The order number."},"address":{"type":"string","description":"The new address, one line."},"speed":{"type":"string","enum":["standard","express"],"description":"Delivery speed."}},"required":["order_id","address"]}}}]}`, system)
	var req llm.ChatRequest
	if err := json.Unmarshal([]byte(body), &req); err != nil {
		t.Fatal(err)
	}
	return &req
}

// BenchmarkCountChat: a typical request cold (no cache: every content and
// schema tokenized and parsed) and warm (the default Counter, as in the
// gateway, where the system prompt and tool schemas repeat).
func BenchmarkCountChat(b *testing.B) {
	req := typicalChat(b)
	for _, tc := range []struct {
		name string
		c    *Counter
	}{{"cold", NewCounter(WithSegmentCache(0), WithPieceCache(0))}, {"warm", NewCounter()}} {
		b.Run(tc.name, func(b *testing.B) {
			b.ReportAllocs()
			want, _ := tc.c.CountChat("", "gpt-4o", req)
			for b.Loop() {
				if n, _ := tc.c.CountChat("", "gpt-4o", req); n != want {
					b.Fatalf("got %d, want %d", n, want)
				}
			}
		})
	}
}

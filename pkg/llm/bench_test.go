package llm

import "testing"

var benchBodies = map[string]string{
	"short":      `{"model":"bench-model","messages":[{"role":"user","content":"What is the capital of France?"}],"max_tokens":64}`,
	"multi-turn": `{"model":"bench-model","messages":[{"role":"system","content":"You are a helpful assistant that answers briefly and precisely."},{"role":"user","content":"Hello! Can you help me plan a trip to Lisbon?"},{"role":"assistant","content":"Of course. How many days will you stay, and what do you enjoy?"},{"role":"user","content":"Four days; I like food, museums and walking. Give me a day-by-day plan."}],"temperature":0.7}`,
	// typical: a 1.5 KB conversation with a tool, the size most chat bodies have.
	"typical": `{"model":"bench-model","messages":[{"role":"system","content":"You are a helpful travel assistant. Answer briefly and precisely, cite opening hours when you know them, and ask one clarifying question when the request is ambiguous."},{"role":"user","content":"Hello! Can you help me plan a trip to Lisbon in late October?"},{"role":"assistant","content":"Of course. How many days will you stay, what is your budget, and what do you enjoy most: food, museums, walking, nightlife or day trips?"},{"role":"user","content":"Four days, a mid-range budget. I like food, museums and long walks; no nightlife. I would also like one day trip if it is easy by train."},{"role":"assistant","content":"","tool_calls":[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Lisbon\",\"month\":\"october\"}"}}]},{"role":"tool","tool_call_id":"call_1","content":"{\"avg_high_c\":22,\"avg_low_c\":15,\"rain_days\":8}"},{"role":"user","content":"Great, so give me a day-by-day plan with one museum and one restaurant suggestion per day, and the day trip on day three."}],"tools":[{"type":"function","function":{"name":"get_weather","description":"Typical weather for a city in a month","parameters":{"type":"object","properties":{"city":{"type":"string","description":"City name"},"month":{"type":"string","enum":["january","february","march","april","may","june","july","august","september","october","november","december"]}},"required":["city","month"]}}}],"tool_choice":"auto","temperature":0.7,"max_tokens":800,"user":"user-1234"}`,
	"tools":   `{"model":"bench-model","messages":[{"role":"user","content":"What's the weather in Paris and Berlin?"}],"tools":[{"type":"function","function":{"name":"get_weather","description":"Current weather for a city","parameters":{"type":"object","properties":{"city":{"type":"string","description":"City name"},"unit":{"type":"string","enum":["c","f"]}},"required":["city"]}}}],"tool_choice":"auto"}`,
}

func BenchmarkDecodeChatRequest(b *testing.B) {
	for name, body := range benchBodies {
		b.Run(name, func(b *testing.B) {
			data := []byte(body)
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, err := DecodeChatRequest(data); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

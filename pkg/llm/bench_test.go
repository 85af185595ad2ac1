package llm

import "testing"

var benchBodies = map[string]string{
	"short":      `{"model":"bench-model","messages":[{"role":"user","content":"What is the capital of France?"}],"max_tokens":64}`,
	"multi-turn": `{"model":"bench-model","messages":[{"role":"system","content":"You are a helpful assistant that answers briefly and precisely."},{"role":"user","content":"Hello! Can you help me plan a trip to Lisbon?"},{"role":"assistant","content":"Of course. How many days will you stay, and what do you enjoy?"},{"role":"user","content":"Four days; I like food, museums and walking. Give me a day-by-day plan."}],"temperature":0.7}`,
	"tools":      `{"model":"bench-model","messages":[{"role":"user","content":"What's the weather in Paris and Berlin?"}],"tools":[{"type":"function","function":{"name":"get_weather","description":"Current weather for a city","parameters":{"type":"object","properties":{"city":{"type":"string","description":"City name"},"unit":{"type":"string","enum":["c","f"]}},"required":["city"]}}}],"tool_choice":"auto"}`,
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

package providers

import "github.com/bytedance/sonic"

// decodeJSON parses upstream answers and stream events, the hottest JSON in
// the gateway. sonic (already in the build through gin) parses a chat chunk
// in 1.2 µs and 6 allocations against encoding/json's 5.2 µs and 17 on this
// machine; its strings may point into data, which is fine because data is
// the Raw the parsed value keeps anyway. It falls back to encoding/json on
// platforms without its JIT.
func decodeJSON(data []byte, v any) error {
	return sonic.Unmarshal(data, v)
}

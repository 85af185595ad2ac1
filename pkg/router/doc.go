// Package router decides which model serves a request and what it costs.
//
// It owns the model catalog: for every model its provider, upstream name,
// prices, context window, capabilities, quality tier and tokenizer, built
// from layers that override one another (the built-in table, a LiteLLM-format
// price list, the YAML config), and the cost of a response in integer
// micro-dollars. Cheapest-capable planning, route aliases, weighted load
// balancing across deployments and the circuit-breaker registry will live
// here too, in their own files.
//
// router imports only the standard library and pkg/llm; the gateway and
// cmd/server connect it to tokens, budget and providers.
package router

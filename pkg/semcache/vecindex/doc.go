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
// Every point carries a 1-bit code and two scalars from which Search derives
// a proven upper bound on its score (see bound.go); a point is only skipped
// when that bound is below both the threshold and the best exact score
// found so far, and the survivors are rescored exactly with the same dot
// product the exact scan uses, best bound first.
package vecindex

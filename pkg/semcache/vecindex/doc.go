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
// new count. A scope's first segment holds one point; until the scope has
// bounds (below) it keeps one segment, moved into one half as large again
// when full, and from then on adds segments of a quarter of its size (up
// to 4096 points), so that a gateway with one scope per conversation spends
// about a vector per point (2.6 KB at 512 dimensions) rather than a
// segment per scope, and a search of a small scope reads one run of
// vectors. Deletes and replacements set a tombstone bit; a scope is
// compacted into fresh segments once it holds more tombstones than live
// points, and the old segments are left to the garbage collector when the
// last search holding them returns. Writers find a point by id in one map;
// a heap of expiries lets a sweep cost what it removes.
//
// # Exactness
//
// Search returns exactly what an exact float32 scan ([Index.ExactSearch])
// returns: the highest dot product (cosine for unit vectors) at or above the
// threshold among the scope's live, unexpired points, ties to the lower id.
// A point is only skipped when a proven upper bound on its score (rounding
// included) is below both the threshold and the best exact score found so
// far.
//
// # Search
//
// Search scans a scope of under 2048 points exactly; one under 1024 keeps
// its points' vectors only. From 1024 points on a scope keeps a basis: its
// centre, then the top 119 principal directions of a sample of up to 2048
// of its points, learnt by a rebuild when it reaches 1024 points, each time its live count
// doubles after that, and when tombstones outnumber live points (a smaller
// scope's rebuild only compacts it). A rebuild re-encodes every point into
// fresh segments; growth rebuilds of scopes past 1024 points run in the
// background, catching up with the points added meanwhile, and hold the
// writers' mutex only to encode the last few hundred and move the points'
// locations (milliseconds). A rebuild that panics (a bug) is logged, under the
// supervisor given by [WithSupervisor], and abandoned: the scope keeps the
// basis it had, its points' locations are checked back against it, and it
// is not rebuilt again before it has doubled. A point's first 120 coordinates in that basis
// are stored quantised to int8 (per-coordinate offset and step fitted to
// the sample), with per-point scalars that bound the rest (a Cauchy–Schwarz
// tail) and every quantisation and float32 rounding error (see pca.go).
// Search goes segment by segment:
//
//   - pass 1 reads the first 32 quantised coordinates of every point, laid
//     out in blocks of 32 points, with the query's coefficients rounded to
//     int16 (their error charged once per query), so that an AVX2 kernel
//     (scan_amd64.s; portable Go elsewhere) sums them exactly in int32, two
//     coordinates an instruction, and sets a bit for each point whose bound
//     reaches the bar (the threshold, or the best score found so far);
//   - pass 2 reads the survivors' 128-byte records (all 120 coordinates and
//     the tail terms), prefetching ahead, and keeps those whose tighter
//     bound reaches the bar;
//   - those are rescored exactly, best bound first, until no remaining
//     bound reaches the best score, which then raises the bar for the
//     segments after.
//
// On USE-like embeddings (unrelated prompts at cosine 0.26, a decaying
// spectrum) at threshold 0.70 and 100k points, pass 1 keeps about 2% of the
// points, pass 2 about 0.06%, and some 60 are rescored. On vectors without
// low-rank structure the head bound cannot prune: when pass 1 keeps more
// than seven eighths of the first segment, later segments are bounded by a
// 1-bit sign code instead (bound.go), and once a segment has had more than
// half its points rescored the rest are scanned exactly.
package vecindex

//go:build !race

package vecindex

// raceEnabled is true under the race detector, which slows the 10k-point
// agreement test about tenfold; that test then runs fewer queries.
const raceEnabled = false

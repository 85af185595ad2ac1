//go:build race

package vecindex

// raceEnabled is true under the race detector, which slows the 10k-point
// agreement test and the bounded property tests about tenfold; they then
// run fewer queries.
const raceEnabled = true

package migrate

import (
	"strconv"
	"strings"
)

// Rebind writes a statement in d's placeholders: the stores write their SQL
// once, in SQLite's (? and ?N), and PostgreSQL takes $N. A ? inside a
// string literal would be rewritten too: the statements have none.
func Rebind(d Dialect, q string) string {
	if d != Postgres {
		return q
	}
	var b strings.Builder
	b.Grow(len(q) + 16)
	n := 0
	for i := 0; i < len(q); i++ {
		if q[i] != '?' {
			b.WriteByte(q[i])
			continue
		}
		j := i + 1
		for j < len(q) && q[j] >= '0' && q[j] <= '9' {
			j++
		}
		b.WriteByte('$')
		if j > i+1 {
			b.WriteString(q[i+1 : j]) // ?N names its argument
			i = j - 1
			continue
		}
		n++
		b.WriteString(strconv.Itoa(n))
	}
	return b.String()
}

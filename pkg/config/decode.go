package config

import (
	"fmt"
	"math"
	"reflect"
	"strings"

	"go.yaml.in/yaml/v3"
)

// decoder decodes a YAML node tree into a Go value strictly, by the yaml
// tags of its fields. It does not stop at the first problem: an unknown
// field (with a hint when a known one is a typo away), a value of the wrong
// shape or an unset env: variable is recorded with its path and decoding
// goes on, so one run reports them all. Unlike yaml.v3's own KnownFields,
// which stops at the first unknown field and names it by line and Go type,
// every problem names the path a user wrote, e.g. providers[0].bas_url.
//
// A value absent from the document, or null, keeps what the target held:
// the defaults. A new element of a list or map (and a pointer allocated to
// decode into) starts from its type's defaults (setDefaults), so a value
// written explicitly, 0 included, is never mistaken for an unset one.
type decoder struct {
	getenv func(string) string
	p      *problems
}

// defaulter is a type whose fresh values start from defaults other than
// the zero value.
type defaulter interface{ setDefaults() }

var (
	unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()
	defaulterType   = reflect.TypeFor[defaulter]()
	durationType    = reflect.TypeFor[Duration]()
)

func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	n = deref(n)
	if n == nil || isNull(n) {
		return
	}
	if n.Kind == yaml.ScalarNode && strings.HasPrefix(n.Value, "env:") {
		name := strings.TrimPrefix(n.Value, "env:")
		val := d.getenv(name)
		if val == "" {
			d.p.add(path, "environment variable %s is not set", name)
			return
		}
		if t := indirect(v.Type()); t.Kind() == reflect.String && !reflect.PointerTo(t).Implements(unmarshalerType) {
			// The value is text, whatever it looks like ("123: [x").
			setString(v, val)
			return
		}
		// Anything else is read as if it had been written in the file.
		n = &yaml.Node{Kind: yaml.ScalarNode, Value: val, Line: n.Line, Column: n.Column}
	}
	if v.Kind() != reflect.Pointer && n.Kind == yaml.ScalarNode {
		if u, ok := v.Addr().Interface().(yaml.Unmarshaler); ok {
			if err := u.UnmarshalYAML(n); err != nil {
				d.p.add(path, "%v", err)
			}
			return
		}
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(fresh(v.Type().Elem()).Addr())
		}
		d.decode(n, v.Elem(), path)
	case reflect.Struct:
		if !d.want(n, yaml.MappingNode, path, v.Type()) {
			return
		}
		fields := fieldsOf(v.Type())
		d.pairs(n, path, func(key, val *yaml.Node) {
			i, ok := fields.index[key.Value]
			if !ok {
				d.p.add(join(path, key.Value), "unknown field%s", hint(key.Value, fields.names))
				return
			}
			d.decode(val, v.Field(i), join(path, key.Value))
		})
	case reflect.Map:
		if !d.want(n, yaml.MappingNode, path, v.Type()) {
			return
		}
		if v.IsNil() {
			v.Set(reflect.MakeMap(v.Type()))
		}
		d.pairs(n, path, func(key, val *yaml.Node) {
			k := reflect.ValueOf(key.Value).Convert(v.Type().Key())
			elem := fresh(v.Type().Elem())
			if old := v.MapIndex(k); old.IsValid() {
				elem.Set(old)
			}
			d.decode(val, elem, join(path, key.Value))
			v.SetMapIndex(k, elem)
		})
	case reflect.Slice:
		if !d.want(n, yaml.SequenceNode, path, v.Type()) {
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			s.Index(i).Set(fresh(v.Type().Elem()))
			d.decode(item, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
		v.Set(s)
	default:
		if !d.want(n, yaml.ScalarNode, path, v.Type()) {
			return
		}
		tmp := reflect.New(v.Type())
		if err := n.Decode(tmp.Interface()); err != nil || truncated(n, v.Kind()) {
			d.p.add(path, "must be %s, got %q", describeType(v.Type()), n.Value)
			return
		}
		v.Set(tmp.Elem())
	}
}

// truncated reports whether yaml.v3 would have silently dropped the
// fraction of a number (turns: 1.5 read as 1) decoded into an integer.
func truncated(n *yaml.Node, k reflect.Kind) bool {
	if n.ShortTag() != "!!float" || k < reflect.Int || k > reflect.Uint64 {
		return false
	}
	var f float64
	return n.Decode(&f) != nil || f != math.Trunc(f)
}

// want reports whether n is of the kind the target type needs, and records
// the problem when it is not.
func (d *decoder) want(n *yaml.Node, kind yaml.Kind, path string, t reflect.Type) bool {
	if n.Kind == kind {
		return true
	}
	got := fmt.Sprintf("%q", n.Value)
	switch n.Kind {
	case yaml.MappingNode:
		got = "a mapping"
	case yaml.SequenceNode:
		got = "a list"
	}
	d.p.add(path, "must be %s, got %s", describeType(t), got)
	return false
}

// pairs calls each for every key of mapping n, explicit keys before those
// merged in with <<: (which they override). A key written twice is a
// problem: YAML gives no meaning to the second.
func (d *decoder) pairs(n *yaml.Node, path string, each func(key, val *yaml.Node)) {
	seen := map[string]bool{}
	var merged []*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, val := deref(n.Content[i]), n.Content[i+1]
		switch {
		case key.Kind != yaml.ScalarNode:
			d.p.add(path, "keys must be plain names, got a %s", describeKind(key.Kind))
		case key.ShortTag() == "!!merge":
			merged = append(merged, val)
		case seen[key.Value]:
			d.p.add(join(path, key.Value), "set twice")
		default:
			seen[key.Value] = true
			each(key, val)
		}
	}
	for _, m := range merged {
		m = deref(m)
		sources := []*yaml.Node{m}
		if m.Kind == yaml.SequenceNode {
			sources = m.Content
		}
		for _, src := range sources {
			src = deref(src)
			if src.Kind != yaml.MappingNode {
				d.p.add(path, "<< must merge a mapping, got a %s", describeKind(src.Kind))
				continue
			}
			for i := 0; i+1 < len(src.Content); i += 2 {
				if key := deref(src.Content[i]); key.Kind == yaml.ScalarNode && !seen[key.Value] {
					seen[key.Value] = true
					each(key, src.Content[i+1])
				}
			}
		}
	}
}

// fields maps a struct's yaml names to field indexes.
type fields struct {
	index map[string]int
	names []string
}

func fieldsOf(t reflect.Type) fields {
	f := fields{index: map[string]int{}}
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ",")
		if name == "" || name == "-" || !t.Field(i).IsExported() {
			continue
		}
		f.index[name] = i
		f.names = append(f.names, name)
	}
	return f
}

// fresh is a new addressable value of t holding its defaults.
func fresh(t reflect.Type) reflect.Value {
	v := reflect.New(t)
	if t.Implements(defaulterType) || reflect.PointerTo(t).Implements(defaulterType) {
		v.Interface().(defaulter).setDefaults()
	}
	return v.Elem()
}

// hint suggests the known name a misspelt field probably meant: the
// closest within two edits (one for short names), or the one that differs
// only in case and separators (baseURL, base-url for base_url).
func hint(name string, known []string) string {
	best, bestDist := "", 0
	for _, k := range known {
		dist := editDistance(name, k)
		if squash(name) == squash(k) {
			dist = 0
		}
		if dist <= min(2, max(1, len(k)/4)) && (best == "" || dist < bestDist) {
			best, bestDist = k, dist
		}
	}
	if best == "" {
		return ""
	}
	return " (did you mean " + best + "?)"
}

func squash(s string) string {
	return strings.ToLower(strings.NewReplacer("_", "", "-", "").Replace(s))
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func describeType(t reflect.Type) string {
	switch {
	case t == durationType:
		return "a duration (e.g. 30s, 5m)"
	case t == reflect.TypeFor[Latency]():
		return "a duration or {dist, p50, p99, min, max}"
	}
	switch t.Kind() {
	case reflect.Struct:
		return "a mapping of fields"
	case reflect.Map:
		return "a mapping"
	case reflect.Slice:
		return "a list"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a non-negative integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Pointer:
		return describeType(t.Elem())
	}
	return "a string"
}

func describeKind(k yaml.Kind) string {
	switch k {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	}
	return "value"
}

// deref follows aliases (*anchor) to the node they name.
func deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == 0 || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

func indirect(t reflect.Type) reflect.Type {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

// setString stores s in v, allocating the pointers on the way.
func setString(v reflect.Value, s string) {
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		v = v.Elem()
	}
	v.SetString(s)
}

func join(path, name string) string {
	if path == "" {
		return name
	}
	return path + "." + name
}

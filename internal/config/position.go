package config

import (
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2/unstable"
)

// positions maps each key of a TOML document to the line it is on, so that
// errors found after decoding (a missing directory, a duplicate name) can
// still point at a line. Keys are dotted, with "[i]" after an element of an
// array of tables: "arena[1].dir".
type positions struct {
	lines   map[string]int
	strings map[string]string // string values, to name array elements in messages
	count   map[string]int    // elements seen per array of tables
}

func indexPositions(doc []byte) *positions {
	ps := &positions{lines: map[string]int{}, strings: map[string]string{}, count: map[string]int{}}
	var p unstable.Parser
	p.Reset(doc)
	prefix := ""
	for p.NextExpression() {
		n := p.Expression()
		switch n.Kind {
		case unstable.Table:
			prefix = keyOf(n.Key())
			ps.lines[prefix] = lineOf(&p, n)
		case unstable.ArrayTable:
			k := keyOf(n.Key())
			i := ps.count[k]
			ps.count[k] = i + 1
			prefix = k + "[" + strconv.Itoa(i) + "]"
			ps.lines[prefix] = lineOf(&p, n)
		case unstable.KeyValue:
			ps.addKeyValue(&p, prefix, n)
		}
	}
	// A syntax error stops the walk; the decoder reports it with its own
	// position, so what was indexed up to there is all that is needed.
	return ps
}

func (ps *positions) addKeyValue(p *unstable.Parser, prefix string, n *unstable.Node) {
	key := join(prefix, keyOf(n.Key()))
	line := lineOf(p, n)
	ps.lines[key] = line
	v := n.Value()
	switch v.Kind {
	case unstable.String:
		ps.strings[key] = string(v.Data)
	case unstable.InlineTable:
		ps.addInline(p, key, v, line)
	case unstable.Array:
		i := 0
		for it := v.Children(); it.Next(); i++ {
			el := key + "[" + strconv.Itoa(i) + "]"
			ps.lines[el] = line
			if it.Node().Kind == unstable.InlineTable {
				ps.addInline(p, el, it.Node(), line)
			}
		}
	}
}

func (ps *positions) addInline(p *unstable.Parser, prefix string, t *unstable.Node, line int) {
	for it := t.Children(); it.Next(); {
		if kv := it.Node(); kv.Kind == unstable.KeyValue {
			ps.addKeyValue(p, prefix, kv)
		}
	}
}

// line returns the line of key, or of its closest enclosing key, or 0.
func (ps *positions) line(key string) int {
	for key != "" {
		if l, ok := ps.lines[key]; ok {
			return l
		}
		i := strings.LastIndexAny(key, ".[")
		if i < 0 {
			break
		}
		key = key[:i]
	}
	return 0
}

// element returns the index of the element of the array of tables named
// key that holds line (the last one starting at or before it), or -1.
func (ps *positions) element(key string, line int) int {
	found := -1
	for i := range ps.count[key] {
		if l, ok := ps.lines[key+"["+strconv.Itoa(i)+"]"]; ok && l <= line {
			found = i
		}
	}
	return found
}

func keyOf(it unstable.Iterator) string {
	var parts []string
	for it.Next() {
		parts = append(parts, string(it.Node().Data))
	}
	return strings.Join(parts, ".")
}

func join(prefix, key string) string {
	if prefix == "" {
		return key
	}
	return prefix + "." + key
}

func lineOf(p *unstable.Parser, n *unstable.Node) int {
	r := n.Raw
	if r.Length == 0 {
		// Some nodes carry their range only on their key parts.
		if it := n.Key(); it.Next() {
			r = it.Node().Raw
		}
	}
	if r.Length == 0 && r.Offset == 0 {
		return 0
	}
	return p.Shape(r).Start.Line
}

// peerBlock returns the lines (1-based, inclusive) of the [[peer]] table
// called name: from its header to the end of its last key-value, so that
// comments inside the table go with it while comments after it, which may
// introduce what follows, stay. ok is false when no such table exists.
func peerBlock(doc []byte, name string) (start, end int, ok bool) {
	var p unstable.Parser
	p.Reset(doc)
	inPeer, found := false, false
	for p.NextExpression() {
		n := p.Expression()
		switch n.Kind {
		case unstable.Table, unstable.ArrayTable:
			if found {
				return start, end, true
			}
			inPeer = n.Kind == unstable.ArrayTable && keyOf(n.Key()) == "peer"
			if inPeer {
				start, end = lineOf(&p, n), lineOf(&p, n)
			}
		case unstable.KeyValue:
			if !inPeer {
				continue
			}
			end = p.Shape(n.Raw).End.Line
			if v := n.Value(); keyOf(n.Key()) == "name" && v.Kind == unstable.String && string(v.Data) == name {
				found = true
			}
		}
	}
	return start, end, found && p.Error() == nil
}

package localgw

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/pay-theory/streamer/pkg/store/schema"
)

// The embedded table answers one Query shape itself: a page of a global
// secondary index by its hash key, forward, with an optional projection
// of top-level attributes and the store's filters or none (parseFilter).
// That is every listing the store sends (conn ls, a broadcast, a prune,
// the reaper). minidyn answers a Query by
// interpreting the key condition again for each item (parsing it anew)
// and copying each item whole: 40-90 ms of the gateway's CPU per 1,000
// items on this machine, the largest single cost of a 2,000-target
// broadcast after the requests themselves. Everything else, and any
// Query that is not exactly this shape, goes to minidyn unchanged.
//
// The answers come from a mirror (mirrorTable): the items of each table whose key
// schema it supports, kept in step with every write the guard serves
// (re-read from minidyn by key after a write, or dropped), and ordered
// per index hash key by (range key, table key). Whenever a write's
// effect is in doubt the mirror of that table is dropped and rebuilt from
// a Scan on the next such Query.

// mirrorTable is one table's items and indexes.
type mirrorTable struct {
	hash    string                                // the table's hash key (type S)
	items   map[string]map[string]json.RawMessage // by hash key value
	indexes map[string]*mirrorIndex
}

// mirrorIndex is one global secondary index: a hash key of type S and a
// range key of type N or S, projecting every attribute.
type mirrorIndex struct {
	hash, rng string
	numeric   bool                     // the range key is N
	parts     map[string][]mirrorEntry // by hash key value, ordered
}

// mirrorEntry places one item in an index.
type mirrorEntry struct {
	num float64 // the range key, when numeric
	str string  // the range key, when S
	pk  string  // the table's hash key value
}

func (ix *mirrorIndex) less(a, b mirrorEntry) bool {
	if ix.numeric {
		if a.num != b.num {
			return a.num < b.num
		}
	} else if a.str != b.str {
		return a.str < b.str
	}
	return a.pk < b.pk
}

// entryOf places item in ix; false when the item is not in the index
// (a sparse index leaves out items without its keys).
func (ix *mirrorIndex) entryOf(pk string, item map[string]json.RawMessage) (hash string, e mirrorEntry, ok bool) {
	hash, ok = attrS(item[ix.hash])
	if !ok {
		return "", e, false
	}
	e.pk = pk
	if ix.numeric {
		e.num, ok = attrN(item[ix.rng])
	} else {
		e.str, ok = attrS(item[ix.rng])
	}
	return hash, e, ok
}

// attrS is the string of a {"S": "..."} attribute value.
func attrS(raw json.RawMessage) (string, bool) {
	var v struct{ S *string }
	if len(raw) == 0 || json.Unmarshal(raw, &v) != nil || v.S == nil {
		return "", false
	}
	return *v.S, true
}

// attrN is the number of a {"N": "..."} attribute value; false beyond the
// integers a float64 holds exactly (the mirror then stays out of it).
func attrN(raw json.RawMessage) (float64, bool) {
	var v struct{ N *string }
	if len(raw) == 0 || json.Unmarshal(raw, &v) != nil || v.N == nil {
		return 0, false
	}
	f, err := strconv.ParseFloat(*v.N, 64)
	return f, err == nil && f > -(1<<53) && f < 1<<53
}

// at is where e sits, or would, in the ordered entries p.
func (ix *mirrorIndex) at(p []mirrorEntry, e mirrorEntry) int {
	return sort.Search(len(p), func(i int) bool { return !ix.less(p[i], e) })
}

func (t *mirrorTable) put(pk string, item map[string]json.RawMessage) {
	t.remove(pk)
	t.items[pk] = item
	for _, ix := range t.indexes {
		if hash, e, ok := ix.entryOf(pk, item); ok {
			ix.parts[hash] = slices.Insert(ix.parts[hash], ix.at(ix.parts[hash], e), e)
		}
	}
}

func (t *mirrorTable) remove(pk string) {
	old, ok := t.items[pk]
	if !ok {
		return
	}
	delete(t.items, pk)
	for _, ix := range t.indexes {
		hash, e, ok := ix.entryOf(pk, old)
		if !ok {
			continue
		}
		p := ix.parts[hash]
		if i := ix.at(p, e); i < len(p) && p[i] == e {
			p = slices.Delete(p, i, i+1)
		}
		if len(p) == 0 {
			delete(ix.parts, hash)
		} else {
			ix.parts[hash] = p
		}
	}
}

// mirror is table's mirror, built from a Scan when missing; nil when the
// table's schema is not one it supports or the Scan failed. Called with
// d.mu held.
func (d *embeddedDynamo) mirror(table string) *mirrorTable {
	if t, ok := d.mirrors[table]; ok {
		return t
	}
	t := d.newMirror(table)
	if t != nil && !d.fill(table, t) {
		t = nil
	}
	d.mirrors[table] = t // nil too: not again until the table changes
	return t
}

// fill puts every item of table into t, page by page of a Scan; false
// when a page could not be read or an item has no string hash key.
// Called with d.mu held.
func (d *embeddedDynamo) fill(table string, t *mirrorTable) bool {
	in := map[string]any{"TableName": table}
	for {
		rec := d.internalCall("Scan", in)
		var out struct {
			Items            []map[string]json.RawMessage
			LastEvaluatedKey map[string]json.RawMessage
		}
		if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &out) != nil {
			return false
		}
		for _, it := range out.Items {
			pk, ok := attrS(it[t.hash])
			if !ok {
				return false
			}
			t.put(pk, it)
		}
		if len(out.LastEvaluatedKey) == 0 {
			return true
		}
		in["ExclusiveStartKey"] = out.LastEvaluatedKey
	}
}

// newMirror is an empty mirror of table when its schema is supported: a
// hash key of type S alone, and global secondary indexes with a hash key
// of type S and a range key of type N or S, projecting everything.
// Called with d.mu held.
func (d *embeddedDynamo) newMirror(table string) *mirrorTable {
	info := d.table(table)
	if info == nil || len(info.keys) != 1 || info.locals {
		return nil
	}
	types := info.types
	if len(types) == 0 {
		// minidyn describes no attribute definitions: a table with the
		// connections table's keys has its types.
		types = connectionTypes(info)
		if types == nil {
			return nil
		}
	}
	if types[info.keys[0]] != "S" {
		return nil
	}
	t := &mirrorTable{hash: info.keys[0], items: map[string]map[string]json.RawMessage{}, indexes: map[string]*mirrorIndex{}}
	for _, g := range info.globals {
		rt := types[g.rng]
		if types[g.hash] != "S" || (rt != "N" && rt != "S") || g.projection != "ALL" {
			return nil
		}
		t.indexes[g.name] = &mirrorIndex{hash: g.hash, rng: g.rng, numeric: rt == "N", parts: map[string][]mirrorEntry{}}
	}
	return t
}

// connectionTypes is the connections table's attribute types when info has
// its key schema and indexes (schema.Connections), else nil.
func connectionTypes(info *tableInfo) map[string]string {
	sc := schema.Connections()
	want := map[string][2]string{}
	for _, ix := range sc.Indexes {
		want[ix.Name] = [2]string{ix.HashKey, ix.RangeKey}
	}
	if info.keys[0] != sc.HashKey {
		return nil
	}
	for _, g := range info.globals {
		if want[g.name] != [2]string{g.hash, g.rng} {
			return nil
		}
	}
	types := map[string]string{}
	for _, a := range sc.Attributes {
		types[a.Name] = string(a.Type)
	}
	return types
}

// afterWrite keeps the mirrors in step with a write op that minidyn has
// answered with status (its body out): the items it may have changed are
// read again by key, or the table's mirror is dropped. Called with d.mu
// held.
func (d *embeddedDynamo) afterWrite(op string, body []byte, status int, out []byte) {
	if len(d.mirrors) == 0 {
		return
	}
	type keyed struct {
		TableName string
		Key, Item map[string]json.RawMessage
	}
	switch op {
	case "CreateTable", "UpdateTable", "DeleteTable":
		clear(d.mirrors)
	case "PutItem", "UpdateItem", "DeleteItem":
		var in keyed
		if json.Unmarshal(body, &in) != nil {
			clear(d.mirrors) // the table it wrote to is unknown
			return
		}
		key := in.Key
		if op == "PutItem" {
			key = in.Item
		}
		d.reread(in.TableName, key, op == "DeleteItem" && status == http.StatusOK)
	case "BatchWriteItem":
		var in struct {
			RequestItems map[string][]struct {
				PutRequest    *struct{ Item map[string]json.RawMessage }
				DeleteRequest *struct{ Key map[string]json.RawMessage }
			}
		}
		if json.Unmarshal(body, &in) != nil {
			clear(d.mirrors)
			return
		}
		// A delete that was processed is gone; anything else (a put, an
		// unprocessed delete, any failure) is read again.
		var res struct{ UnprocessedItems map[string][]json.RawMessage }
		done := status == http.StatusOK && json.Unmarshal(out, &res) == nil
		for table, reqs := range in.RequestItems {
			gone := done && len(res.UnprocessedItems[table]) == 0
			for _, r := range reqs {
				switch {
				case r.PutRequest != nil:
					d.reread(table, r.PutRequest.Item, false)
				case r.DeleteRequest != nil:
					d.reread(table, r.DeleteRequest.Key, gone)
				}
			}
		}
	case "TransactWriteItems":
		var in struct {
			TransactItems []struct{ Put, Update, Delete, ConditionCheck *keyed }
		}
		if json.Unmarshal(body, &in) != nil {
			clear(d.mirrors)
			return
		}
		for _, ti := range in.TransactItems {
			for _, k := range []*keyed{ti.Put, ti.Update, ti.Delete} {
				if k == nil {
					continue
				}
				key := k.Key
				if k == ti.Put {
					key = k.Item
				}
				d.reread(k.TableName, key, false)
			}
		}
	}
}

// reread brings one item of table's mirror up to date: gone (known
// deleted), or read again from minidyn by its key. Called with d.mu held.
func (d *embeddedDynamo) reread(table string, item map[string]json.RawMessage, gone bool) {
	t, ok := d.mirrors[table]
	if !ok || t == nil {
		return
	}
	pk, ok := attrS(item[t.hash])
	if !ok {
		delete(d.mirrors, table) // a malformed key: minidyn said why; rebuild to be sure
		return
	}
	if gone {
		t.remove(pk)
		return
	}
	switch now, ok := d.getItem(table, map[string]json.RawMessage{t.hash: item[t.hash]}); {
	case !ok:
		delete(d.mirrors, table)
	case now == nil:
		t.remove(pk)
	default:
		t.put(pk, now)
	}
}

// indexQuery is the Query shape the mirror answers.
type indexQuery struct {
	TableName                 string
	IndexName                 string
	KeyConditionExpression    string
	FilterExpression          string
	ProjectionExpression      string
	ExpressionAttributeNames  map[string]string
	ExpressionAttributeValues map[string]json.RawMessage
	ExclusiveStartKey         map[string]json.RawMessage
	Limit                     *int
	ScanIndexForward          *bool
	ReturnConsumedCapacity    string
}

var (
	hashCondition = regexp.MustCompile(`^\s*(#[A-Za-z0-9_]+)\s*=\s*(:[A-Za-z0-9_]+)\s*$`)
	// unexpiredFilter is the store's expiry filter: a record without a
	// ttl, with ttl <= 0, or with ttl after now.
	// equalityFilter is a filter term on a string attribute: "#t = :t".
	equalityFilter  = regexp.MustCompile(`^(#[A-Za-z0-9_]+) = (:[A-Za-z0-9_]+)$`)
	unexpiredFilter = regexp.MustCompile(`^\(attribute_not_exists\((#[A-Za-z0-9_]+)\) OR (#[A-Za-z0-9_]+) <= (:[A-Za-z0-9_]+) OR (#[A-Za-z0-9_]+) > (:[A-Za-z0-9_]+)\)$`)
	projectedName   = regexp.MustCompile(`^(#[A-Za-z0-9_]+|[A-Za-z_][A-Za-z0-9_]*)$`)
)

// parseFilter reads the filters the store sends: terms joined by " AND ",
// each the expiry filter (a record without a ttl, with ttl <= 0, or with
// ttl after now) or an equality on a string attribute ("#t = :t"). keep
// says whether an item passes; the names and values are the placeholders
// the filter uses; ok is false for any other filter (minidyn's then).
func parseFilter(expr string, names map[string]string, values map[string]json.RawMessage) (keep func(map[string]json.RawMessage) bool, usedNames, usedValues []string, ok bool) {
	var terms []func(map[string]json.RawMessage) bool
	keep = func(item map[string]json.RawMessage) bool {
		for _, t := range terms {
			if !t(item) {
				return false
			}
		}
		return true
	}
	if expr == "" {
		return keep, nil, nil, true
	}
	for _, term := range strings.Split(expr, " AND ") {
		if f := unexpiredFilter.FindStringSubmatch(term); f != nil {
			if f[1] != f[2] || f[1] != f[4] || f[3] == f[5] {
				return nil, nil, nil, false
			}
			zero, ok1 := attrN(values[f[3]])
			now, ok2 := attrN(values[f[5]])
			attr, ok3 := names[f[1]]
			if !ok1 || !ok2 || !ok3 {
				return nil, nil, nil, false
			}
			usedNames, usedValues = append(usedNames, f[1]), append(usedValues, f[3], f[5])
			terms = append(terms, func(item map[string]json.RawMessage) bool {
				raw, ok := item[attr]
				if !ok {
					return true
				}
				ttl, ok := attrN(raw)
				return ok && (ttl <= zero || ttl > now) // a ttl of another type never passes here
			})
			continue
		}
		e := equalityFilter.FindStringSubmatch(term)
		if e == nil {
			return nil, nil, nil, false
		}
		attr, ok1 := names[e[1]]
		want, ok2 := attrS(values[e[2]])
		if !ok1 || !ok2 {
			return nil, nil, nil, false
		}
		usedNames, usedValues = append(usedNames, e[1]), append(usedValues, e[2])
		terms = append(terms, func(item map[string]json.RawMessage) bool {
			got, ok := attrS(item[attr])
			return ok && got == want
		})
	}
	return keep, usedNames, usedValues, true
}

// tryQueryIndex is queryIndex, where a panic (a bug of the mirror) drops
// every mirror and leaves the request to minidyn. Called with d.mu held.
func (d *embeddedDynamo) tryQueryIndex(body []byte) (b []byte, ok bool) {
	defer func() {
		if p := recover(); p != nil {
			d.logger.Error("localgw: the embedded DynamoDB's index listing panicked; minidyn answers", "panic", fmt.Sprint(p))
			clear(d.mirrors)
			b, ok = nil, false
		}
	}()
	return d.queryIndex(body)
}

// queryIndex answers body from the mirror: the answer's JSON, or false
// when the request is not the shape it serves (minidyn answers it then,
// errors included). Called with d.mu held.
func (d *embeddedDynamo) queryIndex(body []byte) ([]byte, bool) {
	var q indexQuery
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields() // a filter, Select, ConsistentRead...: minidyn's
	if dec.Decode(&q) != nil || q.IndexName == "" || (q.ScanIndexForward != nil && !*q.ScanIndexForward) ||
		(q.Limit != nil && *q.Limit < 1) || (q.ReturnConsumedCapacity != "" && q.ReturnConsumedCapacity != "NONE") {
		return nil, false
	}
	m := hashCondition.FindStringSubmatch(q.KeyConditionExpression)
	if m == nil {
		return nil, false
	}
	keep, filterNames, filterValues, ok := parseFilter(q.FilterExpression, q.ExpressionAttributeNames, q.ExpressionAttributeValues)
	if !ok {
		return nil, false
	}
	// Every value placeholder must be used, as DynamoDB requires.
	usedValues := map[string]bool{m[2]: true}
	for _, v := range filterValues {
		usedValues[v] = true
	}
	// (Each used one is read below or in parseFilter, so the counts
	// matching means no other is there.)
	if len(q.ExpressionAttributeValues) != len(usedValues) {
		return nil, false
	}
	t := d.mirror(q.TableName)
	if t == nil {
		return nil, false
	}
	ix := t.indexes[q.IndexName]
	if ix == nil || q.ExpressionAttributeNames[m[1]] != ix.hash {
		return nil, false
	}
	hash, ok := attrS(q.ExpressionAttributeValues[m[2]])
	if !ok {
		return nil, false
	}
	// Every name placeholder must be used, as DynamoDB requires.
	used := map[string]bool{m[1]: true}
	for _, n := range filterNames {
		used[n] = true
	}
	var proj []string
	if q.ProjectionExpression != "" {
		for _, p := range strings.Split(q.ProjectionExpression, ",") {
			p = strings.TrimSpace(p)
			if !projectedName.MatchString(p) {
				return nil, false
			}
			if p[0] == '#' {
				name, ok := q.ExpressionAttributeNames[p]
				if !ok {
					return nil, false
				}
				used[p] = true
				p = name
			}
			proj = append(proj, p)
		}
	}
	if len(used) != len(q.ExpressionAttributeNames) {
		return nil, false
	}
	part := ix.parts[hash]
	i := 0
	if q.ExclusiveStartKey != nil {
		if len(q.ExclusiveStartKey) != 3 {
			return nil, false
		}
		pk, ok1 := attrS(q.ExclusiveStartKey[t.hash])
		h, ok2 := attrS(q.ExclusiveStartKey[ix.hash])
		if !ok1 || !ok2 || h != hash {
			return nil, false
		}
		start := map[string]json.RawMessage{ix.hash: q.ExclusiveStartKey[ix.hash], ix.rng: q.ExclusiveStartKey[ix.rng]}
		_, e, ok := ix.entryOf(pk, start)
		if !ok {
			return nil, false
		}
		// After the start key, whether its item still exists or not.
		i = sort.Search(len(part), func(i int) bool { return ix.less(e, part[i]) })
	}
	// Limit counts the items read; the filter then drops some of them
	// (Count) but not their place: LastEvaluatedKey is the last one read.
	n := len(part) - i
	if q.Limit != nil && *q.Limit < n {
		n = *q.Limit
	}
	type answer struct {
		Count            int
		Items            []map[string]json.RawMessage
		LastEvaluatedKey map[string]json.RawMessage `json:",omitempty"`
		ScannedCount     int
	}
	a := answer{ScannedCount: n, Items: make([]map[string]json.RawMessage, 0, n)}
	for _, e := range part[i : i+n] {
		item := t.items[e.pk]
		if !keep(item) {
			continue
		}
		if proj != nil {
			p := make(map[string]json.RawMessage, len(proj))
			for _, name := range proj {
				if v, ok := item[name]; ok {
					p[name] = v
				}
			}
			item = p
		}
		a.Items = append(a.Items, item)
	}
	a.Count = len(a.Items)
	if q.Limit != nil && n == *q.Limit && n > 0 {
		last := t.items[part[i+n-1].pk]
		a.LastEvaluatedKey = map[string]json.RawMessage{t.hash: last[t.hash], ix.hash: last[ix.hash], ix.rng: last[ix.rng]}
	}
	b, err := json.Marshal(a)
	return b, err == nil
}

package budget

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"sync"
	"time"

	"github.com/tollgate/tollgate/pkg/llm"
)

// The journal is the durable point of a settle when Options.JournalPath is
// set: the writer appends each batch as one record with one write(2) to a
// file opened O_APPEND, and an applier moves journaled batches into SQLite
// in large transactions. An SQLite transaction per batch cost ~15% of the
// gateway's CPU at 4,000 req/s (a commit finished before the next request
// arrived, so batches held one row); an append costs one syscall.
//
// A record is
//
//	uint32 length of payload (little endian)
//	uint32 CRC-32C of payload
//	payload: uvarint #entries, entries, uvarint #alerts, alerts
//
// One record per batch, not per row: a row and the threshold alerts it
// crossed are all or nothing, as they were in one SQLite transaction.
//
// Exactly once: budget_journal holds the journal offset applied, updated
// in the same transaction as the rows it covers. When everything up to the
// file's end is applied, the file is truncated to 0 and then the offset
// reset, with the writer held off in between; a crash between the two
// leaves offset > size, which means "nothing to replay".

// crcTable is Castagnoli's polynomial: hardware-accelerated on amd64 and
// arm64.
var crcTable = crc32.MakeTable(crc32.Castagnoli)

const (
	recordHeader = 8
	// maxRecord bounds a record's length so that a corrupt length is
	// recognised as such rather than read as a huge allocation. A batch
	// is at most a few thousand rows.
	maxRecord = 256 << 20
)

// journal is the append-only file and what has been written to it but not
// yet applied to SQLite.
type journal struct {
	s *Store
	f *os.File // O_APPEND: the single writer goroutine appends, the applier truncates

	// mu guards the fields below. The writer holds it across its write so
	// that the applier's truncate can never cut a record written after it
	// looked at size.
	mu      sync.Mutex
	size    int64 // bytes in the file, all of them whole records
	pending pendingRows
	// stale: the file was truncated but resetting the stored offset
	// failed; nothing may be appended until it succeeds (an append could
	// otherwise hide below the stale offset at the next Open).
	stale bool
	// broken: a short write could not be cut off, so a later record
	// would sit behind a torn one, where replay never reaches. Every
	// later append fails rather than acknowledge what would be lost.
	broken error
	buf    []byte // encoding buffer, reused by the writer (under mu)

	applyMu sync.Mutex  // one apply at a time
	carry   pendingRows // taken by an apply that failed: first in line for the next (under applyMu)
	applied int64       // the offset stored in budget_journal (under applyMu)

	kick chan struct{} // capacity 1: pending reached ApplyRows
	loop *worker
}

// pendingRows is journaled and not yet in SQLite; end is the journal
// offset just after the last batch in it.
type pendingRows struct {
	entries []*Entry
	alerts  []alertRow
	end     int64
	seq     uint64 // the writer's last batch in it (lag.go)
}

func (p *pendingRows) empty() bool { return len(p.entries) == 0 && len(p.alerts) == 0 }

func (p *pendingRows) add(q pendingRows) {
	p.entries = append(p.entries, q.entries...)
	p.alerts = append(p.alerts, q.alerts...)
	p.end = max(p.end, q.end)
	p.seq = max(p.seq, q.seq)
}

// openJournal opens (creating) the journal and replays into SQLite what it
// holds beyond the stored offset. Call before the spend is rebuilt.
func openJournal(ctx context.Context, s *Store, path string) (*journal, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("budget: journal: %w", err)
	}
	j := &journal{s: s, f: f, kick: make(chan struct{}, 1), loop: newWorker(s.sup, "budget journal mover")}
	if err := j.replay(ctx); err != nil {
		f.Close()
		return nil, err
	}
	return j, nil
}

func (j *journal) storedOffset(ctx context.Context) (int64, error) {
	var off int64
	err := j.s.db.QueryRowContext(ctx, `SELECT applied FROM budget_journal WHERE id = 1`).Scan(&off)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("budget: journal offset: %w", err)
	}
	return off, nil
}

const setOffset = `INSERT INTO budget_journal (id, applied) VALUES (1, ?) ON CONFLICT (id) DO UPDATE SET applied = excluded.applied`

// replay applies the records after the stored offset, in transactions of
// about ApplyRows rows that each store the offset they reach, drops a torn
// or corrupt tail (a write cut by a crash or power loss: its Settles never
// returned), and empties the file.
func (j *journal) replay(ctx context.Context) error {
	fi, err := j.f.Stat()
	if err != nil {
		return fmt.Errorf("budget: journal: %w", err)
	}
	size := fi.Size()
	off, err := j.storedOffset(ctx)
	if err != nil {
		return err
	}
	if off > size {
		// Truncated, then the process died before the offset was reset:
		// everything in the file had been applied.
		off = size
	}
	r := bufio.NewReaderSize(io.NewSectionReader(j.f, off, size-off), 1<<20)
	var p pendingRows
	replayed := 0
	pos := off
	for {
		payload, err := readRecord(r, size-pos)
		if err == io.EOF {
			break
		}
		if err == nil {
			var q pendingRows
			if q, err = decodeBatch(payload); err == nil {
				pos += recordHeader + int64(len(payload))
				q.end = pos
				p.add(q)
			}
		}
		if err != nil {
			j.s.log.Warn("budget: journal: dropping a torn or corrupt tail", "offset", pos, "bytes", size-pos, "err", err)
			break
		}
		if len(p.entries)+len(p.alerts) >= j.s.applyRows {
			if err := j.insert(ctx, &p); err != nil {
				return err
			}
			replayed += len(p.entries)
			p = pendingRows{}
		}
	}
	if !p.empty() {
		if err := j.insert(ctx, &p); err != nil {
			return err
		}
		replayed += len(p.entries)
	}
	if replayed > 0 {
		j.s.log.Info("budget: journal replayed", "rows", replayed, "bytes", pos-off)
	}
	// Everything valid is applied: the file can go.
	return j.truncate(ctx)
}

// readRecord reads one record's payload; io.EOF at a clean end, another
// error for a torn or corrupt record. left is the bytes left in the file.
func readRecord(r *bufio.Reader, left int64) ([]byte, error) {
	if left == 0 {
		return nil, io.EOF
	}
	if left < recordHeader {
		return nil, errors.New("short header")
	}
	var h [recordHeader]byte
	if _, err := io.ReadFull(r, h[:]); err != nil {
		return nil, err
	}
	n := int64(binary.LittleEndian.Uint32(h[0:]))
	if n > maxRecord || n > left-recordHeader {
		return nil, fmt.Errorf("record length %d beyond the file's end", n)
	}
	payload := make([]byte, n)
	if _, err := io.ReadFull(r, payload); err != nil {
		return nil, err
	}
	if crc32.Checksum(payload, crcTable) != binary.LittleEndian.Uint32(h[4:]) {
		return nil, errors.New("checksum mismatch")
	}
	return payload, nil
}

// append writes the batch as one record with one write and hands its rows
// to the applier. When it returns nil the record is in the kernel's page
// cache: it survives kill -9, not a power loss.
func (j *journal) append(b *batch) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.broken != nil {
		return j.broken
	}
	if j.stale {
		if err := j.resetOffset(context.Background()); err != nil {
			return err
		}
	}
	j.buf = appendBatch(j.buf[:0], b)
	n, err := j.f.Write(j.buf)
	if err == nil {
		b.written = true // a retry after a panic must not append it again
	}
	if err != nil {
		// A short write would leave a torn record that the next
		// records would follow, and replay stops at the first torn
		// record: cut it off.
		if n > 0 {
			if terr := j.f.Truncate(j.size); terr != nil {
				j.broken = fmt.Errorf("budget: journal: cannot cut a short write: %w", terr)
			}
		}
		return fmt.Errorf("budget: journal: %w", err)
	}
	j.size += int64(n)
	j.pending.add(pendingRows{entries: b.entries, alerts: b.alerts, end: j.size, seq: b.seq})
	if len(j.pending.entries)+len(j.pending.alerts) >= j.s.applyRows {
		select {
		case j.kick <- struct{}{}:
		default:
		}
	}
	if cap(j.buf) > 1<<20 {
		j.buf = nil // do not pin the memory of a rare huge batch
	}
	return nil
}

func (j *journal) start() { j.loop.start(j.run) }

// run applies every ApplyInterval, or sooner when ApplyRows are pending.
// After a panic the supervisor runs it again; what the panicked apply had
// taken is first in line (carry).
func (j *journal) run(stop <-chan struct{}) {
	t := time.NewTicker(j.s.applyInterval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
		case <-j.kick:
		}
		if err := j.apply(context.Background()); err != nil {
			j.s.log.Error("budget: journal apply failed; retrying", "err", err)
		}
	}
}

// apply moves everything journaled so far into SQLite, in one transaction
// that also stores the offset reached, and empties the file once nothing
// is left to apply. Readers call it so that they see every settled row.
func (j *journal) apply(ctx context.Context) error {
	j.applyMu.Lock()
	defer j.applyMu.Unlock()
	j.mu.Lock()
	p := j.pending
	j.pending = pendingRows{}
	j.mu.Unlock()
	// What is taken stays in carry until it is in SQLite, so that neither
	// an error nor a panic loses it: the next apply starts with it.
	if j.carry.empty() {
		j.carry = p
	} else {
		j.carry.add(p)
	}
	if !j.carry.empty() {
		if h := j.s.hooks.apply; h != nil {
			h()
		}
		if err := j.insert(ctx, &j.carry); err != nil {
			return err
		}
		p, j.carry = j.carry, pendingRows{}
		j.applied = p.end
		j.s.lag.reached(p.seq, len(p.entries))
		if len(p.alerts) > 0 {
			j.s.onAlerts()
		}
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.size > 0 && j.pending.empty() && j.applied == j.size {
		return j.truncate(ctx)
	}
	return nil
}

// insert writes p's rows and alerts and the offset p.end in one
// transaction.
func (j *journal) insert(ctx context.Context, p *pendingRows) error {
	tx, err := j.s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("budget: journal apply: %w", err)
	}
	defer tx.Rollback()
	if err := insertRows(ctx, tx, j.s.insert, p.entries, p.alerts); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, setOffset, p.end); err != nil {
		return fmt.Errorf("budget: journal apply: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("budget: journal apply: %w", err)
	}
	return nil
}

// truncate empties the applied file, then resets the stored offset. The
// order matters: a crash in between leaves offset > size (nothing to
// replay); the other order would replay applied records. Called with mu
// held (or before the writer starts), so no record lands in between.
func (j *journal) truncate(ctx context.Context) error {
	if err := j.f.Truncate(0); err != nil {
		return fmt.Errorf("budget: journal: %w", err)
	}
	j.size, j.applied = 0, 0
	return j.resetOffset(ctx)
}

func (j *journal) resetOffset(ctx context.Context) error {
	if _, err := j.s.db.ExecContext(ctx, setOffset, 0); err != nil {
		j.stale = true
		return fmt.Errorf("budget: journal offset: %w", err)
	}
	j.stale = false
	return nil
}

// close stops the applier, applies what is left and closes the file. The
// writer must have stopped.
func (j *journal) close() error {
	j.loop.halt()
	err := j.apply(context.Background())
	if cerr := j.f.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("budget: journal: %w", cerr)
	}
	return err
}

// appendBatch encodes b as one record: varints and length-prefixed
// strings, about 100 bytes per row, no allocation beyond buf's growth.
func appendBatch(buf []byte, b *batch) []byte {
	start := len(buf)
	buf = append(buf, make([]byte, recordHeader)...)
	buf = binary.AppendUvarint(buf, uint64(len(b.entries)))
	for _, e := range b.entries {
		buf = binary.AppendVarint(buf, e.Time.UnixMilli())
		buf = appendString(buf, e.RequestID)
		buf = appendString(buf, e.KeyID)
		buf = appendString(buf, e.Route)
		buf = appendString(buf, e.RequestedModel)
		buf = appendString(buf, e.Model)
		buf = appendString(buf, e.Provider)
		buf = binary.AppendVarint(buf, int64(e.PromptTokens))
		buf = binary.AppendVarint(buf, int64(e.CompletionTokens))
		buf = binary.AppendVarint(buf, int64(e.CachedTokens))
		buf = binary.AppendVarint(buf, int64(e.Cost))
		buf = binary.AppendVarint(buf, int64(e.Saved))
		var flags byte
		if e.Estimated {
			flags |= 1
		}
		if e.Unpriced {
			flags |= 2
		}
		judged := e.Judge != "" || e.JudgeCost != 0
		if judged {
			flags |= 4 // the judge's verdict and cost follow the row (records written before the judge have neither)
		}
		whose := e.Customer != "" || len(e.Tags) > 0
		if whose {
			flags |= 8 // the customer and the tags follow the row, after the judge's
		}
		if len(e.Guards) > 0 {
			flags |= 16 // the guards that fired follow the row, after the customer's
		}
		buf = append(buf, flags)
		buf = appendString(buf, e.Cache)
		buf = binary.AppendVarint(buf, int64(e.Status))
		buf = binary.AppendVarint(buf, e.Latency.Milliseconds())
		buf = binary.AppendVarint(buf, int64(e.Attempts))
		if judged {
			buf = appendString(buf, e.Judge)
			buf = binary.AppendVarint(buf, int64(e.JudgeCost))
		}
		if whose {
			buf = appendString(buf, e.Customer)
			buf = binary.AppendUvarint(buf, uint64(len(e.Tags)))
			for name, v := range e.Tags {
				buf = appendString(appendString(buf, name), v)
			}
		}
		if len(e.Guards) > 0 {
			buf = binary.AppendUvarint(buf, uint64(len(e.Guards)))
			for name, n := range e.Guards {
				buf = binary.AppendVarint(appendString(buf, name), int64(n))
			}
		}
	}
	buf = binary.AppendUvarint(buf, uint64(len(b.alerts)))
	for i := range b.alerts {
		a := &b.alerts[i]
		buf = appendString(buf, a.uid)
		buf = appendString(buf, a.keyID)
		buf = appendString(buf, string(a.key.period))
		buf = binary.AppendVarint(buf, a.key.start)
		buf = appendString(buf, a.key.event)
		buf = binary.AppendVarint(buf, a.key.ppm)
		buf = binary.AppendVarint(buf, int64(a.key.limit))
		buf = binary.AppendVarint(buf, a.created)
		buf = appendBytes(buf, a.payload)
		buf = binary.AppendUvarint(buf, uint64(len(a.deliveries)))
		for _, d := range a.deliveries {
			buf = appendString(buf, d.url)
			if d.slack {
				buf = append(buf, 1)
			} else {
				buf = append(buf, 0)
			}
			buf = appendBytes(buf, d.body)
		}
	}
	payload := buf[start+recordHeader:]
	binary.LittleEndian.PutUint32(buf[start:], uint32(len(payload)))
	binary.LittleEndian.PutUint32(buf[start+4:], crc32.Checksum(payload, crcTable))
	return buf
}

func appendString(buf []byte, s string) []byte {
	return append(binary.AppendUvarint(buf, uint64(len(s))), s...)
}

func appendBytes(buf []byte, b []byte) []byte {
	return append(binary.AppendUvarint(buf, uint64(len(b))), b...)
}

// errCorrupt: a record whose checksum matched but whose payload does not
// decode (a bug or a format change, not a torn write).
var errCorrupt = errors.New("budget: journal: undecodable record")

// decoder reads a payload; the first error sticks.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err, d.b = errCorrupt, nil
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.err, d.b = errCorrupt, nil
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) byte() byte {
	if len(d.b) == 0 {
		d.err = errCorrupt
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if n > uint64(len(d.b)) {
		d.err, d.b = errCorrupt, nil
		return nil
	}
	s := d.b[:n:n]
	d.b = d.b[n:]
	return s
}

func (d *decoder) string() string { return string(d.bytes()) }

func decodeBatch(payload []byte) (pendingRows, error) {
	d := &decoder{b: payload}
	var p pendingRows
	n := d.uvarint()
	if n > uint64(len(payload)) {
		return p, errCorrupt
	}
	for range n {
		e := &Entry{Time: time.UnixMilli(d.varint())}
		e.RequestID, e.KeyID, e.Route = d.string(), d.string(), d.string()
		e.RequestedModel, e.Model, e.Provider = d.string(), d.string(), d.string()
		e.PromptTokens, e.CompletionTokens, e.CachedTokens = int(d.varint()), int(d.varint()), int(d.varint())
		e.Cost, e.Saved = llm.Micros(d.varint()), llm.Micros(d.varint())
		flags := d.byte()
		e.Estimated, e.Unpriced = flags&1 != 0, flags&2 != 0
		e.Cache = d.string()
		e.Status = int(d.varint())
		e.Latency = time.Duration(d.varint()) * time.Millisecond
		e.Attempts = int(d.varint())
		if flags&4 != 0 {
			e.Judge, e.JudgeCost = d.string(), llm.Micros(d.varint())
		}
		if flags&8 != 0 {
			e.Customer = d.string()
			nt := d.uvarint()
			if nt > uint64(len(payload)) {
				return p, errCorrupt
			}
			if nt > 0 {
				e.Tags = make(map[string]string, nt)
			}
			for range nt {
				name := d.string()
				e.Tags[name] = d.string()
			}
		}
		if flags&16 != 0 {
			ng := d.uvarint()
			if ng == 0 || ng > uint64(len(payload)) {
				return p, errCorrupt
			}
			e.Guards = make(map[string]int, ng)
			for range ng {
				name := d.string()
				e.Guards[name] = int(d.varint())
			}
		}
		p.entries = append(p.entries, e)
	}
	n = d.uvarint()
	if n > uint64(len(payload)) {
		return p, errCorrupt
	}
	for range n {
		a := alertRow{uid: d.string(), keyID: d.string()}
		a.key.period = Period(d.string())
		a.key.start = d.varint()
		a.key.event = d.string()
		a.key.ppm = d.varint()
		a.key.limit = llm.Micros(d.varint())
		a.created = d.varint()
		a.payload = d.bytes()
		nd := d.uvarint()
		if nd > uint64(len(payload)) {
			return p, errCorrupt
		}
		for range nd {
			a.deliveries = append(a.deliveries, delivery{url: d.string(), slack: d.byte() != 0, body: d.bytes()})
		}
		p.alerts = append(p.alerts, a)
	}
	if d.err == nil && len(d.b) != 0 {
		d.err = errCorrupt
	}
	return p, d.err
}

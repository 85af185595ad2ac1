package providers

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

// DefaultMaxEventBytes bounds one SSE line and one event's data when the
// config does not.
const DefaultMaxEventBytes = 1 << 20

// errEventTooLarge is a line or an event's data longer than the bound.
var errEventTooLarge = errors.New("stream event too large")

// sseReader splits a text/event-stream into events. It follows the SSE
// spec's field rules (optional space after the colon, multi-line data
// joined with \n, comments, CRLF) and reuses its buffers, so reading an
// event allocates nothing. A line or an event's data longer than max is
// errEventTooLarge, found without ever holding more than max bytes of it:
// an upstream cannot make the gateway buffer an endless line.
type sseReader struct {
	br      *bufio.Reader
	max     int    // bound on a line and on an event's data
	data    []byte // the current event's data, reused
	line    []byte // a line longer than the bufio buffer, reused
	event   []byte // the current event's type, reused
	hasData bool
}

// newSSEReader reads events of at most max bytes (DefaultMaxEventBytes
// when max <= 0) from r.
func newSSEReader(r io.Reader, max int) *sseReader {
	if max <= 0 {
		max = DefaultMaxEventBytes
	}
	return &sseReader{br: bufio.NewReaderSize(r, 16<<10), max: max}
}

// next returns the next event's data and type. Both are valid until the
// next call. At the end of input an event that lacks its closing blank line
// is still delivered (some upstreams end with "data: [DONE]" and no blank
// line), then io.EOF.
func (r *sseReader) next() (data, event []byte, err error) {
	r.data, r.event, r.hasData = r.data[:0], r.event[:0], false
	for {
		line, err := r.readLine()
		if err != nil {
			if errors.Is(err, io.EOF) && r.hasData {
				return r.data, r.event, nil
			}
			return nil, nil, err
		}
		if len(line) == 0 {
			if r.hasData {
				return r.data, r.event, nil
			}
			r.event = r.event[:0] // an event with no data is dropped
			continue
		}
		if line[0] == ':' {
			continue // comment / keep-alive
		}
		field, value := line, []byte(nil)
		if i := bytes.IndexByte(line, ':'); i >= 0 {
			field, value = line[:i], line[i+1:]
			if len(value) > 0 && value[0] == ' ' {
				value = value[1:]
			}
		}
		switch string(field) {
		case "data":
			sep := 0
			if r.hasData {
				sep = 1
			}
			if len(r.data)+sep+len(value) > r.max {
				return nil, nil, errEventTooLarge
			}
			if r.hasData {
				r.data = append(r.data, '\n')
			}
			r.data = appendCapped(r.data, value, r.max)
			r.hasData = true
		case "event":
			r.event = append(r.event[:0], value...)
		}
	}
}

// readLine returns one line without its line ending. A final line without
// a newline is returned with a nil error; io.EOF comes on the next call.
// A line longer than max (its ending aside) is errEventTooLarge as soon as
// the bound is passed, before more of it is read.
func (r *sseReader) readLine() ([]byte, error) {
	line, err := r.br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		r.line = r.line[:0]
		for {
			if len(r.line)+len(line) > r.max+len("\r\n") {
				return nil, errEventTooLarge
			}
			r.line = appendCapped(r.line, line, r.max+len("\r\n"))
			if !errors.Is(err, bufio.ErrBufferFull) {
				break
			}
			line, err = r.br.ReadSlice('\n')
		}
		line = r.line
	}
	if len(line) > r.max+len("\r\n") {
		return nil, errEventTooLarge // whatever ended the read, the line was already too long
	}
	if err != nil && (!errors.Is(err, io.EOF) || len(line) == 0) {
		return nil, err
	}
	if n := len(line); n > 0 && line[n-1] == '\n' {
		line = line[:n-1]
	}
	if n := len(line); n > 0 && line[n-1] == '\r' {
		line = line[:n-1]
	}
	if len(line) > r.max {
		return nil, errEventTooLarge
	}
	return line, nil
}

// appendCapped appends src to dst (len(dst)+len(src) <= limit), growing
// dst's capacity as append would but never past limit, so a bound on the
// length is a bound on the memory too.
func appendCapped(dst, src []byte, limit int) []byte {
	if n := len(dst) + len(src); n > cap(dst) {
		grown := make([]byte, len(dst), max(n, min(2*cap(dst), limit)))
		copy(grown, dst)
		dst = grown
	}
	return append(dst, src...)
}

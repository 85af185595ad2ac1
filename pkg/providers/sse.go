package providers

import (
	"bufio"
	"bytes"
	"errors"
	"io"
)

// sseReader splits a text/event-stream into events. It follows the SSE
// spec's field rules (optional space after the colon, multi-line data
// joined with \n, comments, CRLF) and reuses its buffers, so reading an
// event allocates nothing.
type sseReader struct {
	br      *bufio.Reader
	data    []byte // the current event's data, reused
	line    []byte // a line longer than the bufio buffer, reused
	event   []byte // the current event's type, reused
	hasData bool
}

func newSSEReader(r io.Reader) *sseReader {
	return &sseReader{br: bufio.NewReaderSize(r, 16<<10)}
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
			if r.hasData {
				r.data = append(r.data, '\n')
			}
			r.data = append(r.data, value...)
			r.hasData = true
		case "event":
			r.event = append(r.event[:0], value...)
		}
	}
}

// readLine returns one line without its line ending. A final line without
// a newline is returned with a nil error; io.EOF comes on the next call.
func (r *sseReader) readLine() ([]byte, error) {
	line, err := r.br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		r.line = append(r.line[:0], line...)
		for errors.Is(err, bufio.ErrBufferFull) {
			line, err = r.br.ReadSlice('\n')
			r.line = append(r.line, line...)
		}
		line = r.line
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
	return line, nil
}

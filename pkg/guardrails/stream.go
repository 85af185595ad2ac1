package guardrails

import "strings"

// StreamMasker masks text that arrives in pieces (a streamed answer) so that
// the concatenated output equals Mask of the concatenated input. It holds back
// the last Set.Hold() bytes — a match starting before that point is entirely
// in hand — and, while a PEM block or JWT is open, everything from its start.
// It keeps Hold() bytes already written as left context, so memory stays
// bounded whatever the length of the stream.
type StreamMasker struct {
	m       *Masker
	buf     string // left context + pending text
	emitted int    // buf[:emitted] has been written already
	spans   []Span
}

// Stream starts masking a stream with this masker's placeholders.
func (m *Masker) Stream() *StreamMasker { return &StreamMasker{m: m} }

// Write feeds the next piece and returns the masked text now safe to emit
// (possibly empty).
func (s *StreamMasker) Write(delta string) (string, error) {
	if err := s.m.charge(len(delta)); err != nil {
		return "", err
	}
	s.buf += delta
	return s.emit(false), nil
}

// Flush returns whatever is still held back, masked; call it once at the end.
func (s *StreamMasker) Flush() string {
	out := s.emit(true)
	s.buf, s.emitted = "", 0
	return out
}

func (s *StreamMasker) emit(final bool) string {
	set := s.m.set
	cut := len(s.buf)
	if !final {
		cut -= set.hold
		for _, d := range set.dets {
			if p, ok := d.(pending); ok {
				if at := p.Pending(s.buf); at >= 0 && at < cut {
					cut = at
				}
			}
		}
		if cut <= s.emitted {
			return ""
		}
	}
	s.spans = s.spans[:0]
	for _, d := range set.dets {
		s.spans = d.Find(s.spans, s.buf)
	}
	// drop what lies in the context already written: those matches were
	// decided earlier (and a run cut off at buf[0] must not suppress others)
	kept := s.spans[:0]
	for _, sp := range s.spans {
		if sp.Start >= s.emitted {
			kept = append(kept, sp)
		}
	}
	spans := resolve(kept, set.order)
	// matches starting before the cut are complete; the cut moves past them
	end := cut
	n := 0
	for _, sp := range spans {
		if sp.Start >= cut {
			break
		}
		end = max(end, sp.End)
		n++
	}
	var b strings.Builder
	s.m.write(&b, s.buf, spans[:n], s.emitted, end)
	s.emitted = end
	if keep := set.hold; s.emitted > keep+keep/4 {
		// keep the context, drop the rest: each Write then scans about
		// 2×Hold bytes (context + held back) plus the new piece
		drop := s.emitted - keep
		s.buf = strings.Clone(s.buf[drop:])
		s.emitted -= drop
	}
	return b.String()
}

// StreamUnmasker restores placeholders in a streamed answer, holding back only
// a trailing '[' that may begin a placeholder split across pieces.
type StreamUnmasker struct {
	m   *Masker
	buf string
}

// Unmasker starts restoring a stream with this masker's placeholders.
func (m *Masker) Unmasker() *StreamUnmasker { return &StreamUnmasker{m: m} }

// Write feeds the next piece and returns the text now safe to emit.
func (u *StreamUnmasker) Write(delta string) string {
	if len(u.m.st.values) == 0 && u.buf == "" {
		return delta
	}
	u.buf += delta
	var b strings.Builder
	at, _ := u.m.unmask(&b, u.buf, false)
	u.buf = u.buf[at:]
	return b.String()
}

// Flush returns whatever is still held back.
func (u *StreamUnmasker) Flush() string {
	out := u.m.Unmask(u.buf)
	u.buf = ""
	return out
}

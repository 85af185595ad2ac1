package providers

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"

	"github.com/tollgate/tollgate/pkg/llm"
)

// SimHandler serves s over OpenAI's HTTP wire format, so the sim can stand
// in for a real upstream behind the OpenAI client (tests, demos, load
// tests): POST /v1/chat/completions (JSON and SSE), POST /v1/embeddings,
// and Azure's /openai/deployments/{deployment}/... shape. Errors use
// OpenAI's envelope with Retry-After and retry-after-ms; a stream_cut fault
// aborts the connection midway, as a crashed upstream would.
func SimHandler(s *Sim) http.Handler {
	mux := http.NewServeMux()
	chat := func(w http.ResponseWriter, r *http.Request) { serveSimChat(s, w, r, r.PathValue("deployment")) }
	embed := func(w http.ResponseWriter, r *http.Request) { serveSimEmbed(s, w, r, r.PathValue("deployment")) }
	mux.HandleFunc("POST /v1/chat/completions", chat)
	mux.HandleFunc("POST /v1/embeddings", embed)
	mux.HandleFunc("POST /openai/deployments/{deployment}/chat/completions", chat)
	mux.HandleFunc("POST /openai/deployments/{deployment}/embeddings", embed)
	return mux
}

const simMaxBody = 32 << 20

func serveSimChat(s *Sim, w http.ResponseWriter, r *http.Request, deployment string) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, simMaxBody))
	if err != nil {
		writeSimError(w, llm.Errorf(http.StatusRequestEntityTooLarge, llm.TypeInvalidRequest, "", "request body too large"))
		return
	}
	chat, err := llm.DecodeChatRequest(body)
	if err != nil {
		writeSimError(w, err)
		return
	}
	req := &Request{Chat: chat, Model: chat.Model}
	if deployment != "" {
		req.Model = deployment
	}
	if !chat.Stream {
		resp, err := s.Chat(r.Context(), req)
		if err != nil {
			writeSimError(w, err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Content-Length", strconv.Itoa(len(resp.Raw)))
		w.Write(resp.Raw)
		return
	}
	st, err := s.Stream(r.Context(), req)
	if err != nil {
		writeSimError(w, err)
		return
	}
	defer st.Close()
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	flusher, _ := w.(http.Flusher)
	buf := make([]byte, 0, 512)
	for {
		c, err := st.Recv()
		if err == io.EOF {
			w.Write([]byte("data: [DONE]\n\n"))
			if flusher != nil {
				flusher.Flush()
			}
			return
		}
		if err != nil {
			if errors.Is(err, errSimStreamCut) {
				panic(http.ErrAbortHandler) // drop the connection mid-body
			}
			if r.Context().Err() != nil {
				return
			}
			buf = append(append(buf[:0], "data: "...), simErrorBody(err)...)
			w.Write(append(buf, "\n\n"...))
			return
		}
		buf = append(append(buf[:0], "data: "...), c.Raw...)
		w.Write(append(buf, "\n\n"...))
		if flusher != nil {
			flusher.Flush()
		}
	}
}

func serveSimEmbed(s *Sim, w http.ResponseWriter, r *http.Request, deployment string) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, simMaxBody))
	if err != nil {
		writeSimError(w, llm.Errorf(http.StatusRequestEntityTooLarge, llm.TypeInvalidRequest, "", "request body too large"))
		return
	}
	er, err := llm.DecodeEmbeddingRequest(body)
	if err != nil {
		writeSimError(w, err)
		return
	}
	req := &EmbedRequest{Embedding: er, Model: er.Model}
	if deployment != "" {
		req.Model = deployment
	}
	resp, err := s.Embed(r.Context(), req)
	if err != nil {
		writeSimError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(resp.Raw)
}

// simErrorBody renders err as OpenAI's {"error":{...}}.
func simErrorBody(err error) []byte {
	e, ok := llm.AsError(err)
	if !ok {
		e = &llm.Error{Status: http.StatusInternalServerError, Type: llm.TypeServer, Message: err.Error()}
	}
	nullable := func(s string) *string {
		if s == "" {
			return nil
		}
		return &s
	}
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	b, _ := json.Marshal(map[string]any{"error": map[string]any{
		"message": msg, "type": e.Type, "param": nullable(e.Param), "code": nullable(e.Code),
	}})
	return b
}

func writeSimError(w http.ResponseWriter, err error) {
	status := http.StatusInternalServerError
	if e, ok := llm.AsError(err); ok {
		status = e.Status
		if e.RetryAfter > 0 {
			ms := e.RetryAfter.Milliseconds()
			w.Header().Set("Retry-After", strconv.FormatInt((ms+999)/1000, 10))
			w.Header().Set("Retry-After-Ms", strconv.FormatInt(ms, 10))
		}
	}
	if status == 0 {
		status = http.StatusInternalServerError
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(simErrorBody(err))
}

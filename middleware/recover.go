package middleware

import (
	"errors"
	"log/slog"
	"net/http"
	"runtime/debug"

	"github.com/dynaguard/dynaguard/internal/problem"
)

// Recover turns a panic in a later handler into a 500 response and a log
// line with the stack. The client never sees the panic value or the stack.
// http.ErrAbortHandler is re-raised, as net/http expects, so an aborted
// response is still aborted.
func Recover(logger *slog.Logger) Middleware {
	if logger == nil {
		logger = slog.Default()
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			tw := &trackingWriter{ResponseWriter: w}
			defer func() {
				v := recover()
				if v == nil {
					return
				}
				if err, ok := v.(error); ok && errors.Is(err, http.ErrAbortHandler) {
					panic(v)
				}
				logger.ErrorContext(r.Context(), "panic serving request",
					"method", r.Method, "path", r.URL.Path, "panic", v, "stack", string(debug.Stack()))
				if tw.wrote {
					// Headers are gone; all that is left is to cut the response short.
					panic(http.ErrAbortHandler)
				}
				problem.Write(w, r, problem.Problem{Reason: "internal-error", Status: http.StatusInternalServerError,
					Title: "Something went wrong", Detail: "The server could not complete this request. Nothing was shown to you that it should not have; please try again."})
			}()
			next.ServeHTTP(tw, r)
		})
	}
}

// trackingWriter remembers whether the response has started.
type trackingWriter struct {
	http.ResponseWriter
	wrote bool
}

func (t *trackingWriter) WriteHeader(code int) {
	if code >= 200 {
		t.wrote = true
	}
	t.ResponseWriter.WriteHeader(code)
}

func (t *trackingWriter) Write(b []byte) (int, error) {
	t.wrote = true
	return t.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (t *trackingWriter) Unwrap() http.ResponseWriter { return t.ResponseWriter }

// Flush keeps streaming handlers working through the wrapper.
func (t *trackingWriter) Flush() {
	t.wrote = true
	if f, ok := t.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

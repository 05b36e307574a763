package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/realizefs/realize"
)

// maxRequestBody bounds what a client may send; requests are small queries.
const maxRequestBody = 1 << 20

// Server serves a Backend on a control socket.
type Server struct {
	backend Backend
	logger  *slog.Logger
	http    *http.Server
}

// NewServer returns a server for b. It logs failed requests to logger.
func NewServer(b Backend, logger *slog.Logger) *Server {
	s := &Server{backend: b, logger: logger}
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+pathStatus, s.status)
	mux.HandleFunc("POST "+pathLog, s.log)
	mux.HandleFunc("POST "+pathVerify, s.verify)
	mux.HandleFunc("POST "+pathConfl, s.conflicts)
	mux.HandleFunc("POST "+pathResolv, s.resolve)
	mux.HandleFunc("POST "+pathPin, s.pin)
	mux.HandleFunc("POST "+pathUnpin, s.unpin)
	mux.HandleFunc("POST "+pathPathStatus, s.pathStatus)
	mux.HandleFunc("POST "+pathApprove, s.approve)
	s.http = &http.Server{
		Handler:           s.checkVersion(mux),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}
	return s
}

// Serve serves connections from ln until Shutdown. It returns nil after a
// shutdown.
func (s *Server) Serve(ln net.Listener) error {
	err := s.http.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting, lets running requests finish until ctx is done,
// then closes what is left.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.http.Shutdown(ctx)
	if err != nil {
		s.http.Close()
	}
	return err
}

func (s *Server) checkVersion(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(versionHeader, strconv.Itoa(APIVersion))
		if got := r.Header.Get(versionHeader); got != strconv.Itoa(APIVersion) {
			s.fail(w, r, &realize.Error{Op: "control request", Kind: realize.Unsupported,
				Err: fmt.Errorf("the CLI speaks control API version %q but this daemon speaks %d: run the same version of realize for both (restart the daemon after an upgrade)", got, APIVersion)})
			return
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	s.logger.Debug("control request failed", "path", r.URL.Path, "err", err)
	w.Header().Set("Content-Type", "application/json")
	we := toWire(err)
	w.WriteHeader(httpStatus(we.Kind))
	json.NewEncoder(w).Encode(errorBody{Error: we})
}

func (s *Server) reply(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(v)
}

func (s *Server) status(w http.ResponseWriter, r *http.Request) {
	rep, err := s.backend.Status(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.reply(w, rep)
}

func readJSON(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, maxRequestBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return &realize.Error{Op: "read request", Kind: realize.Invalid, Err: err}
	}
	return nil
}

func readQuery(r *http.Request) (LogQuery, error) {
	var q LogQuery
	dec := json.NewDecoder(io.LimitReader(r.Body, maxRequestBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&q); err != nil && !errors.Is(err, io.EOF) {
		return q, &realize.Error{Op: "read query", Kind: realize.Invalid, Err: err}
	}
	return q, nil
}

func (s *Server) verify(w http.ResponseWriter, r *http.Request) {
	q, err := readQuery(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	rep, err := s.backend.Verify(r.Context(), q)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.reply(w, rep)
}

func (s *Server) conflicts(w http.ResponseWriter, r *http.Request) {
	q, err := readQuery(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	recs, err := s.backend.Conflicts(r.Context(), q.Arena)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if recs == nil {
		recs = []ConflictRecord{}
	}
	s.reply(w, recs)
}

func (s *Server) resolve(w http.ResponseWriter, r *http.Request) {
	var req ResolveRequest
	if err := readJSON(r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	rep, err := s.backend.Resolve(r.Context(), req)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.reply(w, rep)
}

// log streams records as NDJSON.
func (s *Server) log(w http.ResponseWriter, r *http.Request) {
	q, err := readQuery(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	stream(s, w, r, false, func(emit func(*LogRecord) error) error { return s.backend.Log(r.Context(), q, emit) })
}

func (s *Server) pin(w http.ResponseWriter, r *http.Request) {
	var req PathRequest
	if err := readJSON(r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	stream(s, w, r, true, func(emit func(*PinEvent) error) error { return s.backend.Pin(r.Context(), req, emit) })
}

func (s *Server) unpin(w http.ResponseWriter, r *http.Request) {
	var req PathRequest
	if err := readJSON(r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	rep, err := s.backend.Unpin(r.Context(), req)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.reply(w, rep)
}

func (s *Server) pathStatus(w http.ResponseWriter, r *http.Request) {
	var req PathRequest
	if err := readJSON(r, &req); err != nil || len(req.Paths) != 1 {
		s.fail(w, r, &realize.Error{Op: "status", Kind: realize.Invalid, Err: errors.New("one path expected")})
		return
	}
	rep, err := s.backend.PathStatus(r.Context(), req.Paths[0])
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.reply(w, rep)
}

func (s *Server) approve(w http.ResponseWriter, r *http.Request) {
	var req ApproveRequest
	if err := readJSON(r, &req); err != nil {
		s.fail(w, r, err)
		return
	}
	if req.Arena != "" {
		if _, err := realize.ParseArenaName(string(req.Arena)); err != nil {
			s.fail(w, r, &realize.Error{Op: "approve", Kind: realize.Invalid, Err: fmt.Errorf("%q is not an arena name", req.Arena)})
			return
		}
	}
	rep, err := s.backend.Approve(r.Context(), req)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.reply(w, rep)
}

// stream sends what run emits as NDJSON. Headers go out with the first
// record, so an error before it is an ordinary error response; an error
// after it travels in the trailer. live sends each record at once
// (progress) instead of in buffered batches (bulk listings).
func stream[T any](s *Server, w http.ResponseWriter, r *http.Request, live bool, run func(emit func(T) error) error) {
	bw := bufio.NewWriterSize(w, 32<<10)
	enc := json.NewEncoder(bw)
	flusher, _ := w.(http.Flusher)
	started := false
	start := func() {
		w.Header().Set("Content-Type", "application/x-ndjson")
		w.Header().Set("Trailer", errorTrailer)
		w.WriteHeader(http.StatusOK)
		started = true
	}
	err := run(func(rec T) error {
		if !started {
			start()
		}
		if err := enc.Encode(rec); err != nil || !live {
			return err
		}
		if err := bw.Flush(); err != nil {
			return err
		}
		if flusher != nil {
			flusher.Flush()
		}
		return nil
	})
	if err != nil && !started {
		s.fail(w, r, err)
		return
	}
	if !started {
		start()
	}
	if ferr := bw.Flush(); err == nil {
		err = ferr
	}
	if flusher != nil {
		flusher.Flush()
	}
	if err != nil {
		s.logger.Debug("control stream failed", "path", r.URL.Path, "err", err)
		b, _ := json.Marshal(toWire(err))
		w.Header().Set(errorTrailer, string(b))
	}
}

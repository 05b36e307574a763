package control

import (
	"context"
	"errors"
	"net/http"

	"github.com/realizefs/realize"
)

// Wire details shared by the server and the client.
const (
	versionHeader = "Realize-Api-Version"
	// errorTrailer carries the error that ended a streamed response after
	// some records were sent, so the body stays one LogRecord per line.
	errorTrailer = "Realize-Error"

	pathStatus = "/v1/status"
	pathLog    = "/v1/log"
	pathVerify = "/v1/verify"
	pathConfl  = "/v1/conflicts"
	pathResolv = "/v1/resolve"
	pathPin    = "/v1/pin"
	pathUnpin  = "/v1/unpin"
	// pathPathStatus is status of one path (POST: the path is in the body).
	pathPathStatus = "/v1/status/path"
	pathApprove    = "/v1/approve"
)

// wireError is a *realize.Error as JSON. The client rebuilds the same
// *realize.Error, so a message from the daemon reads exactly as it would
// have in-process and keeps its Kind (which decides the exit code).
type wireError struct {
	Op      string            `json:"op"`
	Kind    realize.ErrKind   `json:"kind"`
	Arena   realize.ArenaName `json:"arena,omitempty"`
	Path    string            `json:"path,omitempty"`
	Peer    *realize.PeerID   `json:"peer,omitempty"`
	Message string            `json:"message,omitempty"`
}

type errorBody struct {
	Error wireError `json:"error"`
}

func toWire(err error) wireError {
	var e *realize.Error
	if !errors.As(err, &e) {
		kind := realize.Other
		if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
			kind = realize.Canceled
		}
		return wireError{Op: "daemon", Kind: kind, Message: err.Error()}
	}
	w := wireError{Op: e.Op, Kind: e.Kind, Arena: e.Arena, Path: e.Path}
	if !e.Peer.IsZero() {
		p := e.Peer
		w.Peer = &p
	}
	if e.Err != nil {
		w.Message = e.Err.Error()
	}
	return w
}

func (w wireError) err() error {
	e := &realize.Error{Op: w.Op, Kind: w.Kind, Arena: w.Arena, Path: w.Path}
	if w.Peer != nil {
		e.Peer = *w.Peer
	}
	if w.Message != "" {
		e.Err = errors.New(w.Message)
	}
	return e
}

// httpStatus maps a kind to a status code. The client does not rely on it
// (the kind travels in the body); it is for people poking with curl.
func httpStatus(k realize.ErrKind) int {
	switch k {
	case realize.Invalid:
		return http.StatusBadRequest
	case realize.NotExist:
		return http.StatusNotFound
	case realize.Permission:
		return http.StatusForbidden
	case realize.Busy, realize.Conflict, realize.Exist:
		return http.StatusConflict
	case realize.Unavailable:
		return http.StatusServiceUnavailable
	case realize.Unsupported:
		return http.StatusNotImplemented
	}
	return http.StatusInternalServerError
}

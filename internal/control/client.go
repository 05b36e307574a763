package control

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"strconv"
	"syscall"

	"github.com/realizefs/realize"
)

// maxRecordLine bounds one NDJSON line from the daemon (a record with a
// 4 KiB path and a large version vector stays far below it).
const maxRecordLine = 4 << 20

// Client talks to a daemon's control socket. It implements Backend, so the
// CLI can use a running daemon and a read-only database the same way.
type Client struct {
	socket string
	http   *http.Client
}

var _ Backend = (*Client)(nil)

// NewClient returns a client for the socket at path (see SocketPath). It
// does not connect until a call is made.
func NewClient(path string) *Client {
	c := &Client{socket: path}
	c.http = &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return c.dial(ctx)
		},
		DisableCompression: true,
	}}
	return c
}

// Close releases idle connections.
func (c *Client) Close() { c.http.CloseIdleConnections() }

// Ping tells whether a daemon listens on the socket, as an Unavailable
// error when none does.
func (c *Client) Ping(ctx context.Context) error {
	conn, err := c.dial(ctx)
	if err != nil {
		return err
	}
	return conn.Close()
}

func (c *Client) dial(ctx context.Context) (net.Conn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", c.socket)
	if err == nil {
		return conn, nil
	}
	const op = "connect to daemon"
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, &realize.Error{Op: op, Kind: realize.Unavailable,
			Err: fmt.Errorf("the realize daemon is not running (no socket at %s)", c.socket)}
	case errors.Is(err, syscall.ECONNREFUSED):
		return nil, &realize.Error{Op: op, Kind: realize.Unavailable,
			Err: fmt.Errorf("the realize daemon is not running (nothing listens on %s)", c.socket)}
	case errors.Is(err, fs.ErrPermission):
		return nil, &realize.Error{Op: op, Kind: realize.Permission, Path: c.socket,
			Err: errors.New("permission denied: the daemon belongs to another user")}
	}
	return nil, &realize.Error{Op: op, Kind: realize.Unavailable, Path: c.socket, Err: err}
}

// Status asks the daemon for its status.
func (c *Client) Status(ctx context.Context) (*StatusReport, error) {
	var rep StatusReport
	if err := c.call(ctx, http.MethodGet, pathStatus, nil, &rep); err != nil {
		return nil, err
	}
	return &rep, nil
}

// Verify asks the daemon to verify the logs matching q.
func (c *Client) Verify(ctx context.Context, q LogQuery) (*VerifyReport, error) {
	var rep VerifyReport
	if err := c.call(ctx, http.MethodPost, pathVerify, q, &rep); err != nil {
		return nil, err
	}
	return &rep, nil
}

// Conflicts asks the daemon for the conflict losers it keeps.
func (c *Client) Conflicts(ctx context.Context, arena realize.ArenaName) ([]ConflictRecord, error) {
	var recs []ConflictRecord
	if err := c.call(ctx, http.MethodPost, pathConfl, LogQuery{Arena: arena}, &recs); err != nil {
		return nil, err
	}
	return recs, nil
}

// Resolve implements Backend.
func (c *Client) Resolve(ctx context.Context, req ResolveRequest) (*ResolveReport, error) {
	var rep ResolveReport
	if err := c.call(ctx, http.MethodPost, pathResolv, req, &rep); err != nil {
		return nil, err
	}
	return &rep, nil
}

// Log streams the entries matching q to emit, oldest first. An error from
// emit stops the stream and is returned.
func (c *Client) Log(ctx context.Context, q LogQuery, emit func(*LogRecord) error) error {
	return readStream(c, ctx, pathLog, q, "read log", emit)
}

// Pin implements Backend.
func (c *Client) Pin(ctx context.Context, req PathRequest, progress func(*PinEvent) error) error {
	return readStream(c, ctx, pathPin, req, "pin", progress)
}

// Unpin implements Backend.
func (c *Client) Unpin(ctx context.Context, req PathRequest) (*UnpinReport, error) {
	var rep UnpinReport
	if err := c.call(ctx, http.MethodPost, pathUnpin, req, &rep); err != nil {
		return nil, err
	}
	return &rep, nil
}

// PathStatus implements Backend.
func (c *Client) PathStatus(ctx context.Context, path string) (*PathStatus, error) {
	var rep PathStatus
	if err := c.call(ctx, http.MethodPost, pathPathStatus, PathRequest{Paths: []string{path}}, &rep); err != nil {
		return nil, err
	}
	return &rep, nil
}

// Approve implements Backend.
func (c *Client) Approve(ctx context.Context, req ApproveRequest) (*ApproveReport, error) {
	var rep ApproveReport
	if err := c.call(ctx, http.MethodPost, pathApprove, req, &rep); err != nil {
		return nil, err
	}
	return &rep, nil
}

// readStream reads an NDJSON stream of T, calling emit for each; the
// daemon's error, if the stream ended with one, comes in the trailer.
func readStream[T any](c *Client, ctx context.Context, path string, in any, op string, emit func(*T) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // drops the connection if emit stops early
	resp, err := c.do(ctx, http.MethodPost, path, in)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), maxRecordLine)
	for sc.Scan() {
		rec := new(T)
		if err := json.Unmarshal(sc.Bytes(), rec); err != nil {
			return &realize.Error{Op: op, Kind: realize.Corrupt, Err: fmt.Errorf("bad record from daemon: %w", err)}
		}
		if err := emit(rec); err != nil {
			return err
		}
	}
	if err := sc.Err(); err != nil {
		return &realize.Error{Op: op, Kind: realize.Unavailable, Err: fmt.Errorf("the daemon stopped sending: %w", err)}
	}
	if t := resp.Trailer.Get(errorTrailer); t != "" {
		var we wireError
		if err := json.Unmarshal([]byte(t), &we); err != nil {
			return &realize.Error{Op: op, Kind: realize.Other, Err: errors.New(t)}
		}
		return we.err()
	}
	return nil
}

func (c *Client) call(ctx context.Context, method, path string, in, out any) error {
	resp, err := c.do(ctx, method, path, in)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return &realize.Error{Op: "read reply", Kind: realize.Corrupt, Err: fmt.Errorf("bad reply from daemon: %w", err)}
	}
	return nil
}

// do sends a request and returns a 200 response, or the error the daemon
// (or the connection) reported.
func (c *Client) do(ctx context.Context, method, path string, in any) (*http.Response, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return nil, &realize.Error{Op: "send request", Kind: realize.Invalid, Err: err}
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://realize"+path, body)
	if err != nil {
		return nil, &realize.Error{Op: "send request", Kind: realize.Other, Err: err}
	}
	req.Header.Set(versionHeader, strconv.Itoa(APIVersion))
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var re *realize.Error
		if errors.As(err, &re) {
			return nil, re
		}
		if ctx.Err() != nil {
			return nil, &realize.Error{Op: "control request", Kind: realize.Canceled, Err: ctx.Err()}
		}
		return nil, &realize.Error{Op: "control request", Kind: realize.Unavailable, Err: err}
	}
	if got := resp.Header.Get(versionHeader); got != strconv.Itoa(APIVersion) {
		resp.Body.Close()
		return nil, &realize.Error{Op: "control request", Kind: realize.Unsupported,
			Err: fmt.Errorf("the daemon speaks control API version %q but this CLI speaks %d: run the same version of realize for both (restart the daemon after an upgrade)", got, APIVersion)}
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		var eb errorBody
		if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&eb); err != nil {
			return nil, &realize.Error{Op: "control request", Kind: realize.Other, Err: fmt.Errorf("daemon replied %s", resp.Status)}
		}
		return nil, eb.Error.err()
	}
	return resp, nil
}

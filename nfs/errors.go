package nfs

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"syscall"

	"github.com/realizefs/realize"
	gonfs "github.com/willscott/go-nfs"
)

// This file is the one place where errors of the Tree become errors of the
// file system: a realize.ErrKind maps to an errno (what go-nfs inspects
// through os.IsNotExist and friends) and to an NFS status (where we answer
// ourselves, or where go-nfs passes our error through as is).

// errnoOf classifies err.
func errnoOf(err error) syscall.Errno {
	var en syscall.Errno
	switch realize.KindOf(err) {
	case realize.NotExist:
		return syscall.ENOENT
	case realize.Exist:
		return syscall.EEXIST
	case realize.Permission:
		return syscall.EACCES
	case realize.Invalid:
		return syscall.EINVAL
	case realize.NotEmpty:
		return syscall.ENOTEMPTY
	case realize.IsDir:
		return syscall.EISDIR
	case realize.NotDir:
		return syscall.ENOTDIR
	case realize.Unsupported:
		return syscall.ENOTSUP
	case realize.Unavailable, realize.IO, realize.Corrupt, realize.Changed,
		realize.Canceled, realize.Busy, realize.Conflict:
		return syscall.EIO
	}
	switch {
	case errors.As(err, &en):
		return en
	case errors.Is(err, fs.ErrNotExist):
		return syscall.ENOENT
	case errors.Is(err, fs.ErrExist):
		return syscall.EEXIST
	case errors.Is(err, fs.ErrPermission):
		return syscall.EACCES
	case errors.Is(err, fs.ErrInvalid):
		return syscall.EINVAL
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return syscall.EIO
	}
	return syscall.EIO
}

// statusOf is the NFS status for err.
func statusOf(err error) gonfs.NFSStatus {
	if err == nil {
		return gonfs.NFSStatusOk
	}
	var se *gonfs.NFSStatusError
	if errors.As(err, &se) {
		return se.NFSStatus
	}
	switch errnoOf(err) {
	case syscall.ENOENT:
		return gonfs.NFSStatusNoEnt
	case syscall.EEXIST:
		return gonfs.NFSStatusExist
	case syscall.EACCES:
		return gonfs.NFSStatusAccess
	case syscall.EPERM:
		return gonfs.NFSStatusPerm
	case syscall.EINVAL:
		return gonfs.NFSStatusInval
	case syscall.ENOTEMPTY:
		return gonfs.NFSStatusNotEmpty
	case syscall.EISDIR:
		return gonfs.NFSStatusIsDir
	case syscall.ENOTDIR:
		return gonfs.NFSStatusNotDir
	case syscall.ENOTSUP:
		return gonfs.NFSStatusNotSupp
	case syscall.EROFS:
		return gonfs.NFSStatusROFS
	case syscall.EXDEV:
		return gonfs.NFSStatusXDev
	case syscall.ENAMETOOLONG:
		return gonfs.NFSStatusNameTooLong
	case syscall.ENOSPC:
		return gonfs.NFSStatusNoSPC
	case syscall.EDQUOT:
		return gonfs.NFSStatusDQuot
	case syscall.EFBIG:
		return gonfs.NFSStatusFBig
	}
	return gonfs.NFSStatusIO
}

// pathErr wraps err for go-nfs code that tests it with os.IsNotExist or
// os.IsPermission (which look inside *os.PathError only).
func pathErr(op, name string, err error) error {
	if err == nil {
		return nil
	}
	var pe *os.PathError
	if errors.As(err, &pe) {
		if _, ok := pe.Err.(syscall.Errno); ok {
			return pe
		}
	}
	return &os.PathError{Op: op, Path: name, Err: errnoOf(err)}
}

// statusErr wraps err for go-nfs code that passes it straight to the client
// (SETATTR's Apply): an *NFSStatusError carries its own status.
func statusErr(err error) error {
	if err == nil {
		return nil
	}
	var se *gonfs.NFSStatusError
	if errors.As(err, &se) {
		return se
	}
	return &gonfs.NFSStatusError{NFSStatus: statusOf(err), WrappedErr: err}
}

func errno(op, name string, e syscall.Errno) error {
	return &os.PathError{Op: op, Path: name, Err: e}
}

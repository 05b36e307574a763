/*
 * LD_PRELOAD shim for Debian bookworm's user-mode-linux (6.1) on hosts whose
 * XSAVE area is larger than the one UML knows (AVX-512, AMX, PKRU).
 *
 * UML saves and restores its processes' FPU state with ptrace
 * PTRACE_GETREGSET/SETREGSET NT_X86_XSTATE using a fixed, small buffer. The
 * host kernel accepts a short GETREGSET (it truncates) but refuses a
 * SETREGSET that is not the full XSAVE size (EFAULT), so the first process
 * dies with "ptrace set fp regs failed, errno = 14" and the kernel panics.
 * (Making the first GETREGSET fail so UML falls back to FXSAVE is not
 * enough: glibc's AVX-512 string functions then lose their registers and
 * init crashes.)
 *
 * This shim keeps UML's view as it is and does the full-size transfer for
 * it: a SETREGSET reads the whole current state, lays UML's prefix over it
 * and writes the whole area back; a GETREGSET reads the whole area and gives
 * UML the prefix it asked for. On hosts where UML's size is already right
 * it only costs an extra GETREGSET.
 *
 * Built by run-uml.sh: cc -O2 -shared -fPIC -o uml-xstate.so uml-xstate.c -ldl
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <elf.h>
#include <stdarg.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/types.h>
#include <sys/uio.h>

/* Bigger than any XSAVE area (AMX: about 11 KiB). UML calls ptrace from
 * one host thread only. */
static unsigned char xstate[64 << 10] __attribute__((aligned(64)));

long ptrace(enum __ptrace_request req, ...)
{
	static long (*real)(enum __ptrace_request, ...);
	va_list ap;
	pid_t pid;
	void *addr, *data;

	va_start(ap, req);
	pid = va_arg(ap, pid_t);
	addr = va_arg(ap, void *);
	data = va_arg(ap, void *);
	va_end(ap);
	if (!real)
		real = (long (*)(enum __ptrace_request, ...))dlsym(RTLD_NEXT, "ptrace");

	if ((req == PTRACE_GETREGSET || req == PTRACE_SETREGSET) &&
	    (unsigned long)addr == NT_X86_XSTATE) {
		struct iovec *uml = data;
		struct iovec full = { xstate, sizeof xstate };
		size_t n;
		long r = real(PTRACE_GETREGSET, pid, addr, &full);

		if (r < 0)
			return r;
		n = uml->iov_len < full.iov_len ? uml->iov_len : full.iov_len;
		if (req == PTRACE_GETREGSET) {
			memcpy(uml->iov_base, xstate, n);
			uml->iov_len = n;
			return 0;
		}
		memcpy(xstate, uml->iov_base, n);
		return real(PTRACE_SETREGSET, pid, addr, &full);
	}
	return real(req, pid, addr, data);
}

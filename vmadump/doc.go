// Package vmadump dumps a running process to an image and restores it,
// here or on another node running the same kernel, entirely in user space:
// BProc's VMAdump without the kernel module, built on ptrace, /proc and
// system calls injected into the stopped process. Linux x86_64,
// single-threaded processes, static or dynamic (glibc).
//
// # API
//
// Both sides stream, so an image can travel through a pipe, a socket or a
// 9P file without temporary files or seeking:
//
//	err := vmadump.Dump(pid, w, vmadump.DumpOptions{Flags: vmadump.DumpLibs, Leave: false})
//	p, err := vmadump.Restore(r, vmadump.RestoreOptions{Stdout: f})
//	st, err := p.Wait()
//	info, err := vmadump.ReadInfo(r) // check and describe, restore nothing
//
// Dump stops the process (PTRACE_SEIZE + INTERRUPT), writes the image and
// kills it, or lets it run on with Leave. On any error the process is left
// running as it was. A process with more than one thread is refused
// (ErrThreaded) before anything is written.
//
// Restore starts the restore stub as a child of the caller, rebuilds the
// process in it and lets it run; Process.Wait reaps it. If Restore fails,
// a goroutine may still be blocked reading r: close it. With Detach it gets
// a session of its own and is let go. Every Restore and Dump call locks its
// goroutine to an OS thread for its ptrace sequence; concurrent calls are
// fine. RestoreOptions.Spawn hands the stub's start and that sequence to
// the caller's own thread instead (a parent-death signal follows the
// forking thread, and the tracer must be the thread that forked the
// stub): bproc's slave forks and traces it on the thread that forks all
// its jobs, with the job's credentials and process group.
//
// # Holding a process: migration and ghosts
//
// For migration the dump is split so that the caller decides between
// steps (all ptrace requests of one Held, and of the children it forks,
// run on one locked OS thread of its own; methods may be called from any
// goroutine):
//
//	h, err := vmadump.Seize(pid)     // PTRACE_SEIZE + INTERRUPT, returns at once
//	err = h.Wait(ctx)                // in its ptrace stop (after the call it was in)
//	nr, fd, ret := h.Syscall()       // the call it stopped after: orig_rax, rdi, rax
//	err = h.Dump(w, opts)            // image; it stays stopped and held
//	err = h.Resume(&ret)             // failure: that call returns ret (e.g. -EHOSTDOWN)
//	c, err := h.Fork()               // rfork: a held child that never ran
//	g, err := h.Ghost(vmadump.GhostOptions{Signal: forward})
//
// A process inside a write(2) to a FUSE file when seized finishes that
// write (FUSE gets an INTERRUPT request, which the file system must not
// act on: the wait that follows is killable only) and stops at its return
// before its next instruction; a write to a pipe is interrupted instead
// (Syscall's ret is -ERESTARTSYS) and re-issued by Resume(nil). Signals
// arriving while it is held are kept, recorded in an image and re-sent on
// Resume. Kill ends a held process, TakeFile duplicates one of its fds
// (pidfd_getfd). Fork injects fork(2): the child is the process's real
// child, stopped with the parent's registers; Discard kills it, reaps it
// through the parent (injected wait4) and eats its SIGCHLD.
//
// Ghost leaves of the process only what its parent and ps see: pid,
// parent, open files, the argv/environ pages (/proc/PID/cmdline), [vdso];
// everything else is unmapped (resident size a few kB), it runs a pause
// loop from a page of its own, with default handlers, an empty mask, no
// timers, rseq or robust list, non-dumpable, PTRACE_O_EXITKILL (if its
// host dies, it dies with SIGKILL). Every signal sent to it but SIGKILL
// goes to GhostOptions.Signal (called on the tracer thread: it must not
// block or call the Ghost) and is suppressed, stop signals and SIGCONT
// included; the host reports what the process did where it runs with
// Stop(sig) and Cont (the parent's waitpid sees WIFSTOPPED/WIFCONTINUED),
// Exit(code) and Kill(sig) (WIFEXITED/WIFSIGNALED, one SIGCHLD, no core).
// Done is closed when it has ended, Killed tells an outside SIGKILL. A
// goroutine waits for each ghost's events (waitid WNOWAIT, one blocked
// thread per ghost); a process hosting ghosts must not wait4(-1). A
// process that holds its own children (the kernel then reports their
// ptrace stops to its waits as well) waits for them with WaitExit (a
// pidfd poll) before reaping them with cmd.Wait; a ghost that is its own
// child is left for it to reap.
//
// DumpOptions.Stdio (fd -> 0, 1 or 2) makes any fd a dup of the
// restorer's stdin, stdout or stderr on restore, and DumpOptions.Mem (fd
// -> bytes) a memfd with that content at offset 0, keeping the fd's
// close-on-exec flag; both are recorded in the image (fd kinds
// "restorer" and "memfd") and shown by Info.
//
// # What travels
//
// Registers: the general registers (incl. fs_base, i.e. TLS) and the full
// xsave area (x87, SSE, AVX, AVX-512, via NT_X86_XSTATE). The signal mask,
// every handler (read by injecting rt_sigaction), pending signals that
// arrived during the dump, the rseq registration (re-registered, so
// sched_getcpu() stays right), the alternate signal stack, the interval
// timers (alarm, setitimer), the set_tid_address pointer and robust futex
// list glibc registers, the personality, cwd, umask, comm, and the mm layout (brk,
// argv/environ area, auxv, exe) set in one PR_SET_MM_MAP, so
// /proc/PID/cmdline, environ and exe read as before and the heap grows
// from the same brk.
//
// Memory: every mapping at its address with its protection. Anonymous
// regions, [heap] and [stack] (mapped MAP_GROWSDOWN) travel as their
// non-zero present pages (found through /proc/PID/pagemap; zero pages are
// never sent). File-backed private mappings either travel in the image or
// are recorded as a reference to the file by path, chosen per class with
// Flags (BProc's BPROC_DUMP_LIBS, _EXEC, _OTHER; DumpAll): a referenced
// region carries only its pages that differ from the file (private copies
// per pagemap), and the file is checked on restore by size and a CRC-32C
// of the mapped range (mtime is recorded and shown but not enforced, since
// copying a library to a node rarely keeps it). A missing or different
// file fails the restore with ErrFile, naming the file, before any memory
// is written. With DumpAll an image restores where neither the program nor
// its libraries exist (then /proc/PID/exe names the stub). Shared file
// mappings are always references; shared anonymous memory travels as
// content (sharing with other processes is not kept).
//
// The kernel's [vvar], [vvar_vclock] and [vdso] are the restorer's own,
// moved whole with mremap to the dumped addresses (glibc caches pointers
// into the vDSO). Their contents must be the same as the dumping host's: an
// image whose vDSO differs (another kernel or CPU) is refused with ErrVDSO.
//
// Files: regular files and directories are reopened by path at the same
// fd number, with the same flags (O_APPEND, O_CLOEXEC, ...) and offset;
// /dev/null, zero, full, random and urandom likewise. Pipes, sockets and
// terminals at fds 0-2 become the restorer's stdin/stdout/stderr (or
// RestoreOptions.Stdin/Stdout/Stderr): the hook for I/O forwarding. Any
// other descriptor (a pipe at fd 5, a socket, an eventfd, a deleted file)
// is closed in the restored process; Info lists each fd with its fate.
//
// System calls interrupted by the dump restart as the kernel would restart
// them after a signal (the rule CRIU uses): -ERESTARTSYS, -ERESTARTNOINTR
// and -ERESTARTNOHAND re-issue the call (a blocking read is read again),
// but -ERESTART_RESTARTBLOCK cannot be carried to another process, so a
// relative nanosleep or clock_nanosleep returns EINTR after a restore
// (glibc's sleep() then returns the time left). An absolute
// clock_nanosleep (TIMER_ABSTIME) is re-issued and keeps its deadline.
//
// Not kept: threads, other processes' view (pid, ppid, process group and
// session change; the restored process is the restorer's child; glibc's
// cached thread id keeps the old value, which only pthread_kill of the main
// thread from another thread would notice), SysV IPC, POSIX timers
// (timer_create), sockets beyond fds 0-2, file locks, ptrace relations,
// seccomp filters, namespaces, resource limits and credentials (the
// restorer's apply), and CLOCK_MONOTONIC, which differs between nodes.
//
// # How restore works
//
// The stub is a minimal static ELF generated by this package (stub.go,
// exit_group(127) at an unusual address), executed from a sealed memfd
// under PTRACE_TRACEME so it stops before its first instruction. All work
// is done by system calls injected into it. A single call points RIP at a
// syscall instruction (0f 05) inside the vDSO and single-steps over it;
// independent calls go in batches: a few bytes of code written into a
// scratch area (mov the arguments, syscall, store rax, ..., int3) run in
// one PTRACE_CONT round trip. The dumper uses the same two ways to ask the
// dumped process what only it can tell (brk, handlers, sigaltstack, timers).
// The stub's own mappings are unmapped, the kernel mappings moved into
// place, every region mapped (MAP_FIXED), the pages streamed in with
// process_vm_writev (or /proc/PID/mem, which writes through read-only
// protection, for the pages that need it), then files, cwd, PR_SET_MM_MAP,
// comm, handlers, umask and rseq are set, registers and signal mask
// loaded, and the process detached.
//
// # Image format
//
// A versioned header, then records (kind, length, payload, CRC-32C): the
// metadata as JSON (the Meta type: readable by `vmadump info` and
// `vmadump info -json`), page records of at most 1024 pages each, and an end
// record with the page count and a CRC chained over every record, so that a
// truncated, reordered or corrupt image is refused (ErrCorrupt). Decoding
// bounds every length and validates the metadata before use; FuzzReadInfo
// fuzzes it (corpus in testdata/fuzz). Nothing is read past the end record,
// so an image on stdin can be followed by the restored process's input.
//
// # Speed
//
// Memory moves in large batches: pagemap is read 64K entries at a time,
// process_vm_readv/writev take up to 1024 spans per call, and on both sides
// a goroutine checksums and writes (or reads and checks) the next record
// while another reads (or writes) process memory. The restore stub is
// started while the metadata is still in flight. `vmadump bench`
// (t/bench-vmadump.sh) prints dump+restore times beside memcpy and a plain
// read of the same bytes. VMADUMP_TRACE=1 prints the time of each step.
//
// Privileges: a user can dump and restore their own processes (ptrace and
// PR_SET_MM_MAP need nothing more); /proc/PID/exe of the restored process
// is only set with CAP_SYS_ADMIN or CAP_CHECKPOINT_RESTORE (otherwise it
// names the stub), and root can dump anyone's.
package vmadump

// Package vmadump dumps a running process to an image and restores it,
// possibly on another node running the same kernel, entirely in user space
// (ptrace, /proc and injected system calls); it is BProc's VMAdump without
// the kernel module. Linux x86_64, single-threaded processes.
package vmadump

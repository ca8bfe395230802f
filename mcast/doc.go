// Package mcast carries node statistics from every node to the master, as
// Scyld's sendstats/recvstats/libbeostat did: sendstats (RunSender) reads
// a node's /proc and multicasts it; recvstats (RunReceiver) collects the
// packets into a shared-memory file that any program reads without
// talking to a daemon (package bproc/beostat), and into per-node text
// files in the kernel's /proc formats.
//
// # Network
//
// Stats go to the multicast group 239.2.11.72, UDP port 3040 (0xbe0);
// recvstats' "send now" requests go to 239.2.11.73, same port, so nodes do
// not receive each other's stats. TTL is 1. A node sends a sample every
// interval (default 1 s), a full one (with the static cpuinfo facts) at
// start, every 10th packet and in answer to a request, after a random
// delay of up to min(interval/2, 200 ms) so a thousand nodes do not answer
// in the same millisecond. recvstats requests at start-up (three times in
// 400 ms, against loss) and every 30 s, so a restarted recvstats has the
// whole cluster within a fraction of a second.
//
// # Packets
//
// Every packet, little-endian:
//
//	off len  field
//	  0   4  magic "BPST"
//	  4   1  version (1)
//	  5   1  type: 1 stats, 2 request
//	  6   2  flags: bit 0 = the static section is present
//	  8   4  node number (int32; -1 in requests)
//	 12   4  payload length
//	 16   8  sender start time, unix ns (tells sender restarts apart)
//	 24   8  sequence number, from 1 for each start
//	 32   8  time of the sample (request: of sending), unix ns, sender clock
//	 40   4  sender's interval in ms (0 in requests)
//	 44   4  reserved (0)
//	 48   n  payload (none in requests)
//	48+n 32  HMAC-SHA256 of bytes [0, 48+n) with the cluster key
//
// The payload is a sequence of sections: a tag byte, a 2-byte length and
// the body; unknown tags are skipped. Numbers in bodies are unsigned
// varints (encoding/binary), strings a length byte and bytes, floats 8-byte
// IEEE 754.
//
//	1 static:  cpu count, MHz (f64), BogoMIPS (f64), vendor, model, cache size
//	2 meminfo: pairs (field number in MemFields, value in kB)
//	3 loadavg: load1, load5, load15 (each ×100), running, total, last pid
//	4 stat:    fields per cpu line, cpu count, per-cpu lines sent (≤ 256),
//	           the cpu line's 10 times, each cpu's 10 times, then intr, ctxt,
//	           btime, processes, procs_running, procs_blocked
//	5 net:     interface count (≤ 32), then each: name, the 16 counters
//
// A receiver drops and counts, never trusts: datagrams over 32 KiB
// (oversized), shorter than header and MAC or whose length field disagrees
// with their size (short), a wrong magic or version, a wrong MAC (wrong
// key, forged, corrupted), a signed payload that does not decode
// (malformed), a node number out of range, and replays: a packet must have
// a later start time than the last accepted one of that node, or the same
// start and a higher sequence (a node silent for its stale time may come
// back with any start: its clock may have stepped back across a reboot).
//
// # The shm file
//
// /var/shm/beostat (mode 0644; the directory is created if missing) is a
// 4096-byte header followed by one fixed-size record per node, node N at
// offset 4096 + N×RecordSize. The file grows (never shrinks) as higher
// node numbers appear; readers remap when the header's node count passes
// what they mapped. A restarted recvstats reuses a compatible file (so
// readers keep their mapping), and replaces anything else by rename;
// readers notice a replaced file within a second. All values are in host
// byte order with natural alignment, as a C struct of the same types.
//
// Header:
//
//	off  type        field
//	  0  char[8]     magic "BEOSTAT\0"
//	  8  uint32      version (1)
//	 12  uint32      header size (4096)
//	 16  uint32      record size (28672 in version 1)
//	 20  uint32      node slots in the file
//	 24  uint32      max cpus per record (256)
//	 28  uint32      max interfaces per record (32)
//	 32  uint32      max meminfo fields (48)
//	 36  uint32      recvstats' pid
//	 40  int64       recvstats' start, unix ns
//	 48  int64       last record update, unix ns
//	 56  uint64[16]  packet counters: received, accepted, short, oversized,
//	                 bad magic/version, bad MAC, malformed, replayed,
//	                 bad node, requests sent
//
// Record (Record in Go; checked by TestRecordLayout):
//
//	off   type           field
//	   0  uint64         seq: seqlock, odd while recvstats writes the record
//	   8  uint32         flags: 1 present, 2 static facts known, 4 stale
//	  12  int32          node
//	  16  int64          updated: receiver clock at the last packet, unix ns
//	  24  int64          sender clock of the sample, unix ns
//	  32  int64          sender start, unix ns
//	  40  uint64         sender sequence
//	  48  int64          sender interval, ns
//	  56  int64          when the static facts last arrived, unix ns
//	  64  byte[16]       sender address (IPv6 or IPv4-mapped)
//	  80  uint32         cpu count
//	  84  uint32         per-cpu entries valid (≤ 256)
//	  88  uint32         fields on the node's /proc/stat cpu lines
//	  92  uint32         interfaces valid (≤ 32)
//	  96  float64        cpu MHz
//	 104  float64        BogoMIPS
//	 112  char[16]       vendor (NUL-padded)
//	 128  char[64]       model name
//	 192  char[16]       cache size
//	 208  float64[3]     load averages
//	 232  uint32[3]      running, total tasks, last pid
//	 244  float32        busy % of all cpus over the last interval
//	 248  uint64         meminfo fields present (bit i = MemFields[i])
//	 256  uint64[48]     meminfo values, kB (HugePages_* counts)
//	 640  uint64[6]      intr, ctxt, btime, processes, procs_running, procs_blocked
//	 688  float64[2]     rx, tx bytes/s, all interfaces but lo
//	 704  uint64[10]     the cpu line: user nice system idle iowait irq
//	                     softirq steal guest guest_nice (USER_HZ ticks)
//	 784  iface[32]      160 bytes each: char[16] name, float64 rx and tx
//	                     bytes/s, uint64[16] /proc/net/dev counters
//	5904  float32[256]   per-cpu busy %
//	6928  uint64[256][10] per-cpu times
//
// Readers never see a torn record: recvstats increments seq before and
// after changing a record; a reader copies the record between two reads of
// seq and retries if seq was odd or changed (beostat.Reader does this).
// A node is stale when flag 4 is set or when 3 of its intervals passed
// since "updated" (so readers see staleness even when recvstats is gone);
// after an hour of silence recvstats clears the record (reads as down) and
// removes the node's files.
//
// # Per-node files
//
// Beside the shm file recvstats keeps /var/shm/beostat.d/N/ for every node
// N, with cpuinfo, meminfo, loadavg, net (the format of /proc/net/dev),
// stat and stamp. The first five are in the kernel's text formats, so
// existing /proc parsers read them; stamp is "key value" lines (node,
// state, addr, updated, interval, seq). Each file is replaced atomically
// (written to a temporary name, then renamed) when its content changed;
// cpuinfo only when the static facts arrive. Rewriting a node's files
// costs some twenty times more than storing its packet, so recvstats
// spends at most 0.75% of a core on them (--files-cpu, measured in thread
// CPU time): up to about a hundred nodes at 1 Hz every packet shows,
// beyond that each node's files refresh every few seconds (the stamp says
// when) while the shm file stays current. A node appearing, going stale
// or being forgotten shows in its files at once, whatever the budget. Fields bproc does not carry (cpu flags, less common meminfo
// lines, softirq) are absent.
//
// # Cost
//
// recvstats reads with recvmmsg on a blocking socket outside Go's network
// poller and, after draining it, lets packets gather for 50 ms: on a big
// cluster one wake-up handles dozens of packets. With 1000 nodes at 1 Hz
// it uses under 1% of a core for the shm file (t/bench-stats.sh). Put
// /var/shm on a tmpfs, as Scyld did: on a disk file system the per-node
// files cost more.
package mcast

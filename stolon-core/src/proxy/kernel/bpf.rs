//! The eBPF side of kernel forwarding, without a BPF compiler: the stream-verdict program is written below
//! as its instruction sequence, and the SOCKHASH map and the program are created, loaded and attached with
//! bpf(2) through libc. Nothing here is a binary blob: every instruction is spelled out and commented.
//!
//! The map holds both sockets of every forwarded connection, each one **under the socket cookie of its
//! peer**. The program, run by the kernel for every chunk of bytes a socket of the map receives, reads the
//! cookie of that socket and redirects the bytes to the send queue of the socket stored under that cookie:
//! the other end of the same connection. A socket whose peer is no longer in the map has its bytes dropped.
//!
//! **Back-pressure** (see `backpressure`): two hash maps, keyed by the receiving socket's cookie, bound
//! what the kernel may queue for its peer. [`Grant`] is written by the proxy only: how many bytes the socket
//! may redirect in all, and how many bytes it kept for the proxy the proxy has copied. [`Count`] is written
//! by the program only: bytes redirected, bytes kept. A chunk is redirected only when every kept byte has
//! been copied and the grant covers it; otherwise it is kept: passed to the socket's own receive side, where
//! it counts against the socket's receive buffer, so TCP's window closes and the sender stalls.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// `BPF_MAP_CREATE` and the other bpf(2) commands used (linux/bpf.h, `enum bpf_cmd`).
const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_LOOKUP_ELEM: libc::c_long = 1;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_MAP_DELETE_ELEM: libc::c_long = 3;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
/// `BPF_MAP_TYPE_HASH`.
const MAP_TYPE_HASH: u32 = 1;
/// `BPF_MAP_TYPE_SOCKHASH` (linux 4.18).
const MAP_TYPE_SOCKHASH: u32 = 18;
/// `BPF_PROG_TYPE_SK_SKB` (linux 4.14).
const PROG_TYPE_SK_SKB: u32 = 14;
/// `BPF_SK_SKB_VERDICT` (linux 5.13): a verdict program without a stream parser.
const ATTACH_SK_SKB_VERDICT: u32 = 38;
/// Helper `bpf_map_lookup_elem` (number 1 in `__BPF_FUNC_MAPPER`).
const HELPER_MAP_LOOKUP_ELEM: i32 = 1;
/// Helper `bpf_get_socket_cookie` (number 46).
const HELPER_GET_SOCKET_COOKIE: i32 = 46;
/// Helper `bpf_sk_redirect_hash` (number 72).
const HELPER_SK_REDIRECT_HASH: i32 = 72;
/// `SO_COOKIE` (asm-generic/socket.h).
const SO_COOKIE: libc::c_int = 57;

/// One eBPF instruction (`struct bpf_insn`).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    code: u8,
    /// dst in the low nibble, src in the high one.
    regs: u8,
    off: i16,
    imm: i32,
}

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn { code, regs: (src << 4) | dst, off, imm }
}
/// `dst = src` (64-bit): BPF_ALU64 | BPF_MOV | BPF_X.
const fn mov64_reg(dst: u8, src: u8) -> Insn {
    insn(0xbf, dst, src, 0, 0)
}
/// `dst = imm` (64-bit): BPF_ALU64 | BPF_MOV | BPF_K.
const fn mov64_imm(dst: u8, imm: i32) -> Insn {
    insn(0xb7, dst, 0, 0, imm)
}
/// `dst += imm` (64-bit): BPF_ALU64 | BPF_ADD | BPF_K.
const fn add64_imm(dst: u8, imm: i32) -> Insn {
    insn(0x07, dst, 0, 0, imm)
}
/// `*(u64 *)(dst + off) = src`: BPF_STX | BPF_MEM | BPF_DW.
const fn store_u64(dst: u8, off: i16, src: u8) -> Insn {
    insn(0x7b, dst, src, off, 0)
}
/// `dst += src` (64-bit): BPF_ALU64 | BPF_ADD | BPF_X.
const fn add64_reg(dst: u8, src: u8) -> Insn {
    insn(0x0f, dst, src, 0, 0)
}
/// `dst = *(u64 *)(src + off)`: BPF_LDX | BPF_MEM | BPF_DW.
const fn load_u64(dst: u8, src: u8, off: i16) -> Insn {
    insn(0x79, dst, src, off, 0)
}
/// `dst = *(u32 *)(src + off)`: BPF_LDX | BPF_MEM | BPF_W.
const fn load_u32(dst: u8, src: u8, off: i16) -> Insn {
    insn(0x61, dst, src, off, 0)
}
/// `if dst == imm goto +off`: BPF_JMP | BPF_JEQ | BPF_K.
const fn jeq_imm(dst: u8, imm: i32, off: i16) -> Insn {
    insn(0x15, dst, 0, off, imm)
}
/// `if dst != src goto +off`: BPF_JMP | BPF_JNE | BPF_X.
const fn jne_reg(dst: u8, src: u8, off: i16) -> Insn {
    insn(0x5d, dst, src, off, 0)
}
/// `if dst > src goto +off` (unsigned): BPF_JMP | BPF_JGT | BPF_X.
const fn jgt_reg(dst: u8, src: u8, off: i16) -> Insn {
    insn(0x2d, dst, src, off, 0)
}
/// `call helper`: BPF_JMP | BPF_CALL.
const fn call(helper: i32) -> Insn {
    insn(0x85, 0, 0, 0, helper)
}
/// `exit` (returns r0): BPF_JMP | BPF_EXIT.
const fn exit() -> Insn {
    insn(0x95, 0, 0, 0, 0)
}
/// `dst = map` (the map's fd, which the verifier turns into the map's address): BPF_LD | BPF_IMM | BPF_DW
/// with `src = BPF_PSEUDO_MAP_FD`; a 16-byte instruction, hence two slots.
const fn load_map_fd(dst: u8, fd: i32) -> [Insn; 2] {
    [insn(0x18, dst, 1, 0, fd), insn(0, 0, 0, 0, 0)]
}

/// `SK_PASS`: the chunk stays with the socket that received it (unless a redirect was set).
const SK_PASS: i32 = 1;

/// The stream-verdict program for the SOCKHASH `map_fd`, with back-pressure through the hash maps
/// `grants_fd` ([`Grant`]) and `counts_fd` ([`Count`]). In C it would read:
///
/// ```c
/// __u64 key = bpf_get_socket_cookie(skb);
/// struct grant *g = bpf_map_lookup_elem(&grants, &key);
/// if (!g) return SK_PASS;
/// struct count *c = bpf_map_lookup_elem(&counts, &key);
/// if (!c) return SK_PASS;
/// if (c->kept == g->copied && c->redirected + skb->len <= g->granted) {
///     c->redirected += skb->len;
///     return bpf_sk_redirect_hash(skb, &map, &key, 0);  // SK_PASS once set, SK_DROP without a peer
/// }
/// c->kept += skb->len;
/// return SK_PASS;                                       // kept: the proxy copies it
/// ```
///
/// The kernel runs the program for one socket at a time (under the socket's lock), and the proxy never
/// writes [`Count`], so the plain (non-atomic) updates are exact.
pub fn verdict_program(map_fd: RawFd, grants_fd: RawFd, counts_fd: RawFd) -> Vec<Insn> {
    let [ld_grants, ld_grants_hi] = load_map_fd(1, grants_fd);
    let [ld_counts, ld_counts_hi] = load_map_fd(1, counts_fd);
    let [ld_map, ld_map_hi] = load_map_fd(2, map_fd);
    vec![
        mov64_reg(6, 1),                // 0: r6 = skb (r1, the context; r1-r5 do not survive calls)
        call(HELPER_GET_SOCKET_COOKIE), // 1: r0 = cookie of the socket that received these bytes
        store_u64(10, -8, 0),           // 2: *(u64 *)(fp - 8) = r0: the key, on the stack
        ld_grants,                      // 3: r1 = &grants
        ld_grants_hi,                   // 4:   (second half of the 16-byte load)
        mov64_reg(2, 10),               // 5: r2 = fp
        add64_imm(2, -8),               // 6: r2 = &key
        call(HELPER_MAP_LOOKUP_ELEM),   // 7: r0 = grant or NULL
        jeq_imm(0, 0, 27),              // 8: no grant: goto pass (36)
        mov64_reg(7, 0),                // 9: r7 = grant
        ld_counts,                      // 10: r1 = &counts
        ld_counts_hi,                   // 11:
        mov64_reg(2, 10),               // 12: r2 = fp
        add64_imm(2, -8),               // 13: r2 = &key
        call(HELPER_MAP_LOOKUP_ELEM),   // 14: r0 = count or NULL
        jeq_imm(0, 0, 20),              // 15: no count: goto pass (36)
        load_u32(8, 6, 0),              // 16: r8 = skb->len
        load_u64(1, 0, 8),              // 17: r1 = count->kept
        load_u64(2, 7, 8),              // 18: r2 = grant->copied
        jne_reg(1, 2, 13),              // 19: kept bytes not all copied yet: goto keep (33)
        load_u64(1, 0, 0),              // 20: r1 = count->redirected
        add64_reg(1, 8),                // 21: r1 += len
        load_u64(2, 7, 0),              // 22: r2 = grant->granted
        jgt_reg(1, 2, 9),               // 23: beyond the grant: goto keep (33)
        store_u64(0, 0, 1),             // 24: count->redirected = r1
        mov64_reg(1, 6),                // 25: r1 = skb
        ld_map,                         // 26: r2 = &map
        ld_map_hi,                      // 27:
        mov64_reg(3, 10),               // 28: r3 = fp
        add64_imm(3, -8),               // 29: r3 = &key
        mov64_imm(4, 0),                // 30: r4 = flags: 0, egress of the peer
        call(HELPER_SK_REDIRECT_HASH),  // 31: r0 = SK_PASS (redirected) or SK_DROP (no peer)
        exit(),                         // 32: return r0
        load_u64(1, 0, 8),              // 33: keep: r1 = count->kept
        add64_reg(1, 8),                // 34: r1 += len
        store_u64(0, 8, 1),             // 35: count->kept = r1
        mov64_imm(0, SK_PASS),          // 36: pass: r0 = SK_PASS
        exit(),                         // 37: return r0
    ]
}

fn bpf(cmd: libc::c_long, attr: &mut [u64; 16]) -> io::Result<libc::c_long> {
    // SAFETY: attr is a zero-initialised, 128-byte `union bpf_attr` prefix laid out for `cmd`; the kernel
    // reads (and for some commands writes) at most `size` bytes of it.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), std::mem::size_of_val(attr)) };
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(r) }
}

/// Two u32 fields packed in one u64 slot of `union bpf_attr`, in memory order (little- or big-endian).
fn pair(first: u32, second: u32) -> u64 {
    let mut b = [0u8; 8];
    b[..4].copy_from_slice(&first.to_ne_bytes());
    b[4..].copy_from_slice(&second.to_ne_bytes());
    u64::from_ne_bytes(b)
}

fn owned(fd: libc::c_long) -> OwnedFd {
    // SAFETY: the bpf(2) call returned a new file descriptor that nothing else owns.
    unsafe { OwnedFd::from_raw_fd(fd as RawFd) }
}

/// A SOCKHASH map with the verdict program attached: the kernel half of kernel forwarding. Closing it
/// (dropping) detaches everything; the sockets still in it leave it when they close.
#[derive(Debug)]
pub struct SockHash {
    map: OwnedFd,
    /// [`Grant`] per receiving socket's cookie (written by the proxy).
    grants: OwnedFd,
    /// [`Count`] per receiving socket's cookie (written by the program).
    counts: OwnedFd,
    /// Kept open for the life of the map (the attachment holds its own reference too).
    _program: OwnedFd,
}

impl SockHash {
    /// Creates the map (room for `capacity` sockets, two per connection) and the grants and counts maps,
    /// loads the program and attaches it. Fails when the kernel refuses any step (not root / no CAP_BPF and CAP_NET_ADMIN, an old kernel,
    /// BPF disabled); the error names the step and carries the verifier's log when loading failed.
    pub fn new(capacity: u32) -> Result<SockHash, KernelError> {
        let mut attr = [0u64; 16];
        // map_type, key_size (the cookie), value_size (a socket fd), max_entries.
        attr[0] = pair(MAP_TYPE_SOCKHASH, 8);
        attr[1] = pair(4, capacity);
        let map = owned(bpf(BPF_MAP_CREATE, &mut attr).map_err(|e| KernelError::new("create the SOCKHASH map", e))?);
        let grants = create_hash(capacity, "create the grants map")?;
        let counts = create_hash(capacity, "create the counts map")?;

        let program = verdict_program(map.as_raw_fd(), grants.as_raw_fd(), counts.as_raw_fd());
        let license = c"Apache-2.0";
        let mut log = vec![0u8; 16 * 1024];
        let mut attr = [0u64; 16];
        attr[0] = pair(PROG_TYPE_SK_SKB, program.len() as u32);
        attr[1] = program.as_ptr() as u64;
        attr[2] = license.as_ptr() as u64;
        attr[3] = pair(1, log.len() as u32); // log_level 1, log_size
        attr[4] = log.as_mut_ptr() as u64;
        // prog_name (16 bytes, offset 48): "stolon_fwd".
        let mut name = [0u8; 16];
        name[..10].copy_from_slice(b"stolon_fwd");
        attr[6] = u64::from_ne_bytes(name[..8].try_into().unwrap_or_default());
        attr[7] = u64::from_ne_bytes(name[8..].try_into().unwrap_or_default());
        let loaded = bpf(BPF_PROG_LOAD, &mut attr);
        let program = match loaded {
            Ok(fd) => owned(fd),
            Err(e) => {
                let end = log.iter().position(|b| *b == 0).unwrap_or(log.len());
                let verifier = String::from_utf8_lossy(&log[..end]).trim().to_string();
                let step = if verifier.is_empty() {
                    "load the verdict program".to_string()
                } else {
                    format!("load the verdict program (verifier: {verifier})")
                };
                return Err(KernelError { step, source: e });
            }
        };

        let mut attr = [0u64; 16];
        // target_fd (the map), attach_bpf_fd (the program), attach_type, attach_flags.
        attr[0] = pair(map.as_raw_fd() as u32, program.as_raw_fd() as u32);
        attr[1] = pair(ATTACH_SK_SKB_VERDICT, 0);
        bpf(BPF_PROG_ATTACH, &mut attr).map_err(|e| KernelError::new("attach the verdict program to the map", e))?;
        Ok(SockHash { map, grants, counts, _program: program })
    }

    /// Stores the socket `fd` under `key` (the cookie of its peer); from then on the kernel runs the
    /// program for the bytes it receives. Only established TCP sockets are accepted.
    pub fn insert(&self, key: u64, fd: RawFd) -> io::Result<()> {
        let value = fd as u32;
        let mut attr = [0u64; 16];
        attr[0] = pair(self.map.as_raw_fd() as u32, 0);
        attr[1] = &key as *const u64 as u64;
        attr[2] = &value as *const u32 as u64;
        attr[3] = 0; // BPF_ANY
        bpf(BPF_MAP_UPDATE_ELEM, &mut attr).map(drop)
    }

    /// Removes the socket stored under `key`; a missing key is not an error.
    pub fn remove(&self, key: u64) -> io::Result<()> {
        delete(&self.map, key)
    }

    /// Sets the grant of the socket with cookie `own` (creating its entry).
    pub fn grant(&self, own: u64, grant: Grant) -> io::Result<()> {
        let value = [grant.granted, grant.copied];
        let mut attr = [0u64; 16];
        attr[0] = pair(self.grants.as_raw_fd() as u32, 0);
        attr[1] = &own as *const u64 as u64;
        attr[2] = value.as_ptr() as u64;
        attr[3] = 0; // BPF_ANY
        bpf(BPF_MAP_UPDATE_ELEM, &mut attr).map(drop)
    }

    /// Creates the (zero) count of the socket with cookie `own`.
    pub fn start_count(&self, own: u64) -> io::Result<()> {
        let value = [0u64; 2];
        let mut attr = [0u64; 16];
        attr[0] = pair(self.counts.as_raw_fd() as u32, 0);
        attr[1] = &own as *const u64 as u64;
        attr[2] = value.as_ptr() as u64;
        attr[3] = 0; // BPF_ANY
        bpf(BPF_MAP_UPDATE_ELEM, &mut attr).map(drop)
    }

    /// The count of the socket with cookie `own`.
    pub fn count(&self, own: u64) -> io::Result<Count> {
        let [redirected, kept] = lookup(&self.counts, own)?;
        Ok(Count { redirected, kept })
    }

    /// The grant of the socket with cookie `own`, as the program reads it.
    pub fn granted(&self, own: u64) -> io::Result<Grant> {
        let [granted, copied] = lookup(&self.grants, own)?;
        Ok(Grant { granted, copied })
    }

    /// Removes the grant and the count of the socket with cookie `own`; missing entries are not an error.
    pub fn forget(&self, own: u64) -> io::Result<()> {
        delete(&self.grants, own).and(delete(&self.counts, own))
    }
}

/// What the proxy allows one socket's received bytes (value of the grants map; the proxy writes it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Grant {
    /// Bytes the socket may redirect to its peer in all, since it entered the map.
    pub granted: u64,
    /// Kept bytes the proxy has copied to the peer.
    pub copied: u64,
}

/// What the program did with one socket's received bytes (value of the counts map; the program writes it).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Count {
    /// Bytes redirected to the peer's send queue (through the redirect queue).
    pub redirected: u64,
    /// Bytes kept on the socket's own receive side, for the proxy to copy.
    pub kept: u64,
}

fn lookup(map: &OwnedFd, key: u64) -> io::Result<[u64; 2]> {
    let mut value = [0u64; 2];
    let mut attr = [0u64; 16];
    attr[0] = pair(map.as_raw_fd() as u32, 0);
    attr[1] = &key as *const u64 as u64;
    attr[2] = value.as_mut_ptr() as u64;
    bpf(BPF_MAP_LOOKUP_ELEM, &mut attr)?;
    Ok(value)
}

fn delete(map: &OwnedFd, key: u64) -> io::Result<()> {
    let mut attr = [0u64; 16];
    attr[0] = pair(map.as_raw_fd() as u32, 0);
    attr[1] = &key as *const u64 as u64;
    match bpf(BPF_MAP_DELETE_ELEM, &mut attr) {
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        r => r.map(drop),
    }
}

/// A hash map from a socket cookie to two u64 ([`Grant`] or [`Count`]).
fn create_hash(capacity: u32, what: &str) -> Result<OwnedFd, KernelError> {
    let mut attr = [0u64; 16];
    attr[0] = pair(MAP_TYPE_HASH, 8);
    attr[1] = pair(16, capacity);
    Ok(owned(bpf(BPF_MAP_CREATE, &mut attr).map_err(|e| KernelError::new(what, e))?))
}

/// The kernel's cookie of a socket: unique for the life of the system, the key of its peer in the map.
pub fn socket_cookie(fd: RawFd) -> io::Result<u64> {
    let mut cookie = 0u64;
    let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `cookie`.
    let r = unsafe { libc::getsockopt(fd, libc::SOL_SOCKET, SO_COOKIE, (&mut cookie as *mut u64).cast(), &mut len) };
    if r < 0 { Err(io::Error::last_os_error()) } else { Ok(cookie) }
}

/// Why kernel forwarding is unavailable: the step that failed and the kernel's error.
#[derive(Debug, thiserror::Error)]
#[error("cannot {step}: {source}")]
pub struct KernelError {
    step: String,
    #[source]
    source: io::Error,
}

impl KernelError {
    fn new(step: &str, source: io::Error) -> KernelError {
        KernelError { step: step.to_string(), source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_program_is_thirty_eight_slots_with_its_jumps_on_target() {
        let p = verdict_program(7, 8, 9);
        assert_eq!(p.len(), 38);
        assert_eq!(p[3], Insn { code: 0x18, regs: 0x11, off: 0, imm: 8 }, "grants map fd load into r1");
        assert_eq!(p[10], Insn { code: 0x18, regs: 0x11, off: 0, imm: 9 }, "counts map fd load into r1");
        assert_eq!(p[26], Insn { code: 0x18, regs: 0x12, off: 0, imm: 7 }, "sockhash fd load into r2");
        assert_eq!(p[1].imm, HELPER_GET_SOCKET_COOKIE);
        assert_eq!((p[7].imm, p[14].imm), (HELPER_MAP_LOOKUP_ELEM, HELPER_MAP_LOOKUP_ELEM));
        assert_eq!(p[31].imm, HELPER_SK_REDIRECT_HASH);
        let target = |i: usize| (i as i16 + 1 + p[i].off) as usize;
        assert_eq!((target(8), target(15)), (36, 36), "no entry: pass");
        assert_eq!((target(19), target(23)), (33, 33), "not all copied, or beyond the grant: keep");
        assert_eq!((p[32].code, p[37].code), (0x95, 0x95));
        assert_eq!(p[36], mov64_imm(0, SK_PASS));
        assert_eq!(std::mem::size_of::<Insn>(), 8);
    }
}

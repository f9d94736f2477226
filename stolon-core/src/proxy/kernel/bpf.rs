//! The eBPF side of kernel forwarding, without a BPF compiler: the stream-verdict program is written below
//! as its instruction sequence, and the SOCKHASH map and the program are created, loaded and attached with
//! bpf(2) through libc. Nothing here is a binary blob: every instruction is spelled out and commented.
//!
//! The map holds both sockets of every forwarded connection, each one **under the socket cookie of its
//! peer**. The program, run by the kernel for every chunk of bytes a socket of the map receives, reads the
//! cookie of that socket and redirects the bytes to the send queue of the socket stored under that cookie:
//! the other end of the same connection. A socket whose peer is no longer in the map has its bytes dropped.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// `BPF_MAP_CREATE` and the other bpf(2) commands used (linux/bpf.h, `enum bpf_cmd`).
const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_UPDATE_ELEM: libc::c_long = 2;
const BPF_MAP_DELETE_ELEM: libc::c_long = 3;
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
/// `BPF_MAP_TYPE_SOCKHASH` (linux 4.18).
const MAP_TYPE_SOCKHASH: u32 = 18;
/// `BPF_PROG_TYPE_SK_SKB` (linux 4.14).
const PROG_TYPE_SK_SKB: u32 = 14;
/// `BPF_SK_SKB_VERDICT` (linux 5.13): a verdict program without a stream parser.
const ATTACH_SK_SKB_VERDICT: u32 = 38;
/// Helper `bpf_get_socket_cookie` (number 46 in `__BPF_FUNC_MAPPER`).
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

/// The stream-verdict program for the SOCKHASH `map_fd`; in C it would read
/// `__u64 key = bpf_get_socket_cookie(skb); return bpf_sk_redirect_hash(skb, &map, &key, 0);`
/// (flags 0: to the peer's *send* queue). `bpf_sk_redirect_hash` returns `SK_PASS` once the redirect is
/// set, `SK_DROP` when no socket is stored under the key.
pub fn verdict_program(map_fd: RawFd) -> Vec<Insn> {
    let [ld_map, ld_map_hi] = load_map_fd(2, map_fd);
    vec![
        mov64_reg(6, 1),                // r6 = skb (r1, the context; r1-r5 do not survive calls)
        call(HELPER_GET_SOCKET_COOKIE), // r0 = cookie of the socket that received these bytes
        store_u64(10, -8, 0),           // *(u64 *)(fp - 8) = r0: the key, on the stack
        ld_map,                         // r2 = &map
        ld_map_hi,                      //   (second half of the 16-byte load)
        mov64_reg(1, 6),                // r1 = skb
        mov64_reg(3, 10),               // r3 = fp
        add64_imm(3, -8),               // r3 = fp - 8 = &key
        mov64_imm(4, 0),                // r4 = flags: 0, egress of the peer
        call(HELPER_SK_REDIRECT_HASH),  // r0 = SK_PASS (redirected) or SK_DROP (no peer)
        exit(),                         // return r0
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
    /// Kept open for the life of the map (the attachment holds its own reference too).
    _program: OwnedFd,
}

impl SockHash {
    /// Creates the map (room for `capacity` sockets, two per connection), loads the program and attaches
    /// it. Fails when the kernel refuses any step (not root / no CAP_BPF and CAP_NET_ADMIN, an old kernel,
    /// BPF disabled); the error names the step and carries the verifier's log when loading failed.
    pub fn new(capacity: u32) -> Result<SockHash, KernelError> {
        let mut attr = [0u64; 16];
        // map_type, key_size (the cookie), value_size (a socket fd), max_entries.
        attr[0] = pair(MAP_TYPE_SOCKHASH, 8);
        attr[1] = pair(4, capacity);
        let map = owned(bpf(BPF_MAP_CREATE, &mut attr).map_err(|e| KernelError::new("create the SOCKHASH map", e))?);

        let program = verdict_program(map.as_raw_fd());
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
        Ok(SockHash { map, _program: program })
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
        let mut attr = [0u64; 16];
        attr[0] = pair(self.map.as_raw_fd() as u32, 0);
        attr[1] = &key as *const u64 as u64;
        match bpf(BPF_MAP_DELETE_ELEM, &mut attr) {
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Ok(()),
            r => r.map(drop),
        }
    }
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
    fn the_program_is_eleven_slots_ending_in_exit() {
        let p = verdict_program(7);
        assert_eq!(p.len(), 11);
        assert_eq!(p[3], Insn { code: 0x18, regs: 0x12, off: 0, imm: 7 }, "map fd load into r2");
        assert_eq!(p[1].imm, HELPER_GET_SOCKET_COOKIE);
        assert_eq!(p[9].imm, HELPER_SK_REDIRECT_HASH);
        assert_eq!(p.last().unwrap().code, 0x95);
        assert_eq!(std::mem::size_of::<Insn>(), 8);
    }
}

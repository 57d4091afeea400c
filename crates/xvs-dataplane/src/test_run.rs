//! Test hooks of the loaded program: one run on a frame through
//! `BPF_PROG_TEST_RUN` (the fixtures, the scheduler tests and the bench
//! use it), the same for the egress program of local dests, and the
//! program's test random source.

use std::mem::offset_of;
use std::time::Duration;

use libbpf_rs::libbpf_sys::{self, xdp_md};
use libbpf_rs::{MapCore, MapFlags, ProgramInput, ProgramMut};

use crate::abi::as_bytes as bytes;
use crate::dataplane::Dataplane;
use crate::error::{bpf_err, Error};
use crate::mode::AttachMode;

const XDP_DROP: u32 = libbpf_sys::XDP_DROP;
const XDP_PASS: u32 = libbpf_sys::XDP_PASS;
const XDP_TX: u32 = libbpf_sys::XDP_TX;
const XDP_REDIRECT: u32 = libbpf_sys::XDP_REDIRECT;
/// `TC_ACT_*` of `<linux/pkt_cls.h>` (not in libbpf's bindings).
const TC_ACT_OK: u32 = 0;
const TC_ACT_SHOT: u32 = 2;
const TC_ACT_REDIRECT: u32 = 7;

/// Words of `struct xdp_md` the run's context fills.
const XDP_MD_WORDS: usize = size_of::<xdp_md>() / 4;
const XDP_DATA_END: usize = offset_of!(xdp_md, data_end) / 4;
const XDP_INGRESS_IFINDEX: usize = offset_of!(xdp_md, ingress_ifindex) / 4;
/// Words of `struct __sk_buff` (UAPI, stable) up to the end of `cb[4]`:
/// `ingress_ifindex` is word 9, `ifindex` 10, `cb` 12..17.
const SKB_WORDS: usize = 17;
const SKB_INGRESS_IFINDEX: usize = 9;
const SKB_IFINDEX: usize = 10;
const SKB_CB0: usize = 12;

/// `(verdict, bytes of output, duration)` of one run.
type Run = (u32, usize, Duration);

impl Dataplane {
    /// Runs the program once on `frame` with `BPF_PROG_TEST_RUN` (root).
    /// `ingress_ifindex` selects the receiving device (in the calling
    /// thread's network namespace; default loopback). Returns the verdict
    /// as an XDP action code, in either mode (see
    /// [`Dataplane::test_run_timed`]), and the frame as the program left
    /// it.
    pub fn test_run(
        &self,
        frame: &[u8],
        ingress_ifindex: Option<u32>,
    ) -> Result<(u32, Vec<u8>), Error> {
        self.test_run_timed(frame, ingress_ifindex)
            .map(|(v, out, _)| (v, out))
    }

    /// [`Dataplane::test_run`], also returning the kernel-measured
    /// duration of the program run (`repeat` 1: one run on this frame).
    /// A tc verdict is reported as the XDP action it corresponds to:
    /// `TC_ACT_OK` as `XDP_PASS`, `TC_ACT_SHOT` as `XDP_DROP`, and
    /// `TC_ACT_REDIRECT` as `XDP_TX` when the program sent the frame back
    /// out of the ingress device (it notes the device in `cb[0]`), else
    /// `XDP_REDIRECT`; so fixtures hold for both programs.
    pub fn test_run_timed(
        &self,
        frame: &[u8],
        ingress_ifindex: Option<u32>,
    ) -> Result<(u32, Vec<u8>, Duration), Error> {
        let name = self.mode.prog_name();
        let prog = self
            .obj
            .progs_mut()
            .find(|p| p.name() == name)
            .ok_or_else(|| Error::Abi(format!("program {name} missing")))?;
        let mut out = vec![0u8; frame.len() + 256];
        let run = TestRun {
            prog: &prog,
            frame,
            ingress_ifindex,
        };
        let (ret, n, duration) = match self.mode {
            AttachMode::Xdp => run.xdp(&mut out)?,
            AttachMode::Tc => run.tc(&mut out)?,
        };
        out.truncate(n);
        Ok((ret, out, duration))
    }

    /// Runs `xvs_local_out` (the egress program of local NAT dests'
    /// answers) once on `frame`, as it leaves the director's stack; the
    /// verdict as [`Dataplane::test_run_timed`] reports tc's. Refused
    /// where the kernel could not load it (feature `local_out`).
    pub fn test_run_local_out(&self, frame: &[u8]) -> Result<(u32, Vec<u8>), Error> {
        let l = self
            .local_out
            .as_ref()
            .ok_or_else(|| Error::Unsupported("xvs_local_out is not loaded".into()))?;
        let prog = l.prog_mut()?;
        let mut out = vec![0u8; frame.len() + 256];
        let run = TestRun {
            prog: &prog,
            frame,
            ingress_ifindex: None,
        };
        let (ret, n, _) = run.tc(&mut out)?;
        out.truncate(n);
        Ok((ret, out))
    }

    /// Test hook: with a non-zero `seed`, the program draws twos' random
    /// numbers from an xorshift64 generator in that state
    /// ([`xorshift_next`]) instead of `bpf_get_prandom_u32`; 0 restores
    /// the real source.
    pub fn set_test_rand(&self, seed: u64) -> Result<(), Error> {
        self.maps
            .rand
            .update(bytes(&0u32), bytes(&seed), MapFlags::ANY)
            .map_err(bpf_err("XVS_RAND update"))
    }
}

// Kernels before 5.15 take no xdp_md, before 5.11(?) no ingress_ifindex
// in an __sk_buff: the run is retried without, and a run that needed it
// is refused (`Error::Unsupported`).
fn refused(e: &libbpf_rs::Error) -> bool {
    e.kind() == libbpf_rs::ErrorKind::InvalidInput
}

fn no_ctx() -> Error {
    Error::Unsupported(
        "BPF_PROG_TEST_RUN with an ingress interface: this kernel takes no such \
         context (xdp_md 5.15+, __sk_buff ingress_ifindex)"
            .into(),
    )
}

/// One run's input: the program, the frame, the receiving device.
struct TestRun<'a> {
    prog: &'a ProgramMut<'a>,
    frame: &'a [u8],
    ingress_ifindex: Option<u32>,
}

impl TestRun<'_> {
    /// One run of `xvs_xdp`.
    fn xdp(&self, out: &mut [u8]) -> Result<Run, Error> {
        let mut ctx = [0u32; XDP_MD_WORDS];
        ctx[XDP_DATA_END] = self.frame.len() as u32;
        ctx[XDP_INGRESS_IFINDEX] = self.ingress_ifindex.unwrap_or(0);
        let ctx_bytes = u32s_as_bytes(&mut ctx);
        let input = ProgramInput {
            data_in: Some(self.frame),
            data_out: Some(out),
            context_in: self.ingress_ifindex.map(|_| ctx_bytes),
            ..Default::default()
        };
        let r = match self.prog.test_run(input) {
            Err(e) if self.ingress_ifindex.is_some() && refused(&e) => {
                let mut probe = vec![0u8; self.frame.len() + 256];
                let plain = ProgramInput {
                    data_in: Some(self.frame),
                    data_out: Some(&mut probe),
                    ..Default::default()
                };
                return Err(match self.prog.test_run(plain) {
                    Ok(_) => no_ctx(),
                    Err(_) => bpf_err("BPF_PROG_TEST_RUN")(e),
                });
            }
            r => r.map_err(bpf_err("BPF_PROG_TEST_RUN"))?,
        };
        Ok((r.return_value, r.data.map_or(0, |d| d.len()), r.duration))
    }

    /// One run of `xvs_tc`, its verdict as the XDP action it corresponds to.
    fn tc(&self, out: &mut [u8]) -> Result<Run, Error> {
        // Loopback (1) is what the kernel uses without a device, as for XDP.
        let iif = self.ingress_ifindex.unwrap_or(1);
        let mut ctx = [0u32; SKB_WORDS];
        ctx[SKB_INGRESS_IFINDEX] = iif;
        ctx[SKB_IFINDEX] = iif;
        // The kernel copies all of its __sk_buff back (ENOSPC if smaller).
        let mut ctx_out = [0u32; 64];
        let run = |ctx: &mut [u32; SKB_WORDS], ctx_out: &mut [u32; 64], out: &mut [u8]| {
            let input = ProgramInput {
                data_in: Some(self.frame),
                data_out: Some(out),
                context_in: Some(u32s_as_bytes(ctx)),
                context_out: Some(u32s_as_bytes(ctx_out)),
                ..Default::default()
            };
            self.prog
                .test_run(input)
                .map(|r| (r.return_value, r.data.map_or(0, |d| d.len()), r.duration))
        };
        let (rv, n, duration) = match run(&mut ctx, &mut ctx_out, out) {
            Err(e) if refused(&e) => {
                ctx[SKB_INGRESS_IFINDEX] = 0;
                match run(&mut ctx, &mut ctx_out, out) {
                    Ok(_) if self.ingress_ifindex.is_some() => return Err(no_ctx()),
                    Ok(r) => r,
                    Err(_) => return Err(bpf_err("BPF_PROG_TEST_RUN")(e)),
                }
            }
            r => r.map_err(bpf_err("BPF_PROG_TEST_RUN"))?,
        };
        let v = match rv {
            TC_ACT_OK => XDP_PASS,
            TC_ACT_SHOT => XDP_DROP,
            TC_ACT_REDIRECT if ctx_out[SKB_CB0] == iif => XDP_TX,
            TC_ACT_REDIRECT => XDP_REDIRECT,
            other => other,
        };
        Ok((v, n, duration))
    }
}

fn u32s_as_bytes(w: &mut [u32]) -> &mut [u8] {
    // SAFETY: u32 has no padding and a stricter alignment than u8.
    unsafe { std::slice::from_raw_parts_mut(w.as_mut_ptr() as *mut u8, w.len() * 4) }
}

/// The test random source of the program ([`Dataplane::set_test_rand`]):
/// advances `state` (xorshift64 13/7/17) and returns its high 32 bits.
pub fn xorshift_next(state: &mut u64) -> u32 {
    let mut x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    *state = x;
    (x >> 32) as u32
}

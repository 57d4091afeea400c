//! Where the program hooks into an interface's receive path, and which
//! build that takes.

use crate::error::Error;
use crate::features;

/// Where the data plane hooks into the receive path of an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AttachMode {
    /// XDP (`xvs_xdp`): native, falling back to generic. The fastest
    /// path on NICs whose driver runs XDP before any skb exists.
    #[default]
    Xdp,
    /// tc clsact ingress (`xvs_tc`): the packet stays an skb. Faster on
    /// veth and other virtual devices, where native XDP has to convert
    /// (and usually copy) every skb, and it forwards GRO/GSO packets
    /// whole.
    Tc,
}

impl AttachMode {
    /// `xdp` or `tc`.
    pub fn name(self) -> &'static str {
        match self {
            AttachMode::Xdp => "xdp",
            AttachMode::Tc => "tc",
        }
    }

    /// Whether the program of this mode can use `f` at all.
    pub fn uses(self, f: features::Feature) -> bool {
        self == AttachMode::Tc || (f != features::REDIRECT_PEER && f != features::CSUM_STATE)
    }

    /// The program's name in its object.
    pub(crate) fn prog_name(self) -> &'static str {
        match self {
            AttachMode::Xdp => "xvs_xdp",
            AttachMode::Tc => "xvs_tc",
        }
    }
}

impl std::str::FromStr for AttachMode {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        match s {
            "xdp" => Ok(AttachMode::Xdp),
            "tc" => Ok(AttachMode::Tc),
            _ => Err(Error::Invalid(format!(
                "attach mode `{s}`: expected `xdp` or `tc`"
            ))),
        }
    }
}

/// tc filter handle and priority of `xvs_tc` on clsact ingress: fixed, so
/// that a restarted daemon replaces its predecessor's filter.
pub(crate) const TC_HANDLE: u32 = 0x7876;
pub(crate) const TC_PRIORITY: u32 = 1;

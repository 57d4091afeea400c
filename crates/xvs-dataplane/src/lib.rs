//! The XDP data plane of xvs (being built; see the API contract in the repo notes).

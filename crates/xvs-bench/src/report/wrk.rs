//! Reading `wrk`'s output.

use anyhow::{bail, Context, Result};

/// What one `wrk` run reports.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Wrk {
    pub rps: f64,
    pub p99_ms: f64,
    pub requests: u64,
    pub errors: u64,
}

pub(super) fn duration_ms(s: &str) -> Option<f64> {
    let s = s.trim();
    let (num, mul) = if let Some(v) = s.strip_suffix("us") {
        (v, 1e-3)
    } else if let Some(v) = s.strip_suffix("ms") {
        (v, 1.0)
    } else if let Some(v) = s.strip_suffix('s') {
        (v, 1e3)
    } else if let Some(v) = s.strip_suffix('m') {
        (v, 60e3)
    } else {
        return None;
    };
    num.parse::<f64>().ok().map(|n| n * mul)
}

/// Parse `wrk --latency` output.
pub fn parse_wrk(out: &str) -> Result<Wrk> {
    let mut w = Wrk {
        rps: f64::NAN,
        p99_ms: f64::NAN,
        requests: 0,
        errors: 0,
    };
    for l in out.lines().map(str::trim) {
        if let Some(v) = l.strip_prefix("Requests/sec:") {
            w.rps = v.trim().parse().context("Requests/sec")?;
        } else if let Some(v) = l.strip_prefix("99%") {
            w.p99_ms = duration_ms(v).context("99% latency")?;
        } else if l.contains(" requests in ") {
            w.requests = l
                .split_whitespace()
                .next()
                .and_then(|n| n.parse().ok())
                .context("requests")?;
        } else if let Some(v) = l.strip_prefix("Socket errors:") {
            w.errors += v
                .split(',')
                .filter_map(|p| p.split_whitespace().last()?.parse::<u64>().ok())
                .sum::<u64>();
        } else if let Some(v) = l.strip_prefix("Non-2xx or 3xx responses:") {
            w.errors += v.trim().parse::<u64>().unwrap_or(0);
        }
    }
    if w.rps.is_nan() || w.p99_ms.is_nan() {
        bail!("no Requests/sec or 99% line");
    }
    Ok(w)
}

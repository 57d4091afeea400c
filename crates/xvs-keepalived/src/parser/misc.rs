//! `MISC_CHECK` keywords (keepalived's `check_misc.c`).

use super::*;

impl P {
    /// A `MISC_CHECK` keyword; true if handled.
    pub(super) fn misc_keyword(
        &mut self,
        script: &mut Option<Script>,
        timeout: &mut Option<Duration>,
        dynamic: &mut bool,
        user: &mut Option<ScriptUser>,
        c: &Node,
    ) -> bool {
        match c.kw() {
            "misc_path" => {
                *script = self.script(c);
                true
            }
            "misc_timeout" => {
                *timeout = self
                    .uint(c, 0, u32::MAX as u64 / 1_000_000)
                    .map(Duration::from_secs)
                    .or(*timeout);
                true
            }
            "misc_dynamic" => {
                *dynamic = true;
                true
            }
            "user" => {
                if let Some(u) = self.arg(c, 1, "user name") {
                    *user = Some(ScriptUser {
                        user: u.to_string(),
                        group: c.words.get(2).cloned(),
                    });
                }
                true
            }
            _ => false,
        }
    }
}

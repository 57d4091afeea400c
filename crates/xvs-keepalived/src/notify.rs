//! The lines keepalived's VRRP process writes to a notify FIFO
//! (`notify_fifo`, `vrrp_notify_fifo`), as `vrrp/vrrp_notify.c`'s
//! `notify_fifo()` formats them:
//!
//! ```text
//! INSTANCE "VI_1" MASTER 150
//! GROUP "VG_1" BACKUP 0
//! ```
//!
//! `TYPE "NAME" STATE PRIORITY` and a newline: `TYPE` is `INSTANCE` or
//! `GROUP` (a `vrrp_sync_group`), the name is in double quotes (it may hold
//! blanks), `PRIORITY` is the instance's effective priority in decimal (0
//! for groups). `STATE` is `MASTER`, `BACKUP`, `FAULT`, `STOP` or `DELETED`
//! (`send_instance_notifies`, `send_group_notifies`; `STOP` for each
//! instance and group when keepalived stops, `DELETED` only with an
//! instance's `notify_deleted`, else a removed instance is reported
//! `FAULT`); instances also have the events `MASTER_RX_LOWER_PRI`
//! (`send_event_notify`) and, with `vrrp_notify_priority_changes`,
//! `MASTER_PRIORITY` / `BACKUP_PRIORITY` (`send_instance_priority_notifies`).
//! Any other state number is written `{UNKNOWN}`. keepalived's checker
//! process writes `VS ...` and `RS ...` lines to `notify_fifo` and
//! `lvs_notify_fifo`; those are not VRRP events.

use serde::{Deserialize, Serialize};

/// What a notify line is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum NotifyKind {
    /// `INSTANCE`: a `vrrp_instance`.
    Instance,
    /// `GROUP`: a `vrrp_sync_group`.
    Group,
}

/// The state (or event) of a notify line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum NotifyState {
    /// `MASTER`.
    Master,
    /// `BACKUP`.
    Backup,
    /// `FAULT` (also a deleted instance without `notify_deleted`).
    Fault,
    /// `STOP`: keepalived is stopping.
    Stop,
    /// `DELETED`: the instance was removed by a reload (`notify_deleted`).
    Deleted,
    /// `MASTER_RX_LOWER_PRI`: a master received an advert of lower
    /// priority (instances only; the state stays MASTER).
    MasterRxLowerPri,
    /// `MASTER_PRIORITY`: a master's priority changed (instances only).
    MasterPriority,
    /// `BACKUP_PRIORITY`: a backup's priority changed (instances only).
    BackupPriority,
    /// `{UNKNOWN}`: keepalived had no name for the state (e.g. INIT).
    Unknown,
}

impl NotifyState {
    /// The word keepalived writes.
    pub fn as_str(self) -> &'static str {
        match self {
            NotifyState::Master => "MASTER",
            NotifyState::Backup => "BACKUP",
            NotifyState::Fault => "FAULT",
            NotifyState::Stop => "STOP",
            NotifyState::Deleted => "DELETED",
            NotifyState::MasterRxLowerPri => "MASTER_RX_LOWER_PRI",
            NotifyState::MasterPriority => "MASTER_PRIORITY",
            NotifyState::BackupPriority => "BACKUP_PRIORITY",
            NotifyState::Unknown => "{UNKNOWN}",
        }
    }

    fn parse(s: &str) -> Option<NotifyState> {
        Some(match s {
            "MASTER" => NotifyState::Master,
            "BACKUP" => NotifyState::Backup,
            "FAULT" => NotifyState::Fault,
            "STOP" => NotifyState::Stop,
            "DELETED" => NotifyState::Deleted,
            "MASTER_RX_LOWER_PRI" => NotifyState::MasterRxLowerPri,
            "MASTER_PRIORITY" => NotifyState::MasterPriority,
            "BACKUP_PRIORITY" => NotifyState::BackupPriority,
            "{UNKNOWN}" => NotifyState::Unknown,
            _ => return None,
        })
    }

    /// True for the events that report no state change
    /// (`MASTER_RX_LOWER_PRI`, `MASTER_PRIORITY`, `BACKUP_PRIORITY`).
    pub fn is_event(self) -> bool {
        matches!(
            self,
            NotifyState::MasterRxLowerPri
                | NotifyState::MasterPriority
                | NotifyState::BackupPriority
        )
    }
}

/// One VRRP line of a notify FIFO.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotifyEvent {
    /// `INSTANCE` or `GROUP`.
    pub kind: NotifyKind,
    /// The instance or sync group name, without its quotes.
    pub name: String,
    /// The new state, or the event.
    pub state: NotifyState,
    /// The instance's effective priority; `None` for groups (keepalived
    /// always writes 0 for them).
    pub priority: Option<u8>,
}

/// Reads one line keepalived's VRRP process wrote to a notify FIFO
/// (`INSTANCE "VI_1" MASTER 150`, with or without its newline). `None` for
/// anything else: the checker's `VS`/`RS` lines, an unknown state, a
/// priority that is not 0..255, extra or missing fields, an event state on
/// a `GROUP` line.
pub fn parse_notify_line(line: &str) -> Option<NotifyEvent> {
    let line = line.strip_suffix('\n').unwrap_or(line);
    let line = line.strip_suffix('\r').unwrap_or(line);
    let (kind, rest) = if let Some(r) = line.strip_prefix("INSTANCE \"") {
        (NotifyKind::Instance, r)
    } else if let Some(r) = line.strip_prefix("GROUP \"") {
        (NotifyKind::Group, r)
    } else {
        return None;
    };
    // The name is written as is, so it ends at the last quote.
    let close = rest.rfind('"')?;
    let name = &rest[..close];
    let tail = rest[close + 1..].strip_prefix(' ')?;
    let (state, prio) = tail.split_once(' ')?;
    let state = NotifyState::parse(state)?;
    if prio.is_empty() || prio.len() > 3 || !prio.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let prio: u8 = prio.parse().ok()?;
    let priority = match kind {
        NotifyKind::Instance => Some(prio),
        NotifyKind::Group if state.is_event() => return None,
        NotifyKind::Group => None,
    };
    Some(NotifyEvent {
        kind,
        name: name.to_string(),
        state,
        priority,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inst(name: &str, state: NotifyState, prio: u8) -> Option<NotifyEvent> {
        Some(NotifyEvent {
            kind: NotifyKind::Instance,
            name: name.into(),
            state,
            priority: Some(prio),
        })
    }

    fn group(name: &str, state: NotifyState) -> Option<NotifyEvent> {
        Some(NotifyEvent {
            kind: NotifyKind::Group,
            name: name.into(),
            state,
            priority: None,
        })
    }

    #[test]
    fn instance_states() {
        use NotifyState::*;
        for (word, state) in [
            ("MASTER", Master),
            ("BACKUP", Backup),
            ("FAULT", Fault),
            ("STOP", Stop),
            ("DELETED", Deleted),
            ("MASTER_RX_LOWER_PRI", MasterRxLowerPri),
            ("MASTER_PRIORITY", MasterPriority),
            ("BACKUP_PRIORITY", BackupPriority),
            ("{UNKNOWN}", Unknown),
        ] {
            let line = format!("INSTANCE \"VI_1\" {word} 150\n");
            assert_eq!(parse_notify_line(&line), inst("VI_1", state, 150), "{line}");
            assert_eq!(state.as_str(), word);
        }
    }

    #[test]
    fn group_states() {
        use NotifyState::*;
        for (word, state) in [
            ("MASTER", Master),
            ("BACKUP", Backup),
            ("FAULT", Fault),
            ("STOP", Stop),
            ("DELETED", Deleted),
            ("{UNKNOWN}", Unknown),
        ] {
            let line = format!("GROUP \"VG1\" {word} 0\n");
            assert_eq!(parse_notify_line(&line), group("VG1", state), "{line}");
        }
        // keepalived reports no events for groups.
        for word in ["MASTER_RX_LOWER_PRI", "MASTER_PRIORITY", "BACKUP_PRIORITY"] {
            assert_eq!(parse_notify_line(&format!("GROUP \"G\" {word} 0")), None);
        }
    }

    #[test]
    fn priorities_and_names() {
        use NotifyState::*;
        assert_eq!(
            parse_notify_line("INSTANCE \"VI_1\" BACKUP 0"),
            inst("VI_1", Backup, 0)
        );
        assert_eq!(
            parse_notify_line("INSTANCE \"x\" MASTER 255\r\n"),
            inst("x", Master, 255)
        );
        // A quoted name in the configuration may hold blanks (and quotes).
        assert_eq!(
            parse_notify_line("INSTANCE \"my inst\" FAULT 100\n"),
            inst("my inst", Fault, 100)
        );
        assert_eq!(
            parse_notify_line("INSTANCE \"a\"b\" STOP 1"),
            inst("a\"b", Stop, 1)
        );
        assert_eq!(
            parse_notify_line("INSTANCE \"\" MASTER 1"),
            inst("", Master, 1)
        );
    }

    #[test]
    fn other_lines() {
        for line in [
            "",
            "\n",
            "VS [192.168.201.15]:tcp:80 UP\n",
            "RS [1.2.3.4]:tcp:80 [192.168.201.15]:tcp:80 DOWN\n",
            "INSTANCE VI_1 MASTER 150",
            "INSTANCE \"VI_1\" MASTER",
            "INSTANCE \"VI_1\" MASTER 256",
            "INSTANCE \"VI_1\" MASTER -1",
            "INSTANCE \"VI_1\" MASTER 1000",
            "INSTANCE \"VI_1\" MASTER 15 0",
            "INSTANCE \"VI_1\"  MASTER 150",
            "INSTANCE \"VI_1\" master 150",
            "INSTANCE \"VI_1\" INIT 150",
            "instance \"VI_1\" MASTER 150",
            "INSTANCE \"VI_1 MASTER 150",
            "SYNC \"VG\" MASTER 0",
        ] {
            assert_eq!(parse_notify_line(line), None, "{line:?}");
        }
    }
}

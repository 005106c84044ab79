//! Who this process is: the machine's host name, its boot, and the
//! process's id and start time. An import records its owner this way
//! ([`crate::registry::import_lease`]), an upload's file name carries its
//! process ([`crate::data_dir`]), a node names itself by host
//! ([`crate::cluster`]); each asks here whether a process is gone.

use std::sync::OnceLock;

/// This machine's host name (`localhost` when it has none).
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".into())
}

/// This process, as an import's owner: `host/boot/`[`process_token`].
pub fn this_process() -> &'static str {
    static OWNER: OnceLock<String> = OnceLock::new();
    OWNER.get_or_init(|| {
        let host = host_name();
        let boot = boot_id().unwrap_or_default();
        format!("{host}/{boot}/{}", process_token())
    })
}

fn read_trimmed(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

/// This boot of this machine.
pub fn boot_id() -> Option<String> {
    read_trimmed("/proc/sys/kernel/random/boot_id")
}

/// A process's start time (clock ticks since boot, field 22 of its stat).
pub(crate) fn start_time(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count
    // from the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(19).map(String::from)
}

/// This process on this machine (its id and start time), for a file name:
/// `pid.start`.
pub fn process_token() -> &'static str {
    static TOKEN: OnceLock<String> = OnceLock::new();
    TOKEN.get_or_init(|| {
        let pid = std::process::id();
        format!("{pid}.{}", start_time(pid).unwrap_or_default())
    })
}

/// Whether the process a [`process_token`] names (on this machine) is gone;
/// a token that is not one counts as gone.
pub fn process_token_is_gone(token: &str) -> bool {
    let Some((pid, start)) = token.split_once('.') else { return true };
    !pid.parse::<u32>().ok().and_then(start_time).is_some_and(|s| !s.is_empty() && s == start)
}

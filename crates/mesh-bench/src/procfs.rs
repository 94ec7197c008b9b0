//! What the kernel says about a process: resident memory and CPU time, from `/proc/<pid>`.

/// Resident memory of a process, in KiB.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Rss {
    /// `VmRSS`: resident now.
    pub rss_kib: u64,
    /// `VmHWM`: the peak resident size since the process started.
    pub hwm_kib: u64,
}

/// `VmRSS` and `VmHWM` of `pid`; `None` when the process is gone or `/proc` is unavailable.
pub fn rss(pid: u32) -> Option<Rss> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
    };
    Some(Rss { rss_kib: field("VmRSS:")?, hwm_kib: field("VmHWM:")? })
}

/// User + system CPU time of `pid` so far, in microseconds (clock-tick resolution, usually 10 ms).
pub fn cpu_us(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces and parentheses: count from the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // After ")": state is field 3, so utime (14) and stime (15) are at offsets 11 and 12.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(ticks * 1_000_000 / USER_HZ)
}

/// Clock ticks per second in `/proc/<pid>/stat`: `USER_HZ`, fixed at 100 in Linux's user ABI.
const USER_HZ: u64 = 100;

#[cfg(test)]
mod tests {
    #[test]
    fn reads_own_process() {
        let me = std::process::id();
        let r = super::rss(me).expect("rss");
        assert!(r.rss_kib > 0 && r.hwm_kib >= r.rss_kib);
        assert!(super::cpu_us(me).is_some());
    }
}

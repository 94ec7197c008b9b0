//! Finding the processes a test started, through `/proc` (tests run as the same user).

/// Pids of live processes whose environment has `MESH_TEST_MARKER={marker}`. A zombie's
/// environ reads empty, so zombies are not counted here (see [`zombie_children`]).
pub fn with_marker(marker: &str) -> Vec<u32> {
    let needle = format!("MESH_TEST_MARKER={marker}");
    pids()
        .into_iter()
        .filter(|pid| {
            let env = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            env.split(|b| *b == 0).any(|kv| kv == needle.as_bytes())
        })
        .collect()
}

/// Children of this process that are zombies (exited but never reaped).
pub fn zombie_children() -> Vec<u32> {
    let me = std::process::id().to_string();
    pids()
        .into_iter()
        .filter(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            // Fields after the ")" of the command name: state, ppid, …
            let rest: Vec<&str> =
                stat.rsplit_once(')').map(|(_, r)| r.split_whitespace().collect()).unwrap_or_default();
            rest.first() == Some(&"Z") && rest.get(1) == Some(&me.as_str())
        })
        .collect()
}

fn pids() -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else { return Vec::new() };
    dir.filter_map(|e| e.ok()).filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok())).collect()
}

//! The live process side of inspection: `/proc/PID/exe`, `/proc/PID/maps`
//! (load bias) and `/proc/PID/mem` (reads of runtime data).

use std::fs::File;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::TargetError;

/// `true` if a process with this pid exists and has not exited: a zombie
/// (exited, not yet reaped by its parent) counts as exited.
pub fn process_is_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // "pid (comm) S ...": comm may contain spaces and parentheses, the
        // state follows the last ')'.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.trim_start().chars().next())
            .is_some_and(|state| !matches!(state, 'Z' | 'X' | 'x')),
        Err(_) => false,
    }
}

/// CPU time the process has used so far (user + system, all threads), in
/// ns; `None` when it is gone.
pub fn process_cpu_ns(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let ticks = parse_cpu_ticks(&stat)?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let hz = u64::try_from(hz).ok().filter(|&h| h > 0)?;
    Some(ticks * (1_000_000_000 / hz))
}

/// When the process started, Unix nanoseconds: `starttime` (field 22 of
/// `/proc/PID/stat`, clock ticks since boot) plus the boot time (`btime` of
/// `/proc/stat`).
pub fn process_start_unix_ns(pid: u32) -> Option<i64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (_, rest) = stat.rsplit_once(')')?;
    let ticks: i64 = rest.split_whitespace().nth(19)?.parse().ok()?;
    let boot_s: i64 = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = i64::from(unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as i32).max(1);
    Some(boot_s * 1_000_000_000 + ticks * (1_000_000_000 / hz))
}

/// utime + stime (fields 14 and 15 of `/proc/PID/stat`, after the command
/// name, which may contain spaces and parentheses).
fn parse_cpu_ticks(stat: &str) -> Option<u64> {
    let (_, rest) = stat.rsplit_once(')')?;
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

/// The target's resident memory and thread count, from `/proc/PID/status`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ProcessUsage {
    pub rss_bytes: Option<u64>,
    pub threads: Option<u64>,
}

/// Reads [`ProcessUsage`]; fields are `None` when the process is gone or
/// the file cannot be read.
pub fn process_usage(pid: u32) -> ProcessUsage {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map(|status| parse_status(&status))
        .unwrap_or_default()
}

fn parse_status(status: &str) -> ProcessUsage {
    let field = |name: &str| {
        status.lines().find_map(|line| {
            let value = line.strip_prefix(name)?.strip_prefix(':')?;
            value.split_whitespace().next()?.parse::<u64>().ok()
        })
    };
    ProcessUsage {
        rss_bytes: field("VmRSS").map(|kib| kib * 1024),
        threads: field("Threads"),
    }
}

pub(crate) fn exe_path(pid: u32) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}/exe"))
}

/// Maps an I/O error on a `/proc/PID/...` file to the error the user should see.
pub(crate) fn proc_error(pid: u32, path: &Path, error: io::Error, started: bool) -> TargetError {
    match error.raw_os_error() {
        Some(libc::EACCES) | Some(libc::EPERM) => TargetError::PermissionDenied { pid },
        Some(libc::ENOENT) | Some(libc::ESRCH) if !process_is_alive(pid) => {
            if started {
                TargetError::ProcessExited { pid }
            } else {
                TargetError::NoSuchProcess { pid }
            }
        }
        _ => TargetError::Io {
            path: path.to_path_buf(),
            source: error,
        },
    }
}

/// The target of `/proc/PID/exe` as text (may end in `" (deleted)"`).
pub(crate) fn exe_link(pid: u32) -> Result<String, TargetError> {
    if !Path::new(&format!("/proc/{pid}")).exists() {
        return Err(TargetError::NoSuchProcess { pid });
    }
    if !process_is_alive(pid) {
        return Err(TargetError::ProcessExited { pid });
    }
    let path = exe_path(pid);
    match std::fs::read_link(&path) {
        Ok(target) => Ok(target.to_string_lossy().into_owned()),
        // The process runs but has no executable: a kernel thread.
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) && process_is_alive(pid) => {
            Err(TargetError::NotGo {
                what: format!("pid {pid}"),
                reason: "it has no executable (kernel thread)".into(),
            })
        }
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Err(TargetError::ProcessExited { pid }),
        Err(e) => Err(proc_error(pid, &path, e, false)),
    }
}

/// Reads the whole executable through `/proc/PID/exe` (works if the file was
/// deleted or replaced since the process started). Returns its bytes and the
/// `(st_dev, st_ino)` of the mapped file.
pub(crate) fn read_exe(pid: u32) -> Result<(Vec<u8>, (u64, u64)), TargetError> {
    let path = exe_path(pid);
    let file = File::open(&path).map_err(|e| proc_error(pid, &path, e, true))?;
    let metadata = file
        .metadata()
        .map_err(|e| proc_error(pid, &path, e, true))?;
    let data = read_all(&file, metadata.len()).map_err(|e| proc_error(pid, &path, e, true))?;
    Ok((data, (metadata.dev(), metadata.ino())))
}

pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>, TargetError> {
    let io_error = |source| TargetError::Io {
        path: path.to_path_buf(),
        source,
    };
    let file = File::open(path).map_err(io_error)?;
    let metadata = file.metadata().map_err(io_error)?;
    if metadata.is_dir() {
        return Err(io_error(io::Error::from_raw_os_error(libc::EISDIR)));
    }
    read_all(&file, metadata.len()).map_err(io_error)
}

fn read_all(file: &File, len_hint: u64) -> io::Result<Vec<u8>> {
    use std::io::Read;
    let mut data = Vec::new();
    data.try_reserve_exact(usize::try_from(len_hint).unwrap_or(0))
        .map_err(|_| io::Error::from_raw_os_error(libc::ENOMEM))?;
    let mut reader = file;
    reader.read_to_end(&mut data)?;
    Ok(data)
}

/// One line of `/proc/PID/maps`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Mapping {
    pub(crate) start: u64,
    pub(crate) end: u64,
    pub(crate) executable: bool,
    pub(crate) offset: u64,
    /// `(major, minor)` of the device.
    pub(crate) device: (u32, u32),
    pub(crate) inode: u64,
    pub(crate) path: String,
}

/// Parses `/proc/PID/maps` text; malformed lines are skipped.
pub(crate) fn parse_maps(text: &str) -> Vec<Mapping> {
    text.lines().filter_map(parse_maps_line).collect()
}

fn parse_maps_line(line: &str) -> Option<Mapping> {
    let mut fields = line.splitn(6, ' ');
    let (start, end) = fields.next()?.split_once('-')?;
    let perms = fields.next()?;
    let offset = fields.next()?;
    let (major, minor) = fields.next()?.split_once(':')?;
    let inode = fields.next()?;
    let path = fields.next().unwrap_or("").trim_start();
    Some(Mapping {
        start: u64::from_str_radix(start, 16).ok()?,
        end: u64::from_str_radix(end, 16).ok()?,
        executable: perms.as_bytes().get(2) == Some(&b'x'),
        offset: u64::from_str_radix(offset, 16).ok()?,
        device: (
            u32::from_str_radix(major, 16).ok()?,
            u32::from_str_radix(minor, 16).ok()?,
        ),
        inode: inode.parse().ok()?,
        path: path.to_string(),
    })
}

/// The executable mapping of the program file among `maps`: matched by
/// device and inode, or by path (`display_path`, as `/proc/PID/exe` reads)
/// when the device numbers differ (overlay filesystems).
pub(crate) fn executable_mapping<'a>(
    maps: &'a [Mapping],
    dev_ino: (u64, u64),
    display_path: &str,
) -> Option<&'a Mapping> {
    let (dev, ino) = dev_ino;
    let device = (libc::major(dev), libc::minor(dev));
    maps.iter()
        .find(|m| m.executable && m.inode == ino && m.device == device)
        .or_else(|| {
            maps.iter()
                .find(|m| m.executable && m.inode == ino && m.path == display_path)
        })
        .or_else(|| maps.iter().find(|m| m.executable && m.path == display_path))
}

/// Load bias (runtime address − link-time address) from the executable
/// mapping: `start - (offset + (p_vaddr - p_offset))` of the text segment.
pub(crate) fn load_bias(mapping: &Mapping, text_segment_delta: u64) -> u64 {
    mapping
        .start
        .wrapping_sub(mapping.offset.wrapping_add(text_segment_delta))
}

pub(crate) fn read_maps(pid: u32) -> Result<Vec<Mapping>, TargetError> {
    let path = PathBuf::from(format!("/proc/{pid}/maps"));
    let text = std::fs::read_to_string(&path).map_err(|e| proc_error(pid, &path, e, true))?;
    Ok(parse_maps(&text))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAPS: &str = "\
00400000-0049e000 r-xp 00000000 fe:01 1835083                            /tmp/hello (deleted)
0049e000-00580000 r--p 0009e000 fe:01 1835083                            /tmp/hello (deleted)
00580000-005a8000 rw-p 00180000 fe:01 1835083                            /tmp/hello (deleted)
005a8000-005e0000 rw-p 00000000 00:00 0 
c000000000-c004000000 rw-p 00000000 00:00 0 
7ffd5e5f3000-7ffd5e614000 rw-p 00000000 00:00 0                          [stack]
garbage line
";

    #[test]
    fn parses_maps() {
        let maps = parse_maps(MAPS);
        assert_eq!(maps.len(), 6);
        assert_eq!(
            maps[0],
            Mapping {
                start: 0x400000,
                end: 0x49e000,
                executable: true,
                offset: 0,
                device: (0xfe, 1),
                inode: 1835083,
                path: "/tmp/hello (deleted)".into(),
            }
        );
        assert!(!maps[1].executable);
        assert_eq!(maps[3].path, "");
        assert_eq!(maps[5].path, "[stack]");
    }

    #[test]
    fn finds_executable_mapping_and_bias() {
        let maps = parse_maps(MAPS);
        let dev = libc::makedev(0xfe, 1);
        let mapping = executable_mapping(&maps, (dev, 1835083), "/tmp/hello (deleted)").unwrap();
        assert_eq!(mapping.start, 0x400000);
        // Non-PIE: text segment p_vaddr 0x400000 at p_offset 0 → bias 0.
        assert_eq!(load_bias(mapping, 0x400000), 0);
        // Wrong device but same inode and path (overlayfs).
        assert!(executable_mapping(
            &maps,
            (libc::makedev(0, 50), 1835083),
            "/tmp/hello (deleted)"
        )
        .is_some());
        assert!(executable_mapping(&maps, (dev, 1), "/other").is_none());
    }

    #[test]
    fn pie_bias() {
        let mapping =
            parse_maps_line("55d4c2a00000-55d4c2a9f000 r-xp 00000000 08:01 42 /usr/bin/app")
                .unwrap();
        // PIE linked at 0x400000 (Go's internal linker) or at 0.
        assert_eq!(load_bias(&mapping, 0x400000), 0x55d4c2a00000 - 0x400000);
        assert_eq!(load_bias(&mapping, 0), 0x55d4c2a00000);
        // Text not at file offset 0 (external linker): p_vaddr 0x1000, p_offset 0x1000.
        let mapping =
            parse_maps_line("7f0000001000-7f0000002000 r-xp 00001000 08:01 42 /usr/bin/app")
                .unwrap();
        assert_eq!(load_bias(&mapping, 0), 0x7f0000000000);
    }

    #[test]
    fn proc_errors_map_to_user_errors() {
        let path = Path::new("/proc/1/exe");
        let eacces = io::Error::from_raw_os_error(libc::EACCES);
        assert!(matches!(
            proc_error(7, path, eacces, false),
            TargetError::PermissionDenied { pid: 7 }
        ));
        let gone = u32::MAX - 1;
        let enoent = || io::Error::from_raw_os_error(libc::ENOENT);
        assert!(matches!(
            proc_error(gone, path, enoent(), false),
            TargetError::NoSuchProcess { .. }
        ));
        assert!(matches!(
            proc_error(gone, path, enoent(), true),
            TargetError::ProcessExited { .. }
        ));
        let eio = io::Error::from_raw_os_error(libc::EIO);
        assert!(matches!(
            proc_error(gone, path, eio, true),
            TargetError::Io { .. }
        ));
        assert_eq!(
            TargetError::PermissionDenied { pid: 7 }.to_string(),
            "not allowed to inspect pid 7: run as root (sudo) or as the process owner"
        );
    }

    #[test]
    fn missing_process() {
        // pid_max is at most 2^22; this pid cannot exist.
        assert!(!process_is_alive(u32::MAX - 1));
        assert!(process_is_alive(std::process::id()));
        assert!(matches!(
            exe_link(u32::MAX - 1),
            Err(TargetError::NoSuchProcess { .. })
        ));
    }
}

#[cfg(test)]
mod usage_tests {
    use super::*;

    #[test]
    fn status_fields_are_parsed_and_missing_ones_are_none() {
        let usage = parse_status("Name:\tleaks\nVmRSS:\t   12345 kB\nThreads:\t7\n");
        assert_eq!(usage.rss_bytes, Some(12345 * 1024));
        assert_eq!(usage.threads, Some(7));
        // A kernel thread has no VmRSS line.
        assert_eq!(
            parse_status("Name:\tkthreadd\nThreads:\t1\n").rss_bytes,
            None
        );
        let own = process_usage(std::process::id());
        assert!(own.rss_bytes.unwrap() > 0 && own.threads.unwrap() >= 1);
        assert_eq!(process_usage(u32::MAX), ProcessUsage::default());
    }

    #[test]
    fn cpu_time_is_utime_plus_stime() {
        let stat = "42 (a (weird) name) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0";
        assert_eq!(parse_cpu_ticks(stat), Some(300));
        assert_eq!(parse_cpu_ticks("garbage"), None);
        assert!(process_cpu_ns(std::process::id()).is_some());
        assert_eq!(process_cpu_ns(u32::MAX), None);
    }
}

//! What the scenarios need from the OS (Linux): pinning a thread to cores,
//! counting the process's context switches (`getrusage(RUSAGE_SELF)`),
//! counting futex system calls through the `syscalls:sys_enter_futex`
//! tracepoint (`perf_event_open`, the counter `perf stat -e
//! syscalls:sys_enter_futex` reads), and a thread's CPU time. Elsewhere, or
//! where the kernel refuses, each says so instead of a figure.

use std::{io, time::Duration};

/// The calling thread's time on a CPU so far, from
/// `/proc/thread-self/schedstat` (`None` where unknown). The kernel updates
/// it at scheduler ticks, so it is coarse below about 10 ms.
pub fn thread_cpu() -> Option<Duration> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
        .map(Duration::from_nanos)
}

/// Pins the calling thread to `cores` (`sched_setaffinity`).
///
/// # Errors
///
/// The OS error, or `Unsupported` off Linux.
pub fn pin_current_thread(cores: &[usize]) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: `cpu_set_t` is a plain bit array; all zeroes is the empty
        // set, which `CPU_ZERO` would also produce.
        let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
        for &core in cores {
            // SAFETY: `set` is a valid, initialised `cpu_set_t`;
            // `CPU_SET` checks `core` against the set's size.
            unsafe { libc::CPU_SET(core, &mut set) };
        }
        // SAFETY: pid 0 is the calling thread; `set` lives across the call
        // and its size is the one passed.
        let rc = unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set) };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = cores;
        Err(io::ErrorKind::Unsupported.into())
    }
}

/// Context switches of the whole process so far, voluntary plus
/// involuntary (`ru_nvcsw + ru_nivcsw` of `getrusage(RUSAGE_SELF)`), or
/// `None` where that is not available.
pub fn context_switches() -> Option<u64> {
    #[cfg(unix)]
    {
        // SAFETY: `rusage` is plain data; all zeroes is a valid value.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: `usage` is a valid `rusage` the call writes into.
        let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
        (rc == 0).then(|| (usage.ru_nvcsw as u64).saturating_add(usage.ru_nivcsw as u64))
    }
    #[cfg(not(unix))]
    {
        None
    }
}

/// Counts the futex system calls of the calling thread and of every thread
/// it spawns after [`FutexCounter::start`] (the counter is inherited; a
/// thread's count is added when it exits, so join them before
/// [`FutexCounter::read`]), or of the calling thread alone
/// ([`FutexCounter::start_this_thread`]).
#[derive(Debug)]
pub struct FutexCounter {
    #[cfg(target_os = "linux")]
    fd: std::os::fd::OwnedFd,
}

/// `struct perf_event_attr` up to `PERF_ATTR_SIZE_VER0` (64 bytes), the
/// first layout every kernel accepts.
#[cfg(target_os = "linux")]
#[repr(C)]
struct PerfEventAttr {
    kind: u32,
    size: u32,
    config: u64,
    sample_period: u64,
    sample_type: u64,
    read_format: u64,
    /// Bit 0 `disabled`, bit 1 `inherit`, ...
    flags: u64,
    wakeup_events: u32,
    bp_type: u32,
    config1: u64,
}

impl FutexCounter {
    /// Starts counting the calling thread and the threads it spawns from
    /// now on, or `None` if the kernel has no such tracepoint or refuses (no
    /// tracefs, `perf_event_paranoid`, a container).
    pub fn start() -> Option<Self> {
        Self::open(true)
    }

    /// Starts counting the calling thread alone (not the threads it
    /// spawns); `None` as for [`FutexCounter::start`].
    pub fn start_this_thread() -> Option<Self> {
        Self::open(false)
    }

    fn open(inherit: bool) -> Option<Self> {
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::FromRawFd;

            const PERF_TYPE_TRACEPOINT: u32 = 2;
            const INHERIT: u64 = 1 << 1;
            const PERF_FLAG_FD_CLOEXEC: libc::c_ulong = 1 << 3;
            let id = [
                "/sys/kernel/tracing/events/syscalls/sys_enter_futex/id",
                "/sys/kernel/debug/tracing/events/syscalls/sys_enter_futex/id",
            ]
            .iter()
            .find_map(|p| std::fs::read_to_string(p).ok()?.trim().parse::<u64>().ok())?;
            let attr = PerfEventAttr {
                kind: PERF_TYPE_TRACEPOINT,
                size: size_of::<PerfEventAttr>() as u32,
                config: id,
                sample_period: 0,
                sample_type: 0,
                read_format: 0,
                flags: if inherit { INHERIT } else { 0 },
                wakeup_events: 0,
                bp_type: 0,
                config1: 0,
            };
            // SAFETY: `attr` is a valid `perf_event_attr` of the size it
            // states, alive across the call; pid 0 and cpu -1 count the
            // calling thread (and, with `inherit`, its later children) on
            // any CPU; group -1 is no group.
            let fd = unsafe {
                libc::syscall(
                    libc::SYS_perf_event_open,
                    &attr as *const PerfEventAttr,
                    0 as libc::pid_t,
                    -1 as libc::c_int,
                    -1 as libc::c_int,
                    PERF_FLAG_FD_CLOEXEC,
                )
            };
            if fd < 0 {
                return None;
            }
            // SAFETY: the kernel just returned this new descriptor; nothing
            // else owns it.
            let fd = unsafe { std::os::fd::OwnedFd::from_raw_fd(fd as libc::c_int) };
            Some(Self { fd })
        }
        #[cfg(not(target_os = "linux"))]
        {
            let _ = inherit;
            None
        }
    }

    /// The futex calls counted so far.
    pub fn read(&self) -> Option<u64> {
        #[cfg(target_os = "linux")]
        {
            use std::os::fd::AsRawFd;

            let mut count = 0u64;
            // SAFETY: reads 8 bytes into `count`, a live `u64`, from the
            // counter's descriptor, which `self` owns.
            let n = unsafe {
                libc::read(
                    self.fd.as_raw_fd(),
                    (&mut count as *mut u64).cast(),
                    size_of::<u64>(),
                )
            };
            (n == size_of::<u64>() as isize).then_some(count)
        }
        #[cfg(not(target_os = "linux"))]
        {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_grow_and_pinning_takes_core_0() {
        if let Some(before) = context_switches() {
            std::thread::sleep(std::time::Duration::from_millis(1));
            assert!(context_switches().expect("still available") > before);
        }
        std::thread::spawn(|| pin_current_thread(&[0]).expect("core 0 exists"))
            .join()
            .expect("pinned thread");
    }

    #[test]
    fn futex_counter_sees_a_parked_thread_when_available() {
        let Some(counter) = FutexCounter::start() else {
            return;
        };
        let before = counter.read().expect("readable");
        let t =
            std::thread::spawn(|| std::thread::park_timeout(std::time::Duration::from_millis(5)));
        t.join().expect("joined");
        assert!(counter.read().expect("readable") > before);
    }

    #[test]
    fn thread_only_futex_counter_leaves_out_spawned_threads() {
        let (Some(all), Some(own)) = (FutexCounter::start(), FutexCounter::start_this_thread())
        else {
            return;
        };
        let (all0, own0) = (all.read().expect("readable"), own.read().expect("readable"));
        // The spawned thread parks (futex calls of its own) while this one
        // makes none until the join, which finds the thread gone or waits:
        // at most one call of this thread's.
        let t = std::thread::spawn(|| {
            for _ in 0..3 {
                std::thread::park_timeout(std::time::Duration::from_millis(1));
            }
        });
        std::thread::sleep(std::time::Duration::from_millis(20));
        t.join().expect("joined");
        let own_calls = own.read().expect("readable") - own0;
        let all_calls = all.read().expect("readable") - all0;
        assert!(own_calls <= 1, "this thread made {own_calls} futex calls");
        assert!(
            all_calls >= own_calls + 3,
            "{all_calls} in all, {own_calls} here"
        );
    }
}
